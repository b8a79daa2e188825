package mediator

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/rs/zerolog"

	"github.com/cht-openimis/cht-openimis-mediator/fhir"
	"github.com/cht-openimis/cht-openimis-mediator/mapping"
)

// eventTrack is what the mediator knows of the event numbers of a topic
// subscription (docs/upstreams/fhir-subscriptions.md §2.1, traps 10, 11,
// 28), stored per source in source/<n>/events. Every event is numbered by
// the server; a number that does not arrive is a lost notification, which
// the watchdog fetches with $events after a grace (deliverers may send out
// of order), or replaces with a search.
type eventTrack struct {
	// SubscriptionID is the subscription the numbers belong to: they start
	// again with every subscription (trap 28).
	SubscriptionID string `json:"subscription_id"`
	// Contiguous is the number up to which every event was received; -1
	// before the first number of a subscription the mediator found rather
	// than made (its earlier events are the search's).
	Contiguous int64 `json:"contiguous"`
	// SeenAbove are the numbers received above Contiguous+1, ascending.
	SeenAbove []int64 `json:"seen_above,omitempty"`
	// Counter is the highest number the server reported, by an event or
	// by eventsSinceSubscriptionStart.
	Counter int64 `json:"counter"`
	// GapSince is when the mediator first missed a number still missing;
	// zero while none is.
	GapSince time.Time `json:"gap_since,omitzero"`
	// LastHeard is when the subscription last notified anything.
	LastHeard time.Time `json:"last_heard,omitzero"`
	// Reached says a handshake or a notification of an active
	// subscription reached the callback: the server can deliver to it.
	Reached bool `json:"reached,omitempty"`
}

// newEventTrack starts tracking a subscription: from 0 for one the mediator
// just made, from the first number heard (-1) for one it found.
func newEventTrack(id string, made bool, now time.Time) eventTrack {
	t := eventTrack{SubscriptionID: id, Contiguous: -1, Counter: -1, LastHeard: now}
	if made {
		t.Contiguous, t.Counter = 0, 0
	}
	return t
}

// gapOpen reports whether an event number is missing.
func (t *eventTrack) gapOpen() bool { return t.Contiguous >= 0 && t.Counter > t.Contiguous }

// missing lists the ranges of numbers not received, each [from, to].
func (t *eventTrack) missing() [][2]int64 {
	if !t.gapOpen() {
		return nil
	}
	var out [][2]int64
	next := t.Contiguous + 1
	for _, n := range t.SeenAbove {
		if n > next {
			out = append(out, [2]int64{next, n - 1})
		}
		next = n + 1
	}
	if next <= t.Counter {
		out = append(out, [2]int64{next, t.Counter})
	}
	return out
}

// observe takes the numbers of one notification of the tracked
// subscription (§2.1): n == Contiguous+1 advances, a higher number
// opens a gap, a lower one is a late or repeated event. A counter below
// Contiguous is a counter reset (HAPI's in-memory count, finding 4; trap
// 10): tracking restarts from what this notification says, and reset is
// true so that the caller searches for what the reset hid. Where the server
// keeps its counters (countersKept, Aidbox) there is no reset: such a
// counter is a late or repeated delivery's, and the numbers are taken as
// any others.
func (t *eventTrack) observe(n fhir.Notification, now time.Time, countersKept bool) (reset bool) {
	t.LastHeard = now
	if n.Kind == fhir.KindHandshake || n.Status == "active" {
		t.Reached = true
	}
	if n.Kind == fhir.KindHandshake {
		return false
	}
	if n.HasEventsSinceStart && t.Contiguous >= 0 && n.EventsSinceStart < t.Contiguous && !countersKept {
		reset = true
		t.Contiguous, t.Counter, t.SeenAbove, t.GapSince = -1, -1, nil, time.Time{}
	}
	var numbers []int64
	for _, e := range n.Events {
		if e.Number > 0 {
			numbers = append(numbers, e.Number)
		}
	}
	slices.Sort(numbers)
	if t.Contiguous < 0 {
		switch {
		case len(numbers) > 0:
			t.Contiguous = numbers[0] - 1
		case n.HasEventsSinceStart:
			t.Contiguous = n.EventsSinceStart
		}
		t.Counter = max(t.Counter, t.Contiguous)
	}
	if t.Contiguous < 0 {
		return reset
	}
	t.mark(numbers...)
	if n.HasEventsSinceStart {
		t.Counter = max(t.Counter, n.EventsSinceStart)
	}
	t.settle(now)
	return reset
}

// mark records numbers as received.
func (t *eventTrack) mark(numbers ...int64) {
	for _, n := range numbers {
		t.Counter = max(t.Counter, n)
		if n <= t.Contiguous {
			continue
		}
		if i, found := slices.BinarySearch(t.SeenAbove, n); !found {
			t.SeenAbove = slices.Insert(t.SeenAbove, i, n)
		}
	}
	for len(t.SeenAbove) > 0 && t.SeenAbove[0] <= t.Contiguous+1 {
		t.Contiguous = max(t.Contiguous, t.SeenAbove[0])
		t.SeenAbove = t.SeenAbove[1:]
	}
	if len(t.SeenAbove) == 0 {
		t.SeenAbove = nil
	}
}

// cover records every number up to upTo as dealt with (fetched, or left
// to a search).
func (t *eventTrack) cover(upTo int64) {
	t.Contiguous = max(t.Contiguous, upTo)
	t.mark()
}

// settle opens or closes the gap clock.
func (t *eventTrack) settle(now time.Time) {
	switch {
	case !t.gapOpen():
		t.GapSince = time.Time{}
	case t.GapSince.IsZero():
		t.GapSince = now
	}
}

// loadTrack reads a source's event tracking; ok is false when there is none.
func (s *sources) loadTrack(ctx context.Context, src *source) (eventTrack, bool, error) {
	// A setting that cannot be read is started again, not a failure for
	// ever: the search covers what it knew.
	return jsonSetting[eventTrack](ctx, s.store, sourceSetting(src.Name, "events"),
		"the stored event tracking is unreadable; tracking starts again")
}

// saveTrack stores a source's event tracking.
func (s *sources) saveTrack(ctx context.Context, src *source, t eventTrack) error {
	return setJSONSetting(ctx, s.store, sourceSetting(src.Name, "events"), t)
}

// updateTrack loads the tracking, lets edit change it and saves it, under
// the source's lock (this process's notifications and jobs take turns; a
// second replica's concurrent update may be lost, which at worst makes a
// number look missing and the watchdog fetch it again, a duplicate its
// receipt skips).
func (s *sources) updateTrack(ctx context.Context, src *source, edit func(t *eventTrack, found bool) (save bool)) error {
	src.trackMu.Lock()
	defer src.trackMu.Unlock()
	t, found, err := s.loadTrack(ctx, src)
	if err != nil {
		return err
	}
	if !edit(&t, found) {
		return nil
	}
	return s.saveTrack(ctx, src, t)
}

// track notes a topic notification of src in its event tracking before the
// callback answers: when it was heard, the event numbers and the counter.
// A notification of another subscription than the tracked one (an old one
// the upkeep replaced, or a stranger's) changes nothing. A counter reset
// queues a search.
func (s *sources) track(ctx context.Context, src *source, n fhir.Notification) error {
	if n.Type == "" || n.SubscriptionRef.IsZero() {
		return nil
	}
	if n.Kind == fhir.KindHandshake {
		// Noted before the tracking, which the upkeep may not have
		// written yet: its record of the new subscription then says active.
		src.handshaken.Store(n.SubscriptionRef.ID)
	}
	now := s.now()
	var reset, ours bool
	err := s.updateTrack(ctx, src, func(t *eventTrack, found bool) bool {
		if !found || t.SubscriptionID != n.SubscriptionRef.ID {
			return false
		}
		ours = true
		reset = t.observe(n, now, src.Client.Quirks().CountersKept)
		return true
	})
	if err != nil {
		return err
	}
	log := zerolog.Ctx(ctx)
	if !ours {
		log.Debug().Str("subscription", n.SubscriptionRef.String()).Msg("FHIR notification of a subscription not tracked (replaced, or not ours); its claims are taken, its numbers not")
		return nil
	}
	if src.silent.Swap(false) {
		src.setProblem("")
	}
	// The handshake this callback answers 200 is what activates the
	// subscription (docs/upstreams/fhir-subscriptions.md trap 9): its status
	// still says requested; later notifications say active.
	if n.Status == "active" || n.Kind == fhir.KindHandshake {
		src.activate()
	}
	if reset {
		log.Warn().Int64("events_since_start", n.EventsSinceStart).
			Msg("the source's event counter went down (the server restarted?): searching for what it may have missed")
		return s.searchSoon(ctx, src)
	}
	return nil
}

// enqueueEvents stores a claim job per event about the source's claim
// resource (mapped now when the event carries the resource, read by the job
// when it names it only). It returns how many claims were new, and the
// numbers of the events it could take (an event without a focus names
// nothing: empty content).
func (s *sources) enqueueEvents(ctx context.Context, src *source, events []fhir.Event) (int, []int64, error) {
	log := zerolog.Ctx(ctx)
	received := 0
	var taken []int64
	for _, e := range events {
		if e.Focus.Type != src.Resource && (e.Resource == nil || fhir.ResourceType(e.Resource) != src.Resource) {
			if !e.Focus.IsZero() || e.Resource != nil {
				log.Debug().Str("focus", e.Focus.String()).Msg("FHIR notification: an event about another resource type, ignored")
				taken = appendNumber(taken, e.Number)
			}
			continue
		}
		id, claim := e.Focus.ID, (*mapping.SourceClaim)(nil)
		if e.Resource != nil {
			mapped, err := sourceClaimOf(src, e.Resource)
			if err != nil {
				// As for openIMIS's catch-up: logged, not stored; the
				// catch-up search sees it again until it is corrected.
				log.Warn().Str("focus", e.Focus.String()).Str("problems", err.Error()).
					Msg("FHIR notification: skipping an unusable claim outcome")
				taken = appendNumber(taken, e.Number)
				continue
			}
			id, claim = mapped.UUID, &mapped
		}
		if id == "" {
			continue
		}
		inserted, err := s.enqueueClaim(ctx, src, id, claim)
		if err != nil {
			return received, taken, err
		}
		if inserted {
			received++
		}
		taken = appendNumber(taken, e.Number)
	}
	return received, taken, nil
}

// enqueueClaim stores the job of the claim outcome id of src, with the
// claim when it is mapped already (else the job reads it). Its receipt key
// is the source's, the resource type and the id, whichever way the claim
// came: a notification or the catch-up search.
func (s *sources) enqueueClaim(ctx context.Context, src *source, id string, claim *mapping.SourceClaim) (bool, error) {
	return s.store.Enqueue(ctx, kindSourceClaim, mapping.SourceClaimKey(src.Name, src.Resource, id),
		sourceClaimArgs{Source: src.Name, Type: src.Resource, ID: id, Claim: claim})
}

func appendNumber(list []int64, n int64) []int64 {
	if n > 0 {
		list = append(list, n)
	}
	return list
}

// eventsChunk is the most events one $events call asks for: Aidbox
// answers at most 100 (§4).
const eventsChunk = 100

// maxEventsFetched is the most missed events fetched with $events; more are
// left to the search.
const maxEventsFetched = 10 * eventsChunk

// fetchMissing asks $events for the numbers the tracking misses, stores
// their claims and marks them received (docs/upstreams/fhir-subscriptions.md §4). When $events fails,
// or its answer lacks a number asked, or an event names nothing, the
// source's search replaces it (trap 19) and the numbers count as dealt
// with.
func (s *sources) fetchMissing(ctx context.Context, src *source, t eventTrack) error {
	log := zerolog.Ctx(ctx)
	ranges := t.missing()
	if len(ranges) == 0 {
		return nil
	}
	var got []int64
	search := ""
	var total int64
	for _, r := range ranges {
		total += r[1] - r[0] + 1
	}
	if total > maxEventsFetched {
		// A counter far ahead (or nonsense, trap 10): one search is
		// cheaper than thousands of $events pages.
		search = fmt.Sprintf("%d events missed, more than %d", total, maxEventsFetched)
	}
	for _, r := range ranges {
		for from := r[0]; from <= r[1] && search == ""; from += eventsChunk {
			to := min(from+eventsChunk-1, r[1])
			n, err := src.Client.Events(ctx, t.SubscriptionID, from, to)
			if err != nil {
				search = fmt.Sprintf("$events %d..%d failed: %v", from, to, err)
				break
			}
			var asked []fhir.Event
			for _, e := range n.Events {
				if e.Number >= from && e.Number <= to {
					asked = append(asked, e)
				}
			}
			received, taken, err := s.enqueueEvents(ctx, src, asked)
			if err != nil {
				return err
			}
			got = append(got, taken...)
			if received > 0 {
				log.Info().Int64("from", from).Int64("to", to).Int("claims_received", received).Msg("missed events fetched with $events")
			}
			for k := from; k <= to; k++ {
				if !slices.Contains(taken, k) {
					search = fmt.Sprintf("$events %d..%d did not give event %d", from, to, k)
					break
				}
			}
		}
	}
	last := ranges[len(ranges)-1][1]
	if search != "" {
		log.Warn().Str("reason", search).Msg("missed events: searching instead")
		if err := s.searchSoon(ctx, src); err != nil {
			return err
		}
	}
	return s.updateTrack(ctx, src, func(cur *eventTrack, found bool) bool {
		if !found || cur.SubscriptionID != t.SubscriptionID {
			return false
		}
		cur.mark(got...)
		if search != "" {
			cur.cover(last)
		}
		cur.settle(s.now())
		return true
	})
}
