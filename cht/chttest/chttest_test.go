package chttest_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/cht/chttest"
)

// hdr is a set of request headers. An empty value leaves the header out.
type hdr map[string]string

// result is an answer, read in full.
type result struct {
	status int
	header http.Header
	body   string
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// good are the headers a well-behaved client sends.
var good = hdr{"Authorization": basic("medic", "password"), "Accept": "application/json", "Content-Type": "application/json"}

// with returns a copy of h with the given key/value pairs set.
func with(h hdr, kv ...string) hdr {
	out := hdr{}
	for k, v := range h {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func send(t *testing.T, s *chttest.Server, method, path, body string, h hdr) (*http.Response, error) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.URL+path, rd)
	require.NoError(t, err)
	for k, v := range h {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	return http.DefaultClient.Do(req)
}

func do(t *testing.T, s *chttest.Server, method, path, body string, h hdr) result {
	t.Helper()
	resp, err := send(t, s, method, path, body, h)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return result{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// opRecord is a complete OP report body, as the mediator sends it.
func opRecord(patientID string) map[string]any {
	return map[string]any{
		"_meta":         map[string]any{"form": "OP"},
		"patient_id":    patientID,
		"op_claim_id":   "CHT979",
		"op_claim_uuid": "d3256498-0d8d-4d5e-9e4e-3b5f0c3a0f11",
		"op_year":       "2082",
		"op_month":      "05",
		"op_day":        "09",
		"op_date":       1756080000000,
	}
}

// clock is a settable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 8, 25, 10, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestNewServer_Defaults(t *testing.T) {
	t.Parallel()
	s := chttest.NewServer(t, chttest.Options{})
	require.Equal(t, chttest.DefaultUsername, s.Username)
	require.Equal(t, chttest.DefaultPassword, s.Password)
	require.True(t, strings.HasPrefix(s.URL, "http://127.0.0.1:"))
	require.Contains(t, chttest.DefaultForms(), "OP")
	r := do(t, s, http.MethodGet, "/api/v1/place/"+chttest.DefaultPlaceID, "", good)
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, r.body, `"type":"health_center"`)
}

func TestDefaultForms_MatchFixture(t *testing.T) {
	t.Parallel()
	fixture, err := os.ReadFile("../../testdata/cht/interop-app_settings.forms.OP.json")
	require.NoError(t, err)
	require.JSONEq(t, string(fixture), string(chttest.DefaultForms()["OP"]))
}

// Errors are JSON only for a client whose Accept prefers JSON (trap 2).
func TestServer_Auth(t *testing.T) {
	t.Parallel()
	clk := newClock() // moved on after each refusal, out of the login limiter's window
	s := chttest.NewServer(t, chttest.Options{Username: "mediator", Password: "s3cret", Now: clk.Now})
	const jsonBody, textBody = `{"code":401,"error":"unauthorized"}`, "not logged in"
	tests := []struct {
		name, auth, accept string
		json               bool
	}{
		{name: "NoCredentialsNoAccept", accept: ""},
		{name: "DefaultCredentialsRefused", auth: basic("medic", "password"), accept: "application/json", json: true},
		{name: "WrongPassword", auth: basic("mediator", "nope"), accept: "application/json", json: true},
		{name: "AnyType", accept: "*/*"},
		{name: "TextFirst", accept: "text/plain, application/json"},
		{name: "JSONFirst", accept: "application/json, text/plain, */*", json: true},
		{name: "JSONByQuality", accept: "text/plain;q=0.5, application/json", json: true},
		{name: "JSONWithCharsetMatchesNothing", accept: "application/json; charset=utf-8"},
		{name: "HTML", accept: "text/html"},
		{name: "AnyApplication", accept: "application/*", json: true},
		{name: "TextByQuality", accept: "text/*;q=0.9, application/json;q=0.8"},
		{name: "JSONRefused", accept: "application/json;q=0"},
		{name: "QuotedQ", accept: `application/json;q="1"`, json: true},
		{name: "AnyLowThenJSON", accept: "*/*;q=0.1, application/json", json: true},
		{name: "Garbage", accept: "garbage"},
	}
	for _, tt := range tests {
		r := do(t, s, http.MethodGet, "/api/v1/person/x", "", hdr{"Authorization": tt.auth, "Accept": tt.accept})
		require.Equal(t, http.StatusUnauthorized, r.status, tt.name)
		if tt.json {
			require.JSONEq(t, jsonBody, r.body, tt.name)
			require.Empty(t, r.header.Get("WWW-Authenticate"), tt.name)
		} else {
			require.Equal(t, textBody, r.body, tt.name)
			require.Equal(t, `Basic realm="Medic Web Services"`, r.header.Get("WWW-Authenticate"), tt.name)
		}
		clk.Add(10 * time.Second)
	}
	r := do(t, s, http.MethodGet, "/api/v1/person/x", "", with(good, "Authorization", basic("mediator", "s3cret")))
	require.Equal(t, http.StatusNotFound, r.status)

	// Every route checks the credentials before it does anything (on a
	// fresh server: the failures above count towards the login limiter).
	s = chttest.NewServer(t, chttest.Options{Username: "mediator", Password: "s3cret"})
	routes := []struct{ method, path, body string }{
		{http.MethodPost, "/api/v2/records", mustJSON(t, opRecord("12345"))},
		{http.MethodPost, "/api/v1/people", `{"name":"A"}`},
		{http.MethodGet, "/api/v1/person/abc", ""},
		{http.MethodGet, "/api/v1/place/abc", ""},
		{http.MethodGet, "/api/v1/contact/uuid?freetext=name:abc", ""},
		{http.MethodGet, "/api/v1/report/uuid?freetext=form:op", ""},
		{http.MethodGet, "/api/v1/settings", ""},
		{http.MethodGet, "/api/v2/unknown", ""},
	}
	for _, rt := range routes {
		r := do(t, s, rt.method, rt.path, rt.body, good)
		require.Equal(t, http.StatusUnauthorized, r.status, rt.path)
	}
	require.Empty(t, s.Reports())
	require.Empty(t, s.People())
}

// Ten 401/429 answers within 10 s lock out the IP, the user and the
// password (trap 14).
func TestServer_LoginLimiter(t *testing.T) {
	t.Parallel()
	const path = "/api/v1/contact/uuid?freetext=name:nobody"
	bad := with(good, "Authorization", basic("medic", "wrong"))

	t.Run("LocksOutAfterTenFailures", func(t *testing.T) {
		t.Parallel()
		clk := newClock()
		s := chttest.NewServer(t, chttest.Options{Now: clk.Now})
		for i := range 10 {
			require.Equal(t, http.StatusUnauthorized, do(t, s, http.MethodGet, path, "", bad).status, "attempt %d", i+1)
			clk.Add(500 * time.Millisecond)
		}
		r := do(t, s, http.MethodGet, path, "", bad)
		require.Equal(t, http.StatusTooManyRequests, r.status)
		require.JSONEq(t, `{"code":429,"error":"Too Many Requests"}`, r.body)
		// The right password does not help until the window passes.
		require.Equal(t, http.StatusTooManyRequests, do(t, s, http.MethodGet, path, "", good).status)
		require.Equal(t, "Too Many Requests", do(t, s, http.MethodGet, path, "", with(good, "Accept", "")).body)
		clk.Add(5 * time.Second) // the window started at the first failure
		require.Equal(t, http.StatusOK, do(t, s, http.MethodGet, path, "", good).status)
	})
	t.Run("NineFailuresAreFine", func(t *testing.T) {
		t.Parallel()
		s := chttest.NewServer(t, chttest.Options{Now: newClock().Now})
		for range 9 {
			require.Equal(t, http.StatusUnauthorized, do(t, s, http.MethodGet, path, "", bad).status)
		}
		require.Equal(t, http.StatusOK, do(t, s, http.MethodGet, path, "", good).status)
	})
	t.Run("InjectedRefusalsCount", func(t *testing.T) {
		t.Parallel()
		s := chttest.NewServer(t, chttest.Options{Now: newClock().Now})
		s.FailNext(10, http.StatusTooManyRequests)
		for range 10 {
			require.Equal(t, http.StatusTooManyRequests, do(t, s, http.MethodGet, path, "", good).status)
		}
		require.Equal(t, http.StatusTooManyRequests, do(t, s, http.MethodGet, path, "", good).status, "locked out")
	})
	t.Run("AnonymousFailuresCountAgainstTheIP", func(t *testing.T) {
		t.Parallel()
		clk := newClock()
		s := chttest.NewServer(t, chttest.Options{Now: clk.Now})
		for range 15 {
			require.Equal(t, http.StatusUnauthorized, do(t, s, http.MethodGet, path, "", nil).status)
		}
		require.Equal(t, http.StatusTooManyRequests, do(t, s, http.MethodGet, path, "", good).status)
		clk.Add(10 * time.Second)
		require.Equal(t, http.StatusOK, do(t, s, http.MethodGet, path, "", good).status)
	})
}

func TestServer_Records(t *testing.T) {
	t.Parallel()
	post := func(t *testing.T, s *chttest.Server, body any, h hdr) result {
		t.Helper()
		raw, ok := body.(string)
		if !ok {
			raw = mustJSON(t, body)
		}
		return do(t, s, http.MethodPost, "/api/v2/records", raw, h)
	}

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		s := chttest.NewServer(t, chttest.Options{})
		body := opRecord("12345")
		body["_meta"] = map[string]any{"form": "op", "from": "+9779841171819", "reported_date": 1756100000000, "claim": "x"}
		r := post(t, s, body, good)
		require.Equal(t, http.StatusOK, r.status)
		require.Equal(t, "application/json; charset=utf-8", r.header.Get("Content-Type"))
		var out struct {
			Success bool   `json:"success"`
			ID      string `json:"id"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.body), &out))
		require.True(t, out.Success)
		require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, out.ID)

		reports := s.Reports()
		require.Len(t, reports, 1)
		rep := reports[0]
		require.Equal(t, out.ID, rep.ID)
		require.Equal(t, "OP", rep.Form)
		require.Empty(t, rep.Errors)
		require.Equal(t, int64(1756100000000), rep.ReportedDate)
		require.Equal(t, map[string]any{
			"patient_id": "12345", "op_claim_id": "CHT979", "op_claim_uuid": "d3256498-0d8d-4d5e-9e4e-3b5f0c3a0f11",
			"op_year": "2082", "op_month": "05", "op_day": "09", "op_date": float64(1756080000000),
		}, rep.Fields, "BS parts stored as sent, op_date not computed (trap 4)")
		require.Equal(t, map[string]any{
			"form": "OP", "from": "+9779841171819", "reported_date": float64(1756100000000), "claim": "x",
		}, rep.Meta)
		require.Equal(t, "data_record", rep.Doc["type"])
		require.Equal(t, "+9779841171819", rep.Doc["from"])
		got, ok := s.Report(out.ID)
		require.True(t, ok)
		require.Equal(t, rep, got)
		_, ok = s.Report("nothing")
		require.False(t, ok)
		require.Equal(t, 1, s.ReportCount())
	})

	// Unknown keys are dropped silently and keys are lower-cased (trap 3).
	t.Run("KeysLowerCasedAndUnknownDropped", func(t *testing.T) {
		t.Parallel()
		s := chttest.NewServer(t, chttest.Options{})
		body := `{"_meta":{"form":"OP"},"PATIENT_ID":"12345","Op_Claim_Id":"CHT1","op_claim_uuid":"u-1",` +
			`"op_year":"2082","op_month":"05","op_day":"09","patient_uuid":"p-1","openimis_id":"i-1"}`
		require.Equal(t, http.StatusOK, post(t, s, body, good).status)
		rep := s.Reports()[0]
		require.Equal(t, map[string]any{
			"patient_id": "12345", "op_claim_id": "CHT1", "op_claim_uuid": "u-1",
			"op_year": "2082", "op_month": "05", "op_day": "09",
		}, rep.Fields)
		require.Empty(t, rep.Errors)
	})

	// A 200 does not mean the record is valid: the errors are in the doc
	// only (trap 1).
	t.Run("InvalidStill200", func(t *testing.T) {
		t.Parallel()
		s := chttest.NewServer(t, chttest.Options{})
		tests := []struct {
			name string
			edit map[string]any // nil deletes the key
			want []chttest.DocError
		}{
			{name: "MissingFields", edit: map[string]any{"patient_id": "<delete>", "op_claim_uuid": "<delete>", "op_date": "<delete>"},
				want: []chttest.DocError{{Code: "sys.missing_fields", Message: "Missing or invalid fields: patient_id,op_claim_uuid."}}},
			{name: "NullIsMissing", edit: map[string]any{"op_claim_id": nil},
				want: []chttest.DocError{{Code: "sys.missing_fields", Message: "Missing or invalid fields: op_claim_id."}}},
			{name: "WrongType", edit: map[string]any{"op_claim_id": 979, "op_year": 2082},
				want: []chttest.DocError{{Code: "sys.incorrect_type", Message: "Incorrect type of field op_claim_id, expected string."}}},
		}
		for i, tt := range tests {
			body := opRecord("12345")
			for k, v := range tt.edit {
				if v == "<delete>" {
					delete(body, k)
				} else {
					body[k] = v
				}
			}
			r := post(t, s, body, good)
			require.Equal(t, http.StatusOK, r.status, tt.name)
			require.Contains(t, r.body, `"success":true`, tt.name)
			require.Equal(t, tt.want, s.Reports()[i].Errors, tt.name)
		}
		require.Equal(t, float64(2082), s.Reports()[2].Fields["op_year"], "bsYear is not validated")
	})

	// Unknown form, missing _meta and bad Content-Type are all 500; only the
	// details, sent to a JSON client, tell them apart (trap 2).
	t.Run("Refused", func(t *testing.T) {
		t.Parallel()
		s := chttest.NewServer(t, chttest.Options{})
		withForm := func(form any) map[string]any {
			b := opRecord("12345")
			b["_meta"] = map[string]any{"form": form}
			return b
		}
		noMeta := opRecord("12345")
		delete(noMeta, "_meta")
		tests := []struct {
			name   string
			body   any
			h      hdr
			status int
			want   string
		}{
			{name: "UnknownForm", body: withForm("xx"), h: good, status: 500,
				want: `{"code":500,"error":"Server error","details":"Form not found: XX"}`},
			{name: "UnknownFormAsText", body: withForm("xx"), h: with(good, "Accept", ""), status: 500,
				want: `Server error: "Form not found: XX"`},
			{name: "MissingMeta", body: noMeta, h: good, status: 500,
				want: `{"code":500,"error":"Server error","details":"Missing _meta property."}`},
			{name: "EmptyMeta", body: `{"_meta":""}`, h: good, status: 500,
				want: `{"code":500,"error":"Server error","details":"Missing _meta property."}`},
			{name: "Array", body: `[]`, h: good, status: 500,
				want: `{"code":500,"error":"Server error","details":"Missing _meta property."}`},
			{name: "MissingForm", body: `{"_meta":{"from":"+9779841171819"}}`, h: good, status: 500,
				want: `{"code":500,"error":"Server error","details":"Missing required field: form"}`},
			{name: "FormNotAString", body: withForm(5), h: good, status: 500, want: `{"code":500,"error":"Server error"}`},
			{name: "TextPlain", body: opRecord("1"), h: with(good, "Content-Type", "text/plain"), status: 500,
				want: `{"code":500,"error":"Server error"}`},
			{name: "VendorJSON", body: opRecord("1"), h: with(good, "Content-Type", "application/vnd.api+json"), status: 500,
				want: `{"code":500,"error":"Server error"}`},
			{name: "FormEncodedNotModelled", body: "from=1&message=OP", h: with(good, "Content-Type", "application/x-www-form-urlencoded"),
				status: 500, want: `{"code":500,"error":"Server error"}`},
			{name: "NoContentTypeAsText", body: opRecord("1"), h: with(good, "Content-Type", "", "Accept", ""), status: 500,
				want: "Server error"},
			{name: "MalformedJSONBeforeAuth", body: `{"_meta":`, h: with(good, "Authorization", ""), status: 500,
				want: `{"code":500,"error":"Server error"}`},
			{name: "JSONString", body: `"just a string"`, h: good, status: 500, want: `{"code":500,"error":"Server error"}`},
			{name: "Over32MiBBeforeAuth", body: `{"x":"` + strings.Repeat("y", 32<<20) + `"}`, h: with(good, "Authorization", ""),
				status: 413, want: `{"code":413,"error":"Payload Too Large"}`},
		}
		for _, tt := range tests {
			r := post(t, s, tt.body, tt.h)
			require.Equal(t, tt.status, r.status, tt.name)
			if strings.HasPrefix(tt.want, "{") {
				require.JSONEq(t, tt.want, r.body, tt.name)
			} else {
				require.Equal(t, tt.want, r.body, tt.name)
			}
		}
		require.Empty(t, s.Reports())
	})

	t.Run("CharsetIsAccepted", func(t *testing.T) {
		t.Parallel()
		s := chttest.NewServer(t, chttest.Options{})
		r := post(t, s, opRecord("12345"), with(good, "Content-Type", "application/json; charset=utf-8"))
		require.Equal(t, http.StatusOK, r.status)
	})

	// Every POST stores a new report: no idempotency (trap 5).
	t.Run("NoIdempotency", func(t *testing.T) {
		t.Parallel()
		s := chttest.NewServer(t, chttest.Options{})
		r1, r2 := post(t, s, opRecord("12345"), good), post(t, s, opRecord("12345"), good)
		require.Equal(t, http.StatusOK, r2.status)
		require.NotEqual(t, r1.body, r2.body)
		require.Len(t, s.Reports(), 2)
	})

	// A save that fails inside the CHT still answers 200, without an id
	// (trap 1).
	t.Run("LoseNextSaves", func(t *testing.T) {
		t.Parallel()
		s := chttest.NewServer(t, chttest.Options{})
		s.LoseNextSaves(1)
		require.Equal(t, http.StatusInternalServerError, post(t, s, `{"_meta":{"form":"XX"}}`, good).status, "a refused POST saves nothing to lose")
		r := post(t, s, opRecord("12345"), good)
		require.Equal(t, http.StatusOK, r.status)
		require.JSONEq(t, `{"success":true}`, r.body)
		require.Empty(t, s.Reports())
		require.Contains(t, post(t, s, opRecord("12345"), good).body, `"id":`)
		require.Len(t, s.Reports(), 1)
	})

	t.Run("ReportedDate", func(t *testing.T) {
		t.Parallel()
		clk := newClock()
		s := chttest.NewServer(t, chttest.Options{Now: clk.Now})
		require.Equal(t, http.StatusOK, post(t, s, opRecord("12345"), good).status)
		require.Equal(t, clk.Now().UnixMilli(), s.Reports()[0].ReportedDate, "now, when _meta has none")
	})

	// The records.spec.js integration test of cht-core: date and boolean
	// conversions, integer and boolean types, errors in the form's order.
	t.Run("CustomForm", func(t *testing.T) {
		t.Parallel()
		form := `{"meta":{"code":"TEST"},"fields":{
			"some_data":{"type":"string","required":true},
			"a_number":{"type":"integer","required":true},
			"a_boolean":{"type":"boolean"},
			"another_boolean":{"type":"boolean"},
			"an_optional_date":{"type":"date"}}}`
		s := chttest.NewServer(t, chttest.Options{Forms: map[string]json.RawMessage{"TEST": json.RawMessage(form)}})
		body := `{"_meta":{"form":"TEST","from":"+447765902000"},"some_data":"hello","a_number":42,` +
			`"a_boolean":false,"another_boolean":0,"an_optional_date":"2018-11-10"}`
		require.Equal(t, http.StatusOK, post(t, s, body, good).status)
		rep := s.Reports()[0]
		require.Equal(t, map[string]any{
			"some_data": "hello", "a_number": float64(42), "a_boolean": false, "another_boolean": false,
			"an_optional_date": float64(time.Date(2018, 11, 10, 0, 0, 0, 0, time.UTC).UnixMilli()),
		}, rep.Fields)
		require.Empty(t, rep.Errors)

		require.Equal(t, http.StatusOK, post(t, s, `{"_meta":{"form":"TEST"},"a_number":4.5,"a_boolean":"yes"}`, good).status)
		require.Equal(t, []chttest.DocError{
			{Code: "sys.incorrect_type", Message: "Incorrect type of field a_number, expected integer."},
			{Code: "sys.incorrect_type", Message: "Incorrect type of field a_boolean, expected boolean."},
			{Code: "sys.missing_fields", Message: "Missing or invalid fields: some_data."},
		}, s.Reports()[1].Errors)

		r := post(t, s, opRecord("12345"), good)
		require.JSONEq(t, `{"code":500,"error":"Server error","details":"Form not found: OP"}`, r.body)
	})
}

func TestServer_People(t *testing.T) {
	t.Parallel()
	post := func(t *testing.T, s *chttest.Server, body string, h hdr) result {
		t.Helper()
		return do(t, s, http.MethodPost, "/api/v1/people", body, h)
	}

	// The person carries openimis_id (trap 7) and its place as parent
	// (trap 8); no shortcode is added (trap 6).
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		clk := newClock()
		s := chttest.NewServer(t, chttest.Options{Now: clk.Now})
		body := `{"_id":"person-1","name":"Asha Rai","place":"` + chttest.DefaultPlaceID +
			`","openimis_id":"7b00e6ec-1111","sex":"female","date_of_birth":"1990-01-01"}`
		r := post(t, s, body, good)
		require.Equal(t, http.StatusOK, r.status, r.body)
		require.Regexp(t, `^\{"id":"person-1","ok":true,"rev":"1-[0-9a-f]{32}"\}$`, r.body)

		people := s.People()
		require.Len(t, people, 1)
		p := people[0]
		require.Equal(t, "person-1", p.ID)
		require.Equal(t, "person", p.Doc["type"])
		require.Equal(t, "Asha Rai", p.Doc["name"])
		require.Equal(t, "7b00e6ec-1111", p.Doc["openimis_id"])
		require.Equal(t, map[string]any{"_id": chttest.DefaultPlaceID}, p.Doc["parent"])
		require.NotContains(t, p.Doc, "place")
		require.NotContains(t, p.Doc, "patient_id")
		require.Equal(t, float64(clk.Now().UnixMilli()), p.Doc["reported_date"])
		got, ok := s.Person("person-1")
		require.True(t, ok)
		require.Equal(t, p, got)

		// Copies: changing them changes nothing in the server.
		got.Doc["name"] = "changed"
		got, _ = s.Person("person-1")
		require.Equal(t, "Asha Rai", got.Doc["name"])
	})

	t.Run("GeneratedID", func(t *testing.T) {
		t.Parallel()
		s := chttest.NewServer(t, chttest.Options{})
		r := post(t, s, `{"name":"Asha"}`, good)
		require.Equal(t, http.StatusOK, r.status)
		var out struct {
			ID string `json:"id"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.body), &out))
		require.Regexp(t, `^[0-9a-f]{32}$`, out.ID)
		require.Equal(t, out.ID, s.People()[0].ID)
		require.NotContains(t, s.People()[0].Doc, "parent")
	})

	t.Run("Refused", func(t *testing.T) {
		t.Parallel()
		s := chttest.NewServer(t, chttest.Options{})
		s.AddPerson(map[string]any{"_id": "taken", "name": "B"})
		tests := []struct {
			name, body string
			h          hdr
			status     int
			want       string
		}{
			// Exactly application/json, checked before the credentials (trap 13).
			{name: "Charset", body: `{"name":"A"}`, h: with(good, "Content-Type", "application/json; charset=utf-8"),
				status: 400, want: "Content-Type must be application/json"},
			{name: "CharsetBeforeAuth", body: `{"name":"A"}`, h: hdr{"Accept": "application/json", "Content-Type": "application/json; charset=utf-8"},
				status: 400, want: "Content-Type must be application/json"},
			{name: "TextPlain", body: `{"name":"A"}`, h: with(good, "Content-Type", "text/plain"),
				status: 400, want: "Content-Type must be application/json"},
			{name: "Empty", body: `{}`, h: good, status: 400, want: "Request body is empty or Content-Type header was not set to application/json."},
			{name: "NoBody", body: "", h: good, status: 400, want: "Request body is empty or Content-Type header was not set to application/json."},
			{name: "MissingName", body: `{"openimis_id":"x"}`, h: good, status: 400, want: `Person is missing a "name" property.`},
			{name: "NameNotString", body: `{"name":5}`, h: good, status: 400, want: `Property "name" must be a string.`},
			{name: "NameNull", body: `{"name":null}`, h: good, status: 400, want: `Property "name" must be a string.`},
			{name: "WrongType", body: `{"name":"A","type":"health_center"}`, h: good, status: 400, want: "Wrong type, this is not a person."},
			{name: "BadPlace", body: `{"name":"A","place":5}`, h: good, status: 400, want: "Place must be a new object or string identifier (UUID)."},
			{name: "UnknownPlace", body: `{"name":"A","place":"nowhere"}`, h: good, status: 404, want: "Failed to find place."},
			{name: "PersonIsNoPlace", body: `{"name":"A","place":"taken"}`, h: good, status: 404, want: "Failed to find place."},
			{name: "IDNotString", body: `{"_id":5,"name":"A"}`, h: good, status: 400, want: "Document id must be a non-empty string"},
			// A second create with the same _id: CouchDB's conflict.
			{name: "IDTaken", body: `{"_id":"taken","name":"A"}`, h: good, status: 409, want: "Document update conflict."},
			{name: "IDOfAPlace", body: `{"_id":"` + chttest.DefaultPlaceID + `","name":"A"}`, h: good, status: 409, want: "Document update conflict."},
		}
		for _, tt := range tests {
			r := post(t, s, tt.body, tt.h)
			require.Equal(t, tt.status, r.status, tt.name)
			require.JSONEq(t, mustJSON(t, map[string]any{"code": tt.status, "error": tt.want}), r.body, tt.name)
		}
		r := post(t, s, `{"_id":"taken","name":"A"}`, with(good, "Accept", ""))
		require.Equal(t, "Document update conflict.", r.body)
		require.Len(t, s.People(), 1)
	})

	t.Run("Places", func(t *testing.T) {
		t.Parallel()
		s := chttest.NewServer(t, chttest.Options{Places: []string{}})
		r := post(t, s, `{"name":"A","place":"`+chttest.DefaultPlaceID+`"}`, good)
		require.Equal(t, http.StatusNotFound, r.status, "Places: [] means no places")
		s.AddPlace("area-2")
		s.AddPerson(map[string]any{"_id": "clinic-1", "type": "clinic", "name": "C", "parent": map[string]any{"_id": "area-2"}})
		require.Equal(t, http.StatusOK, post(t, s, `{"_id":"p1","name":"A","place":"clinic-1"}`, good).status)
		p, _ := s.Person("p1")
		require.Equal(t, map[string]any{"_id": "clinic-1", "parent": map[string]any{"_id": "area-2"}}, p.Doc["parent"])
		require.Len(t, s.People(), 1, "a clinic is not a person")
		require.Panics(t, func() { s.AddPlace("area-2") })
		require.Panics(t, func() { s.AddPerson(map[string]any{"_id": "p1"}) })
	})
}

func TestServer_ReadContacts(t *testing.T) {
	t.Parallel()
	s := chttest.NewServer(t, chttest.Options{})
	s.AddPerson(map[string]any{"_id": "p-1", "name": "Asha", "openimis_id": "x1", "parent": map[string]any{"_id": chttest.DefaultPlaceID}})
	tests := []struct {
		name, path string
		status     int
		want       string
	}{
		{name: "Person", path: "/api/v1/person/p-1", status: 200, want: "x1"},
		{name: "NoPerson", path: "/api/v1/person/nobody", status: 404, want: `{"code":404,"error":"Person not found"}`},
		{name: "PlaceIsNoPerson", path: "/api/v1/person/" + chttest.DefaultPlaceID, status: 404, want: `{"code":404,"error":"Person not found"}`},
		{name: "Place", path: "/api/v1/place/" + chttest.DefaultPlaceID, status: 200, want: "chttest place"},
		{name: "NoPlace", path: "/api/v1/place/nowhere", status: 404, want: `{"code":404,"error":"Place not found"}`},
		{name: "PersonIsNoPlace", path: "/api/v1/place/p-1", status: 404, want: `{"code":404,"error":"Place not found"}`},
		{name: "Info", path: "/api/info", status: 200, want: `{"version":"` + chttest.Version + `"}`},
	}
	for _, tt := range tests {
		r := do(t, s, http.MethodGet, tt.path, "", good)
		require.Equal(t, tt.status, r.status, tt.name)
		require.Contains(t, r.body, tt.want, tt.name)
	}
	require.Equal(t, http.StatusOK, do(t, s, http.MethodGet, "/api/info", "", nil).status, "no credentials needed")

	// mediator check reads the forms from the settings.
	r := do(t, s, http.MethodGet, "/api/v1/settings", "", good)
	require.Equal(t, http.StatusOK, r.status)
	var settings struct {
		Forms map[string]json.RawMessage `json:"forms"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.body), &settings))
	require.JSONEq(t, string(chttest.DefaultForms()["OP"]), string(settings.Forms["OP"]))
}

// The freetext searches the client uses for dedupe (trap 5) and to find a
// person by insuree (§3): exact, case-insensitive "key:value" matches on the
// top-level fields.
func TestServer_Search(t *testing.T) {
	t.Parallel()
	s := chttest.NewServer(t, chttest.Options{})
	s.AddPerson(map[string]any{
		"_id": "a-1", "name": "Asha Rai", "openimis_id": "7B00E6EC-AAAA", "date_of_birth": "1990-01-01",
		"last_visit_date": "2025-01-01", "age": 35,
	})
	s.AddPerson(map[string]any{"_id": "b-1", "name": "Bina Rai", "openimis_id": "7b00e6ec-bbbb"})
	s.AddPerson(map[string]any{"_id": "r-1", "type": "data_record", "name": "not a contact"})
	postReport := func(claim string, patient any) string {
		body := opRecord("12345")
		body["op_claim_uuid"], body["patient_id"] = claim, patient
		body["_meta"] = map[string]any{"form": "OP", "claim_uuid": "meta-only"}
		r := do(t, s, http.MethodPost, "/api/v2/records", mustJSON(t, body), good)
		require.Equal(t, http.StatusOK, r.status)
		var out struct {
			ID string `json:"id"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.body), &out))
		return out.ID
	}
	rep1, rep2 := postReport("D3256498-AAAA", "12345"), postReport("d3256498-bbbb", 67890)
	page := func(ids ...string) string {
		if ids == nil {
			ids = []string{}
		}
		return `{"data":` + mustJSON(t, ids) + `,"cursor":null}`
	}

	tests := []struct {
		name, path, want string
	}{
		{name: "ContactExactIgnoresCase", path: "/api/v1/contact/uuid?freetext=openimis_id:7b00e6ec-aaaa", want: page("a-1")},
		{name: "ContactQueryCase", path: "/api/v1/contact/uuid?freetext=OPENIMIS_ID:7B00E6EC-BBBB", want: page("b-1")},
		{name: "ExactIsNotPrefix", path: "/api/v1/contact/uuid?freetext=openimis_id:7b00e6ec", want: page()},
		{name: "Number", path: "/api/v1/contact/uuid?freetext=age:35", want: page("a-1")},
		{name: "ValueWithSpace", path: "/api/v1/contact/uuid?freetext=name:asha%20rai", want: page("a-1")},
		{name: "IDNotIndexed", path: "/api/v1/contact/uuid?freetext=_id:a-1", want: page()},
		{name: "TypeNotIndexed", path: "/api/v1/contact/uuid?freetext=type:person", want: page()},
		{name: "DateSuffixNotIndexed", path: "/api/v1/contact/uuid?freetext=last_visit_date:2025-01-01", want: page()},
		{name: "DateOfBirthIndexed", path: "/api/v1/contact/uuid?freetext=date_of_birth:1990-01-01", want: page("a-1")},
		{name: "WordPrefix", path: "/api/v1/contact/uuid?freetext=rai", want: page("a-1", "b-1")},
		{name: "ReportByClaim", path: "/api/v1/report/uuid?freetext=op_claim_uuid:d3256498-aaaa", want: page(rep1)},
		{name: "ReportQueryCase", path: "/api/v1/report/uuid?freetext=op_claim_uuid:D3256498-BBBB", want: page(rep2)},
		{name: "ReportNone", path: "/api/v1/report/uuid?freetext=op_claim_uuid:d3256498-cccc", want: page()},
		{name: "ReportNumber", path: "/api/v1/report/uuid?freetext=patient_id:67890", want: page(rep2)},
		{name: "ReportDateNotIndexed", path: "/api/v1/report/uuid?freetext=op_date:1756080000000", want: page()},
		{name: "MetaNotIndexed", path: "/api/v1/report/uuid?freetext=claim_uuid:meta-only", want: page()},
	}
	for _, tt := range tests {
		r := do(t, s, http.MethodGet, tt.path, "", good)
		require.Equal(t, http.StatusOK, r.status, tt.name)
		require.Equal(t, tt.want, r.body, tt.name)
	}

	// The cursor is the offset of the next page.
	r := do(t, s, http.MethodGet, "/api/v1/contact/uuid?freetext=rai&limit=1", "", good)
	require.Equal(t, `{"data":["a-1"],"cursor":"1"}`, r.body)
	r = do(t, s, http.MethodGet, "/api/v1/contact/uuid?freetext=rai&limit=1&cursor=1", "", good)
	require.Equal(t, `{"data":["b-1"],"cursor":"2"}`, r.body)
	r = do(t, s, http.MethodGet, "/api/v1/contact/uuid?freetext=rai&limit=1&cursor=2", "", good)
	require.Equal(t, page(), r.body)

	bad := []struct{ path, want string }{
		{path: "/api/v1/contact/uuid", want: "Either query param freetext or type is required"},
		{path: "/api/v1/contact/uuid?freetext=ab", want: `Invalid freetext ["ab"].`},
		{path: "/api/v1/contact/uuid?freetext=asha%20rai", want: `Invalid freetext ["asha rai"].`},
		{path: "/api/v1/contact/uuid?freetext=rai&limit=0", want: `The limit must be a positive integer: ["0"].`},
		{path: "/api/v1/contact/uuid?freetext=rai&limit=x", want: `The limit must be a positive integer: ["x"].`},
		{path: "/api/v1/contact/uuid?freetext=rai&cursor=abc", want: `The cursor must be a string or null for first page: ["abc"].`},
		{path: "/api/v1/report/uuid", want: "Invalid freetext [undefined]."},
		{path: "/api/v1/report/uuid?freetext=op", want: `Invalid freetext ["op"].`},
	}
	for _, tt := range bad {
		r := do(t, s, http.MethodGet, tt.path, "", good)
		require.Equal(t, http.StatusBadRequest, r.status, tt.path)
		require.JSONEq(t, mustJSON(t, map[string]any{"code": 400, "error": tt.want}), r.body, tt.path)
	}
}

// Paths are matched as Express does with strict routing; the real API
// proxies anything else to CouchDB.
func TestServer_Strictness(t *testing.T) {
	t.Parallel()
	s := chttest.NewServer(t, chttest.Options{})
	tests := []struct {
		name, method, path, body string
	}{
		{name: "RecordsTrailingSlash", method: http.MethodPost, path: "/api/v2/records/", body: mustJSON(t, opRecord("12345"))},
		{name: "RecordsV3", method: http.MethodPost, path: "/api/v3/records", body: mustJSON(t, opRecord("12345"))},
		{name: "RecordsGet", method: http.MethodGet, path: "/api/v2/records"},
		{name: "PeopleTrailingSlash", method: http.MethodPost, path: "/api/v1/people/", body: `{"name":"A"}`},
		{name: "PeoplePut", method: http.MethodPut, path: "/api/v1/people", body: `{"name":"A"}`},
		{name: "PersonTrailingSlash", method: http.MethodGet, path: "/api/v1/person/" + chttest.DefaultPlaceID + "/"},
		{name: "PersonEmptyID", method: http.MethodGet, path: "/api/v1/person/"},
		{name: "ContactUUIDTrailingSlash", method: http.MethodGet, path: "/api/v1/contact/uuid/?freetext=name:abc"},
		{name: "ReportUUIDPost", method: http.MethodPost, path: "/api/v1/report/uuid?freetext=name:abc"},
		{name: "Root", method: http.MethodGet, path: "/"},
	}
	for _, tt := range tests {
		r := do(t, s, tt.method, tt.path, tt.body, good)
		require.Equal(t, http.StatusNotFound, r.status, tt.name)
		require.JSONEq(t, `{"error":"not_found","reason":"Database does not exist."}`, r.body, tt.name)
	}
	require.Empty(t, s.Reports())
	require.Empty(t, s.People())
	r := do(t, s, http.MethodPost, "/API/V2/Records", mustJSON(t, opRecord("12345")), good)
	require.Equal(t, http.StatusOK, r.status, "case-insensitive")
}

func TestServer_Faults(t *testing.T) {
	t.Parallel()
	record := mustJSON(t, opRecord("12345"))

	// An injected status answers with the CHT's body for it, after the
	// credentials passed, and stores nothing.
	t.Run("FailNext", func(t *testing.T) {
		t.Parallel()
		s := chttest.NewServer(t, chttest.Options{})
		s.FailNext(1, http.StatusInternalServerError)
		require.Equal(t, http.StatusUnauthorized, do(t, s, http.MethodPost, "/api/v2/records", record, nil).status, "does not use it up")
		tests := []struct {
			status int
			h      hdr
			body   string
		}{
			{status: http.StatusInternalServerError, h: good, body: `{"code":500,"error":"Server error"}`},
			{status: http.StatusInternalServerError, h: with(good, "Accept", ""), body: "Server error"},
			{status: http.StatusUnauthorized, h: good, body: `{"code":401,"error":"unauthorized"}`},
			{status: http.StatusForbidden, h: good, body: `{"code":403,"error":"Insufficient privileges"}`},
			{status: http.StatusTooManyRequests, h: good, body: `{"code":429,"error":"Too Many Requests"}`},
			{status: http.StatusServiceUnavailable, h: good, body: `{"error":"Service unavailable"}`},
			{status: http.StatusGatewayTimeout, h: good, body: `{"code":504,"error":"Gateway Timeout"}`},
		}
		for i, tt := range tests {
			if i > 0 {
				s.FailNext(1, tt.status)
			}
			r := do(t, s, http.MethodPost, "/api/v2/records", record, tt.h)
			require.Equal(t, tt.status, r.status)
			if tt.h["Accept"] == "" {
				require.Equal(t, tt.body, r.body)
			} else {
				require.JSONEq(t, tt.body, r.body)
			}
		}
		require.Empty(t, s.Reports())
		require.Equal(t, http.StatusOK, do(t, s, http.MethodPost, "/api/v2/records", record, good).status)

		s.FailNextPath("/api/v2/records", 1, http.StatusBadGateway)
		require.Equal(t, http.StatusOK, do(t, s, http.MethodGet, "/api/v1/report/uuid?freetext=op_claim_uuid:x", "", good).status)
		require.Equal(t, http.StatusBadGateway, do(t, s, http.MethodPost, "/api/v2/records", record, good).status)
	})

	// SetDown(503) is the start-up router: before authentication, JSON for
	// a JSON client, a 200 HTML page for any other.
	t.Run("SetDown", func(t *testing.T) {
		t.Parallel()
		s := chttest.NewServer(t, chttest.Options{})
		s.SetDown(http.StatusServiceUnavailable)
		r := do(t, s, http.MethodPost, "/api/v2/records", record, good)
		require.Equal(t, http.StatusServiceUnavailable, r.status)
		require.JSONEq(t, `{"error":"Service unavailable"}`, r.body)
		require.Equal(t, http.StatusServiceUnavailable, do(t, s, http.MethodGet, "/api/v1/person/x", "", hdr{"Accept": "application/json"}).status)
		r = do(t, s, http.MethodGet, "/api/v1/person/x", "", with(good, "Accept", ""))
		require.Equal(t, http.StatusOK, r.status)
		require.Equal(t, "text/html; charset=utf-8", r.header.Get("Content-Type"))
		s.SetDown(http.StatusBadGateway)
		require.Equal(t, http.StatusBadGateway, do(t, s, http.MethodGet, "/api/v1/person/x", "", good).status)
		s.SetDown(0)
		require.Equal(t, http.StatusOK, do(t, s, http.MethodPost, "/api/v2/records", record, good).status)
		require.Len(t, s.Reports(), 1)
	})

	// A dropped answer comes after the effect: the retry meets what the
	// first attempt stored.
	t.Run("DropNext", func(t *testing.T) {
		t.Parallel()
		s := chttest.NewServer(t, chttest.Options{})
		s.DropNext(1)
		require.Equal(t, http.StatusUnauthorized, do(t, s, http.MethodGet, "/api/v1/person/x", "", nil).status, "does not use it up")
		_, err := send(t, s, http.MethodPost, "/api/v1/people", `{"_id":"p1","name":"A"}`, good) //nolint:bodyclose // Do fails.
		require.Error(t, err)
		_, ok := s.Person("p1")
		require.True(t, ok)
		require.Equal(t, http.StatusConflict, do(t, s, http.MethodPost, "/api/v1/people", `{"_id":"p1","name":"A"}`, good).status)

		s.DropNextPath("/api/v2/records", 1)
		_, err = send(t, s, http.MethodPost, "/api/v2/records", record, good) //nolint:bodyclose // Do fails.
		require.Error(t, err)
		require.Len(t, s.Reports(), 1)
	})

	// Latency comes after the effect: a records POST whose client timed
	// out has still stored its report, which a search then finds.
	t.Run("LatencyAfterStore", func(t *testing.T) {
		t.Parallel()
		s := chttest.NewServer(t, chttest.Options{})
		s.SetLatency(time.Minute)
		client := &http.Client{Timeout: 100 * time.Millisecond}
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL+"/api/v2/records", strings.NewReader(record))
		require.NoError(t, err)
		for k, v := range good {
			req.Header.Set(k, v)
		}
		_, err = client.Do(req) //nolint:bodyclose // Do fails.
		require.Error(t, err)
		require.Eventually(t, func() bool { return s.ReportCount() == 1 }, 5*time.Second, 10*time.Millisecond)
		s.SetLatency(0)
		r := do(t, s, http.MethodGet, "/api/v1/report/uuid?freetext=op_claim_uuid:d3256498-0d8d-4d5e-9e4e-3b5f0c3a0f11", "", good)
		require.Equal(t, `{"data":["`+s.Reports()[0].ID+`"],"cursor":null}`, r.body)
	})

	t.Run("CloseReleasesDelayedAnswers", func(t *testing.T) {
		t.Parallel()
		s := chttest.New(chttest.Options{Latency: time.Hour})
		done := make(chan struct{})
		go func() {
			defer close(done)
			if resp, err := send(t, s, http.MethodGet, "/api/v1/person/x", "", good); err == nil {
				resp.Body.Close()
			}
		}()
		require.Eventually(t, func() bool { return len(s.Requests()) == 1 }, 5*time.Second, 10*time.Millisecond)
		s.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not release the delayed answer")
		}
	})
}

// Every request is recorded as it came, before the checks and faults.
func TestServer_Requests(t *testing.T) {
	t.Parallel()
	s := chttest.NewServer(t, chttest.Options{})
	s.FailNext(1, http.StatusInternalServerError)
	do(t, s, http.MethodGet, "/api/v1/contact/uuid?freetext=openimis_id:abc", "", nil)
	do(t, s, http.MethodPost, "/api/v2/records", `{"_meta":{"form":"OP"}}`, good)
	reqs := s.Requests()
	require.Len(t, reqs, 2)
	require.Equal(t, chttest.Request{Method: http.MethodGet, Path: "/api/v1/contact/uuid", RawQuery: "freetext=openimis_id:abc",
		Header: reqs[0].Header, Body: reqs[0].Body, Time: reqs[0].Time}, reqs[0])
	require.Empty(t, reqs[0].Body)
	require.Equal(t, `{"_meta":{"form":"OP"}}`, string(reqs[1].Body))
	require.Equal(t, basic("medic", "password"), reqs[1].Header.Get("Authorization"))
	require.False(t, reqs[1].Time.IsZero())
}

func TestServer_Concurrency(t *testing.T) {
	t.Parallel()
	s := chttest.NewServer(t, chttest.Options{})
	body := mustJSON(t, opRecord("12345"))
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if resp, err := send(t, s, http.MethodPost, "/api/v2/records", body, good); err == nil {
				resp.Body.Close()
			}
		})
		_ = s.Reports()
		_ = s.Requests()
	}
	wg.Wait()
	ids := map[string]bool{}
	for _, r := range s.Reports() {
		ids[r.ID] = true
	}
	require.Len(t, ids, 20)
}

// A proxy in front of the API refuses a request arriving while
// MaxConcurrent others are in flight, with nginx's 429 page; the API's
// failed-login limiter never sees it.
func TestServer_MaxConcurrent(t *testing.T) {
	t.Parallel()
	s := chttest.NewServer(t, chttest.Options{MaxConcurrent: 2, Latency: 300 * time.Millisecond})
	var wg sync.WaitGroup
	statuses := make([]int, 12)
	for i := range statuses {
		wg.Go(func() { statuses[i] = do(t, s, http.MethodGet, "/api/v1/settings", "", good).status })
	}
	wg.Wait()
	ok, refused := 0, 0
	for _, st := range statuses {
		switch st {
		case http.StatusOK:
			ok++
		case http.StatusTooManyRequests:
			refused++
		}
	}
	require.Equal(t, 2, ok, "%v", statuses)
	require.Equal(t, 10, refused, "%v", statuses)
	require.Equal(t, int64(10), s.Refused.Load())

	// Far more refusals than the lock-out allows, yet the API still answers.
	require.Equal(t, http.StatusOK, do(t, s, http.MethodGet, "/api/v1/settings", "", good).status)
}
