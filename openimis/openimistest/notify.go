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
	"unicode/utf8"
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

// jsonContentTypeRE is aiohttp's check before ClientResponse.json() (a
// prefix match on the lower-cased header).
var jsonContentTypeRE = regexp.MustCompile(`^application/(?:[\w.+-]+?\+)?json`)

// errCriteriaFilters aborts a whole notification, as upstream's ORM filter
// evaluation can.
var errCriteriaFilters = errors.New("openimistest: Claim subscription criteria with query parameters " +
	"(ORM filters) are not modelled; upstream evaluates them against the claim model and an unknown " +
	"field aborts the notification for every subscriber: use the bare criteria \"Claim\"")

// notifyTarget is a snapshot of a subscription to notify.
type notifyTarget struct {
	endpoint string
	filters  bool
	header   *string
	id       string
}

// EmitClaim plays openIMIS creating and submitting a claim through the FHIR
// API (newer builds, contract §3.2): it stores the claim if it is new
// (created now; an existing claim keeps its creation time and feedback but
// takes the new JSON) and POSTs the bare ClaimResponse to every active,
// non-expired, non-deleted subscription whose criteria resource is exactly
// "Claim" (case-sensitive), concurrently and without retries (contract §3.3):
//
//   - the endpoint must pass Django's URLValidator (a host needs a dot-TLD,
//     "localhost" or an IP: "http://mediator:6000/..." fails) or nothing is
//     sent;
//   - headers are content-type and accept "application/json", then the keys
//     of channel.header[0] parsed as a JSON object merged on top,
//     case-sensitively (a "Content-Type" key adds a second line); a missing,
//     non-JSON or non-object header, or a non-string value, fails the
//     delivery without sending;
//   - a delivery succeeds only if the answer's Content-Type matches
//     application/(…+)json, its body is empty or valid JSON, and its status is
//     below 400.
//
// If any matching subscription has criteria query parameters, nothing is sent
// and every delivery carries an error (see errCriteriaFilters). EmitClaim
// returns one Delivery per matching subscription in creation order. It
// panics if claimResponse is not a JSON object with an id, for ease of use in
// tests; ctx bounds the whole notification (upstream waits up to 300 s).
func (s *Server) EmitClaim(ctx context.Context, claimResponse []byte) []Delivery {
	cl := parseClaim(claimResponse)
	s.mu.Lock()
	now := s.now()
	if old, ok := s.claims[cl.id]; ok {
		cl.created = old.created
	} else {
		cl.created = now
	}
	s.putClaim(cl)
	body := cl.fhir()
	var targets []notifyTarget
	for _, sub := range s.sortedSubscriptions() {
		if sub.active && sub.end.After(now) && sub.criteria.resource == "Claim" {
			targets = append(targets, notifyTarget{
				endpoint: sub.endpoint, filters: len(sub.criteria.params) > 0, header: sub.header, id: sub.id,
			})
		}
	}
	s.mu.Unlock()

	out := make([]Delivery, len(targets))
	for i, t := range targets {
		out[i] = Delivery{Endpoint: t.endpoint, SubscriptionID: t.id}
		if t.filters {
			for j := range out {
				out[j] = Delivery{Endpoint: targets[j].endpoint, SubscriptionID: targets[j].id, Err: errCriteriaFilters}
			}
			return out
		}
	}
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() { s.deliver(ctx, body, t, &out[i]) })
	}
	wg.Wait()
	return out
}

// deliver sends one notification like RestSubscriptionNotificationClient.
func (s *Server) deliver(ctx context.Context, body []byte, t notifyTarget, d *Delivery) {
	if !validDjangoURL(t.endpoint) {
		d.Err = errors.New("validation not passed, reason: ['Enter a valid URL.']")
		return
	}
	if t.header == nil {
		d.Err = fmt.Errorf("invalid format of headers for subscription %s: headers should be provided as JSON string", t.id)
		return
	}
	var extra map[string]any
	if err := json.Unmarshal([]byte(*t.header), &extra); err != nil || extra == nil {
		d.Err = fmt.Errorf("channel.header[0] is not a JSON object string: %q", *t.header)
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.endpoint, bytes.NewReader(body))
	if err != nil {
		d.Err = err
		return
	}
	req.Header = http.Header{
		"content-type": {"application/json"},
		"accept":       {"application/json"},
		"User-Agent":   {"Python/3.10 aiohttp/3.8.5"},
	}
	for k, v := range extra {
		vs, ok := v.(string)
		if !ok {
			d.Err = fmt.Errorf("header %q: value is not a string", k)
			return
		}
		req.Header[k] = []string{vs}
	}
	d.Sent = true
	resp, err := s.client.Do(req)
	if err != nil {
		d.Err = err
		return
	}
	defer func() { _ = resp.Body.Close() }()
	d.Status = resp.StatusCode
	d.ContentType = resp.Header.Get("Content-Type")
	d.ResponseBody, err = io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	if err != nil {
		d.Err = err
		return
	}
	if !jsonContentTypeRE.MatchString(strings.ToLower(d.ContentType)) {
		d.Err = fmt.Errorf("attempt to decode JSON with unexpected mimetype: %s", strings.ToLower(d.ContentType))
		return
	}
	if trimmed := bytes.TrimSpace(d.ResponseBody); len(trimmed) > 0 && !json.Valid(trimmed) {
		d.Err = errors.New("json decode error: the answer body is not valid JSON")
		return
	}
	if resp.StatusCode >= 400 {
		d.Err = fmt.Errorf("subscriber answered HTTP %d", resp.StatusCode)
		return
	}
	d.Success = true
}

// validDjangoURL reports whether Django's URLValidator (schemes http, https,
// ftp, ftps) accepts u.
func validDjangoURL(u string) bool {
	if u == "" || len(u) > 2048 || strings.ContainsAny(u, "\t\r\n") {
		return false
	}
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return false
	}
	switch strings.ToLower(scheme) {
	case "http", "https", "ftp", "ftps":
	default:
		return false
	}
	authority, path := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	if strings.ContainsFunc(path, isPySpace) {
		return false
	}
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		userinfo := authority[:at]
		authority = authority[at+1:]
		user, _, _ := strings.Cut(userinfo, ":")
		if user == "" || strings.ContainsAny(userinfo, "@/") || strings.ContainsFunc(userinfo, isPySpace) ||
			strings.Count(userinfo, ":") > 1 {
			return false
		}
	}
	host := authority
	if strings.HasPrefix(authority, "[") {
		end := strings.Index(authority, "]")
		if end < 0 {
			return false
		}
		host = authority[:end+1]
		if !validPort(authority[end+1:]) {
			return false
		}
		inner := host[1 : len(host)-1]
		addr, err := netip.ParseAddr(inner)
		return err == nil && addr.Is6() && addr.Zone() == "" && strings.Trim(strings.ToLower(inner), "0123456789abcdef:.") == ""
	}
	if i := strings.LastIndex(authority, ":"); i >= 0 {
		host = authority[:i]
		if !validPort(authority[i:]) {
			return false
		}
	}
	host = strings.ToLower(host)
	if host == "" || len(strings.TrimSuffix(host, ".")) > 253 {
		return false
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		return addr.Is4()
	}
	if isDottedDecimal(host) {
		return false
	}
	return host == "localhost" || validHostname(host)
}

// validPort checks Django's optional ":[0-9]{1,5}".
func validPort(s string) bool {
	if s == "" {
		return true
	}
	digits := strings.TrimPrefix(s, ":")
	if len(digits) == len(s) || len(digits) < 1 || len(digits) > 5 {
		return false
	}
	return strings.Trim(digits, "0123456789") == ""
}

// isDottedDecimal reports hosts made only of digits and dots, which Django
// accepts only as a valid IPv4 address.
func isDottedDecimal(h string) bool {
	return strings.Trim(h, "0123456789.") == ""
}

// validHostname checks Django's hostname + domain + TLD pattern: labels of
// letters (including non-ASCII), digits and inner hyphens, at least two, the
// last (TLD) made of 2-63 letters or "xn--" punycode, with an optional
// trailing dot.
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	labels := strings.Split(h, ".")
	if len(labels) < 2 {
		return false
	}
	for i, l := range labels {
		n := utf8.RuneCountInString(l)
		if n == 0 || n > 63 || strings.HasPrefix(l, "-") || strings.HasSuffix(l, "-") {
			return false
		}
		tld := i == len(labels)-1
		for _, r := range l {
			letter := r >= 'a' && r <= 'z' || r >= 0xa1 && r <= 0xffff
			digit := r >= '0' && r <= '9'
			if !letter && r != '-' && (tld || !digit) {
				if tld && strings.HasPrefix(l, "xn--") && digit {
					continue
				}
				return false
			}
		}
		if tld && n < 2 {
			return false
		}
	}
	return true
}

// isPySpace matches the characters Python's \s excludes from URL paths.
func isPySpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\r', '\f', '\v', 0x85, 0xa0:
		return true
	}
	return r == 0x1680 || r >= 0x2000 && r <= 0x200a || r == 0x2028 || r == 0x2029 || r == 0x202f ||
		r == 0x205f || r == 0x3000
}
