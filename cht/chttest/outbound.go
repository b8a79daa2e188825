package chttest

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed" // the reference outbound config
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// defaultOutbound is the reference deployment's app_settings.outbound
// (cht-interoperability cht-config/app_settings.json outbound), whose one
// config, claims_feedback, pushes claims_feedback reports to the mediator.
//
//go:embed testdata/outbound/claims_feedback.json
var defaultOutbound []byte

// DefaultOutbound returns the app_settings.outbound the pusher uses when
// OutboundOptions.Outbound is nil: the reference claims_feedback config.
func DefaultOutbound() json.RawMessage {
	return slices.Clone(defaultOutbound)
}

const (
	// OutboundTimeout is the abort of a push, OUTBOUND_REQ_TIMEOUT
	// (shared-libs/outbound/src/outbound.js:22): since 4.17 an
	// AbortSignal.timeout over the whole exchange
	// (shared-libs/couch-request/src/couch-request.js:135).
	OutboundTimeout = 10 * time.Second
	// OutboundPeriod is the period of sentinel's schedule, which pushes every
	// queued report again (sentinel/src/schedule/index.js:7,43,71-74).
	OutboundPeriod = 5 * time.Minute
)

// OutboundOptions configures an OutboundPusher.
type OutboundOptions struct {
	// Outbound is app_settings.outbound as JSON, holding exactly one config.
	// Defaults to DefaultOutbound().
	Outbound json.RawMessage
	// BaseURL replaces the config's destination.base_url (the reference
	// config names the deployment's OpenHIM); empty keeps it.
	BaseURL string
	// Username replaces the config's destination.auth.username; empty keeps
	// it.
	Username string
	// Password is the credential stored under destination.auth.password_key
	// (PUT /api/v1/credentials/<key>). Empty means none is stored: every
	// push then fails before sending anything (outbound.js:27-35).
	// SetPassword changes it later.
	Password string
	// Timeout aborts a push. Defaults to OutboundTimeout.
	Timeout time.Duration
	// Period is the schedule's period. Defaults to OutboundPeriod. The
	// pusher never runs the schedule by itself: a test calls RunSchedule
	// once for each period it means to pass.
	Period time.Duration
	// Client sends the pushes. Defaults to a client that follows redirects,
	// as fetch does (4.17+).
	Client *http.Client
}

// OutboundPusher is the CHT's outbound push of one outbound config, as
// sentinel runs it (docs/upstreams/cht.md §4):
//
//   - Save and Edit are a new revision of a report being saved: the
//     mark_for_outbound transition runs on every revision and pushes the
//     report at once when the config's relevant_to matches
//     (shared-libs/transitions/src/transitions/mark_for_outbound.js).
//   - The body is built from the config's mapping: each key is an object
//     path, so "doc._id" becomes {"doc":{"_id":…}}; a path that resolves to
//     nothing fails the push unless the mapping says optional
//     (outbound.js:38-93). It is sent with Basic auth from the stored
//     credential, content-type and accept application/json
//     (outbound.js:96-170).
//   - A push succeeds on a 2xx or a 301–398 (redirects followed, 4.17+);
//     the answer's body is ignored. Anything else, no answer, or the abort
//     after Timeout fails it, and the report is queued
//     (task:outbound:<doc _id>) unless it is already. A later successful
//     push by the transition leaves the task queued; the schedule clears it.
//   - RunSchedule is one run of the schedule, every Period: it pushes each
//     queued report again, as its current revision, and unqueues it on
//     success; a failure leaves it queued, forever, without backoff
//     (sentinel/src/schedule/outbound.js).
//   - A push whose payload hashes like the last successful push of that
//     report is not sent, and counts as a success (outbound.js:215-237,
//     280-321): an edit that changes no mapped value sends nothing, and the
//     same doc._id comes again after an edit, after a lost answer, or when
//     values go A→B→A.
//
// Pushes run one at a time, as sentinel processes one change at a time: a
// slow receiver holds all of them. Not modelled: relevant_to other than
// doc.form === '<form>', mapping expressions (expr), cron windows, header
// auth, and several configs queued for one report. All methods are safe for
// concurrent use.
type OutboundPusher struct {
	name     string
	form     string
	url      string
	username string
	mapping  []outboundMapping
	timeout  time.Duration
	period   time.Duration
	client   *http.Client
	// sending serialises the pushes, as sentinel's one change at a time.
	sending sync.Mutex

	mu       sync.Mutex
	password string
	docs     map[string]map[string]any
	queue    []string
	sentHash map[string]string
	pushes   []Push
}

// outboundMapping is one entry of an outbound config's mapping: the
// destination object path, the source path and whether it may be missing.
type outboundMapping struct {
	dest, src string
	optional  bool
}

// Push is one push of a report, sent or not.
type Push struct {
	// DocID is the report's _id.
	DocID string
	// Body is the payload sent; nil when nothing was sent.
	Body []byte
	// Status is the answer's status; 0 when there was none.
	Status int
	// Err is why the push failed; nil for a success.
	Err error
	// Skipped says that the payload equals the last successful push of the
	// report: nothing was sent, and the push counts as a success.
	Skipped bool
}

// OK reports whether the push succeeded (or was skipped as identical).
func (p Push) OK() bool { return p.Err == nil }

// relevantForm is the one relevant_to the pusher models.
var relevantForm = regexp.MustCompile(`^\s*doc\.form\s*===?\s*['"]([^'"]+)['"]\s*$`)

// NewOutboundPusher returns a pusher of the one config in opts.Outbound. It
// fails on a config it cannot model.
func NewOutboundPusher(opts OutboundOptions) (*OutboundPusher, error) {
	if opts.Outbound == nil {
		opts.Outbound = DefaultOutbound()
	}
	if opts.Timeout == 0 {
		opts.Timeout = OutboundTimeout
	}
	if opts.Period == 0 {
		opts.Period = OutboundPeriod
	}
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	var configs map[string]struct {
		RelevantTo  string `json:"relevant_to"`
		Destination struct {
			BaseURL string `json:"base_url"`
			Path    string `json:"path"`
			Auth    struct {
				Type     string `json:"type"`
				Username string `json:"username"`
			} `json:"auth"`
		} `json:"destination"`
		Mapping map[string]json.RawMessage `json:"mapping"`
	}
	if err := json.Unmarshal(opts.Outbound, &configs); err != nil {
		return nil, fmt.Errorf("chttest: outbound config: %w", err)
	}
	if len(configs) != 1 {
		return nil, fmt.Errorf("chttest: outbound config: want exactly one config, got %d", len(configs))
	}
	p := &OutboundPusher{
		timeout: opts.Timeout, period: opts.Period, client: opts.Client, password: opts.Password,
		docs: map[string]map[string]any{}, sentHash: map[string]string{},
	}
	for name, c := range configs {
		m := relevantForm.FindStringSubmatch(c.RelevantTo)
		if m == nil {
			return nil, fmt.Errorf("chttest: outbound %s: relevant_to %q is not modelled (only doc.form === '<form>')", name, c.RelevantTo)
		}
		if c.Destination.Auth.Type != "basic" {
			return nil, fmt.Errorf("chttest: outbound %s: auth type %q is not modelled (only basic)", name, c.Destination.Auth.Type)
		}
		base := c.Destination.BaseURL
		if opts.BaseURL != "" {
			base = opts.BaseURL
		}
		p.name, p.form, p.username = name, m[1], c.Destination.Auth.Username
		if opts.Username != "" {
			p.username = opts.Username
		}
		p.url = strings.TrimSuffix(base, "/") + "/" + strings.TrimPrefix(c.Destination.Path, "/")
		for dest, raw := range c.Mapping {
			om := outboundMapping{dest: dest}
			if err := json.Unmarshal(raw, &om.src); err != nil {
				var full struct {
					Path     string `json:"path"`
					Optional bool   `json:"optional"`
				}
				if err := json.Unmarshal(raw, &full); err != nil || full.Path == "" {
					return nil, fmt.Errorf("chttest: outbound %s: mapping %s is not modelled (only a path, or path and optional)", name, dest)
				}
				om.src, om.optional = full.Path, full.Optional
			}
			p.mapping = append(p.mapping, om)
		}
		slices.SortFunc(p.mapping, func(a, b outboundMapping) int { return strings.Compare(a.dest, b.dest) })
	}
	return p, nil
}

// Period returns the schedule's period: the time a test means to pass
// between two calls of RunSchedule.
func (p *OutboundPusher) Period() time.Duration { return p.period }

// SetPassword stores a new credential under the config's password_key, as
// PUT /api/v1/credentials/<key> does; the next push uses it.
func (p *OutboundPusher) SetPassword(password string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.password = password
}

// Save saves a new report (a health worker's phone synced it) and runs the
// transition: a report of the config's form is pushed at once. It returns
// the push, or ok false when the report is not relevant to the config.
// doc must have a string _id; the pusher keeps its own copy.
func (p *OutboundPusher) Save(ctx context.Context, doc map[string]any) (push Push, ok bool) {
	id, _ := doc["_id"].(string)
	if id == "" {
		panic("chttest: OutboundPusher.Save: the doc has no _id")
	}
	p.sending.Lock()
	defer p.sending.Unlock()
	p.mu.Lock()
	p.docs[id] = deepCopy(doc)
	p.mu.Unlock()
	if doc["form"] != p.form {
		return Push{}, false
	}
	push = p.push(ctx, id)
	if !push.OK() {
		p.mu.Lock()
		if !slices.Contains(p.queue, id) {
			p.queue = append(p.queue, id) // an existing task is left as it is
		}
		p.mu.Unlock()
	}
	return push, true
}

// Edit saves a new revision of a report saved before, with the same _id;
// the transition runs again, as for Save. It panics when no report has
// that _id.
func (p *OutboundPusher) Edit(ctx context.Context, doc map[string]any) (Push, bool) {
	id, _ := doc["_id"].(string)
	p.mu.Lock()
	_, known := p.docs[id]
	p.mu.Unlock()
	if !known {
		panic("chttest: OutboundPusher.Edit: no report " + id + " was saved")
	}
	return p.Save(ctx, doc)
}

// RunSchedule is one run of sentinel's outbound schedule: it pushes each
// queued report again, oldest task first, as its current revision, and
// unqueues those that succeed. It returns the pushes.
func (p *OutboundPusher) RunSchedule(ctx context.Context) []Push {
	p.sending.Lock()
	defer p.sending.Unlock()
	p.mu.Lock()
	queued := slices.Clone(p.queue)
	p.mu.Unlock()
	var pushes []Push
	for _, id := range queued {
		push := p.push(ctx, id)
		pushes = append(pushes, push)
		if push.OK() {
			p.mu.Lock()
			p.queue = slices.DeleteFunc(p.queue, func(q string) bool { return q == id })
			p.mu.Unlock()
		}
	}
	return pushes
}

// Queued returns the ids of the queued reports, oldest task first.
func (p *OutboundPusher) Queued() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.queue)
}

// Pushes returns every push so far, oldest first.
func (p *OutboundPusher) Pushes() []Push {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.pushes)
}

// push maps the current revision of a report and sends it, unless it
// equals the last successful push. The caller holds p.sending.
func (p *OutboundPusher) push(ctx context.Context, id string) Push {
	p.mu.Lock()
	doc, password, last := p.docs[id], p.password, p.sentHash[id]
	p.mu.Unlock()
	push := Push{DocID: id}
	payload, err := p.payload(doc)
	switch {
	case err != nil:
		push.Err = err
	case outboundHash(payload) == last:
		push.Skipped = true
	case password == "":
		// The CHT logs "Credentials for '<key>' have not been configured".
		push.Err = errors.New("no credential stored under the config's password_key")
	default:
		push.Body, _ = json.Marshal(payload)
		push.Status, push.Err = p.send(ctx, push.Body, password)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if push.Err == nil && !push.Skipped {
		p.sentHash[id] = outboundHash(payload)
	}
	p.pushes = append(p.pushes, push)
	return push
}

// send posts one payload and reads the answer, within the timeout.
func (p *OutboundPusher) send(ctx context.Context, body []byte, password string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "Community Health Toolkit/"+Version+" (linux,x64)")
	req.SetBasicAuth(p.username, password)
	resp, err := p.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return 0, fmt.Errorf("push aborted after %s: %w", p.timeout, err)
		}
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return resp.StatusCode, fmt.Errorf("read the answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 && (resp.StatusCode < 301 || resp.StatusCode > 398) {
		return resp.StatusCode, fmt.Errorf("server responded with %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// payload builds the body from a report with the config's mapping.
func (p *OutboundPusher) payload(doc map[string]any) (map[string]any, error) {
	root := map[string]any{"doc": doc}
	out := map[string]any{}
	for _, m := range p.mapping {
		v, ok := lookupPath(root, m.src)
		if !ok {
			if m.optional {
				continue
			}
			return nil, fmt.Errorf("mapping error for '%s/%s': cannot find '%s' on source document", p.name, m.dest, m.src)
		}
		setPath(out, m.dest, v)
	}
	return out, nil
}

// lookupPath reads a dotted object path; a missing key is undefined.
func lookupPath(v any, path string) (any, bool) {
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// setPath writes v at a dotted object path, making the objects on the
// way, as objectPath.set does.
func setPath(m map[string]any, path string, v any) {
	keys := strings.Split(path, ".")
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[keys[len(keys)-1]] = v
}

// outboundHash is the payload hash the CHT compares pushes by: SHA-256 of
// the payload with its keys sorted (outbound.js hash, orderedStringify),
// which is what encoding/json writes for maps.
func outboundHash(payload map[string]any) string {
	b, _ := json.Marshal(payload)
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

// deepCopy copies a JSON document.
func deepCopy(doc map[string]any) map[string]any {
	b, err := json.Marshal(doc)
	if err != nil {
		panic("chttest: the doc is not JSON: " + err.Error())
	}
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

// ClaimsFeedback is a claims_feedback report as the CHT stores the health
// worker's form (forms/app/claims_feedback.xml of the reference
// deployment): the task's inputs and the answers, every value a string ("yes",
// "no", "1"…"5", "" when unanswered).
type ClaimsFeedback struct {
	ID               string
	ClaimUUID        string
	InsureeUUID      string
	CareRendered     string
	PaymentAsked     string
	DrugPrescribed   string
	DrugReceived     string
	AssessmentRating string
}

// Doc returns the report's document.
func (f ClaimsFeedback) Doc() map[string]any {
	return map[string]any{
		"_id":          f.ID,
		"type":         "data_record",
		"form":         "claims_feedback",
		"content_type": "xml",
		"fields": map[string]any{
			"inputs": map[string]any{
				"op_claim_uuid": f.ClaimUUID,
				"openimis_id":   f.InsureeUUID,
			},
			"claim_feedback_group": map[string]any{
				"care_rendered":     f.CareRendered,
				"payment_asked":     f.PaymentAsked,
				"drug_prescribed":   f.DrugPrescribed,
				"drug_received":     f.DrugReceived,
				"assessment_rating": f.AssessmentRating,
			},
		},
	}
}
