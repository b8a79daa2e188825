package openimistest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"unicode"
)

// Delivery is the outcome of one notification sent by [Server.EmitClaim], as
// upstream records it in tblSubscriptionNotificationResult.
type Delivery struct {
	// ContentType is the Content-Type of the subscriber's answer.
	ContentType string
	// Endpoint is the subscription's channel.endpoint.
	Endpoint string
	// Err says why the delivery counts as failed; nil when Success.
	Err error
	// ResponseBody is the subscriber's answer body.
	ResponseBody []byte
	// Sent reports whether a request was sent at all.
	Sent bool
	// Status is the subscriber's HTTP status, 0 when there was no answer.
	Status int
	// SubscriptionID is the id of the notified subscription.
	SubscriptionID string
	// Success is upstream's notified_successfully.
	Success bool
}

// jsonContentTypeRE is aiohttp's check before ClientResponse.json()
// (aiohttp/client_reqrep.py), a prefix match on the lower-cased header.
var jsonContentTypeRE = regexp.MustCompile(`^application/(?:[\w.+-]+?\+)?json`)

// EmitClaim plays a newer openIMIS creating and submitting a claim through
// the FHIR API (§3.2, api_fhir_r4/signals.py of newer builds): it stores the
// claim (created now if new) and POSTs the bare ClaimResponse, not a Bundle
// (trap 7), to every active, unexpired subscription whose criteria resource
// is exactly "Claim" (case-sensitive, trap 2), concurrently and without
// retries (subscriptions/notificationClient.py, §3.3):
//
//   - the endpoint must pass Django's URLValidator, whose host needs a
//     dotted name with a TLD, "localhost" or an IP ("http://mediator:6000/"
//     fails), or nothing is sent (notificationManager.py, trap 4);
//   - headers are content-type and accept application/json, then the keys of
//     channel.header[0] parsed as a JSON object of strings; a missing or
//     non-object header fails without sending (trap 5);
//   - a delivery succeeds only if the answer's Content-Type is
//     application/(…+)json, its body empty or JSON, and its status below 400
//     (trap 6).
//
// A matching subscription with criteria query parameters (ORM filters)
// aborts the notification for every subscriber (subscriptionCriteriaFilter.py).
// EmitClaim returns one Delivery per matching subscription in creation
// order; it panics if claimResponse has no id. ctx bounds the whole
// notification.
func (s *Server) EmitClaim(ctx context.Context, claimResponse []byte) []Delivery {
	cl := parseClaim(claimResponse)
	s.mu.Lock()
	now := s.now()
	cl.created = now
	if old, ok := s.claims[cl.id]; ok {
		cl.created = old.created
	}
	s.putClaim(cl)
	body := cl.fhir()
	var targets []*subscription
	filtered := false
	for _, sub := range s.liveSubscriptions() {
		if sub.Status == "active" && sub.End.After(now) && sub.CriteriaResource == "Claim" {
			c := *sub
			targets = append(targets, &c)
			filtered = filtered || len(sub.query) > 0
		}
	}
	s.mu.Unlock()

	out := make([]Delivery, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		out[i] = Delivery{Endpoint: t.Endpoint, SubscriptionID: t.ID}
		if filtered {
			out[i].Err = errors.New("openimistest: criteria query parameters (ORM filters) abort the notification " +
				"for every subscriber: use the bare criteria \"Claim\"")
			continue
		}
		wg.Go(func() { s.deliver(ctx, body, t, &out[i]) })
	}
	wg.Wait()
	return out
}

// deliver sends one notification like RestSubscriptionNotificationClient.
func (s *Server) deliver(ctx context.Context, body []byte, t *subscription, d *Delivery) {
	if !validDjangoURL(t.Endpoint) {
		d.Err = errors.New("validation not passed, reason: ['Enter a valid URL.']")
		return
	}
	var extra map[string]string
	if err := json.Unmarshal([]byte(t.Header), &extra); err != nil || extra == nil {
		d.Err = fmt.Errorf("channel.header[0] is not a JSON object of strings: %q", t.Header)
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.Endpoint, bytes.NewReader(body))
	if err != nil {
		d.Err = err
		return
	}
	// aiohttp keeps the case of header names: a "Content-Type" key in the
	// header JSON is a second line beside "content-type".
	req.Header = http.Header{"content-type": {"application/json"}, "accept": {"application/json"}, "User-Agent": {"Python/3.10 aiohttp/3.8.5"}}
	for k, v := range extra {
		req.Header[k] = []string{v}
	}
	d.Sent = true
	resp, err := s.client.Do(req)
	if err != nil {
		d.Err = err
		return
	}
	defer func() { _ = resp.Body.Close() }()
	d.Status, d.ContentType = resp.StatusCode, resp.Header.Get("Content-Type")
	if d.ResponseBody, err = io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes)); err != nil {
		d.Err = err
		return
	}
	trimmed := bytes.TrimSpace(d.ResponseBody)
	switch {
	case !jsonContentTypeRE.MatchString(strings.ToLower(d.ContentType)):
		d.Err = fmt.Errorf("attempt to decode JSON with unexpected mimetype: %s", d.ContentType)
	case len(trimmed) > 0 && !json.Valid(trimmed):
		d.Err = errors.New("json decode error: the answer body is not valid JSON")
	case resp.StatusCode >= 400:
		d.Err = fmt.Errorf("subscriber answered HTTP %d", resp.StatusCode)
	default:
		d.Success = true
	}
}

// validDjangoURL reports whether Django's URLValidator (django/core/
// validators.py; schemes http, https, ftp, ftps) accepts u: no whitespace,
// optional user:password@, a host that is an IPv4 address, a bracketed IPv6
// address, "localhost", or labels of letters, digits and inner hyphens ending
// in a TLD of at least two letters (or xn-- punycode), an optional port of up
// to five digits.
func validDjangoURL(u string) bool {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok || len(u) > 2048 || strings.IndexFunc(u, unicode.IsSpace) >= 0 {
		return false
	}
	switch strings.ToLower(scheme) {
	case "http", "https", "ftp", "ftps":
	default:
		return false
	}
	authority, _, _ := strings.Cut(strings.SplitN(strings.SplitN(rest, "?", 2)[0], "#", 2)[0], "/")
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		if at == 0 || authority[0] == ':' {
			return false
		}
		authority = authority[at+1:]
	}
	host, port := authority, ""
	if i := strings.LastIndex(authority, ":"); i >= 0 && !strings.HasSuffix(authority, "]") {
		host, port = authority[:i], authority[i+1:]
		if port == "" || len(port) > 5 || strings.Trim(port, "0123456789") != "" {
			return false
		}
	}
	host = strings.ToLower(host)
	if inner, ok := strings.CutPrefix(host, "["); ok {
		addr, err := netip.ParseAddr(strings.TrimSuffix(inner, "]"))
		return strings.HasSuffix(inner, "]") && err == nil && addr.Is6() && addr.Zone() == ""
	}
	if strings.Trim(host, "0123456789.") == "" {
		addr, err := netip.ParseAddr(host) // rejects leading zeros too
		return err == nil && addr.Is4()
	}
	if host == "localhost" {
		return true
	}
	labels := strings.Split(strings.TrimSuffix(host, "."), ".")
	if len(labels) < 2 || len(host) > 253 {
		return false
	}
	for i, l := range labels {
		tld := i == len(labels)-1
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		if tld && strings.HasPrefix(l, "xn--") {
			continue
		}
		for _, r := range l {
			letter := r >= 'a' && r <= 'z' || r >= 0xa1
			if !letter && (tld || !(r >= '0' && r <= '9' || r == '-')) {
				return false
			}
		}
		if tld && len([]rune(l)) < 2 {
			return false
		}
	}
	return true
}
