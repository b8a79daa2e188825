package mediator

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cht-openimis/cht-openimis-mediator/fhir"
)

// settingSourceDisabled is set ("true") while an operator has deleted a
// source's subscription with "mediator subscription delete --source": the
// upkeep then leaves that server's subscriptions alone until "mediator
// subscription renew --source" (the catch-up search goes on).
const settingSourceDisabled = "disabled"

// disabled reports whether an operator deleted the named source's
// subscription.
func (s *sources) disabled(ctx context.Context, name string) (bool, error) {
	v, ok, err := s.store.Setting(ctx, sourceSetting(name, settingSourceDisabled))
	return ok && v == "true", err
}

// SourceSubscriptionReport is what "mediator subscription show --source"
// tells: whether an operator disabled the source's subscription, the id the
// mediator keeps, and the subscriptions to its callback on the server.
type SourceSubscriptionReport struct {
	Source   string
	Disabled bool
	Endpoint string
	// StoredID is the subscription id the mediator keeps in its store; ""
	// before the first upkeep.
	StoredID      string
	Subscriptions []SourceSubscription
}

// SourceSubscription is one subscription on a FHIR source, in
// dialect-neutral terms, its header values masked.
type SourceSubscription struct {
	ID       string
	Status   string
	Criteria string // R4 criteria, or the topic of a topic-based dialect
	End      string
	Endpoint string
	Payload  string // the notification's MIME type, "" for none
	Content  string // full-resource, id-only or empty (topic dialects)
	// Headers are the channel headers, each "Name: scheme ****".
	Headers []string
	// Error is the server's latest error note (Kodjin's).
	Error string
}

// sourceOf returns the named source, or an error naming the configured ones.
func (m *Mediator) sourceOf(name string) (*source, error) {
	if src := m.sources.get(name); src != nil {
		return src, nil
	}
	names := m.sources.names()
	if len(names) == 0 {
		return nil, fmt.Errorf("no FHIR source %q: FHIR_SOURCES names none", name)
	}
	return nil, fmt.Errorf("no FHIR source %q: FHIR_SOURCES names %s", name, strings.Join(names, ", "))
}

// SourceSubscription reports the subscriptions to the named source's
// callback (docs/upstreams/fhir-subscriptions.md trap 21: found through
// every page), changing nothing.
func (m *Mediator) SourceSubscription(ctx context.Context, name string) (SourceSubscriptionReport, error) {
	src, err := m.sourceOf(name)
	if err != nil {
		return SourceSubscriptionReport{}, err
	}
	r := SourceSubscriptionReport{Source: src.Name, Endpoint: src.Endpoint}
	if r.Disabled, err = m.sources.disabled(ctx, src.Name); err != nil {
		return r, err
	}
	if r.StoredID, _, err = m.sources.store.Setting(ctx, sourceSetting(src.Name, "subscription_id")); err != nil {
		return r, err
	}
	subs, err := src.Client.FindSubscriptions(ctx, src.Endpoint)
	if err != nil {
		return r, err
	}
	for _, s := range subs {
		st := s.Settings()
		shown := SourceSubscription{ID: s.ID, Status: s.Status, Criteria: st.Criteria, End: s.End,
			Endpoint: st.Endpoint, Payload: st.Payload, Content: st.Content, Error: s.Error}
		if st.Topic != "" {
			shown.Criteria = st.Topic
		}
		for _, h := range st.Headers {
			shown.Headers = append(shown.Headers, h.Name+": "+maskValue(h.Value))
		}
		r.Subscriptions = append(r.Subscriptions, shown)
	}
	return r, nil
}

// maskValue masks a header value, keeping its scheme ("Basic ****").
func maskValue(v string) string {
	if scheme, _, ok := strings.Cut(v, " "); ok {
		return scheme + " ****"
	}
	return "****"
}

// DeleteSourceSubscription unsubscribes from the named source: it first
// marks the source's subscription disabled in the store, so that no running
// server recreates it, then deletes every subscription to the source's
// callback (HeyDonto's 200 {"statusText","status"} is a success, trap 23;
// one already gone too). It returns the ids it deleted, and an error for
// each it could not.
func (m *Mediator) DeleteSourceSubscription(ctx context.Context, name string) ([]string, error) {
	src, err := m.sourceOf(name)
	if err != nil {
		return nil, err
	}
	if err := m.sources.store.SetSetting(ctx, sourceSetting(src.Name, settingSourceDisabled), "true"); err != nil {
		return nil, err
	}
	subs, err := src.Client.FindSubscriptions(ctx, src.Endpoint)
	if err != nil {
		return nil, err
	}
	var deleted []string
	var errs []error
	for _, s := range subs {
		if err := src.Client.DeleteSubscription(ctx, s.ID); err != nil && !fhir.IsGone(err) {
			errs = append(errs, fmt.Errorf("delete subscription %s: %w", s.ID, err))
			continue
		}
		deleted = append(deleted, s.ID)
	}
	if len(errs) == 0 {
		if err := m.sources.store.SetSetting(ctx, sourceSetting(src.Name, "subscription_id"), ""); err != nil {
			errs = append(errs, err)
		}
	}
	return deleted, errors.Join(errs...)
}

// RenewSourceSubscription re-enables the named source's subscription and
// replaces it now: on R4 criteria the new one is created before the old
// ones are deleted, so that no notification is missed; on other dialects
// the old ones are deleted and the upkeep makes what this version makes for
// that dialect. It returns the new subscription's id, "" when the dialect's
// upkeep makes none (the catch-up search brings the claims).
func (m *Mediator) RenewSourceSubscription(ctx context.Context, name string) (string, error) {
	src, err := m.sourceOf(name)
	if err != nil {
		return "", err
	}
	if !src.ManageSubscription {
		return "", fmt.Errorf("%s=off: the mediator makes no subscription on %s (catch-up search only)", sourceVar(src.Name, "SUBSCRIPTION"), src.Name)
	}
	if err := m.sources.store.SetSetting(ctx, sourceSetting(src.Name, settingSourceDisabled), "false"); err != nil {
		return "", err
	}
	dialect, err := src.detect(ctx)
	if err != nil {
		return "", err
	}
	old, err := src.Client.FindSubscriptions(ctx, src.Endpoint)
	if err != nil {
		return "", err
	}
	idSetting := sourceSetting(src.Name, "subscription_id")
	newID := ""
	if dialect == fhir.DialectR4Criteria {
		want, err := m.sourceSubscriptions.spec(src, m.opts.Now()).Build()
		if err != nil {
			return "", fmt.Errorf("build subscription: %w", err)
		}
		created, err := src.Client.CreateSubscription(ctx, want)
		if err != nil {
			return "", fmt.Errorf("create subscription: %w", err)
		}
		newID = created.ID
		if err := m.sources.store.SetSetting(ctx, idSetting, newID); err != nil {
			return newID, err
		}
	} else if err := m.sources.store.SetSetting(ctx, idSetting, ""); err != nil {
		return "", err
	}
	var errs []error
	for _, s := range old {
		if s.ID == newID {
			continue
		}
		if err := src.Client.DeleteSubscription(ctx, s.ID); err != nil && !fhir.IsGone(err) {
			errs = append(errs, fmt.Errorf("delete the replaced subscription %s (the upkeep tries again): %w", s.ID, err))
		}
	}
	if dialect != fhir.DialectR4Criteria {
		if err := m.sourceSubscriptions.ensure(ctx, src); err != nil {
			return "", errors.Join(append(errs, err)...)
		}
		newID, _, err = m.sources.store.Setting(ctx, idSetting)
		errs = append(errs, err)
	}
	return newID, errors.Join(errs...)
}
