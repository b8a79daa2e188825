package mediator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/cht-openimis/cht-openimis-mediator/fhir"
)

// CheckSource runs the preflight checks of one FHIR source alone (mediator
// check --source <name>), changing nothing on its server.
func (m *Mediator) CheckSource(ctx context.Context, name string) ([]CheckResult, error) {
	src, err := m.sourceOf(name)
	if err != nil {
		return nil, err
	}
	return m.runChecks(ctx, m.sourceChecks(src)), nil
}

// sourceChecks are the preflight checks of one FHIR source (spec §8): the
// credentials, the dialect from the CapabilityStatement, the right to search
// the claim resource, our subscription (listed, never written), the topic of
// topic-based dialects and the callback URL. Every request is a read.
func (m *Mediator) sourceChecks(src *source) []check {
	name := "source " + src.Name + " "
	v := func(suffix string) string { return sourceVar(src.Name, suffix) }

	// What one check finds and a later one reads: the checks run in order.
	var (
		searchErr error
		caps      fhir.Capabilities
		capsErr   error
		dialect   = src.Dialect
	)
	credentials := name + "credentials"
	dialectCheck := name + "dialect"
	list := []check{
		{name: credentials, run: func(ctx context.Context) (checkResult, error) {
			// One search of the claim resource, the catch-up's own query
			// bounded to the future: it proves the credentials and, below,
			// the right to search.
			params := catchupParams(src, m.opts.Now().Add(time.Hour))
			params.Set("_count", "1")
			_, searchErr = src.Client.Search(ctx, src.Resource, params)
			var le *fhir.LoginError
			var ae *fhir.APIError
			switch {
			case errors.As(searchErr, &le):
				return checkResult{fix: sourceCredentialsFix(src, v, le.Refused())}, searchErr
			case errors.As(searchErr, &ae) && ae.Status == http.StatusUnauthorized:
				return checkResult{fix: sourceCredentialsFix(src, v, true)}, searchErr
			case searchErr != nil && !errors.As(searchErr, &ae):
				return checkResult{fix: fmt.Sprintf("check %s and that the server is reachable from the mediator", v("URL"))}, searchErr
			}
			auth := src.Auth
			if auth == "" {
				auth = "none"
			}
			if auth == "none" {
				return checkResult{detail: fmt.Sprintf("the server answers without credentials (%s=none)", v("AUTH"))}, nil
			}
			return checkResult{detail: fmt.Sprintf("accepted (%s=%s)", v("AUTH"), auth)}, nil
		}},
		{name: dialectCheck, needs: credentials, run: func(ctx context.Context) (checkResult, error) {
			caps, capsErr = src.Client.Metadata(ctx)
			if capsErr != nil {
				if dialect != "" {
					return checkResult{warn: true,
						detail: fmt.Sprintf("%s=%s is used; the server's CapabilityStatement cannot be read: %v", v("DIALECT"), dialect, capsErr)}, nil
				}
				// Never guess a topic the server does not advertise
				// (docs/upstreams/fhir-subscriptions.md trap 2).
				return checkResult{fix: fmt.Sprintf("set %s (%s; r4-criteria for Kodjin, HAPI and HeyDonto, r4b-backport for Aidbox zen)", v("DIALECT"), fhir.DialectChoices)},
					fmt.Errorf("cannot detect the subscription dialect: %w", capsErr)
			}
			detected, vendor, derr := fhir.Detect(caps)
			about := fmt.Sprintf("FHIR %s", caps.FHIRVersion)
			if caps.SoftwareName != "" {
				about = fmt.Sprintf("%s, FHIR %s", caps.SoftwareName, caps.FHIRVersion)
			}
			switch {
			case dialect == "" && derr != nil:
				return checkResult{fix: fmt.Sprintf("set %s", v("DIALECT"))}, fmt.Errorf("%s: %w", about, derr)
			case dialect == "":
				dialect = detected
			case derr == nil && detected != dialect:
				return checkResult{warn: true,
					detail: fmt.Sprintf("%s=%s, but the server (%s) advertises %s", v("DIALECT"), dialect, about, detected),
					fix:    fmt.Sprintf("check %s: the subscription the mediator writes follows it", v("DIALECT"))}, nil
			}
			if vendor != fhir.VendorGeneric && src.Client.Vendor() == fhir.VendorGeneric {
				return checkResult{warn: true,
					detail: fmt.Sprintf("%s (%s); the server is %s, its quirks are not applied", dialect, about, vendor),
					fix:    fmt.Sprintf("set %s=%s (paths, login and answers of that server)", v("VENDOR"), vendor)}, nil
			}
			return checkResult{detail: fmt.Sprintf("%s (%s)", dialect, about)}, nil
		}},
		{name: name + "right: search " + src.Resource, needs: credentials, run: func(context.Context) (checkResult, error) {
			var ae *fhir.APIError
			switch {
			case errors.As(searchErr, &ae) && ae.Status == http.StatusForbidden:
				return checkResult{fix: fmt.Sprintf("give the server's user the right to search and read %s (and Patient)", src.Resource)},
					fmt.Errorf("the user may not search %s: %w", src.Resource, searchErr)
			case errors.As(searchErr, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusBadRequest):
				return checkResult{fix: fmt.Sprintf("check %s, %s, %s and %s", v("URL"), v("RESOURCE"), v("PATH_STYLE"), v("SEARCH"))}, searchErr
			case searchErr != nil:
				return checkResult{}, searchErr
			}
			return checkResult{detail: "the catch-up search is answered"}, nil
		}},
		{name: name + "subscription", needs: credentials, run: func(ctx context.Context) (checkResult, error) {
			return m.checkSourceSubscription(ctx, src, v)
		}},
	}
	if src.Dialect == "" || src.Dialect.Topic() {
		list = append(list, check{name: name + "topic", needs: dialectCheck, run: func(context.Context) (checkResult, error) {
			if !dialect.Topic() {
				return checkResult{omit: true}, nil // detected: R4 criteria
			}
			return checkSourceTopic(src, dialect, caps.Topics, capsErr != nil, v)
		}})
	}
	if src.ManageSubscription {
		list = append(list, check{name: name + "callback endpoint", run: func(context.Context) (checkResult, error) {
			if err := sourceCallbackProblem(src.Endpoint, src.Client.BaseURL(), src.Name); err != nil {
				return checkResult{fix: fmt.Sprintf("set %s (or CHT_OPENIMIS_CALLBACK_ENDPOINT, whose origin it derives from) to an absolute URL the server reaches, "+
					"ending in /mediator/fhir/%s: a domain name or IP address outside the mediator's own network, e.g. the OpenHIM router's", v("CALLBACK_ENDPOINT"), src.Name)}, err
			}
			return checkResult{detail: src.Endpoint}, nil
		}})
	}
	return list
}

// sourceCredentialsFix says which variables to check when the server
// refuses the credentials (refused) or the login cannot be made.
func sourceCredentialsFix(src *source, v func(string) string, refused bool) string {
	switch src.Auth {
	case "basic":
		return fmt.Sprintf("check %s and %s", v("USERNAME"), v("PASSWORD"))
	case "bearer":
		return fmt.Sprintf("check %s: the server refuses the token", v("TOKEN"))
	case "login":
		if !refused {
			return fmt.Sprintf("check %s and that the login is reachable from the mediator", v("LOGIN_URL"))
		}
		return fmt.Sprintf("check %s (the login's user or e-mail: HeyDonto logs in with an e-mail) and %s", v("USERNAME"), v("PASSWORD"))
	case "client-credentials":
		if !refused {
			return fmt.Sprintf("check %s (default: the token_endpoint of <base>/.well-known/smart-configuration) and that it is reachable", v("TOKEN_URL"))
		}
		return fmt.Sprintf("check %s and %s (and %s)", v("CLIENT_ID"), v("CLIENT_SECRET"), v("SCOPE"))
	}
	return fmt.Sprintf("the server wants credentials: set %s (basic, bearer, login or client-credentials) and its variables", v("AUTH"))
}

// checkSourceSubscription lists the source's subscriptions to our callback,
// read only: the server creates or repairs them.
func (m *Mediator) checkSourceSubscription(ctx context.Context, src *source, v func(string) string) (checkResult, error) {
	if !src.ManageSubscription {
		return checkResult{detail: fmt.Sprintf("not managed (%s=off): claims arrive by the catch-up search every %s", v("SUBSCRIPTION"), src.PollInterval)}, nil
	}
	if disabled, err := m.sources.disabled(ctx, src.Name); err == nil && disabled {
		return checkResult{warn: true, detail: "disabled by an operator",
			fix: fmt.Sprintf("mediator subscription renew --source %s re-enables it", src.Name)}, nil
	}
	subs, err := src.Client.FindSubscriptions(ctx, src.Endpoint)
	var ae *fhir.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusForbidden {
		return checkResult{fix: fmt.Sprintf("give the server's user the rights to search, create, update and delete Subscription, or set %s=off (catch-up search only)", v("SUBSCRIPTION"))},
			fmt.Errorf("the user may not search Subscription: %w", err)
	}
	if err != nil {
		return checkResult{}, err
	}
	switch len(subs) {
	case 0:
		return checkResult{warn: true, detail: "none to " + src.Endpoint + " yet", fix: "the server creates it at start"}, nil
	case 1:
	default:
		return checkResult{warn: true, detail: fmt.Sprintf("%d subscriptions to %s", len(subs), src.Endpoint),
			fix: "the server keeps one and deletes the others at its next upkeep"}, nil
	}
	sub := subs[0]
	detail := fmt.Sprintf("%s %s", sub.ID, sub.Status)
	if sub.End != "" {
		detail += ", ends " + sub.End
	}
	switch sub.Status {
	case "error", "off":
		if sub.Error != "" {
			detail += " (" + sub.Error + ")"
		}
		return checkResult{warn: true, detail: detail,
			fix: "the server could not deliver to the callback: check that " + src.Endpoint + " is reachable from it; the mediator repairs the subscription at its next upkeep, and the catch-up search brings the claims meanwhile"}, nil
	case "requested":
		return checkResult{detail: detail + " (the server activates it once it has checked it; HeyDonto's stay requested)"}, nil
	}
	return checkResult{detail: detail}, nil
}

// checkSourceTopic checks the topic of a topic-based dialect against the
// ones the server advertises (docs/upstreams/fhir-subscriptions.md §5,
// trap 2): the configured one must be among them, or, when none is
// configured, the server must advertise exactly one.
func checkSourceTopic(src *source, dialect fhir.Dialect, advertised []string, noMetadata bool, v func(string) string) (checkResult, error) {
	switch {
	case src.Topic != "" && slices.Contains(advertised, src.Topic):
		return checkResult{detail: src.Topic + " (advertised by the server)"}, nil
	case src.Topic != "" && len(advertised) == 0:
		why := "the server advertises no topic"
		if noMetadata {
			why = "the server's CapabilityStatement cannot be read"
		}
		return checkResult{warn: true, detail: fmt.Sprintf("%s is sent as given: %s", src.Topic, why)}, nil
	case src.Topic != "":
		return checkResult{fix: fmt.Sprintf("set %s to one of %s", v("TOPIC"), strings.Join(advertised, ", "))},
			fmt.Errorf("the server does not advertise the topic %s", src.Topic)
	case len(advertised) == 1:
		return checkResult{detail: advertised[0] + " (the one the server advertises)"}, nil
	case len(advertised) == 0:
		return checkResult{fix: fmt.Sprintf("set %s to the canonical URL of the SubscriptionTopic on %s", v("TOPIC"), src.Resource)},
			fmt.Errorf("%s needs a topic and the server advertises none", dialect)
	}
	return checkResult{fix: fmt.Sprintf("set %s to the one on %s", v("TOPIC"), src.Resource)},
		fmt.Errorf("the server advertises several topics: %s", strings.Join(advertised, ", "))
}

// sourceCallbackProblem tells why a FHIR server at base could not call the
// callback endpoint of the source name, or nil. The endpoint must be an
// absolute http(s) URL ending in /mediator/fhir/<name>. A server outside the
// mediator's network (its host a domain name or an address that is not a
// loopback one) cannot reach the mediator's loopback, nor a bare container
// name such as http://mediator:6000: there the callback must pass the same
// URL validator as openIMIS's (docs/upstreams/openimis.md §3.3, trap 4).
func sourceCallbackProblem(endpoint, base, name string) error {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", endpoint)
	}
	if !strings.HasSuffix(strings.TrimSuffix(u.Path, "/"), "/mediator/fhir/"+name) {
		return fmt.Errorf("%s does not end in /mediator/fhir/%s, the callback of this source", endpoint, name)
	}
	b, err := url.Parse(base)
	if err != nil {
		return err
	}
	if inside(b.Hostname()) {
		return nil // a server beside the mediator reaches what it reaches
	}
	if loopback(u.Hostname()) {
		return fmt.Errorf("the server at %s cannot reach %s: that is its own loopback", b.Hostname(), endpoint)
	}
	if err := deliverableEndpoint(endpoint); err != nil {
		return fmt.Errorf("the server at %s cannot reach %s: %w (a bare container name resolves only inside the mediator's network)", b.Hostname(), endpoint, err)
	}
	return nil
}

// inside reports whether host names a machine of the mediator's own
// network: a loopback address, localhost, or a bare (container) name.
func inside(host string) bool {
	return loopback(host) || net.ParseIP(host) == nil && !strings.Contains(host, ".")
}

// loopback reports whether host is localhost or a loopback address.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
