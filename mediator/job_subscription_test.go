package mediator_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/mediator"
	"github.com/cht-openimis/cht-openimis-mediator/openimis"
	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

// waitSubscriptions waits until openIMIS holds n subscriptions.
func (b *testBundle) waitSubscriptions(t *testing.T, n int) []openimistest.Subscription {
	t.Helper()
	var subs []openimistest.Subscription
	require.Eventually(t, func() bool {
		subs = b.oi.Subscriptions()
		return len(subs) == n && strings.Contains(b.logs.String(), "subscription")
	}, 15*time.Second, 10*time.Millisecond, "want %d subscriptions", n)
	return subs
}

func TestSubscription_CreatedExactlyAsOpenIMISNeeds(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{claimSubscriptions: true})
	subs := b.waitSubscriptions(t, 1)
	var s map[string]any
	require.NoError(t, json.Unmarshal(subs[0].JSON, &s))

	require.Equal(t, "active", s["status"])
	require.Equal(t, "Claim", s["criteria"])
	require.Equal(t, "Claim", s["reason"])
	end, err := time.Parse(time.RFC3339, s["end"].(string))
	require.NoError(t, err, "end is an instant with a timezone")
	require.WithinDuration(t, time.Now().AddDate(1, 0, 0), end, time.Hour)
	ch := s["channel"].(map[string]any)
	require.Equal(t, "rest-hook", ch["type"])
	require.Equal(t, b.opts.CallbackEndpoint, ch["endpoint"])
	header := ch["header"].([]any)
	require.Len(t, header, 1)
	var h map[string]string
	require.NoError(t, json.Unmarshal([]byte(header[0].(string)), &h), "header[0] is a JSON object string")
	require.Equal(t, map[string]string{
		"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(mediatorUser+":"+mediatorPass)),
	}, h)

	// openIMIS emitting a claim through the subscription reaches the CHT.
	deliveries := b.oi.EmitClaim(context.Background(), claimBody(t, fixtureClaimUUID, fixtureInsureeUUID, "2025-06-30"))
	require.Len(t, deliveries, 1)
	require.True(t, deliveries[0].Success, "openIMIS counts the answer as a success: %+v", deliveries[0])
	b.waitDelivered(t, fixtureClaimUUID)
	require.Len(t, b.reportsFor(fixtureClaimUUID), 1)
}

func TestSubscription_RestartKeepsOneAndLosesNoClaim(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{claimSubscriptions: true})
	first := b.waitSubscriptions(t, 1)[0].ID

	// Queue claims the CHT cannot take yet, then restart on the same store.
	b.cht.SetDown(http.StatusServiceUnavailable)
	claims := []string{fixtureClaimUUID, "3a1c7d22-0001-4001-8001-000000000001", "3a1c7d22-0002-4002-8002-000000000002"}
	for _, c := range claims {
		require.Equal(t, http.StatusOK, b.postClaim(t, claimBody(t, c, fixtureInsureeUUID, "2025-06-30")).status)
	}
	b.restart(t)
	b.cht.SetDown(0)

	for _, c := range claims {
		b.waitDelivered(t, c)
		require.Len(t, b.reportsFor(c), 1)
	}
	// The upkeep after the restart ran and reused the subscription.
	b.waitLog(t, "reusing openIMIS Claim subscription")
	id, ok, err := b.store.Setting(context.Background(), "subscription_id")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, first, id)
	subs := b.oi.Subscriptions()
	require.Len(t, subs, 1)
	require.Equal(t, first, subs[0].ID)
}

func TestSubscription_RefusedByOlderOpenIMIS(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{claimSubscriptions: false})
	b.waitLog(t, "openIMIS refused the Claim subscription")
	require.Empty(t, b.oi.Subscriptions())
	// Catch-up polling is off in these tests: nothing would bring claims.
	require.Contains(t, b.logs.String(), "catch-up polling is off (CLAIM_POLL_INTERVAL=0)")

	// The mediator still takes claims.
	require.Equal(t, http.StatusOK, b.postClaim(t, claimBody(t, fixtureClaimUUID, fixtureInsureeUUID, "2025-06-30")).status)
	b.waitDelivered(t, fixtureClaimUUID)
}

func TestSubscription_RefusedWithPollingOn(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{claimSubscriptions: false, edit: func(o *mediator.Options) { o.ClaimPollInterval = time.Hour }})
	b.waitLog(t, "openIMIS refused the Claim subscription; claims arrive only through catch-up polling")
	require.NotContains(t, b.logs.String(), "catch-up polling is off")
}

func TestSubscription_EndInstantPassedMakesNone(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Now()}
	end := clock.Now().Add(48 * time.Hour) // a fixed SUBSCRIPTION_END instant
	b := setup(t, setupOpts{claimSubscriptions: true, edit: func(o *mediator.Options) {
		o.Now = clock.Now
		o.SubscriptionEnd = func(time.Time) time.Time { return end }
		o.SubscriptionCheck = 200 * time.Millisecond
	}})
	b.waitSubscriptions(t, 1)

	// The instant passes while the mediator runs: no subscription that
	// openIMIS would never notify through, and an error at every check.
	clock.Advance(72 * time.Hour)
	require.Eventually(t, func() bool {
		return strings.Count(b.logs.String(), "SUBSCRIPTION_END has passed") >= 2
	}, 15*time.Second, 10*time.Millisecond)
	subs := b.oi.Subscriptions()
	require.Len(t, subs, 1, "no new subscription")
	require.WithinDuration(t, end, subs[0].End, time.Second)
}

func TestSubscription_RenewedBeforeEnd(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Now()}
	b := setup(t, setupOpts{claimSubscriptions: true, edit: func(o *mediator.Options) {
		o.Now = clock.Now
		o.SubscriptionEnd = func(now time.Time) time.Time { return now.Add(40 * 24 * time.Hour) }
		o.SubscriptionCheck = 200 * time.Millisecond
	}})
	first := b.waitSubscriptions(t, 1)[0]
	require.WithinDuration(t, clock.Now().Add(40*24*time.Hour), first.End, time.Minute)

	// 35 days later, 5 remain: the next check replaces it, then deletes it.
	clock.Advance(35 * 24 * time.Hour)
	require.Eventually(t, func() bool {
		subs := b.oi.Subscriptions()
		return len(subs) == 1 && subs[0].ID != first.ID
	}, 15*time.Second, 10*time.Millisecond)
	require.WithinDuration(t, clock.Now().Add(40*24*time.Hour), b.oi.Subscriptions()[0].End, time.Minute)
}

func TestSubscription_DuplicatesRemovedAndDeletedRecreated(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{claimSubscriptions: true, edit: func(o *mediator.Options) {
		o.SubscriptionCheck = 200 * time.Millisecond
	}})
	first := b.waitSubscriptions(t, 1)[0].ID

	// A second copy (as piled up by an older mediator) is removed.
	header, err := json.Marshal(map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(mediatorUser+":"+mediatorPass))})
	require.NoError(t, err)
	dup, err := b.opts.OpenIMIS.CreateSubscription(context.Background(), openimis.Subscription{
		Status: "active", Reason: "Claim", Criteria: "Claim", End: time.Now().AddDate(1, 0, 0).UTC().Format(time.RFC3339),
		Channel: openimis.Channel{Type: "rest-hook", Endpoint: b.opts.CallbackEndpoint, Header: []string{string(header)}},
	})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		subs := b.oi.Subscriptions()
		return len(subs) == 1 && subs[0].ID == first
	}, 15*time.Second, 10*time.Millisecond, "the copy %s is deleted", dup.ID)

	// Deleted on the openIMIS side: the next check creates it again.
	require.True(t, b.oi.DeleteSubscriptionAsAdmin(first))
	require.Eventually(t, func() bool {
		subs := b.oi.Subscriptions()
		return len(subs) == 1 && subs[0].ID != first
	}, 15*time.Second, 10*time.Millisecond)
}

// testClock is a clock tests move by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestSubscription_EndInServerOffsetReused: openIMIS renders end in its own
// offset with microseconds (docs/upstreams/openimis.md trap 20); the
// subscription is still recognised and reused at every check, not
// recreated.
func TestSubscription_EndInServerOffsetReused(t *testing.T) {
	t.Parallel()
	var existing *openimis.Subscription
	b := setup(t, setupOpts{
		claimSubscriptions: true,
		openimisLocation:   time.FixedZone("+0545", 5*3600+45*60),
		edit: func(o *mediator.Options) {
			o.SubscriptionCheck = 100 * time.Millisecond
			header := `{"Authorization":"Basic ` + base64.StdEncoding.EncodeToString([]byte(mediatorUser+":"+mediatorPass)) + `"}`
			var err error
			existing, err = o.OpenIMIS.CreateSubscription(context.Background(), openimis.Subscription{
				Status: "active", Reason: "Claim", Criteria: "Claim",
				End:     time.Now().UTC().AddDate(1, 0, 0).Truncate(time.Second).Add(123456 * time.Microsecond).Format(time.RFC3339Nano),
				Channel: openimis.Channel{Type: "rest-hook", Endpoint: o.CallbackEndpoint, Header: []string{header}},
			})
			require.NoError(t, err)
		},
	})
	require.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.123456\+05:45$`, existing.End)
	require.Eventually(t, func() bool {
		return strings.Count(b.logs.String(), "reusing openIMIS Claim subscription") >= 3
	}, 15*time.Second, 10*time.Millisecond, "several checks ran")
	subs := b.oi.Subscriptions()
	require.Len(t, subs, 1)
	require.Equal(t, existing.ID, subs[0].ID, "the subscription is reused")
	creates := 0
	for _, r := range b.oi.Requests() {
		if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/Subscription/") {
			creates++
		}
	}
	require.Equal(t, 1, creates, "no check created another")
}
