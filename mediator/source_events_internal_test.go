package mediator

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/fhir"
)

func eventsNote(counter int64, numbers ...int64) fhir.Notification {
	n := fhir.Notification{Kind: fhir.KindEvent, Type: "event-notification", Status: "active",
		EventsSinceStart: counter, HasEventsSinceStart: true}
	for _, num := range numbers {
		n.Events = append(n.Events, fhir.Event{Number: num})
	}
	return n
}

// The event tracking: numbers in order advance, a skipped
// one opens a gap that a late arrival closes, a heartbeat's counter above
// what arrived is a gap too, and a counter that goes down is a reset.
func TestEventTrack(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tr := newEventTrack("s1", true, t0)

	require.False(t, tr.observe(eventsNote(1, 1), t0, false))
	require.False(t, tr.observe(eventsNote(2, 2), t0, false))
	require.Equal(t, int64(2), tr.Contiguous)
	require.False(t, tr.gapOpen())

	// 3 and 4 missing, 5 and 7 arrive.
	tr.observe(eventsNote(5, 5), t0.Add(time.Second), false)
	tr.observe(eventsNote(7, 7), t0.Add(2*time.Second), false)
	require.True(t, tr.gapOpen())
	require.Equal(t, t0.Add(time.Second), tr.GapSince, "the gap clock starts at the first miss")
	require.Equal(t, [][2]int64{{3, 4}, {6, 6}}, tr.missing())

	// Late arrivals close part of it; the clock keeps its start.
	tr.observe(eventsNote(5, 3, 4), t0.Add(3*time.Second), false)
	require.Equal(t, int64(5), tr.Contiguous)
	require.Equal(t, [][2]int64{{6, 6}}, tr.missing())
	require.Equal(t, t0.Add(time.Second), tr.GapSince)
	tr.observe(eventsNote(7, 6), t0.Add(4*time.Second), false)
	require.Equal(t, int64(7), tr.Contiguous)
	require.False(t, tr.gapOpen())
	require.True(t, tr.GapSince.IsZero())
	require.Empty(t, tr.SeenAbove)

	// Repeats change nothing.
	require.False(t, tr.observe(eventsNote(7, 6, 7), t0, false))
	require.Equal(t, int64(7), tr.Contiguous)

	// A heartbeat whose counter is ahead: events 8 and 9 never came.
	hb := fhir.Notification{Kind: fhir.KindHeartbeat, Type: "heartbeat", Status: "active", EventsSinceStart: 9, HasEventsSinceStart: true}
	tr.observe(hb, t0.Add(5*time.Second), false)
	require.Equal(t, [][2]int64{{8, 9}}, tr.missing())

	// Fetched or searched: covered.
	tr.cover(9)
	tr.settle(t0)
	require.False(t, tr.gapOpen())

	// The counter goes down: a reset; tracking restarts from it.
	require.True(t, tr.observe(eventsNote(2, 2), t0.Add(6*time.Second), false))
	require.Equal(t, int64(2), tr.Contiguous)
	require.False(t, tr.gapOpen())
	require.True(t, tr.Reached)
}

// A subscription found rather than made is tracked from its first number:
// its earlier events are the search's.
// On a server that keeps its counters (Aidbox), a lower counter is a late
// or repeated delivery: no reset, the tracking and its open gap are kept.
func TestEventTrack_KeptCountersNeverReset(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tr := newEventTrack("s1", true, t0)
	for n := int64(1); n <= 4; n++ {
		tr.observe(eventsNote(n, n), t0, true)
	}
	tr.observe(eventsNote(6, 6), t0.Add(time.Second), true)
	require.False(t, tr.observe(eventsNote(2, 2), t0.Add(2*time.Second), true), "event 2 again is old news")
	require.Equal(t, int64(4), tr.Contiguous)
	require.Equal(t, [][2]int64{{5, 5}}, tr.missing(), "the gap at 5 is still open")
	require.True(t, tr.observe(eventsNote(2, 2), t0.Add(3*time.Second), false), "where counters are not kept, the same is a reset")
}

func TestEventTrack_AdoptedStartsAtFirstNumber(t *testing.T) {
	t.Parallel()
	tr := newEventTrack("s1", false, time.Time{})
	require.False(t, tr.gapOpen())
	tr.observe(eventsNote(57, 57), time.Time{}, false)
	require.Equal(t, int64(57), tr.Contiguous)
	require.False(t, tr.gapOpen())

	hbFirst := newEventTrack("s2", false, time.Time{})
	hbFirst.observe(fhir.Notification{Kind: fhir.KindHeartbeat, Type: "heartbeat", EventsSinceStart: 12, HasEventsSinceStart: true}, time.Time{}, false)
	require.Equal(t, int64(12), hbFirst.Contiguous)
	hbFirst.observe(eventsNote(14, 14), time.Time{}, false)
	require.Equal(t, [][2]int64{{13, 13}}, hbFirst.missing())
}

// A subscription that never turned active is made again after 2 minutes,
// then 4, 8, … up to an hour.
func TestTopicUpkeep_RecreateWait(t *testing.T) {
	t.Parallel()
	for tries, want := range map[int]time.Duration{
		0: 2 * time.Minute, 1: 2 * time.Minute, 2: 4 * time.Minute, 3: 8 * time.Minute, 6: time.Hour, 40: time.Hour,
	} {
		require.Equal(t, want, topicUpkeep{Tries: tries}.recreateWait(), "tries %d", tries)
	}
}

// The watchdog is a periodic job of the sources whose subscription may be
// topic-based: auto and the topic dialects, not r4-criteria, which has no
// numbers and no heartbeat.
func TestSourcePeriodicJobs_WatchdogOnlyForTopic(t *testing.T) {
	t.Parallel()
	for dialect, want := range map[fhir.Dialect]int{
		"":                      2,
		fhir.DialectR4Criteria:  1,
		fhir.DialectR4BBackport: 2,
		fhir.DialectR5:          2,
	} {
		s := &sources{byName: map[string]*source{
			"a": {Source: Source{Name: "a", Dialect: dialect, ManageSubscription: true}},
		}}
		require.Len(t, s.periodicJobs(time.Minute, time.Minute), want, "dialect %q", dialect)
	}
}
