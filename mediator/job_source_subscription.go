package mediator

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/cht-openimis/cht-openimis-mediator/fhir"
)

// sourceSubscriptionArgs is a FHIR source's periodic subscription upkeep.
type sourceSubscriptionArgs struct {
	Source string `json:"source"`
}

// Kind implements river.JobArgs.
func (sourceSubscriptionArgs) Kind() string { return "fhir_subscription_upkeep" }

// InsertOpts implements river.JobArgsWithInsertOpts: one upkeep per source
// at a time.
func (sourceSubscriptionArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueMaintenance, UniqueOpts: uniquePerSource}
}

// sourceTagSystem marks the subscriptions this mediator made (meta.tag,
// code: the source name), so that it finds its own again.
const sourceTagSystem = "https://github.com/cht-openimis/mediator/source"

// sourceSubscriptions keeps exactly one subscription of ours on each
// managed FHIR source, and repairs it.
type sourceSubscriptions struct {
	sources *sources
	// username and password are the Basic credentials the subscription's
	// channel header carries to the callback.
	username, password string
	end                func(now time.Time) time.Time
}

type sourceSubscriptionWorker struct {
	river.WorkerDefaults[sourceSubscriptionArgs]
	s *sourceSubscriptions
}

// Work implements river.Worker.
func (w *sourceSubscriptionWorker) Work(ctx context.Context, job *river.Job[sourceSubscriptionArgs]) error {
	src := w.s.sources.get(job.Args.Source)
	if src == nil || !src.ManageSubscription {
		return nil
	}
	ctx = jobLog(src.log, job.JobRow).Logger().WithContext(ctx)
	err := w.s.sources.exclusive(ctx, src, lockUpkeep, func() error { return w.s.upkeep(ctx, src) })
	return periodicOutcome(ctx, job.Attempt, job.MaxAttempts, err)
}

// upkeep is one upkeep of src's subscription; a failure is shown by /ready.
// An operator's "mediator subscription delete --source" stands until
// "renew": the server's subscriptions are left alone meanwhile, by the
// periodic upkeep and by the watchdog's repairs.
func (s *sourceSubscriptions) upkeep(ctx context.Context, src *source) error {
	if disabled, err := s.sources.disabled(ctx, src.Name); err != nil {
		return err
	} else if disabled {
		src.setState(sourceStateDisabled, "subscription disabled by an operator (mediator subscription renew --source "+src.Name+" re-enables it); claims arrive by the catch-up search")
		zerolog.Ctx(ctx).Debug().Msg("source subscription disabled by an operator; leaving the server alone")
		return nil
	}
	err := s.ensure(ctx, src)
	if err != nil {
		src.setFailing("subscription upkeep failing: " + err.Error())
	}
	return err
}

// ensure finds, creates or repairs the source's subscription
// (docs/upstreams/fhir-subscriptions.md §1.1, §3, traps 4, 5, 6, 16, 17):
// R4 criteria here, the topic dialects in ensureTopic.
func (s *sourceSubscriptions) ensure(ctx context.Context, src *source) error {
	log := zerolog.Ctx(ctx)
	dialect, err := src.detect(ctx)
	if err != nil {
		return err
	}
	if dialect.Topic() {
		return s.ensureTopic(ctx, src, dialect)
	}
	now := s.sources.now()
	want, err := s.spec(src, now).Build()
	if err != nil {
		return fmt.Errorf("build subscription: %w", err)
	}
	sub, found, err := s.find(ctx, src)
	if err != nil {
		return err
	}
	if !found {
		created, err := src.Client.CreateSubscription(ctx, want)
		if err != nil {
			return fmt.Errorf("create subscription: %w", err)
		}
		if err := s.sources.store.SetSetting(ctx, sourceSetting(src.Name, "subscription_id"), created.ID); err != nil {
			return err
		}
		log.Info().Str("subscription_id", created.ID).Str("status", created.Status).Msg("source subscription created")
		s.record(src, created)
		return nil
	}
	// Every reason is named: an error status often follows from an edited
	// header (the callback answered 401), and the operator should learn
	// both.
	end := fhir.ParseTime(sub.End)
	var reasons []string
	if sub.Status == "error" || sub.Status == "off" {
		r := "its status is " + sub.Status
		if sub.Error != "" {
			r += " (" + sub.Error + ")"
		}
		reasons = append(reasons, r)
	}
	if !end.IsZero() && end.Sub(now) < renewWithin {
		reasons = append(reasons, "it ends "+end.Format(time.RFC3339))
	}
	if !slices.Equal(sub.Settings().Headers, want.Settings().Headers) {
		reasons = append(reasons, "its channel header is not ours any more")
	}
	if sub.Settings().Payload != want.Settings().Payload {
		reasons = append(reasons, "its payload is not the configured one")
	}
	repair := strings.Join(reasons, "; ")
	if repair == "" {
		s.record(src, sub)
		return nil
	}
	// Re-activate by PUT with status requested (Kodjin, HAPI); a server
	// that refuses updates gets a new one, made before the old is deleted
	// (trap 17).
	updated, refusal, err := s.putBack(ctx, src, want, sub, repair)
	switch {
	case err != nil:
		return err
	case refusal == nil:
		s.record(src, updated)
		return nil
	}
	want.ID = ""
	created, err := src.Client.CreateSubscription(ctx, want)
	if err != nil {
		return fmt.Errorf("replace subscription %s (%s; update refused: %v): %w", sub.ID, repair, refusal, err)
	}
	if err := s.sources.store.SetSetting(ctx, sourceSetting(src.Name, "subscription_id"), created.ID); err != nil {
		return err
	}
	s.dropReplaced(ctx, src, sub.ID, created.ID, repair)
	s.record(src, created)
	return nil
}

// putBack re-activates sub by PUT with status requested (want with sub's
// id). refusal is the server's answer when it refused the update with a 4xx
// a new subscription may cure (not the credentials): the caller then
// replaces the subscription.
func (s *sourceSubscriptions) putBack(ctx context.Context, src *source, want fhir.Subscription, sub fhir.Subscription, repair string) (updated fhir.Subscription, refusal, err error) {
	log := zerolog.Ctx(ctx)
	want.ID = sub.ID
	updated, err = src.Client.UpdateSubscription(ctx, want)
	var apiErr *fhir.APIError
	switch {
	case err == nil:
		log.Warn().Str("reason", repair).Str("subscription_id", sub.ID).Msg("source subscription repaired (status requested)")
		return updated, nil, nil
	case errors.As(err, &apiErr) && apiErr.Status >= 400 && apiErr.Status < 500 && apiErr.Status != http.StatusUnauthorized:
		log.Warn().Err(err).Str("subscription_id", sub.ID).Msg("the server refused the update; replacing the subscription")
		return fhir.Subscription{}, err, nil
	}
	return fhir.Subscription{}, nil, fmt.Errorf("repair subscription %s (%s): %w", sub.ID, repair, err)
}

// dropReplaced deletes the subscription a new one replaced, once the new one
// exists, so that no event falls between the two.
func (s *sourceSubscriptions) dropReplaced(ctx context.Context, src *source, oldID, newID, repair string) {
	log := zerolog.Ctx(ctx)
	if err := src.Client.DeleteSubscription(ctx, oldID); err != nil {
		log.Warn().Err(err).Str("subscription_id", oldID).Msg("the replaced subscription could not be deleted; the next upkeep tries again")
	}
	log.Warn().Str("reason", repair).Str("old_subscription_id", oldID).Str("subscription_id", newID).Msg("source subscription replaced")
}

// find returns our subscription: the stored id's, else the ones whose
// endpoint is our callback, keeping the first and deleting the others.
func (s *sourceSubscriptions) find(ctx context.Context, src *source) (fhir.Subscription, bool, error) {
	log := zerolog.Ctx(ctx)
	setting := sourceSetting(src.Name, "subscription_id")
	id, _, err := s.sources.store.Setting(ctx, setting)
	if err != nil {
		return fhir.Subscription{}, false, err
	}
	if id != "" {
		sub, err := src.Client.GetSubscription(ctx, id)
		switch {
		case fhir.IsGone(err):
			log.Warn().Str("subscription_id", id).Msg("our subscription is gone from the source; looking for another")
		case err != nil:
			return fhir.Subscription{}, false, fmt.Errorf("read subscription %s: %w", id, err)
		default:
			return sub, true, nil
		}
	}
	subs, err := src.Client.FindSubscriptions(ctx, src.Endpoint)
	if err != nil {
		return fhir.Subscription{}, false, err
	}
	if len(subs) == 0 {
		return fhir.Subscription{}, false, nil
	}
	for _, dup := range subs[1:] {
		if err := src.Client.DeleteSubscription(ctx, dup.ID); err != nil {
			log.Warn().Err(err).Str("subscription_id", dup.ID).Msg("a duplicate subscription could not be deleted; the next upkeep tries again")
			continue
		}
		log.Info().Str("subscription_id", dup.ID).Msg("duplicate subscription to our callback deleted")
	}
	if err := s.sources.store.SetSetting(ctx, setting, subs[0].ID); err != nil {
		return fhir.Subscription{}, false, err
	}
	return subs[0], true, nil
}

// spec is the subscription the mediator wants on src.
func (s *sourceSubscriptions) spec(src *source, now time.Time) fhir.SubscriptionSpec {
	payload := fhir.ContentType
	if src.Content == fhir.ContentEmpty {
		payload = ""
	}
	spec := s.baseSpec(src, now)
	spec.Dialect, spec.Criteria, spec.Payload = fhir.DialectR4Criteria, src.Criteria, payload
	return spec
}

// baseSpec is what every subscription of the mediator on src carries: our
// callback with our credentials, our reason and tag, and an end.
func (s *sourceSubscriptions) baseSpec(src *source, now time.Time) fhir.SubscriptionSpec {
	return fhir.SubscriptionSpec{
		Endpoint: src.Endpoint,
		Headers: []fhir.Header{{Name: "Authorization", Value: "Basic " +
			base64.StdEncoding.EncodeToString([]byte(s.username+":"+s.password))}},
		Reason: "cht-openimis-mediator " + src.Name,
		End:    s.end(now),
		Tag:    &fhir.Coding{System: sourceTagSystem, Code: src.Name},
	}
}

// record notes the subscription's state for /ready and /metrics.
func (s *sourceSubscriptions) record(src *source, sub fhir.Subscription) {
	switch sub.Status {
	case "requested":
		if id, _ := src.handshaken.Load().(string); id != "" && id == sub.ID {
			src.setState(sourceStateActive, "") // the handshake came before the create's answer was read
			return
		}
		src.setState(sourceStateRequested, "")
	case "active":
		src.setState(sourceStateActive, "")
	case "error":
		src.setState(sourceStateError, "the server reports an error delivering to the callback: "+sub.Error)
	case "off":
		src.setState(sourceStateOff, "the server turned the subscription off")
	default:
		src.setState(sourceStateActive, "")
	}
}
