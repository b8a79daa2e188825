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

// jsonHeaders are the headers a well-behaved client sends.
func jsonHeaders(s *chttest.Server) hdr {
	return hdr{
		"Authorization": basic(s.Username, s.Password),
		"Accept":        "application/json",
		"Content-Type":  "application/json",
	}
}

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

func do(t *testing.T, s *chttest.Server, method, path, body string, h hdr) result {
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
	resp, err := http.DefaultClient.Do(req)
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

// opRecord is a complete OP report body.
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

func newClock() *clock {
	return &clock{t: time.Date(2025, 8, 25, 10, 0, 0, 0, time.UTC)}
}

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
	require.Equal(t, "medic", s.Username)
	require.Equal(t, "password", s.Password)
	require.True(t, strings.HasPrefix(s.URL, "http://127.0.0.1:"))

	forms := chttest.DefaultForms()
	require.Contains(t, forms, "OP")

	r := do(t, s, http.MethodGet, "/api/v1/contact/"+chttest.DefaultPlaceID, "", jsonHeaders(s))
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, r.body, `"type":"health_center"`)
}

func TestServer_Auth(t *testing.T) {
	t.Parallel()

	t.Run("NoCredentialsIsText", func(t *testing.T) {
		t.Parallel()
		s := chttest.NewServer(t, chttest.Options{})
		r := do(t, s, http.MethodGet, "/api/v1/person/x", "", nil)
		require.Equal(t, http.StatusUnauthorized, r.status)
		require.Equal(t, "not logged in", r.body)
		require.Equal(t, "text/plain", r.header.Get("Content-Type"))
		require.Equal(t, `Basic realm="Medic Web Services"`, r.header.Get("WWW-Authenticate"))
	})

	t.Run("WrongPasswordIsJSON", func(t *testing.T) {
		t.Parallel()
		s := chttest.NewServer(t, chttest.Options{})
		r := do(t, s, http.MethodGet, "/api/v1/person/x", "", with(jsonHeaders(s), "Authorization", basic("medic", "nope")))
		require.Equal(t, http.StatusUnauthorized, r.status)
		require.JSONEq(t, `{"code":401,"error":"unauthorized"}`, r.body)
		require.Empty(t, r.header.Get("WWW-Authenticate"))
	})

	t.Run("CustomCredentials", func(t *testing.T) {
		t.Parallel()
		s := chttest.NewServer(t, chttest.Options{Username: "mediator", Password: "s3cret"})
		r := do(t, s, http.MethodGet, "/api/v1/person/x", "", with(jsonHeaders(s), "Authorization", basic("medic", "password")))
		require.Equal(t, http.StatusUnauthorized, r.status)
		r = do(t, s, http.MethodGet, "/api/v1/person/x", "", with(jsonHeaders(s), "Authorization", basic("mediator", "s3cret")))
		require.Equal(t, http.StatusNotFound, r.status)
	})

	t.Run("AcceptNegotiation", func(t *testing.T) {
		t.Parallel()
		s := chttest.NewServer(t, chttest.Options{})
		tests := []struct {
			name   string
			accept string
			json   bool
		}{
			{name: "Missing", accept: "", json: false},
			{name: "JSON", accept: "application/json", json: true},
			{name: "Any", accept: "*/*", json: false},
			{name: "TextFirst", accept: "text/plain, application/json", json: false},
			{name: "JSONFirst", accept: "application/json, text/plain, */*", json: true},
			{name: "JSONByQuality", accept: "text/plain;q=0.5, application/json", json: true},
			{name: "JSONWithCharset", accept: "application/json; charset=utf-8", json: false},
			{name: "HTML", accept: "text/html", json: false},
		}
		for _, tt := range tests {
			r := do(t, s, http.MethodGet, "/api/v1/person/x", "", hdr{"Accept": tt.accept})
			require.Equal(t, http.StatusUnauthorized, r.status, tt.name)
			if tt.json {
				require.JSONEq(t, `{"code":401,"error":"unauthorized"}`, r.body, tt.name)
			} else {
				require.Equal(t, "not logged in", r.body, tt.name)
			}
		}
	})

	t.Run("EveryRoute", func(t *testing.T) {
		t.Parallel()
		s := chttest.NewServer(t, chttest.Options{})
		bad := with(jsonHeaders(s), "Authorization", basic("medic", "wrong"))
		routes := []struct{ method, path, body string }{
			{http.MethodPost, "/api/v2/records", mustJSON(t, opRecord("12345"))},
			{http.MethodPost, "/api/v1/people", `{"name":"A"}`},
			{http.MethodGet, "/api/v1/person/abc", ""},
			{http.MethodGet, "/api/v1/contact/abc", ""},
			{http.MethodGet, "/api/v1/contact/uuid?freetext=name:abc", ""},
			{http.MethodGet, "/api/v1/report/abc", ""},
			{http.MethodGet, "/api/v1/report/uuid?freetext=form:op", ""},
			{http.MethodGet, "/api/v2/unknown", ""},
		}
		for _, rt := range routes {
			r := do(t, s, rt.method, rt.path, rt.body, bad)
			require.Equal(t, http.StatusUnauthorized, r.status, rt.path)
			require.JSONEq(t, `{"code":401,"error":"unauthorized"}`, r.body, rt.path)
		}
		require.Empty(t, s.Reports())
		require.Empty(t, s.People())
	})
}

func TestServer_LoginLimiter(t *testing.T) {
	t.Parallel()

	t.Run("LocksOutAfterTenFailures", func(t *testing.T) {
		t.Parallel()
		clk := newClock()
		s := chttest.NewServer(t, chttest.Options{Now: clk.Now})
		good := jsonHeaders(s)
		bad := with(good, "Authorization", basic("medic", "wrong"))
		path := "/api/v1/contact/uuid?freetext=name:nobody"

		for i := range 10 {
			r := do(t, s, http.MethodGet, path, "", bad)
			require.Equal(t, http.StatusUnauthorized, r.status, "attempt %d", i+1)
			clk.Add(500 * time.Millisecond)
		}
		r := do(t, s, http.MethodGet, path, "", bad)
		require.Equal(t, http.StatusTooManyRequests, r.status)
		require.JSONEq(t, `{"code":429,"error":"Too Many Requests"}`, r.body)

		// The username (and the IP) are locked out, so the right password
		// does not help until the window passes.
		r = do(t, s, http.MethodGet, path, "", good)
		require.Equal(t, http.StatusTooManyRequests, r.status)
		r = do(t, s, http.MethodGet, path, "", with(good, "Accept", ""))
		require.Equal(t, http.StatusTooManyRequests, r.status)
		require.Equal(t, "Too Many Requests", r.body)

		// The window started at the first failure, 5 s ago.
		clk.Add(5 * time.Second)
		r = do(t, s, http.MethodGet, path, "", good)
		require.Equal(t, http.StatusOK, r.status)
	})

	t.Run("NineFailuresAreFine", func(t *testing.T) {
		t.Parallel()
		clk := newClock()
		s := chttest.NewServer(t, chttest.Options{Now: clk.Now})
		bad := with(jsonHeaders(s), "Authorization", basic("medic", "wrong"))
		for range 9 {
			require.Equal(t, http.StatusUnauthorized, do(t, s, http.MethodGet, "/api/v1/person/x", "", bad).status)
		}
		require.Equal(t, http.StatusNotFound, do(t, s, http.MethodGet, "/api/v1/person/x", "", jsonHeaders(s)).status)
	})

	t.Run("AnonymousRequestsAreNotLimited", func(t *testing.T) {
		t.Parallel()
		clk := newClock()
		s := chttest.NewServer(t, chttest.Options{Now: clk.Now})
		for range 15 {
			require.Equal(t, http.StatusUnauthorized, do(t, s, http.MethodGet, "/api/v1/person/x", "", nil).status)
		}
		// They still count against the client's IP.
		require.Equal(t, http.StatusTooManyRequests, do(t, s, http.MethodGet, "/api/v1/person/x", "", jsonHeaders(s)).status)
		clk.Add(10 * time.Second)
		require.Equal(t, http.StatusNotFound, do(t, s, http.MethodGet, "/api/v1/person/x", "", jsonHeaders(s)).status)
	})
}

func TestServer_Records(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		s   *chttest.Server
		clk *clock
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		clk := newClock()
		return &testBundle{s: chttest.NewServer(t, chttest.Options{Now: clk.Now}), clk: clk}
	}
	post := func(t *testing.T, b *testBundle, body any, h hdr) result {
		t.Helper()
		raw, ok := body.(string)
		if !ok {
			raw = mustJSON(t, body)
		}
		return do(t, b.s, http.MethodPost, "/api/v2/records", raw, h)
	}

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		body := opRecord("12345")
		body["_meta"] = map[string]any{"form": "OP", "from": "+9779841171819", "reported_date": 1756100000000, "claim": "x"}
		r := post(t, b, body, jsonHeaders(b.s))
		require.Equal(t, http.StatusOK, r.status)
		require.Equal(t, "application/json; charset=utf-8", r.header.Get("Content-Type"))

		var out struct {
			Success bool   `json:"success"`
			ID      string `json:"id"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.body), &out))
		require.True(t, out.Success)
		require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, out.ID)

		reports := b.s.Reports()
		require.Len(t, reports, 1)
		rep := reports[0]
		require.Equal(t, out.ID, rep.ID)
		require.Equal(t, "OP", rep.Form)
		require.Empty(t, rep.Errors)
		require.Equal(t, int64(1756100000000), rep.ReportedDate)
		require.Equal(t, map[string]any{
			"patient_id": "12345", "op_claim_id": "CHT979", "op_claim_uuid": "d3256498-0d8d-4d5e-9e4e-3b5f0c3a0f11",
			"op_year": "2082", "op_month": "05", "op_day": "09", "op_date": float64(1756080000000),
		}, rep.Fields)
		require.Equal(t, map[string]any{
			"form": "OP", "from": "+9779841171819", "reported_date": float64(1756100000000), "claim": "x",
		}, rep.Meta)
		require.Equal(t, "data_record", rep.Doc["type"])
		require.Equal(t, "+9779841171819", rep.Doc["from"])
		require.Equal(t, "12345", rep.Subject)

		got, ok := b.s.Report(out.ID)
		require.True(t, ok)
		require.Equal(t, rep, got)
	})

	t.Run("KeysLowerCasedAndUnknownDropped", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		body := `{"_meta":{"form":"op"},"PATIENT_ID":"12345","Op_Claim_Id":"CHT1","op_claim_uuid":"u-1",` +
			`"op_year":"2082","op_month":"05","op_day":"09","patient_uuid":"p-1","openimis_id":"i-1"}`
		r := post(t, b, body, jsonHeaders(b.s))
		require.Equal(t, http.StatusOK, r.status)
		rep := b.s.Reports()[0]
		require.Equal(t, "OP", rep.Form)
		require.Equal(t, "OP", rep.Meta["form"])
		require.Equal(t, map[string]any{
			"patient_id": "12345", "op_claim_id": "CHT1", "op_claim_uuid": "u-1",
			"op_year": "2082", "op_month": "05", "op_day": "09",
		}, rep.Fields)
		require.Empty(t, rep.Errors)
	})

	t.Run("MissingFieldStill200", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		body := opRecord("12345")
		delete(body, "patient_id")
		delete(body, "op_claim_uuid")
		delete(body, "op_date") // optional
		r := post(t, b, body, jsonHeaders(b.s))
		require.Equal(t, http.StatusOK, r.status)
		require.Contains(t, r.body, `"success":true`)
		rep := b.s.Reports()[0]
		require.Equal(t, []chttest.DocError{{
			Code:    "sys.missing_fields",
			Message: "Missing or invalid fields: patient_id,op_claim_uuid.",
		}}, rep.Errors)
		require.NotContains(t, rep.Fields, "patient_id")
	})

	t.Run("NullCountsAsMissing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		body := opRecord("12345")
		body["op_claim_id"] = nil
		require.Equal(t, http.StatusOK, post(t, b, body, jsonHeaders(b.s)).status)
		rep := b.s.Reports()[0]
		require.Equal(t, []chttest.DocError{{Code: "sys.missing_fields", Message: "Missing or invalid fields: op_claim_id."}}, rep.Errors)
		require.Contains(t, rep.Fields, "op_claim_id")
		require.Nil(t, rep.Fields["op_claim_id"])
	})

	t.Run("WrongTypeStill200", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		body := opRecord("12345")
		body["op_claim_id"] = 979
		body["op_year"] = 2082 // bsYear is not validated
		r := post(t, b, body, jsonHeaders(b.s))
		require.Equal(t, http.StatusOK, r.status)
		rep := b.s.Reports()[0]
		require.Equal(t, []chttest.DocError{{
			Code:    "sys.incorrect_type",
			Message: "Incorrect type of field op_claim_id, expected string.",
		}}, rep.Errors)
		require.Equal(t, float64(979), rep.Fields["op_claim_id"])
		require.Equal(t, float64(2082), rep.Fields["op_year"])
	})

	t.Run("UnknownForm", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		body := opRecord("12345")
		body["_meta"] = map[string]any{"form": "xx"}
		r := post(t, b, body, jsonHeaders(b.s))
		require.Equal(t, http.StatusInternalServerError, r.status)
		require.JSONEq(t, `{"code":500,"error":"Server error","details":"Form not found: XX"}`, r.body)

		r = post(t, b, body, with(jsonHeaders(b.s), "Accept", ""))
		require.Equal(t, http.StatusInternalServerError, r.status)
		require.Equal(t, `Server error: "Form not found: XX"`, r.body)
		require.Equal(t, "text/plain", r.header.Get("Content-Type"))
		require.Empty(t, b.s.Reports())
	})

	t.Run("MissingMeta", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		body := opRecord("12345")
		delete(body, "_meta")
		r := post(t, b, body, jsonHeaders(b.s))
		require.Equal(t, http.StatusInternalServerError, r.status)
		require.JSONEq(t, `{"code":500,"error":"Server error","details":"Missing _meta property."}`, r.body)

		r = post(t, b, `{"_meta":""}`, jsonHeaders(b.s))
		require.JSONEq(t, `{"code":500,"error":"Server error","details":"Missing _meta property."}`, r.body)
		r = post(t, b, `[]`, jsonHeaders(b.s))
		require.JSONEq(t, `{"code":500,"error":"Server error","details":"Missing _meta property."}`, r.body)
		require.Empty(t, b.s.Reports())
	})

	t.Run("MissingMetaForm", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		r := post(t, b, `{"_meta":{"from":"+9779841171819"},"patient_id":"12345"}`, jsonHeaders(b.s))
		require.Equal(t, http.StatusInternalServerError, r.status)
		require.JSONEq(t, `{"code":500,"error":"Server error","details":"Missing required field: form"}`, r.body)

		// A form that is not a string breaks toUpperCase: no details.
		r = post(t, b, `{"_meta":{"form":5}}`, jsonHeaders(b.s))
		require.Equal(t, http.StatusInternalServerError, r.status)
		require.JSONEq(t, `{"code":500,"error":"Server error"}`, r.body)
	})

	t.Run("UnsupportedContentType", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		body := mustJSON(t, opRecord("12345"))
		for _, ct := range []string{"text/plain", "application/vnd.api+json", ""} {
			r := post(t, b, body, with(jsonHeaders(b.s), "Content-Type", ct))
			require.Equal(t, http.StatusInternalServerError, r.status, ct)
			require.JSONEq(t, `{"code":500,"error":"Server error"}`, r.body, ct)
		}
		r := post(t, b, body, with(jsonHeaders(b.s), "Content-Type", "text/plain", "Accept", ""))
		require.Equal(t, "Server error", r.body)
		require.Empty(t, b.s.Reports())
	})

	t.Run("CharsetIsAccepted", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		r := post(t, b, opRecord("12345"), with(jsonHeaders(b.s), "Content-Type", "application/json; charset=utf-8"))
		require.Equal(t, http.StatusOK, r.status)
		require.Len(t, b.s.Reports(), 1)
	})

	t.Run("MalformedJSONIs500BeforeAuth", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		r := post(t, b, `{"_meta":`, with(jsonHeaders(b.s), "Authorization", ""))
		require.Equal(t, http.StatusInternalServerError, r.status)
		require.JSONEq(t, `{"code":500,"error":"Server error"}`, r.body)
		r = post(t, b, `"just a string"`, jsonHeaders(b.s))
		require.Equal(t, http.StatusInternalServerError, r.status)
	})

	t.Run("NoIdempotency", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		body := opRecord("12345")
		r1 := post(t, b, body, jsonHeaders(b.s))
		r2 := post(t, b, body, jsonHeaders(b.s))
		require.Equal(t, http.StatusOK, r1.status)
		require.Equal(t, http.StatusOK, r2.status)
		require.NotEqual(t, r1.body, r2.body)
		require.Len(t, b.s.Reports(), 2)
	})

	t.Run("ReportedDate", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		now := b.clk.Now().UnixMilli()
		tests := []struct {
			name string
			meta map[string]any
			want int64
		}{
			{name: "Default", meta: map[string]any{"form": "OP"}, want: now},
			{name: "Number", meta: map[string]any{"form": "OP", "reported_date": 1756100000000}, want: 1756100000000},
			{name: "DigitString", meta: map[string]any{"form": "OP", "reported_date": "1756100000000"}, want: 1756100000000},
			{name: "ISOString", meta: map[string]any{"form": "OP", "reported_date": "2025-08-25T00:00:00Z"}, want: 1756080000000},
			{name: "Garbage", meta: map[string]any{"form": "OP", "reported_date": "soon"}, want: now},
			{name: "Zero", meta: map[string]any{"form": "OP", "reported_date": 0}, want: now},
		}
		for i, tt := range tests {
			body := opRecord("12345")
			body["_meta"] = tt.meta
			require.Equal(t, http.StatusOK, post(t, b, body, jsonHeaders(b.s)).status, tt.name)
			require.Equal(t, tt.want, b.s.Reports()[i].ReportedDate, tt.name)
		}
	})

	t.Run("LinksToPerson", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		personID := b.s.AddPerson(map[string]any{"name": "Asha", "openimis_id": "abc"})
		require.Equal(t, http.StatusOK, post(t, b, opRecord(personID), jsonHeaders(b.s)).status)
		rep := b.s.Reports()[0]
		require.Equal(t, personID, rep.Subject)
		require.Equal(t, personID, rep.ContactID)

		b.s.SetShortcode(personID, "98765")
		require.Equal(t, http.StatusOK, post(t, b, opRecord("98765"), jsonHeaders(b.s)).status)
		rep = b.s.Reports()[1]
		require.Equal(t, "98765", rep.Subject)
		require.Equal(t, personID, rep.ContactID)

		require.Equal(t, http.StatusOK, post(t, b, opRecord("00000"), jsonHeaders(b.s)).status)
		require.Empty(t, b.s.Reports()[2].ContactID)
	})

	t.Run("FormEncodedNeedsFromAndMessage", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		r := post(t, b, "message=OP+1", with(jsonHeaders(b.s), "Content-Type", "application/x-www-form-urlencoded"))
		require.Equal(t, http.StatusInternalServerError, r.status)
		require.JSONEq(t, `{"code":500,"error":"Server error","details":"Missing required value: from"}`, r.body)
	})
}

func TestServer_RecordsCustomForm(t *testing.T) {
	t.Parallel()

	form := `{"meta":{"code":"TEST"},"fields":{
		"some_data":{"type":"string","required":true},
		"a_number":{"type":"integer","required":true},
		"a_boolean":{"type":"boolean"},
		"another_boolean":{"type":"boolean"},
		"an_optional_date":{"type":"date"}}}`
	s := chttest.NewServer(t, chttest.Options{Forms: map[string]json.RawMessage{"TEST": json.RawMessage(form)}})

	// The records.spec.js integration test of cht-core.
	body := `{"_meta":{"form":"TEST","from":"+447765902000"},"some_data":"hello","a_number":42,` +
		`"a_boolean":false,"another_boolean":0,"an_optional_date":"2018-11-10"}`
	r := do(t, s, http.MethodPost, "/api/v2/records", body, jsonHeaders(s))
	require.Equal(t, http.StatusOK, r.status)
	rep := s.Reports()[0]
	require.Equal(t, map[string]any{
		"some_data": "hello", "a_number": float64(42), "a_boolean": false, "another_boolean": false,
		"an_optional_date": float64(time.Date(2018, 11, 10, 0, 0, 0, 0, time.UTC).UnixMilli()),
	}, rep.Fields)
	require.Empty(t, rep.Errors)

	body = `{"_meta":{"form":"TEST"},"a_number":4.5,"a_boolean":"yes"}`
	require.Equal(t, http.StatusOK, do(t, s, http.MethodPost, "/api/v2/records", body, jsonHeaders(s)).status)
	require.Equal(t, []chttest.DocError{
		{Code: "sys.incorrect_type", Message: "Incorrect type of field a_number, expected integer."},
		{Code: "sys.incorrect_type", Message: "Incorrect type of field a_boolean, expected boolean."},
		{Code: "sys.missing_fields", Message: "Missing or invalid fields: some_data."},
	}, s.Reports()[1].Errors)

	// The OP form is not there unless the caller includes it.
	body = mustJSON(t, opRecord("12345"))
	r = do(t, s, http.MethodPost, "/api/v2/records", body, jsonHeaders(s))
	require.JSONEq(t, `{"code":500,"error":"Server error","details":"Form not found: OP"}`, r.body)
}

func TestServer_People(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		s   *chttest.Server
		clk *clock
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		clk := newClock()
		return &testBundle{s: chttest.NewServer(t, chttest.Options{Now: clk.Now}), clk: clk}
	}
	post := func(t *testing.T, b *testBundle, body string, h hdr) result {
		t.Helper()
		return do(t, b.s, http.MethodPost, "/api/v1/people", body, h)
	}

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		body := `{"_id":"person-1","name":"Asha Rai","place":"` + chttest.DefaultPlaceID +
			`","openimis_id":"7b00e6ec-1111","sex":"female","date_of_birth":"1990-01-01"}`
		r := post(t, b, body, jsonHeaders(b.s))
		require.Equal(t, http.StatusOK, r.status, r.body)
		require.Regexp(t, `^\{"ok":true,"id":"person-1","rev":"1-[0-9a-f]{32}"\}$`, r.body)

		people := b.s.People()
		require.Len(t, people, 1)
		p := people[0]
		require.Equal(t, "person-1", p.ID)
		require.Equal(t, "person", p.Doc["type"])
		require.Equal(t, "Asha Rai", p.Doc["name"])
		require.Equal(t, "7b00e6ec-1111", p.Doc["openimis_id"])
		require.Equal(t, map[string]any{"_id": chttest.DefaultPlaceID}, p.Doc["parent"])
		require.NotContains(t, p.Doc, "place")
		require.NotContains(t, p.Doc, "patient_id")
		require.Equal(t, float64(b.clk.Now().UnixMilli()), p.Doc["reported_date"])

		got, ok := b.s.Person("person-1")
		require.True(t, ok)
		require.Equal(t, p, got)
	})

	t.Run("GeneratedID", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		r := post(t, b, `{"name":"Asha"}`, jsonHeaders(b.s))
		require.Equal(t, http.StatusOK, r.status)
		var out struct {
			OK  bool   `json:"ok"`
			ID  string `json:"id"`
			Rev string `json:"rev"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.body), &out))
		require.True(t, out.OK)
		require.Regexp(t, `^[0-9a-f]{32}$`, out.ID)
		require.Equal(t, out.ID, b.s.People()[0].ID)
		require.NotContains(t, b.s.People()[0].Doc, "parent")
	})

	t.Run("ContentTypeMustBeExact", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, ct := range []string{"application/json; charset=utf-8", "text/plain", ""} {
			r := post(t, b, `{"name":"Asha"}`, with(jsonHeaders(b.s), "Content-Type", ct))
			require.Equal(t, http.StatusBadRequest, r.status, ct)
			require.JSONEq(t, `{"code":400,"error":"Content-Type must be application/json"}`, r.body, ct)
		}
		// The check comes before authentication, as in routing.js.
		r := post(t, b, `{"name":"Asha"}`, hdr{"Content-Type": "application/json; charset=utf-8"})
		require.Equal(t, http.StatusBadRequest, r.status)
		require.Equal(t, "Content-Type must be application/json", r.body)
		require.Empty(t, b.s.People())
	})

	t.Run("Validation", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		tests := []struct {
			name, body, want string
		}{
			{name: "Empty", body: `{}`, want: "Request body is empty or Content-Type header was not set to application/json."},
			{name: "NoBody", body: "", want: "Request body is empty or Content-Type header was not set to application/json."},
			{name: "MissingName", body: `{"openimis_id":"x"}`, want: `Person is missing a "name" property.`},
			{name: "NameNotString", body: `{"name":5}`, want: `Property "name" must be a string.`},
			{name: "NameNull", body: `{"name":null}`, want: `Property "name" must be a string.`},
			{name: "WrongType", body: `{"name":"A","type":"health_center"}`, want: "Wrong type, this is not a person."},
			{name: "BadReportedDate", body: `{"name":"A","reported_date":"yesterday"}`, want: "Reported date is invalid: yesterday"},
			{name: "BadPlace", body: `{"name":"A","place":5}`, want: "Place must be a new object or string identifier (UUID)."},
			{name: "Array", body: `[{"name":"A"}]`, want: `Person is missing a "name" property.`},
		}
		for _, tt := range tests {
			r := post(t, b, tt.body, jsonHeaders(b.s))
			require.Equal(t, http.StatusBadRequest, r.status, tt.name)
			require.JSONEq(t, mustJSON(t, map[string]any{"code": 400, "error": tt.want}), r.body, tt.name)
		}
		require.Empty(t, b.s.People())
	})

	t.Run("EmptyNameIsAccepted", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// people.js only checks that name is defined and a string.
		r := post(t, b, `{"name":""}`, jsonHeaders(b.s))
		require.Equal(t, http.StatusOK, r.status)
	})

	t.Run("DocIDChecks", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		tests := []struct {
			name, body string
			status     int
			want       string
		}{
			{name: "NotString", body: `{"_id":5,"name":"A"}`, status: 400, want: "Document id must be a string"},
			{name: "Empty", body: `{"_id":"","name":"A"}`, status: 400, want: "Document id must not be empty"},
			{name: "Underscore", body: `{"_id":"_x","name":"A"}`, status: 400, want: "Only reserved document ids may start with underscore."},
			{name: "BadRev", body: `{"_id":"x","_rev":"abc","name":"A"}`, status: 400, want: "Invalid rev format"},
			{name: "RevOnNewDoc", body: `{"_id":"x","_rev":"1-abc","name":"A"}`, status: 409, want: "Document update conflict."},
		}
		for _, tt := range tests {
			r := post(t, b, tt.body, jsonHeaders(b.s))
			require.Equal(t, tt.status, r.status, tt.name)
			require.JSONEq(t, mustJSON(t, map[string]any{"code": tt.status, "error": tt.want}), r.body, tt.name)
		}
		require.Empty(t, b.s.People())
	})

	t.Run("UpdateWithCurrentRev", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		require.Equal(t, http.StatusOK, post(t, b, `{"_id":"p1","name":"A"}`, jsonHeaders(b.s)).status)
		p, _ := b.s.Person("p1")
		rev := p.Doc["_rev"].(string)
		r := post(t, b, `{"_id":"p1","_rev":"`+rev+`","name":"B"}`, jsonHeaders(b.s))
		require.Equal(t, http.StatusOK, r.status)
		require.Regexp(t, `"rev":"2-`, r.body)
		p, _ = b.s.Person("p1")
		require.Equal(t, "B", p.Doc["name"])
		require.Len(t, b.s.People(), 1)
	})

	t.Run("ReportedDate", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		r := post(t, b, `{"_id":"p1","name":"A","reported_date":"2025-08-25T00:00:00Z"}`, jsonHeaders(b.s))
		require.Equal(t, http.StatusOK, r.status, r.body)
		p, _ := b.s.Person("p1")
		require.Equal(t, float64(1756080000000), p.Doc["reported_date"])
	})

	t.Run("UnknownPlace", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		r := post(t, b, `{"name":"A","place":"nowhere"}`, jsonHeaders(b.s))
		require.Equal(t, http.StatusNotFound, r.status)
		require.JSONEq(t, `{"code":404,"error":"Failed to find place."}`, r.body)

		// A person is not a place.
		id := b.s.AddPerson(map[string]any{"name": "B"})
		r = post(t, b, `{"name":"A","place":"`+id+`"}`, jsonHeaders(b.s))
		require.Equal(t, http.StatusNotFound, r.status)
		require.Len(t, b.s.People(), 1)
	})

	t.Run("AddedPlace", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.s.AddPlace("area-2")
		r := post(t, b, `{"_id":"p1","name":"A","place":"area-2"}`, jsonHeaders(b.s))
		require.Equal(t, http.StatusOK, r.status)
		p, _ := b.s.Person("p1")
		require.Equal(t, map[string]any{"_id": "area-2"}, p.Doc["parent"])
	})

	t.Run("PlaceLineage", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.s.AddPerson(map[string]any{"_id": "clinic-1", "type": "clinic", "name": "C", "parent": map[string]any{"_id": chttest.DefaultPlaceID}})
		r := post(t, b, `{"_id":"p1","name":"A","place":"clinic-1"}`, jsonHeaders(b.s))
		require.Equal(t, http.StatusOK, r.status, r.body)
		p, _ := b.s.Person("p1")
		require.Equal(t, map[string]any{"_id": "clinic-1", "parent": map[string]any{"_id": chttest.DefaultPlaceID}}, p.Doc["parent"])

		r = do(t, b.s, http.MethodGet, "/api/v1/person/p1?with_lineage=true", "", jsonHeaders(b.s))
		var doc map[string]any
		require.NoError(t, json.Unmarshal([]byte(r.body), &doc))
		clinic := doc["parent"].(map[string]any)
		require.Equal(t, "clinic", clinic["type"])
		require.Equal(t, "health_center", clinic["parent"].(map[string]any)["type"])
		// AddPerson with a place type does not make a person.
		require.Len(t, b.s.People(), 1)
	})

	t.Run("NoPlacesOption", func(t *testing.T) {
		t.Parallel()
		s := chttest.NewServer(t, chttest.Options{Places: []string{}})
		r := do(t, s, http.MethodPost, "/api/v1/people", `{"name":"A","place":"`+chttest.DefaultPlaceID+`"}`, jsonHeaders(s))
		require.Equal(t, http.StatusNotFound, r.status)
	})

	t.Run("IDConflict", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		body := `{"_id":"person-1","name":"Asha","place":"` + chttest.DefaultPlaceID + `"}`
		require.Equal(t, http.StatusOK, post(t, b, body, jsonHeaders(b.s)).status)
		r := post(t, b, body, jsonHeaders(b.s))
		require.Equal(t, http.StatusConflict, r.status)
		require.JSONEq(t, `{"code":409,"error":"Document update conflict."}`, r.body)
		r = post(t, b, body, with(jsonHeaders(b.s), "Accept", ""))
		require.Equal(t, http.StatusConflict, r.status)
		require.Equal(t, "Document update conflict.", r.body)

		// The place's own id is taken too.
		r = post(t, b, `{"_id":"`+chttest.DefaultPlaceID+`","name":"B"}`, jsonHeaders(b.s))
		require.Equal(t, http.StatusConflict, r.status)
		require.Len(t, b.s.People(), 1)
	})
}

func TestServer_GetPerson(t *testing.T) {
	t.Parallel()

	s := chttest.NewServer(t, chttest.Options{})
	r := do(t, s, http.MethodPost, "/api/v1/people",
		`{"_id":"p-1","name":"Asha","place":"`+chttest.DefaultPlaceID+`","openimis_id":"x1"}`, jsonHeaders(s))
	require.Equal(t, http.StatusOK, r.status)

	t.Run("Found", func(t *testing.T) {
		t.Parallel()
		r := do(t, s, http.MethodGet, "/api/v1/person/p-1", "", jsonHeaders(s))
		require.Equal(t, http.StatusOK, r.status)
		var doc map[string]any
		require.NoError(t, json.Unmarshal([]byte(r.body), &doc))
		require.Equal(t, "p-1", doc["_id"])
		require.Equal(t, "x1", doc["openimis_id"])
		require.Equal(t, map[string]any{"_id": chttest.DefaultPlaceID}, doc["parent"])
		require.Regexp(t, `^1-`, doc["_rev"])
	})

	t.Run("WithLineage", func(t *testing.T) {
		t.Parallel()
		r := do(t, s, http.MethodGet, "/api/v1/person/p-1?with_lineage=true", "", jsonHeaders(s))
		require.Equal(t, http.StatusOK, r.status)
		var doc map[string]any
		require.NoError(t, json.Unmarshal([]byte(r.body), &doc))
		parent := doc["parent"].(map[string]any)
		require.Equal(t, "health_center", parent["type"])
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		r := do(t, s, http.MethodGet, "/api/v1/person/nobody", "", jsonHeaders(s))
		require.Equal(t, http.StatusNotFound, r.status)
		require.JSONEq(t, `{"code":404,"error":"Person not found"}`, r.body)
		r = do(t, s, http.MethodGet, "/api/v1/person/nobody", "", with(jsonHeaders(s), "Accept", ""))
		require.Equal(t, "Person not found", r.body)
	})

	t.Run("PlaceIsNotAPerson", func(t *testing.T) {
		t.Parallel()
		r := do(t, s, http.MethodGet, "/api/v1/person/"+chttest.DefaultPlaceID, "", jsonHeaders(s))
		require.Equal(t, http.StatusNotFound, r.status)
		r = do(t, s, http.MethodGet, "/api/v1/contact/"+chttest.DefaultPlaceID, "", jsonHeaders(s))
		require.Equal(t, http.StatusOK, r.status)
		r = do(t, s, http.MethodGet, "/api/v1/contact/nobody", "", jsonHeaders(s))
		require.JSONEq(t, `{"code":404,"error":"Contact not found"}`, r.body)
	})
}

func TestServer_ContactUUIDs(t *testing.T) {
	t.Parallel()

	s := chttest.NewServer(t, chttest.Options{})
	s.AddPerson(map[string]any{
		"_id": "a-1", "name": "Asha Rai", "openimis_id": "7B00E6EC-AAAA", "phone": "+9779841171819",
		"date_of_birth": "1990-01-01", "last_visit_date": "2025-01-01", "age": 35,
	})
	s.AddPerson(map[string]any{"_id": "b-1", "name": "Bina Rai", "openimis_id": "7b00e6ec-bbbb"})
	s.AddPerson(map[string]any{"_id": "r-1", "type": "data_record", "name": "not a contact"})

	get := func(t *testing.T, query string) result {
		t.Helper()
		return do(t, s, http.MethodGet, "/api/v1/contact/uuid?"+query, "", jsonHeaders(s))
	}

	t.Run("ExactMatchIgnoresCase", func(t *testing.T) {
		t.Parallel()
		r := get(t, "freetext=openimis_id:7b00e6ec-aaaa")
		require.Equal(t, http.StatusOK, r.status)
		require.Equal(t, `{"data":["a-1"],"cursor":null}`, r.body)
		r = get(t, "freetext=OPENIMIS_ID:7B00E6EC-BBBB")
		require.Equal(t, `{"data":["b-1"],"cursor":null}`, r.body)
	})

	t.Run("ExactMatchIsNotPrefix", func(t *testing.T) {
		t.Parallel()
		r := get(t, "freetext=openimis_id:7b00e6ec")
		require.Equal(t, `{"data":[],"cursor":null}`, r.body)
	})

	t.Run("NumbersAndSpaces", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, `{"data":["a-1"],"cursor":null}`, get(t, "freetext=age:35").body)
		require.Equal(t, `{"data":["a-1"],"cursor":null}`, get(t, "freetext=name:asha%20rai").body)
	})

	t.Run("UnindexedKeys", func(t *testing.T) {
		t.Parallel()
		for _, q := range []string{"_id:a-1", "type:person", "last_visit_date:2025-01-01"} {
			require.Equal(t, `{"data":[],"cursor":null}`, get(t, "freetext="+q).body, q)
		}
		// date_of_birth does not end in _date, so it is indexed.
		require.Equal(t, `{"data":["a-1"],"cursor":null}`, get(t, "freetext=date_of_birth:1990-01-01").body)
	})

	t.Run("WordPrefix", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, `{"data":["a-1","b-1"],"cursor":null}`, get(t, "freetext=rai").body)
		require.Equal(t, `{"data":["a-1"],"cursor":null}`, get(t, "freetext=ash").body)
	})

	t.Run("ByType", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, `{"data":["a-1","b-1"],"cursor":null}`, get(t, "type=person").body)
		require.Equal(t, `{"data":["`+chttest.DefaultPlaceID+`"],"cursor":null}`, get(t, "type=health_center").body)
		r := get(t, "type=chw")
		require.Equal(t, http.StatusBadRequest, r.status)
		require.JSONEq(t, `{"code":400,"error":"Invalid contact type [chw]."}`, r.body)
	})

	t.Run("Paging", func(t *testing.T) {
		t.Parallel()
		r := get(t, "freetext=rai&limit=1")
		require.Equal(t, `{"data":["a-1"],"cursor":"1"}`, r.body)
		r = get(t, "freetext=rai&limit=1&cursor=1")
		require.Equal(t, `{"data":["b-1"],"cursor":"2"}`, r.body)
		r = get(t, "freetext=rai&limit=1&cursor=2")
		require.Equal(t, `{"data":[],"cursor":null}`, r.body)
	})

	t.Run("BadQueries", func(t *testing.T) {
		t.Parallel()
		tests := []struct{ query, want string }{
			{query: "", want: "Either query param freetext or type is required"},
			{query: "freetext=", want: "Either query param freetext or type is required"},
			{query: "freetext=ab", want: `Invalid freetext ["ab"].`},
			{query: "freetext=asha%20rai", want: `Invalid freetext ["asha rai"].`},
			{query: "freetext=rai&limit=0", want: `The limit must be a positive integer: ["0"].`},
			{query: "freetext=rai&limit=x", want: `The limit must be a positive integer: ["x"].`},
			{query: "freetext=rai&cursor=", want: `The cursor must be a string or null for first page: [""].`},
			{query: "freetext=rai&cursor=abc", want: `The cursor must be a string or null for first page: ["abc"].`},
		}
		for _, tt := range tests {
			r := get(t, tt.query)
			require.Equal(t, http.StatusBadRequest, r.status, tt.query)
			require.JSONEq(t, mustJSON(t, map[string]any{"code": 400, "error": tt.want}), r.body, tt.query)
		}
	})
}

func TestServer_ReportUUIDs(t *testing.T) {
	t.Parallel()

	s := chttest.NewServer(t, chttest.Options{})
	post := func(t *testing.T, body map[string]any) string {
		t.Helper()
		r := do(t, s, http.MethodPost, "/api/v2/records", mustJSON(t, body), jsonHeaders(s))
		require.Equal(t, http.StatusOK, r.status)
		var out struct {
			ID string `json:"id"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.body), &out))
		return out.ID
	}
	first := opRecord("12345")
	first["op_claim_uuid"] = "D3256498-AAAA"
	id1 := post(t, first)
	second := opRecord("12345")
	second["op_claim_uuid"] = "d3256498-bbbb"
	second["patient_id"] = 67890 // a number: indexed, though flagged as the wrong type
	id2 := post(t, second)

	get := func(t *testing.T, query string) result {
		t.Helper()
		return do(t, s, http.MethodGet, "/api/v1/report/uuid?"+query, "", jsonHeaders(s))
	}

	t.Run("ByClaimUUID", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, `{"data":["`+id1+`"],"cursor":null}`, get(t, "freetext=op_claim_uuid:d3256498-aaaa").body)
		require.Equal(t, `{"data":["`+id2+`"],"cursor":null}`, get(t, "freetext=op_claim_uuid:D3256498-BBBB").body)
		require.Equal(t, `{"data":[],"cursor":null}`, get(t, "freetext=op_claim_uuid:d3256498-cccc").body)
	})

	t.Run("ByNumber", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, `{"data":["`+id2+`"],"cursor":null}`, get(t, "freetext=patient_id:67890").body)
	})

	t.Run("DateKeysAreNotIndexed", func(t *testing.T) {
		t.Parallel()
		// op_date ends in _date, so reports_by_freetext skips it.
		require.Equal(t, `{"data":[],"cursor":null}`, get(t, "freetext=op_date:1756080000000").body)
	})

	t.Run("TopLevelKeys", func(t *testing.T) {
		t.Parallel()
		r := get(t, "freetext=form:op")
		var page struct {
			Data []string `json:"data"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.body), &page))
		require.ElementsMatch(t, []string{id1, id2}, page.Data)
	})

	t.Run("MetaIsNotIndexed", func(t *testing.T) {
		t.Parallel()
		s := chttest.NewServer(t, chttest.Options{})
		body := opRecord("12345")
		body["_meta"] = map[string]any{"form": "OP", "claim_uuid": "meta-only"}
		r := do(t, s, http.MethodPost, "/api/v2/records", mustJSON(t, body), jsonHeaders(s))
		require.Equal(t, http.StatusOK, r.status)
		r = do(t, s, http.MethodGet, "/api/v1/report/uuid?freetext=claim_uuid:meta-only", "", jsonHeaders(s))
		require.Equal(t, `{"data":[],"cursor":null}`, r.body)
	})

	t.Run("BadQueries", func(t *testing.T) {
		t.Parallel()
		r := get(t, "")
		require.Equal(t, http.StatusBadRequest, r.status)
		require.JSONEq(t, `{"code":400,"error":"Invalid freetext [undefined]."}`, r.body)
		r = get(t, "freetext=op")
		require.Equal(t, http.StatusBadRequest, r.status)
	})

	t.Run("GetReport", func(t *testing.T) {
		t.Parallel()
		r := do(t, s, http.MethodGet, "/api/v1/report/"+id1, "", jsonHeaders(s))
		require.Equal(t, http.StatusOK, r.status)
		var doc map[string]any
		require.NoError(t, json.Unmarshal([]byte(r.body), &doc))
		require.Equal(t, id1, doc["_id"])
		require.Equal(t, "data_record", doc["type"])
		require.Equal(t, []any{}, doc["errors"])
		r = do(t, s, http.MethodGet, "/api/v1/report/nope", "", jsonHeaders(s))
		require.JSONEq(t, `{"code":404,"error":"Report not found"}`, r.body)
	})
}

func TestServer_Strictness(t *testing.T) {
	t.Parallel()

	s := chttest.NewServer(t, chttest.Options{})
	couch404 := `{"error":"not_found","reason":"Database does not exist."}`
	tests := []struct {
		name, method, path, body string
	}{
		{name: "RecordsTrailingSlash", method: http.MethodPost, path: "/api/v2/records/", body: mustJSON(t, opRecord("12345"))},
		{name: "RecordsV3", method: http.MethodPost, path: "/api/v3/records", body: mustJSON(t, opRecord("12345"))},
		{name: "RecordsGet", method: http.MethodGet, path: "/api/v2/records"},
		{name: "PeopleTrailingSlash", method: http.MethodPost, path: "/api/v1/people/", body: `{"name":"A"}`},
		{name: "PeoplePut", method: http.MethodPut, path: "/api/v1/people", body: `{"name":"A"}`},
		{name: "PersonPlural", method: http.MethodGet, path: "/api/v1/people/abc"},
		{name: "PersonTrailingSlash", method: http.MethodGet, path: "/api/v1/person/" + chttest.DefaultPlaceID + "/"},
		{name: "PersonEmptyID", method: http.MethodGet, path: "/api/v1/person/"},
		{name: "ContactUUIDTrailingSlash", method: http.MethodGet, path: "/api/v1/contact/uuid/?freetext=name:abc"},
		{name: "ReportUUIDPost", method: http.MethodPost, path: "/api/v1/report/uuid?freetext=name:abc"},
		{name: "Root", method: http.MethodGet, path: "/"},
	}
	for _, tt := range tests {
		r := do(t, s, tt.method, tt.path, tt.body, jsonHeaders(s))
		require.Equal(t, http.StatusNotFound, r.status, tt.name)
		require.JSONEq(t, couch404, r.body, tt.name)
	}
	require.Empty(t, s.Reports())
	require.Empty(t, s.People())

	// Express matches paths case-insensitively.
	r := do(t, s, http.MethodPost, "/API/V2/Records", mustJSON(t, opRecord("12345")), jsonHeaders(s))
	require.Equal(t, http.StatusOK, r.status)
}

func TestServer_FailNext(t *testing.T) {
	t.Parallel()

	t.Run("AnyPath", func(t *testing.T) {
		t.Parallel()
		s := chttest.NewServer(t, chttest.Options{})
		s.FailNext(2, http.StatusInternalServerError)

		// A request that fails authentication does not use up a failure.
		r := do(t, s, http.MethodGet, "/api/v1/person/x", "", with(jsonHeaders(s), "Authorization", ""))
		require.Equal(t, http.StatusUnauthorized, r.status)

		r = do(t, s, http.MethodPost, "/api/v2/records", mustJSON(t, opRecord("12345")), jsonHeaders(s))
		require.Equal(t, http.StatusInternalServerError, r.status)
		require.JSONEq(t, `{"code":500,"error":"Server error"}`, r.body)
		r = do(t, s, http.MethodGet, "/api/v1/person/x", "", with(jsonHeaders(s), "Accept", ""))
		require.Equal(t, http.StatusInternalServerError, r.status)
		require.Equal(t, "Server error", r.body)
		require.Empty(t, s.Reports())

		r = do(t, s, http.MethodPost, "/api/v2/records", mustJSON(t, opRecord("12345")), jsonHeaders(s))
		require.Equal(t, http.StatusOK, r.status)
		require.Len(t, s.Reports(), 1)
	})

	t.Run("OnePath", func(t *testing.T) {
		t.Parallel()
		s := chttest.NewServer(t, chttest.Options{})
		s.FailNextPath("/api/v2/records", 1, http.StatusBadGateway)
		r := do(t, s, http.MethodGet, "/api/v1/report/uuid?freetext=op_claim_uuid:x", "", jsonHeaders(s))
		require.Equal(t, http.StatusOK, r.status)
		r = do(t, s, http.MethodPost, "/api/v2/records", mustJSON(t, opRecord("12345")), jsonHeaders(s))
		require.Equal(t, http.StatusBadGateway, r.status)
		require.JSONEq(t, `{"code":502,"error":"Bad Gateway"}`, r.body)
		r = do(t, s, http.MethodPost, "/api/v2/records", mustJSON(t, opRecord("12345")), jsonHeaders(s))
		require.Equal(t, http.StatusOK, r.status)
	})

	t.Run("Statuses", func(t *testing.T) {
		t.Parallel()
		s := chttest.NewServer(t, chttest.Options{})
		tests := []struct {
			status int
			body   string
		}{
			{status: http.StatusUnauthorized, body: `{"code":401,"error":"unauthorized"}`},
			{status: http.StatusForbidden, body: `{"code":403,"error":"Insufficient privileges"}`},
			{status: http.StatusTooManyRequests, body: `{"code":429,"error":"Too Many Requests"}`},
			{status: http.StatusServiceUnavailable, body: `{"error":"Service unavailable"}`},
			{status: http.StatusGatewayTimeout, body: `{"code":504,"error":"Gateway Timeout"}`},
		}
		for _, tt := range tests {
			s.FailNext(1, tt.status)
			r := do(t, s, http.MethodGet, "/api/v1/person/x", "", jsonHeaders(s))
			require.Equal(t, tt.status, r.status)
			require.JSONEq(t, tt.body, r.body)
		}
	})
}

func TestServer_SetDown(t *testing.T) {
	t.Parallel()

	s := chttest.NewServer(t, chttest.Options{})
	s.SetDown(http.StatusServiceUnavailable)

	r := do(t, s, http.MethodPost, "/api/v2/records", mustJSON(t, opRecord("12345")), jsonHeaders(s))
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	require.JSONEq(t, `{"error":"Service unavailable"}`, r.body)

	// Start-up answers come before authentication.
	r = do(t, s, http.MethodGet, "/api/v1/person/x", "", hdr{"Accept": "application/json"})
	require.Equal(t, http.StatusServiceUnavailable, r.status)

	// Without Accept: application/json the start-up router answers 200 HTML.
	r = do(t, s, http.MethodGet, "/api/v1/person/x", "", with(jsonHeaders(s), "Accept", ""))
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "text/html; charset=utf-8", r.header.Get("Content-Type"))

	s.SetDown(http.StatusBadGateway)
	r = do(t, s, http.MethodGet, "/api/v1/person/x", "", jsonHeaders(s))
	require.Equal(t, http.StatusBadGateway, r.status)

	s.SetDown(0)
	r = do(t, s, http.MethodPost, "/api/v2/records", mustJSON(t, opRecord("12345")), jsonHeaders(s))
	require.Equal(t, http.StatusOK, r.status)
	require.Len(t, s.Reports(), 1)
}

func TestServer_Latency(t *testing.T) {
	t.Parallel()

	t.Run("TimeoutAfterStore", func(t *testing.T) {
		t.Parallel()
		s := chttest.NewServer(t, chttest.Options{})
		s.SetLatency(time.Minute)

		client := &http.Client{Timeout: 100 * time.Millisecond}
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL+"/api/v2/records",
			strings.NewReader(mustJSON(t, opRecord("12345"))))
		require.NoError(t, err)
		for k, v := range jsonHeaders(s) {
			req.Header.Set(k, v)
		}
		_, err = client.Do(req) //nolint:bodyclose // Do fails.
		require.Error(t, err)

		// The report exists although the client never saw the answer.
		require.Eventually(t, func() bool { return len(s.Reports()) == 1 }, 5*time.Second, 10*time.Millisecond)

		s.SetLatency(0)
		r := do(t, s, http.MethodGet, "/api/v1/report/uuid?freetext=op_claim_uuid:d3256498-0d8d-4d5e-9e4e-3b5f0c3a0f11", "", jsonHeaders(s))
		require.Equal(t, `{"data":["`+s.Reports()[0].ID+`"],"cursor":null}`, r.body)
	})

	t.Run("OptionDelaysAnswers", func(t *testing.T) {
		t.Parallel()
		s := chttest.NewServer(t, chttest.Options{Latency: 50 * time.Millisecond})
		start := time.Now()
		r := do(t, s, http.MethodGet, "/api/v1/person/x", "", jsonHeaders(s))
		require.Equal(t, http.StatusNotFound, r.status)
		require.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)
	})

	t.Run("NewLatencyAppliesToDelayedAnswers", func(t *testing.T) {
		t.Parallel()
		s := chttest.NewServer(t, chttest.Options{Latency: time.Hour})
		done := make(chan int, 1)
		go func() { done <- do(t, s, http.MethodGet, "/api/v1/person/x", "", jsonHeaders(s)).status }()
		require.Eventually(t, func() bool { return len(s.Requests()) == 1 }, 5*time.Second, 10*time.Millisecond)
		s.SetLatency(time.Hour + time.Minute) // longer: still waiting
		select {
		case status := <-done:
			t.Fatalf("answered %d before the latency passed", status)
		case <-time.After(50 * time.Millisecond):
		}
		s.SetLatency(0)
		select {
		case status := <-done:
			require.Equal(t, http.StatusNotFound, status)
		case <-time.After(5 * time.Second):
			t.Fatal("SetLatency(0) did not release the delayed answer")
		}
	})

	t.Run("CloseReleasesDelayedAnswers", func(t *testing.T) {
		t.Parallel()
		s := chttest.New(chttest.Options{Latency: time.Hour})
		done := make(chan error, 1)
		go func() {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+"/api/v1/person/x", nil)
			if err != nil {
				done <- err
				return
			}
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			done <- err
		}()
		require.Eventually(t, func() bool { return len(s.Requests()) == 1 }, 5*time.Second, 10*time.Millisecond)
		closed := make(chan struct{})
		go func() {
			s.Close()
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not release the delayed answer")
		}
		<-done
	})
}

func TestServer_DropNext(t *testing.T) {
	t.Parallel()

	s := chttest.NewServer(t, chttest.Options{})
	s.DropNextPath("/api/v2/records", 1)

	body := mustJSON(t, opRecord("12345"))
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL+"/api/v2/records", strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range jsonHeaders(s) {
		req.Header.Set(k, v)
	}
	_, err = http.DefaultClient.Do(req) //nolint:bodyclose // Do fails.
	require.Error(t, err)
	require.Len(t, s.Reports(), 1)

	r := do(t, s, http.MethodPost, "/api/v2/records", body, jsonHeaders(s))
	require.Equal(t, http.StatusOK, r.status)
	require.Len(t, s.Reports(), 2)
}

func TestServer_DropNextAnyPath(t *testing.T) {
	t.Parallel()

	s := chttest.NewServer(t, chttest.Options{})
	s.DropNext(1)
	// Unauthenticated requests are answered and do not use up the drop.
	require.Equal(t, http.StatusUnauthorized, do(t, s, http.MethodGet, "/api/v1/person/x", "", nil).status)

	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL+"/api/v1/people", strings.NewReader(`{"_id":"p1","name":"A"}`))
	require.NoError(t, err)
	for k, v := range jsonHeaders(s) {
		req.Header.Set(k, v)
	}
	_, err = http.DefaultClient.Do(req) //nolint:bodyclose // Do fails.
	require.Error(t, err)
	_, ok := s.Person("p1")
	require.True(t, ok)

	// The retry finds the person was created.
	r := do(t, s, http.MethodPost, "/api/v1/people", `{"_id":"p1","name":"A"}`, jsonHeaders(s))
	require.Equal(t, http.StatusConflict, r.status)
}

func TestServer_Requests(t *testing.T) {
	t.Parallel()

	s := chttest.NewServer(t, chttest.Options{})
	s.FailNext(1, http.StatusInternalServerError)
	do(t, s, http.MethodGet, "/api/v1/contact/uuid?freetext=openimis_id:abc", "", nil)
	do(t, s, http.MethodPost, "/api/v2/records", `{"_meta":{"form":"OP"}}`, jsonHeaders(s))

	reqs := s.Requests()
	require.Len(t, reqs, 2)
	require.Equal(t, http.MethodGet, reqs[0].Method)
	require.Equal(t, "/api/v1/contact/uuid", reqs[0].Path)
	require.Equal(t, "freetext=openimis_id:abc", reqs[0].RawQuery)
	require.Empty(t, reqs[0].Body)
	require.Equal(t, http.MethodPost, reqs[1].Method)
	require.Equal(t, `{"_meta":{"form":"OP"}}`, string(reqs[1].Body))
	require.Equal(t, "application/json", reqs[1].Header.Get("Content-Type"))
	require.Equal(t, basic("medic", "password"), reqs[1].Header.Get("Authorization"))
	require.False(t, reqs[1].Time.IsZero())

	// Copies: changing them changes nothing in the server.
	reqs[1].Body[0] = 'X'
	reqs[1].Header.Set("Content-Type", "x")
	again := s.Requests()
	require.Equal(t, `{"_meta":{"form":"OP"}}`, string(again[1].Body))
	require.Equal(t, "application/json", again[1].Header.Get("Content-Type"))
}

func TestServer_InspectionReturnsCopies(t *testing.T) {
	t.Parallel()

	s := chttest.NewServer(t, chttest.Options{})
	id := s.AddPerson(map[string]any{"name": "Asha", "tags": []any{"a"}})
	p, ok := s.Person(id)
	require.True(t, ok)
	p.Doc["name"] = "changed"
	p.Doc["tags"].([]any)[0] = "changed"
	p, _ = s.Person(id)
	require.Equal(t, "Asha", p.Doc["name"])
	require.Equal(t, []any{"a"}, p.Doc["tags"])

	_, ok = s.Person("nobody")
	require.False(t, ok)
	_, ok = s.Report("nothing")
	require.False(t, ok)

	require.Panics(t, func() { s.AddPerson(map[string]any{"_id": id}) })
	require.Panics(t, func() { s.AddPlace(chttest.DefaultPlaceID) })
	require.Panics(t, func() { s.SetShortcode("nobody", "12345") })
}

func TestServer_Concurrency(t *testing.T) {
	t.Parallel()

	s := chttest.NewServer(t, chttest.Options{})
	body := mustJSON(t, opRecord("12345"))
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL+"/api/v2/records", strings.NewReader(body))
			if err != nil {
				return
			}
			for k, v := range jsonHeaders(s) {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
		})
		_ = s.Reports()
		_ = s.Requests()
	}
	wg.Wait()
	require.Len(t, s.Reports(), 20)
	ids := map[string]bool{}
	for _, r := range s.Reports() {
		ids[r.ID] = true
	}
	require.Len(t, ids, 20)
}

func TestDefaultForms_MatchFixture(t *testing.T) {
	t.Parallel()

	fixture, err := os.ReadFile("../../testdata/cht/interop-app_settings.forms.OP.json")
	require.NoError(t, err)
	require.JSONEq(t, string(fixture), string(chttest.DefaultForms()["OP"]))
}

func TestServer_ReadOnlyChecks(t *testing.T) {
	t.Parallel()
	s := chttest.NewServer(t, chttest.Options{})
	get := func(path string, auth bool) (int, map[string]any) {
		req, err := http.NewRequest(http.MethodGet, s.URL+path, nil)
		require.NoError(t, err)
		req.Header.Set("Accept", "application/json")
		if auth {
			req.SetBasicAuth(chttest.DefaultUsername, chttest.DefaultPassword)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	status, body := get("/api/info", false)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, chttest.Version, body["version"])

	status, _ = get("/api/v1/settings", false)
	require.Equal(t, http.StatusUnauthorized, status)
	status, body = get("/api/v1/settings", true)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body["forms"], "OP")

	status, body = get("/api/v1/place/"+chttest.DefaultPlaceID, true)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, chttest.DefaultPlaceID, body["_id"])
	status, _ = get("/api/v1/place/nowhere", true)
	require.Equal(t, http.StatusNotFound, status)
}
