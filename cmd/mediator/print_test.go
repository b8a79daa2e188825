package main

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
	"unicode"

	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/mediator"
	"github.com/cht-openimis/cht-openimis-mediator/openimis"
)

// hostile holds what an upstream or a sender may put in a string the CLI
// prints: a terminal escape, a forged line, C1 controls (CSI, NEL, OSC),
// invalid UTF-8 and the Unicode line separators.
const hostile = "x\x1b[2J\x1b]0;owned\x07\r\nFAKE LINE\u009b31m\u0085\u009d\xff\u2028end"

// requireTerminalSafe fails when out holds a control character other than
// a newline or a tab.
func requireTerminalSafe(t *testing.T, out string) {
	t.Helper()
	for i, r := range out {
		if r == '\n' || r == '\t' {
			continue
		}
		require.False(t, unicode.IsControl(r) || r == unicode.ReplacementChar || r == '\u2028' || r == '\u2029',
			"control character %U at byte %d of:\n%s", r, i, out)
	}
	require.NotContains(t, out, "\nFAKE LINE", "no forged line")
}

func TestPrint_EscapesOutsideStrings(t *testing.T) {
	t.Parallel()
	payload, err := json.Marshal(map[string]any{"claim": map[string]any{"code": hostile, "uuid": "ae580700-0277-4c98-adab-d98c0f7e681b"}})
	require.NoError(t, err)
	job := mediator.Job{
		ID: 7, Kind: "claim" + hostile, State: "failed", Subject: "claim " + hostile, Attempt: 1, MaxAttempts: 300,
		CreatedAt: time.Now(), NextTry: time.Now(),
		Errors: []rivertype.AttemptError{
			{At: time.Now(), Attempt: 1, Error: "cht POST /api/v2/records: 500: " + hostile},
			{At: time.Now(), Attempt: 2, Error: "openimis GET Patient/: 400: " + hostile},
		},
		Payload: payload,
	}

	t.Run("JobsList", func(t *testing.T) {
		t.Parallel()
		var out bytes.Buffer
		require.NoError(t, printJobs(&out, []mediator.Job{job}))
		requireTerminalSafe(t, out.String())
	})
	t.Run("JobsShow", func(t *testing.T) {
		t.Parallel()
		var out bytes.Buffer
		printJob(&out, job)
		requireTerminalSafe(t, out.String())
		require.Contains(t, out.String(), `\u009b31m`, "the payload's C1 characters are escaped")
		bad := job
		bad.Payload = []byte(hostile)
		out.Reset()
		printJob(&out, bad)
		requireTerminalSafe(t, out.String())
	})
	t.Run("SubscriptionShow", func(t *testing.T) {
		t.Parallel()
		var out bytes.Buffer
		printSubscription(&out, mediator.SubscriptionReport{Endpoint: hostile, Subscriptions: []openimis.Subscription{{
			ID: hostile, Status: hostile, Criteria: hostile, End: hostile,
			Channel: openimis.Channel{Endpoint: hostile, Header: []string{hostile}},
		}}})
		printSubscription(&out, mediator.SubscriptionReport{Endpoint: hostile})
		requireTerminalSafe(t, out.String())
	})
	t.Run("Check", func(t *testing.T) {
		t.Parallel()
		var out bytes.Buffer
		printChecks(&out, []mediator.CheckResult{
			{Name: "CHT " + hostile, Status: "fail", Detail: hostile, Fix: "fix " + hostile},
			{Name: hostile, Status: "warn", Detail: hostile, Fix: hostile},
			{Name: hostile, Status: "skip", Detail: hostile},
			{Name: hostile, Status: "ok", Detail: hostile},
		})
		requireTerminalSafe(t, out.String())
	})
	t.Run("Errors", func(t *testing.T) {
		t.Parallel()
		requireTerminalSafe(t, printableLines("jobs: "+hostile+"\nusage: …"))
	})
}
