package mediator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/rs/zerolog"

	"github.com/cht-openimis/cht-openimis-mediator/fhir"
)

// handshakeWindow is how long a topic subscription may stay requested: the
// server sends its handshake at once and Aidbox zen tries three times 10 s
// apart (docs/upstreams/fhir-subscriptions.md §3). It is also the first
// wait before a subscription that never turned active is made again; the
// wait doubles each time, up to maxRecreateWait.
const (
	handshakeWindow = 2 * time.Minute
	maxRecreateWait = time.Hour
)

// topicUpkeep is what the upkeep remembers of the topic subscription it
// made or found (source/<n>/upkeep): the settings the server stored, which
// are the ones the mediator relies on (trap 16), and how many were made in
// a row without one turning active.
type topicUpkeep struct {
	SubscriptionID string    `json:"subscription_id"`
	Created        time.Time `json:"created"`
	// Tries counts the subscriptions made since one was last seen active.
	Tries     int    `json:"tries"`
	Content   string `json:"content,omitempty"`
	Heartbeat int    `json:"heartbeat_seconds,omitempty"`
	Timeout   int    `json:"timeout_seconds,omitempty"`
	MaxCount  int    `json:"max_count,omitempty"`
}

func (u topicUpkeep) heartbeat() time.Duration { return time.Duration(u.Heartbeat) * time.Second }
func (u topicUpkeep) timeout() time.Duration   { return time.Duration(u.Timeout) * time.Second }

// recreateWait is how long after its creation a subscription that never
// turned active is left before it is made again.
func (u topicUpkeep) recreateWait() time.Duration {
	wait := handshakeWindow
	for i := 1; i < u.Tries && wait < maxRecreateWait; i++ {
		wait *= 2
	}
	return min(wait, maxRecreateWait)
}

func (s *sources) loadUpkeep(ctx context.Context, src *source) (topicUpkeep, error) {
	// One that cannot be read is started again: the subscription is read
	// back anyway.
	u, _, err := jsonSetting[topicUpkeep](ctx, s.store, sourceSetting(src.Name, "upkeep"), "")
	return u, err
}

func (s *sources) saveUpkeep(ctx context.Context, src *source, u topicUpkeep) error {
	return setJSONSetting(ctx, s.store, sourceSetting(src.Name, "upkeep"), u)
}

// ensureTopic keeps one topic subscription of ours on src
// (docs/upstreams/fhir-subscriptions.md §1.2, §1.3, §3, traps 3, 9, 16, 17,
// 27, 28): created with the best content the server accepts, its stored
// settings kept; replaced when it is error or off, when it stays requested
// past the handshake window (the handshake never reached the callback),
// when its topic or credentials are not ours, and before its end. A vendor
// that refuses updates (Aidbox) gets a new subscription, made before the old
// is deleted; the others are PUT back to requested first.
func (s *sourceSubscriptions) ensureTopic(ctx context.Context, src *source, dialect fhir.Dialect) error {
	log := zerolog.Ctx(ctx)
	topic, err := src.topic(ctx)
	if err != nil {
		problem := err.Error() + "; claims arrive by the catch-up search"
		if _, old, _ := src.status(); old != problem {
			log.Warn().Msg(problem)
		}
		src.setState(sourceStatePollingOnly, problem)
		return nil
	}
	now := s.sources.now()
	up, err := s.sources.loadUpkeep(ctx, src)
	if err != nil {
		return err
	}
	sub, found, err := s.find(ctx, src)
	if err != nil {
		return err
	}
	if !found {
		_, err := s.createTopic(ctx, src, dialect, topic, up, now)
		return err
	}
	if up.SubscriptionID != sub.ID {
		// Found, not made by this store (a restore, or made before the
		// upkeep setting existed): adopt it, tracking from its next number.
		st := sub.Settings()
		up = topicUpkeep{SubscriptionID: sub.ID, Created: now, Content: st.Content,
			Heartbeat: int(st.Heartbeat / time.Second), Timeout: int(st.Timeout / time.Second), MaxCount: st.MaxCount}
		if err := s.sources.updateTrack(ctx, src, func(t *eventTrack, _ bool) bool {
			*t = newEventTrack(sub.ID, false, now)
			return true
		}); err != nil {
			return err
		}
		if err := s.sources.saveUpkeep(ctx, src, up); err != nil {
			return err
		}
		log.Info().Str("subscription_id", sub.ID).Msg("source subscription found and adopted")
	}
	t, _, err := s.sources.loadTrack(ctx, src)
	if err != nil {
		return err
	}
	if (sub.Status == "active" || (t.SubscriptionID == sub.ID && t.Reached)) && up.Tries != 0 {
		up.Tries = 0
		if err := s.sources.saveUpkeep(ctx, src, up); err != nil {
			return err
		}
	}
	want, err := s.topicSpec(src, dialect, topic, up.Content, now).Build()
	if err != nil {
		return fmt.Errorf("build subscription: %w", err)
	}
	st := sub.Settings()
	end := fhir.ParseTime(sub.End)
	callback := fmt.Sprintf("the handshake never reached %s: the server could not deliver to the callback; check that %s is reachable from the server",
		src.endpointForLogs(), sourceVar(src.Name, "CALLBACK_ENDPOINT"))
	repair, stuck := "", false
	switch {
	case st.Topic != topic:
		repair = "its topic is not " + topic
	case !slices.Equal(st.Headers, want.Settings().Headers):
		repair = "its channel header is not ours any more"
	case fixedContent(src.Content) && st.Content != src.Content:
		repair = "its content is not the configured " + src.Content
	case sub.Status == "error" || sub.Status == "off":
		repair = "its status is " + sub.Status
		if sub.Error != "" {
			repair += " (" + sub.Error + ")"
		}
		stuck = up.Tries > 0 // it never turned active: the handshake failed
	case sub.Status == "requested" && now.Sub(up.Created) >= handshakeWindow:
		repair, stuck = "it is still requested", true
	case !end.IsZero() && end.Sub(now) < renewWithin:
		repair = "it ends " + end.Format(time.RFC3339)
	}
	if repair == "" {
		s.record(src, sub)
		return nil
	}
	if stuck {
		log.Error().Str("subscription_id", sub.ID).Str("status", sub.Status).Str("callback", src.endpointForLogs()).Msg(callback)
		if wait := up.recreateWait(); now.Sub(up.Created) < wait {
			src.setState(stateOf(sub.Status), callback+"; a new subscription is tried at "+up.Created.Add(wait).Format(time.RFC3339)+
				"; claims arrive by the catch-up search meanwhile")
			return nil
		}
	}
	if !src.Client.Quirks().RecreateOnError {
		// Re-activate by PUT with status requested where the server allows
		// updates (§3); a 4xx refusal falls back to a new subscription.
		updated, refusal, err := s.putBack(ctx, src, want, sub, repair)
		switch {
		case err != nil:
			return err
		case refusal == nil:
			s.record(src, updated)
			return s.sources.searchSoon(ctx, src)
		}
	}
	// Aidbox forbids updates (trap 17): a new one first, then the old one
	// deleted, so that no event falls between two subscriptions; the old
	// one's events go with it (trap 28), so a search follows.
	created, err := s.createTopic(ctx, src, dialect, topic, up, now)
	if err != nil {
		return fmt.Errorf("replace subscription %s (%s): %w", sub.ID, repair, err)
	}
	s.dropReplaced(ctx, src, sub.ID, created.ID, repair)
	if stuck {
		src.setState(sourceStateRequested, callback+"; a new subscription was made; claims arrive by the catch-up search meanwhile")
	}
	return s.sources.searchSoon(ctx, src)
}

// fixedContent reports whether content was configured (not auto).
func fixedContent(content string) bool {
	return content == fhir.ContentFullResource || content == fhir.ContentIDOnly || content == fhir.ContentEmpty
}

// createTopic creates the topic subscription, asking for the configured
// content or, with auto, full-resource, then id-only, then empty while the
// server refuses the content with a 4xx (§1.2, §2.2). It keeps the
// settings the server stored (trap 16) and starts the event tracking
// afresh (trap 28) before it records the new id.
func (s *sourceSubscriptions) createTopic(ctx context.Context, src *source, dialect fhir.Dialect, topic string, up topicUpkeep, now time.Time) (fhir.Subscription, error) {
	log := zerolog.Ctx(ctx)
	contents := []string{src.Content}
	if !fixedContent(src.Content) {
		contents = []string{fhir.ContentFullResource, fhir.ContentIDOnly, fhir.ContentEmpty}
	}
	var refusals []error
	var created fhir.Subscription
	for i, content := range contents {
		want, err := s.topicSpec(src, dialect, topic, content, now).Build()
		if err != nil {
			return fhir.Subscription{}, fmt.Errorf("build subscription: %w", err)
		}
		created, err = src.Client.CreateSubscription(ctx, want)
		if err == nil {
			break
		}
		err = fmt.Errorf("create subscription with %s content: %w", content, err)
		if !contentRefused(err) || i == len(contents)-1 {
			return fhir.Subscription{}, errors.Join(append(refusals, err)...)
		}
		log.Warn().Err(err).Str("content", content).Msg("the server refused the subscription; asking for less content")
		refusals = append(refusals, err)
	}
	st := created.Settings()
	if st.Heartbeat != src.Heartbeat || st.Timeout != src.NotifyTimeout || st.MaxCount != src.MaxCount {
		log.Info().Dur("heartbeat", st.Heartbeat).Dur("timeout", st.Timeout).Int("max_count", st.MaxCount).
			Msg("the server stored other subscription settings than asked; the mediator goes by the server's")
	}
	if err := s.sources.updateTrack(ctx, src, func(t *eventTrack, _ bool) bool {
		*t = newEventTrack(created.ID, true, now)
		return true
	}); err != nil {
		return fhir.Subscription{}, err
	}
	up = topicUpkeep{SubscriptionID: created.ID, Created: now, Tries: up.Tries + 1, Content: st.Content,
		Heartbeat: int(st.Heartbeat / time.Second), Timeout: int(st.Timeout / time.Second), MaxCount: st.MaxCount}
	if err := s.sources.saveUpkeep(ctx, src, up); err != nil {
		return fhir.Subscription{}, err
	}
	if err := s.sources.store.SetSetting(ctx, sourceSetting(src.Name, "subscription_id"), created.ID); err != nil {
		return fhir.Subscription{}, err
	}
	log.Info().Str("subscription_id", created.ID).Str("status", created.Status).Str("topic", topic).
		Str("content", st.Content).Msg("source subscription created")
	s.record(src, created)
	return created, nil
}

// contentRefused reports whether a create was refused in a way less
// content may cure: a 4xx that is neither about the credentials, the
// route, nor the rate (Aidbox refuses content above the topic's maxContent
// with 422).
func contentRefused(err error) bool {
	var apiErr *fhir.APIError
	if !errors.As(err, &apiErr) || apiErr.Status < 400 || apiErr.Status >= 500 {
		return false
	}
	switch apiErr.Status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed,
		http.StatusRequestTimeout, http.StatusTooManyRequests:
		return false
	}
	return true
}

// topicSpec is the topic subscription the mediator wants on src.
func (s *sourceSubscriptions) topicSpec(src *source, dialect fhir.Dialect, topic, content string, now time.Time) fhir.SubscriptionSpec {
	if content == "" {
		content = fhir.ContentFullResource
	}
	spec := s.baseSpec(src, now)
	spec.Dialect, spec.Topic, spec.Filters, spec.Content = dialect, topic, src.Filters, content
	spec.Heartbeat, spec.Timeout, spec.MaxCount = src.Heartbeat, src.NotifyTimeout, src.MaxCount
	return spec
}

// stateOf is the /ready state of a subscription status.
func stateOf(status string) string {
	switch status {
	case "requested":
		return sourceStateRequested
	case "error":
		return sourceStateError
	case "off":
		return sourceStateOff
	}
	return sourceStateActive
}
