package openimis_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/openimis"
	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

// withClaimSubscriptions makes the fake a newer build that accepts Claim
// subscriptions.
func withClaimSubscriptions(c *testConfig) { c.server.ClaimSubscriptions = true }

// createSubscriptions creates n Claim subscriptions through the client and
// returns their ids in creation order. The clock moves a second between
// them so that creation order is unambiguous.
func (b *testBundle) createSubscriptions(t *testing.T, n int) []string {
	t.Helper()
	ids := make([]string, 0, n)
	for i := range n {
		sub, err := b.client.CreateSubscription(t.Context(), claimSubscription(fmt.Sprintf("https://mediator.example.org/claims/%d", i)))
		require.NoError(t, err)
		ids = append(ids, sub.ID)
		b.clock.Add(time.Second)
	}
	return ids
}

func subscriptionIDs(subs []openimis.Subscription) []string {
	ids := make([]string, 0, len(subs))
	for _, s := range subs {
		ids = append(ids, s.ID)
	}
	return ids
}

func TestClient_CreateSubscription(t *testing.T) {
	t.Parallel()

	t.Run("ClaimAccepted", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withClaimSubscriptions)

		got, err := b.client.CreateSubscription(t.Context(), claimSubscription("https://mediator.example.org/openimis/claims"))
		require.NoError(t, err)
		require.NotEmpty(t, got.ID)
		require.Equal(t, "Subscription", got.ResourceType)
		require.Equal(t, "Claim", got.Criteria)
		require.Equal(t, "Claim", got.Reason)
		require.Equal(t, "active", got.Status)
		require.Equal(t, "2030-12-31T23:59:59+00:00", got.End, "isoformat() of the server's local time")
		require.Equal(t, openimis.Channel{
			Endpoint: "https://mediator.example.org/openimis/claims",
			Header:   []string{`{"Authorization":"Bearer s3cret"}`},
			Type:     "rest-hook",
		}, got.Channel)

		stored := b.server.Subscriptions()
		require.Len(t, stored, 1)
		require.Equal(t, got.ID, stored[0].ID)
		require.Equal(t, "Claim", stored[0].CriteriaResource)
		require.Equal(t, "admin", stored[0].Owner)
		require.Equal(t, `{"Authorization":"Bearer s3cret"}`, stored[0].Header)
		require.Equal(t, time.Date(2030, 12, 31, 23, 59, 59, 0, time.UTC), stored[0].End)
		require.Contains(t, string(stored[0].Body), `"resourceType":"Subscription"`, "the client sets resourceType")
	})

	t.Run("RefusedOn2410", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		got, err := b.client.CreateSubscription(t.Context(), claimSubscription("https://mediator.example.org/openimis/claims"))
		require.Nil(t, got)
		require.True(t, openimis.SubscriptionRefused(err), "%v", err)
		ae := requireAPIError(t, err, http.StatusBadRequest, true)
		require.Equal(t, http.MethodPost, ae.Method)
		require.Equal(t, openimistest.FHIRPath+"Subscription/", ae.Path)
		require.Contains(t, ae.Message, "Invalid resource (claim)")
		require.Empty(t, b.server.Subscriptions())
	})

	t.Run("EndWithoutTimezoneIsPermanentNotRefused", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withClaimSubscriptions)
		sub := claimSubscription("https://mediator.example.org/openimis/claims")
		sub.End = "2030-12-31T23:59:59"

		_, err := b.client.CreateSubscription(t.Context(), sub)
		ae := requireAPIError(t, err, http.StatusInternalServerError, true)
		require.Contains(t, ae.Message, "validation error for Subscription")
		require.False(t, openimis.SubscriptionRefused(err), "a validation error is not a refused resource")
		require.Empty(t, b.server.Subscriptions())
	})

	t.Run("WrongReasonIsPermanent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withClaimSubscriptions)
		sub := claimSubscription("https://mediator.example.org/openimis/claims")
		sub.Reason = "Notify on new Claims"
		_, err := b.client.CreateSubscription(t.Context(), sub)
		requireAPIError(t, err, http.StatusInternalServerError, true)
	})

	t.Run("OtherBadRequestsAreNotRefused", func(t *testing.T) {
		t.Parallel()
		require.True(t, openimis.SubscriptionRefused(&openimis.APIError{Status: http.StatusBadRequest,
			Message: "Error while saving a subscription: Invalid resource (claim)"}))
		require.False(t, openimis.SubscriptionRefused(&openimis.APIError{Status: http.StatusBadRequest,
			Message: "Error while saving a subscription: 'criteria'"}), "a mistake in the request, not a missing feature")
	})

	t.Run("OtherErrorsAreNotRefused", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withClaimSubscriptions)
		require.NoError(t, b.client.Login(t.Context()))
		b.server.FailNext(1, http.StatusServiceUnavailable)

		_, err := b.client.CreateSubscription(t.Context(), claimSubscription("https://mediator.example.org/openimis/claims"))
		requireAPIError(t, err, http.StatusServiceUnavailable, false)
		require.False(t, openimis.SubscriptionRefused(err))
	})
}

func TestClient_ListSubscriptions(t *testing.T) {
	t.Parallel()

	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		subs, err := b.client.ListSubscriptions(t.Context())
		require.NoError(t, err)
		require.Empty(t, subs)
		require.Len(t, b.requests("Subscription/"), 1)
	})

	t.Run("FollowsPages", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withClaimSubscriptions)
		want := b.createSubscriptions(t, 250)

		subs, err := b.client.ListSubscriptions(t.Context())
		require.NoError(t, err)
		require.Equal(t, want, subscriptionIDs(subs), "every subscription, once, in creation order")
		require.Equal(t, "Claim", subs[249].Criteria)
		require.Equal(t, "https://mediator.example.org/claims/249", subs[249].Channel.Endpoint)

		var gets []url.Values
		for _, r := range b.requests("Subscription/") {
			if r.Method == http.MethodGet {
				q, err := url.ParseQuery(r.RawQuery)
				require.NoError(t, err)
				gets = append(gets, q)
			}
		}
		require.Len(t, gets, 3, "three pages of 100, no request past the end")
		for i, q := range gets {
			require.Equal(t, fmt.Sprint(i+1), q.Get("page-offset"), "page-offset is the 1-based page number")
			require.Equal(t, "100", q.Get("_count"))
			since, ok := strings.CutPrefix(q.Get("_lastUpdated"), "ge")
			require.True(t, ok, "_lastUpdated=%s", q.Get("_lastUpdated"))
			_, err := time.Parse(openimis.LastUpdatedLayout, since)
			require.NoError(t, err, "no timezone, no fractions")
		}
	})

	t.Run("ExactMultipleOfPageSize", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withClaimSubscriptions)
		want := b.createSubscriptions(t, 200)

		subs, err := b.client.ListSubscriptions(t.Context())
		require.NoError(t, err)
		require.Equal(t, want, subscriptionIDs(subs))
		var gets int
		for _, r := range b.requests("Subscription/") {
			if r.Method == http.MethodGet {
				gets++
			}
		}
		require.LessOrEqual(t, gets, 3, "at most one request past the end")
	})

	t.Run("IncludesOtherUsersAndExpired", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withClaimSubscriptions)
		b.server.AddUser("other", "other-pass", nil)
		other := b.newClient(t, "other", "other-pass")
		theirs, err := other.CreateSubscription(t.Context(), claimSubscription("https://other.example.org/hook"))
		require.NoError(t, err)
		b.clock.Add(time.Second)
		expired := claimSubscription("https://mediator.example.org/claims")
		expired.End = "2020-01-01T00:00:00Z"
		mine, err := b.client.CreateSubscription(t.Context(), expired)
		require.NoError(t, err)

		subs, err := b.client.ListSubscriptions(t.Context())
		require.NoError(t, err)
		require.Equal(t, []string{theirs.ID, mine.ID}, subscriptionIDs(subs))
	})

	t.Run("NewSubscriptionVisibleInNextList", func(t *testing.T) {
		t.Parallel()
		// The fake caches each query's total for an hour (the default
		// CountCacheTTL) and cuts pages at it.
		b := setup(t, withClaimSubscriptions)
		ctx := t.Context()
		first := b.createSubscriptions(t, 2)

		subs, err := b.client.ListSubscriptions(ctx)
		require.NoError(t, err)
		require.Equal(t, first, subscriptionIDs(subs))

		b.clock.Add(time.Second)
		created, err := b.client.CreateSubscription(ctx, claimSubscription("https://mediator.example.org/claims/new"))
		require.NoError(t, err)
		b.clock.Add(time.Second)

		subs, err = b.client.ListSubscriptions(ctx)
		require.NoError(t, err)
		require.Equal(t, append(first, created.ID), subscriptionIDs(subs))
	})

	t.Run("NewSubscriptionVisibleWithinTheSameSecond", func(t *testing.T) {
		t.Parallel()
		// The clock does not move: each list must still be a new query.
		b := setup(t, withClaimSubscriptions)
		ctx := t.Context()
		first := b.createSubscriptions(t, 2)
		subs, err := b.client.ListSubscriptions(ctx)
		require.NoError(t, err)
		require.Equal(t, first, subscriptionIDs(subs))

		created, err := b.client.CreateSubscription(ctx, claimSubscription("https://mediator.example.org/claims/new"))
		require.NoError(t, err)
		subs, err = b.client.ListSubscriptions(ctx)
		require.NoError(t, err)
		require.Equal(t, append(first, created.ID), subscriptionIDs(subs))
	})

	t.Run("DeletedSubscriptionGoneFromNextList", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withClaimSubscriptions)
		ctx := t.Context()
		ids := b.createSubscriptions(t, 3)

		_, err := b.client.ListSubscriptions(ctx)
		require.NoError(t, err)
		require.NoError(t, b.client.DeleteSubscription(ctx, ids[1]))
		b.clock.Add(time.Second)

		subs, err := b.client.ListSubscriptions(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{ids[0], ids[2]}, subscriptionIDs(subs))
	})

	t.Run("MissingRight", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *testConfig) { c.server.Rights = []int{openimistest.RightSubscriptionCreate} })

		_, err := b.client.ListSubscriptions(t.Context())
		requireAPIError(t, err, http.StatusForbidden, true)
	})
}

func TestClient_GetSubscription(t *testing.T) {
	t.Parallel()

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withClaimSubscriptions)
		created, err := b.client.CreateSubscription(t.Context(), claimSubscription("https://mediator.example.org/claims"))
		require.NoError(t, err)

		got, err := b.client.GetSubscription(t.Context(), created.ID)
		require.NoError(t, err)
		require.Equal(t, created, got)
	})

	t.Run("UnknownIsNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		_, err := b.client.GetSubscription(t.Context(), "00000000-0000-4000-8000-000000000000")
		requireAPIError(t, err, http.StatusNotFound, true)
	})
}

func TestClient_DeleteSubscription(t *testing.T) {
	t.Parallel()

	t.Run("Owner", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withClaimSubscriptions)
		ids := b.createSubscriptions(t, 2)

		require.NoError(t, b.client.DeleteSubscription(t.Context(), ids[0]))
		stored := b.server.Subscriptions()
		require.Len(t, stored, 1)
		require.Equal(t, ids[1], stored[0].ID)
		_, err := b.client.GetSubscription(t.Context(), ids[0])
		requireAPIError(t, err, http.StatusNotFound, true)
	})

	t.Run("OtherUsersSubscription", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withClaimSubscriptions)
		b.server.AddUser("other", "other-pass", nil)
		theirs, err := b.newClient(t, "other", "other-pass").
			CreateSubscription(t.Context(), claimSubscription("https://other.example.org/hook"))
		require.NoError(t, err)

		err = b.client.DeleteSubscription(t.Context(), theirs.ID)
		ae := requireAPIError(t, err, http.StatusForbidden, true)
		require.Equal(t, http.MethodDelete, ae.Method)
		require.Equal(t, openimistest.FHIRPath+"Subscription/"+theirs.ID+"/", ae.Path)
		require.Contains(t, ae.Message, "not the owner")
		require.Len(t, b.server.Subscriptions(), 1, "the subscription is kept")
	})

	t.Run("Unknown", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		err := b.client.DeleteSubscription(t.Context(), "00000000-0000-4000-8000-000000000000")
		requireAPIError(t, err, http.StatusNotFound, true)
	})
}

func TestClient_ListSubscriptions_QueryNeverRepeats(t *testing.T) {
	t.Parallel()
	b := setup(t, withClaimSubscriptions)
	seen := map[string]bool{}
	for range 5 {
		_, err := b.client.ListSubscriptions(t.Context())
		require.NoError(t, err)
		b.clock.Add(time.Second) // a second passes between lists
	}
	for _, r := range b.server.Requests() {
		if strings.HasSuffix(r.Path, "/Subscription/") {
			vals, err := url.ParseQuery(r.RawQuery)
			require.NoError(t, err)
			q := vals.Get("_lastUpdated")
			require.False(t, seen[q], "query %s repeated", q)
			seen[q] = true
		}
	}
	require.Len(t, seen, 5)
}
