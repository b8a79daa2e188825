package mediator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/cht-openimis/cht-openimis-mediator/openimis"
)

// settingSubscriptionDisabled is set while an operator has deleted the
// subscription with "mediator subscription delete": the upkeep then leaves
// openIMIS alone until "mediator subscription renew".
const settingSubscriptionDisabled = "subscription_disabled"

func (m *Mediator) subscriptionDisabled(ctx context.Context) (bool, error) {
	v, ok, err := m.opts.Store.Setting(ctx, settingSubscriptionDisabled)
	return ok && v == "true", err
}

// ShowSubscription prints the Claim subscription this mediator owns: id,
// status, end, endpoint and header with the secret masked.
func (m *Mediator) ShowSubscription(ctx context.Context, w io.Writer) error {
	if disabled, err := m.subscriptionDisabled(ctx); err != nil {
		return err
	} else if disabled {
		fmt.Fprintln(w, "disabled by an operator: the server does not create or renew it (mediator subscription renew re-enables it)")
	}
	subs, err := m.ownSubscriptions(ctx)
	if err != nil {
		return err
	}
	if len(subs) == 0 {
		fmt.Fprintln(w, "no Claim subscription for", m.opts.CallbackEndpoint)
		return nil
	}
	for _, s := range subs {
		fmt.Fprintf(w, "id:        %s\nstatus:    %s\ncriteria:  %s\nend:       %s\nendpoint:  %s\nheader:    %s\n\n",
			s.ID, s.Status, s.Criteria, s.End, s.Channel.Endpoint, maskHeader(s.Channel.Header))
	}
	return nil
}

// DeleteSubscription unsubscribes for decommissioning: it first marks the
// subscription disabled in the store, so that no running server recreates
// it, then deletes every Claim subscription of this endpoint (only their
// creator may, openIMIS contract §2.4).
func (m *Mediator) DeleteSubscription(ctx context.Context, w io.Writer) error {
	if err := m.opts.Store.SetSetting(ctx, settingSubscriptionDisabled, "true"); err != nil {
		return err
	}
	subs, err := m.ownSubscriptions(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range subs {
		if err := m.opts.OpenIMIS.DeleteSubscription(ctx, s.ID); err != nil {
			var ae *openimis.APIError
			if errors.As(err, &ae) && ae.Status == http.StatusForbidden {
				err = fmt.Errorf("%w (only the openIMIS user who created it may delete it)", err)
			}
			errs = append(errs, err)
			continue
		}
		fmt.Fprintln(w, "deleted subscription", s.ID)
	}
	if len(subs) == 0 {
		fmt.Fprintln(w, "no Claim subscription to delete")
	}
	fmt.Fprintln(w, "the server will not recreate it; \"mediator subscription renew\" re-enables it")
	return errors.Join(errs...)
}

// RenewSubscription re-enables the subscription and replaces it now with one
// that ends SUBSCRIPTION_END from now.
func (m *Mediator) RenewSubscription(ctx context.Context, w io.Writer) error {
	if err := m.opts.Store.SetSetting(ctx, settingSubscriptionDisabled, "false"); err != nil {
		return err
	}
	if err := m.ensureSubscription(ctx, true); err != nil {
		return err
	}
	id, _, err := m.opts.Store.Setting(ctx, settingSubscriptionID)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "subscription", id, "active; the server keeps it renewed")
	return nil
}

// ownSubscriptions lists the Claim subscriptions of this mediator's endpoint.
func (m *Mediator) ownSubscriptions(ctx context.Context) ([]openimis.Subscription, error) {
	all, err := m.opts.OpenIMIS.ListSubscriptions(ctx)
	if err != nil {
		return nil, err
	}
	var own []openimis.Subscription
	for _, s := range all {
		if s.Criteria == "Claim" && s.Channel.Endpoint == m.opts.CallbackEndpoint {
			own = append(own, s)
		}
	}
	return own, nil
}

// maskHeader shows a subscription header with credential values masked.
func maskHeader(header []string) string {
	if len(header) == 0 {
		return "(none)"
	}
	var h map[string]string
	if err := json.Unmarshal([]byte(header[0]), &h); err != nil {
		return "(not a JSON object: openIMIS cannot deliver with it)"
	}
	parts := make([]string, 0, len(h))
	for k, v := range h {
		if scheme, _, ok := strings.Cut(v, " "); ok {
			v = scheme + " ****"
		} else {
			v = "****"
		}
		parts = append(parts, k+": "+v)
	}
	return strings.Join(parts, ", ")
}
