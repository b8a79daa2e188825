package mediator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/mediator"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/storetype"
)

// readyAnswer is what a test reads of GET /ready.
type readyAnswer struct {
	status int
	Status string
	Paused map[string]struct {
		Until  time.Time
		Reason string
	}
	Reasons []string
}

func (b *testBundle) readyState(t *testing.T) readyAnswer {
	t.Helper()
	resp, err := b.srv.Client().Get(b.srv.URL + "/ready")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var r readyAnswer
	require.NoError(t, json.Unmarshal(body, &r), string(body))
	r.status = resp.StatusCode
	return r
}

// A proxy in front of the CHT answers 429 with Retry-After: 999999999. The
// pause is bounded at 5 minutes, the job waits without using an attempt,
// the log says it was a 429, and /ready and /metrics show the pause.
func TestHostile_CHTRetryAfterIsBoundedAndShown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, setupOpts{})
	b.cht.SetFaultHeader(http.StatusTooManyRequests, "Retry-After", "999999999")
	b.cht.FailNextPath("/api/v2/records", 1, http.StatusTooManyRequests)
	start := time.Now()
	require.Equal(t, http.StatusOK, b.postClaim(t, claimBody(t, fixtureClaimUUID, fixtureInsureeUUID, "2025-06-30")).status)

	var r readyAnswer
	require.Eventually(t, func() bool {
		r = b.readyState(t)
		_, ok := r.Paused["cht"]
		return ok
	}, 15*time.Second, 10*time.Millisecond, "/ready shows the CHT paused")
	require.Equal(t, http.StatusOK, r.status, "a pause ends by itself: still ready")
	require.WithinRange(t, r.Paused["cht"].Until, start, time.Now().Add(5*time.Minute+time.Second))
	require.Contains(t, r.Paused["cht"].Reason, "429 Too Many Requests")
	require.NotContains(t, r.Paused["cht"].Reason, "refused login")

	m := regexp.MustCompile(`mediator_upstream_paused_seconds\{system="cht"\} (\S+)`).FindStringSubmatch(b.scrape(t))
	require.NotNil(t, m, "the pause is a metric")
	left, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	require.Greater(t, left, 200.0)
	require.LessOrEqual(t, left, 300.0)
	require.Contains(t, b.scrape(t), `mediator_upstream_paused_seconds{system="openimis"} 0`)

	js, err := mediator.OpenJobs(ctx, b.adminStore(t))
	require.NoError(t, err)
	var job mediator.Job
	require.Eventually(t, func() bool {
		list, err := js.List(ctx, "scheduled", 10)
		require.NoError(t, err)
		if len(list) != 1 {
			return false
		}
		job = list[0]
		return true
	}, 15*time.Second, 10*time.Millisecond, "the job waits, scheduled")
	require.Empty(t, job.Errors, "waiting uses no attempt")
	require.WithinRange(t, job.NextTry, start.Add(4*time.Minute), time.Now().Add(5*time.Minute+time.Second))
	require.Len(t, b.reportsFor(fixtureClaimUUID), 0)
}

// claimWithCode is the fixture claim with its code replaced by raw JSON
// string content (escapes kept as written).
func claimWithCode(t *testing.T, claimUUID, rawCode string) []byte {
	t.Helper()
	body := claimBody(t, claimUUID, fixtureInsureeUUID, "2025-06-30")
	var doc map[string]any
	require.NoError(t, json.Unmarshal(body, &doc))
	var code string
	for _, id := range doc["identifier"].([]any) {
		if v := id.(map[string]any)["value"].(string); v != claimUUID {
			code = v
		}
	}
	require.NotEmpty(t, code)
	out := strings.Replace(string(body), `"value":"`+code+`"`, `"value":"`+rawCode+`"`, 1)
	require.NotEqual(t, string(body), out)
	return []byte(out)
}

// feedbackWithID is a feedback push whose doc._id is raw JSON string content.
func feedbackWithID(t *testing.T, rawID string) []byte {
	t.Helper()
	body := string(feedbackBody(t, "placeholder-id", "claimUUID", "insureeUUID", fixtureInsureeUUID))
	return []byte(strings.Replace(body, `"_id":"placeholder-id"`, `"_id":"`+rawID+`"`, 1))
}

// fieldsOf reads the fields a 400 names, in either answer shape.
func fieldsOf(t *testing.T, body []byte) []string {
	t.Helper()
	var e struct {
		Fields []struct{ Field string }
		Issue  []struct{ Expression []string }
	}
	require.NoError(t, json.Unmarshal(body, &e), string(body))
	var out []string
	for _, f := range e.Fields {
		out = append(out, f.Field)
	}
	for _, i := range e.Issue {
		out = append(out, i.Expression...)
	}
	return out
}

// Ids holding NUL or other control characters are refused with a 400 naming
// the field, on SQLite and PostgreSQL alike (PostgreSQL cannot store a NUL
// in text, so it answered 503 "send it again" forever).
func TestHostile_ControlCharactersInIdsAre400(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	for i, raw := range []string{`\u0000`, `CL\u0000AIM`, `\u001b[31mred`, `a\r\nb`, `\u0085`, `\u009b2J`, `\u007f`} {
		t.Run("Claim"+strconv.Itoa(i), func(t *testing.T) {
			claim := fmt.Sprintf("c0de0000-0000-4000-8000-%012d", i)
			resp := b.postClaim(t, claimWithCode(t, claim, raw))
			require.Equal(t, http.StatusBadRequest, resp.status, string(resp.body))
			require.Equal(t, []string{"identifier"}, fieldsOf(t, resp.body))
		})
		t.Run("Feedback"+strconv.Itoa(i), func(t *testing.T) {
			resp := b.postFeedback(t, feedbackWithID(t, "r"+raw))
			require.Equal(t, http.StatusBadRequest, resp.status, string(resp.body))
			require.Equal(t, []string{"doc._id"}, fieldsOf(t, resp.body))
		})
	}
	for _, id := range []string{"a b", "a/b", "a.b", "é", strings.Repeat("x", 129)} {
		resp := b.postFeedback(t, feedbackWithID(t, id))
		require.Equal(t, http.StatusBadRequest, resp.status, "doc._id %q: %s", id, resp.body)
		require.Equal(t, []string{"doc._id"}, fieldsOf(t, resp.body))
	}
	for _, id := range []string{"7f3c2e1a-0d4b-4b7e-9a51-3f0c8d2e6b1a", "7f3c2e1a0d4b4b7e9a513f0c8d2e6b1a", "r_1-B", strings.Repeat("x", 128)} {
		resp := b.postFeedback(t, feedbackWithID(t, id))
		require.Equal(t, http.StatusAccepted, resp.status, "doc._id %q: %s", id, resp.body)
	}
}

// Lone surrogates and invalid UTF-8 would all decode to U+FFFD: distinct ids
// would collapse into one, and the later ones be answered 202 and dropped.
func TestHostile_LoneSurrogatesAndInvalidUTF8Are400(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	for name, body := range map[string][]byte{
		"HighAlone":     feedbackWithID(t, `sur-\ud800`),
		"LowAlone":      feedbackWithID(t, `sur-\udfff`),
		"HighThenOther": feedbackWithID(t, `sur-\ud800\u0041`),
		"Reversed":      feedbackWithID(t, `sur-\udc00\ud800`),
		"InvalidUTF8":   feedbackWithID(t, "sur-\xff"),
		"InOtherField":  []byte(strings.Replace(string(feedbackBody(t, "sur-1", "claimUUID", "insureeUUID", fixtureInsureeUUID)), `"care_rendered":"yes"`, `"care_rendered":"yes\udfff"`, 1)),
	} {
		resp := b.postFeedback(t, body)
		require.Equal(t, http.StatusBadRequest, resp.status, "%s: %s", name, resp.body)
	}
	for name, code := range map[string]string{"HighAlone": `sur-\ud800`, "LowAlone": `sur-\udfff`, "InvalidUTF8": "sur-\xff"} {
		resp := b.postClaim(t, claimWithCode(t, "5c0de000-0000-4000-8000-000000000001", code))
		require.Equal(t, http.StatusBadRequest, resp.status, "%s: %s", name, resp.body)
	}
	// A pair is a character, and an escaped backslash before u is text.
	resp := b.postFeedback(t, feedbackWithID(t, "pair"))
	require.Equal(t, http.StatusAccepted, resp.status, string(resp.body))
	resp = b.postFeedback(t, []byte(strings.Replace(string(feedbackBody(t, "pair-2", "claimUUID", "insureeUUID", fixtureInsureeUUID)),
		`"payment_asked":"no"`, `"payment_asked":"no","note":"\ud83d\ude00 \\ud800"`, 1)))
	require.Equal(t, http.StatusAccepted, resp.status, string(resp.body))
}

// A temporary redirect (a proxy during maintenance) is retried with backoff
// and the claim delivered; the log says where it pointed, credentials
// redacted. A 301 is a wrong CHT_URL: the job is kept with the hint.
func TestHostile_TemporaryRedirectIsRetried(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	b.cht.SetFaultHeader(http.StatusTemporaryRedirect, "Location", "https://ops:pa55@maint.example.org/records?sig=xyz")
	b.cht.FailNextPath("/api/v2/records", 2, http.StatusTemporaryRedirect)
	require.Equal(t, http.StatusOK, b.postClaim(t, claimBody(t, fixtureClaimUUID, fixtureInsureeUUID, "2025-06-30")).status)
	b.waitDelivered(t, fixtureClaimUUID)
	require.Len(t, b.reportsFor(fixtureClaimUUID), 1)
	b.waitLog(t, "job attempt failed; will retry", "307: redirected to https://REDACTED@maint.example.org/records?sig=REDACTED")
	require.NotContains(t, b.logs.String(), "pa55")
	require.NotContains(t, b.logs.String(), "xyz")
	require.NotContains(t, b.logs.String(), "job failed permanently")

	const other = "b0b0b0b0-0277-4c98-adab-d98c0f7e681b"
	b.cht.SetFaultHeader(http.StatusMovedPermanently, "Location", "https://cht.example.org/api/v2/records")
	b.cht.FailNextPath("/api/v2/records", 1, http.StatusMovedPermanently)
	require.Equal(t, http.StatusOK, b.postClaim(t, claimBody(t, other, fixtureInsureeUUID, "2025-06-30")).status)
	b.waitLog(t, "job failed permanently", "301: redirected to https://cht.example.org/api/v2/records", "CHT_URL is wrong")
}

// A client guessing the password is answered 429 with Retry-After after a
// few failures, whatever it sends then; no info line is written per failed
// attempt, one warning says the address is throttled, and /metrics counts
// the failures. Other addresses are not throttled.
func TestHostile_FailedAuthIsThrottled(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	body := claimBody(t, fixtureClaimUUID, fixtureInsureeUUID, "2025-06-30")
	send := func(user, pass string) *http.Response {
		req, err := http.NewRequest(http.MethodPost, b.srv.URL+"/mediator/claim-response", strings.NewReader(string(body)))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(user, pass)
		resp, err := b.srv.Client().Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	var statuses []int
	var throttled *http.Response
	for i := range 60 {
		resp := send(mediatorUser, fmt.Sprintf("guess-%d", i))
		statuses = append(statuses, resp.StatusCode)
		if resp.StatusCode == http.StatusTooManyRequests {
			throttled = resp
			break
		}
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	}
	require.NotNil(t, throttled, "throttled before 60 failures: %v", statuses)
	require.LessOrEqual(t, len(statuses), 11)
	ra, err := strconv.Atoi(throttled.Header.Get("Retry-After"))
	require.NoError(t, err, "a 429 says when to come back")
	require.Positive(t, ra)
	require.LessOrEqual(t, ra, 60)
	require.Equal(t, http.StatusTooManyRequests, send(mediatorUser, mediatorPass).StatusCode,
		"while throttled, the password is not even checked")

	b.waitLog(t, "this address is throttled")
	var infoRefusals, warnings int
	for _, line := range strings.Split(b.logs.String(), "\n") {
		var l struct {
			Level, Message string
			Status         int
		}
		if json.Unmarshal([]byte(line), &l) != nil {
			continue
		}
		if l.Message == "request" && (l.Status == http.StatusUnauthorized || l.Status == http.StatusTooManyRequests) && l.Level != "debug" {
			infoRefusals++
		}
		if strings.Contains(l.Message, "this address is throttled") {
			warnings++
			require.Equal(t, "warn", l.Level)
		}
	}
	require.Zero(t, infoRefusals, "no info line per failed attempt")
	require.Equal(t, 1, warnings, "one warning when the address becomes throttled")
	metrics := b.scrape(t)
	require.Contains(t, metrics, `mediator_auth_failures_total{reason="wrong_credentials"} 10`)
	require.Contains(t, metrics, `mediator_auth_failures_total{reason="throttled"} 2`)
}

// fullStore is a store whose disk is full while full is set: reads work,
// every commit fails as SQLite's do (SQLITE_FULL).
type fullStore struct {
	storetype.Store
	full *atomic.Bool
}

var errDiskFull = errors.New("database or disk is full (13)")

func (s fullStore) Enqueue(ctx context.Context, kind, key string, args river.JobArgs) (bool, error) {
	if s.full.Load() {
		return false, errDiskFull
	}
	return s.Store.Enqueue(ctx, kind, key, args)
}

func (s fullStore) CheckWrite(ctx context.Context) error {
	if s.full.Load() {
		return errDiskFull
	}
	return s.Store.CheckWrite(ctx)
}

// While the store cannot commit (a full disk), every request gets 503: so
// does /ready, although reads still work; it answers 200 again by itself
// once the store commits.
func TestHostile_ReadyReflectsWhetherTheStoreCommits(t *testing.T) {
	t.Parallel()
	full := &atomic.Bool{}
	b := setup(t, setupOpts{wrapStore: func(st storetype.Store) storetype.Store { return fullStore{Store: st, full: full} }})
	require.Eventually(t, func() bool { return b.readyState(t).status == http.StatusOK }, 15*time.Second, 10*time.Millisecond)

	full.Store(true)
	require.Equal(t, http.StatusServiceUnavailable, b.postClaim(t, claimBody(t, fixtureClaimUUID, fixtureInsureeUUID, "2025-06-30")).status)
	var r readyAnswer
	require.Eventually(t, func() bool { r = b.readyState(t); return r.status == http.StatusServiceUnavailable },
		10*time.Second, 50*time.Millisecond, "/ready says the store cannot commit")
	require.Contains(t, strings.Join(r.Reasons, "; "), "store cannot commit")
	b.waitLog(t, "the store cannot commit", "database or disk is full")

	full.Store(false)
	require.Eventually(t, func() bool { return b.readyState(t).status == http.StatusOK },
		10*time.Second, 50*time.Millisecond, "/ready is 200 again by itself")
	b.waitLog(t, "the store commits again")
	require.Equal(t, http.StatusOK, b.postClaim(t, claimBody(t, fixtureClaimUUID, fixtureInsureeUUID, "2025-06-30")).status)
	b.waitDelivered(t, fixtureClaimUUID)
}
