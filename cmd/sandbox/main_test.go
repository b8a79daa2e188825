package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRun_CompletesTheStory(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), nil, &out))
	for _, want := range []string{
		"subscription ", "registered with OpenHIM", "default channels installed with the console's \"+\": 3",
		"-> 200 {\"claim\":\"" + claimUUID + "\",\"status\":\"accepted\"}",
		"form OP, claim " + claimCode,
		"-> 202 ", "(Successful)",
		"care rendered true, payment asked false, drug prescribed true, drug received true, rating 4",
		"the story completed",
	} {
		require.Contains(t, out.String(), want)
	}
}

// --source plays the story with a FHIR server besides openIMIS too: its
// claim outcome reaches the CHT, by the server's notification or by the
// catch-up search, as each server allows.
func TestRun_SourceStories(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		source string
		want   []string
	}{
		{"kodjin", []string{"dialect r4-criteria, subscription state active", "criteria ClaimResponse?", "the server notified: PUT "}},
		{"hapi", []string{"dialect r4-criteria, subscription state active", "the server notified: PUT "}},
		{"heydonto", []string{"dialect r4-criteria, subscription state requested", "the catch-up search found it"}},
		{"aidbox", []string{"A FHIR server besides openIMIS: Aidbox (", "FHIR_AIDBOX_URL=", "dialect r4b-backport, subscription state active", "the server notified: POST"}},
		{"aidbox-zen", []string{"A FHIR server besides openIMIS: Aidbox zen (", "FHIR_AIDBOX_ZEN_URL=", "dialect r4b-backport, subscription state active", "the server notified: POST"}},
	} {
		t.Run(tc.source, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			require.NoError(t, run(context.Background(), []string{"--source", tc.source}, &out), out.String())
			for _, want := range append(tc.want,
				"6. A FHIR server besides openIMIS: ",
				"person ", "source_patient_id "+tc.source+"/Patient/"+sourcePatientID,
				"form OP, claim "+sourceClaimCode+" ("+sourceClaimID+")",
				tc.source+" claim "+sourceClaimCode+" ("+sourceClaimID+") -> CHT report ",
				"the story completed",
			) {
				require.Contains(t, out.String(), want)
			}
		})
	}
	err := run(context.Background(), []string{"--source", "nope"}, &bytes.Buffer{})
	require.EqualError(t, err, `--source "nope": use one of aidbox, aidbox-zen, hapi, heydonto, kodjin`)
}

func TestRun_KeepWaitsForInterrupt(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--keep"}, out) }()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "Everything keeps running until Ctrl-C") },
		60*time.Second, 20*time.Millisecond)
	require.Contains(t, out.String(), "curl http://127.0.0.1:")
	cancel()
	require.NoError(t, <-done)
}

func TestRun_BadFlag(t *testing.T) {
	t.Parallel()
	require.Error(t, run(context.Background(), []string{"--nope"}, &bytes.Buffer{}))
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}
