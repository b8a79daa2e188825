package fhir_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/fhir"
)

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newClock() *clock { return &clock{now: time.Date(2025, 6, 30, 10, 0, 0, 0, time.UTC)} }

// jwt builds an unsigned JWT with an exp claim; the client never checks
// signatures.
func jwt(exp time.Time, n int) string {
	enc := base64.RawURLEncoding
	payload := fmt.Sprintf(`{"sub":"mediator","n":%d,"exp":%d}`, n, exp.Unix())
	return enc.EncodeToString([]byte(`{"alg":"HS256"}`)) + "." + enc.EncodeToString([]byte(payload)) + ".sig"
}

// heydonto is a test HeyDonto: POST /auth/login {email,password} answers
// {"accessToken"} or {"message","token"} without expiry (both documented
// versions, docs/upstreams/fhir-subscriptions.md §6.3); everything under
// /site/42/fhir needs the latest token.
type heydonto struct {
	*server
	logins   atomic.Int32
	tokenKey string
	current  atomic.Value // string
	expMaker func(n int) string
}

func newHeyDonto(t *testing.T, tokenKey string) *heydonto {
	t.Helper()
	h := &heydonto{tokenKey: tokenKey}
	h.current.Store("")
	h.server = newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/auth/login" {
			var body map[string]string
			if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&body) != nil ||
				body["email"] != "ops@example.org" || body["password"] != "pw-s3cret" || len(body) != 2 {
				writeJSON(w, 401, `{"message":"Invalid credentials"}`)
				return
			}
			n := int(h.logins.Add(1))
			tok := fmt.Sprintf("tok-%d", n)
			if h.expMaker != nil {
				tok = h.expMaker(n)
			}
			h.current.Store(tok)
			writeJSON(w, 200, fmt.Sprintf(`{"message":"Login successful",%q:%q}`, h.tokenKey, tok))
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+h.current.Load().(string) || h.current.Load().(string) == "" {
			writeJSON(w, 401, `{"message":"Unauthorized"}`)
			return
		}
		writeJSON(w, 200, `{"resourceType":"ClaimResponse","id":"1"}`)
	})
	return h
}

func (h *heydonto) client(t *testing.T, password string, now func() time.Time) (*fhir.Client, *fhir.JSONLogin) {
	t.Helper()
	q, _ := fhir.QuirksOf(fhir.VendorHeyDonto)
	login, err := fhir.NewJSONLogin(fhir.JSONLoginOptions{
		URL:       fhir.DefaultLoginURL(fhir.VendorHeyDonto, h.base()),
		UserField: q.LoginUserField, TokenFields: q.TokenFields,
		Username: "ops@example.org", Password: password, Now: now,
	})
	require.NoError(t, err)
	return newClient(t, fhir.Options{BaseURL: h.base(), Vendor: fhir.VendorHeyDonto, Auth: login, Now: now}), login
}

func TestJSONLogin(t *testing.T) {
	t.Parallel()
	for _, key := range []string{"token", "accessToken"} {
		t.Run("TokenIn_"+key, func(t *testing.T) {
			t.Parallel()
			h := newHeyDonto(t, key)
			c, _ := h.client(t, "pw-s3cret", nil)
			_, err := c.Read(context.Background(), "ClaimResponse", "1")
			require.NoError(t, err)
			reqs := h.recorded()
			require.Len(t, reqs, 2)
			require.Equal(t, "/auth/login", reqs[0].Path)
			require.Empty(t, reqs[0].Auth, "the login carries no Authorization")
			require.Equal(t, basePath+"/claim-response/1", reqs[1].Path)
		})
	}
	t.Run("ReloginOnceAfter401", func(t *testing.T) {
		t.Parallel()
		h := newHeyDonto(t, "token")
		c, _ := h.client(t, "pw-s3cret", nil)
		_, err := c.Read(context.Background(), "ClaimResponse", "1")
		require.NoError(t, err)
		h.current.Store("revoked") // the server forgets the token (trap 24)
		_, err = c.Read(context.Background(), "ClaimResponse", "1")
		require.NoError(t, err)
		require.EqualValues(t, 2, h.logins.Load())
	})
	t.Run("OneLoginUnderLoad", func(t *testing.T) {
		t.Parallel()
		h := newHeyDonto(t, "token")
		c, _ := h.client(t, "pw-s3cret", nil)
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := c.Read(context.Background(), "ClaimResponse", "1")
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.EqualValues(t, 1, h.logins.Load())
	})
	t.Run("RefreshBeforeJWTExpiry", func(t *testing.T) {
		t.Parallel()
		clk := newClock()
		h := newHeyDonto(t, "token")
		h.expMaker = func(n int) string { return jwt(clk.Now().Add(time.Hour), n) }
		c, _ := h.client(t, "pw-s3cret", clk.Now)
		_, err := c.Read(context.Background(), "ClaimResponse", "1")
		require.NoError(t, err)
		clk.Add(40 * time.Minute)
		_, err = c.Read(context.Background(), "ClaimResponse", "1")
		require.NoError(t, err)
		require.EqualValues(t, 1, h.logins.Load(), "a token with 20 minutes left was replaced")
		clk.Add(9 * time.Minute) // 11 minutes left: kept, the margin is a fifth of the lifetime but at most 5 minutes
		_, err = c.Read(context.Background(), "ClaimResponse", "1")
		require.NoError(t, err)
		require.EqualValues(t, 1, h.logins.Load())
		clk.Add(7 * time.Minute) // 4 minutes left
		_, err = c.Read(context.Background(), "ClaimResponse", "1")
		require.NoError(t, err)
		require.EqualValues(t, 2, h.logins.Load(), "the token was kept into its last 5 minutes")
	})
	t.Run("RefusedLoginWaitsAndHidesPassword", func(t *testing.T) {
		t.Parallel()
		clk := newClock()
		h := newHeyDonto(t, "token")
		c, login := h.client(t, "wrong-pw", clk.Now)
		_, err := c.Read(context.Background(), "ClaimResponse", "1")
		var le *fhir.LoginError
		require.ErrorAs(t, err, &le)
		require.True(t, le.Refused())
		require.Contains(t, err.Error(), "Invalid credentials")
		require.NotContains(t, err.Error(), "wrong-pw")
		require.ErrorAs(t, login.LoginFailure(), &le)
		_, err = c.Read(context.Background(), "ClaimResponse", "1")
		require.ErrorIs(t, err, fhir.ErrLoginBackoff)
		require.EqualValues(t, 1, len(h.recorded()), "a login was sent while waiting")
		clk.Add(2 * time.Second)
		_, err = c.Read(context.Background(), "ClaimResponse", "1")
		require.ErrorAs(t, err, &le)
		require.Len(t, h.recorded(), 2)
	})
	t.Run("AnswerWithoutToken", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, `{"message":"Login successful"}`) })
		login, err := fhir.NewJSONLogin(fhir.JSONLoginOptions{URL: srv.URL + "/auth/login", Username: "u", Password: "p"})
		require.NoError(t, err)
		_, err = login.Authorization(context.Background(), http.DefaultClient)
		require.ErrorContains(t, err, "no token in token, accessToken, access_token")
	})
}

func TestClientCredentials(t *testing.T) {
	t.Parallel()
	t.Run("SMARTDiscoveryAndExpiry", func(t *testing.T) {
		t.Parallel()
		clk := newClock()
		var tokens atomic.Int32
		var srv *server
		srv = newServer(t, func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case basePath + "/.well-known/smart-configuration":
				writeJSON(w, 200, fmt.Sprintf(`{"token_endpoint":%q}`, srv.URL+"/oauth/token"))
			case "/oauth/token":
				// RFC 6749 §4.4: a form with grant_type=client_credentials,
				// the client authenticated (Basic, or in the form).
				if r.ParseForm() != nil {
					w.WriteHeader(400)
					return
				}
				id, secret, ok := r.BasicAuth()
				if !ok {
					id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
				}
				if r.PostForm.Get("grant_type") != "client_credentials" || id != "mediator" || secret != "cc-s3cret" {
					writeJSON(w, 401, `{"error":"invalid_client"}`)
					return
				}
				n := tokens.Add(1)
				writeJSON(w, 200, fmt.Sprintf(`{"access_token":"at-%d","token_type":"bearer","expires_in":3600}`, n))
			default:
				if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer at-") {
					w.WriteHeader(401)
					return
				}
				writeJSON(w, 200, `{"resourceType":"ClaimResponse","id":"1"}`)
			}
		})
		cc, err := fhir.NewClientCredentials(fhir.ClientCredentialsOptions{
			BaseURL: srv.base(), ClientID: "mediator", ClientSecret: "cc-s3cret", Scopes: []string{"system/*.read"}, Now: clk.Now,
		})
		require.NoError(t, err)
		c := newClient(t, fhir.Options{BaseURL: srv.base(), Auth: cc, Now: clk.Now})
		_, err = c.Read(context.Background(), "ClaimResponse", "1")
		require.NoError(t, err)
		_, err = c.Read(context.Background(), "ClaimResponse", "1")
		require.NoError(t, err)
		require.EqualValues(t, 1, tokens.Load())
		clk.Add(56 * time.Minute)
		_, err = c.Read(context.Background(), "ClaimResponse", "1")
		require.NoError(t, err)
		require.EqualValues(t, 2, tokens.Load(), "a token about to expire was kept")
		var form url.Values
		for _, r := range srv.recorded() {
			if r.Path == "/oauth/token" {
				form, _ = url.ParseQuery(string(r.Body))
			}
		}
		require.Equal(t, "system/*.read", form.Get("scope"))
	})
	t.Run("RefusedHidesSecret", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 401, `{"error":"invalid_client","error_description":"bad secret cc-s3cret"}`)
		})
		cc, err := fhir.NewClientCredentials(fhir.ClientCredentialsOptions{TokenURL: srv.URL + "/auth/token", ClientID: "m", ClientSecret: "cc-s3cret"})
		require.NoError(t, err)
		_, err = cc.Authorization(context.Background(), http.DefaultClient)
		var le *fhir.LoginError
		require.ErrorAs(t, err, &le)
		require.Equal(t, 401, le.Status)
		require.Contains(t, err.Error(), "invalid_client")
		require.NotContains(t, err.Error(), "cc-s3cret")
	})
	t.Run("NoSMARTConfiguration", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) })
		cc, err := fhir.NewClientCredentials(fhir.ClientCredentialsOptions{BaseURL: srv.base(), ClientID: "m", ClientSecret: "s"})
		require.NoError(t, err)
		_, err = cc.Authorization(context.Background(), http.DefaultClient)
		require.ErrorContains(t, err, "set the token URL")
	})
}
