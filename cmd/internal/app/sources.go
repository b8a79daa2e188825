package app

import (
	"cmp"
	"fmt"
	"strings"

	"github.com/cht-openimis/cht-openimis-mediator/config"
	"github.com/cht-openimis/cht-openimis-mediator/fhir"
	"github.com/cht-openimis/cht-openimis-mediator/mediator"
)

// buildSources makes one FHIR client and mediator.Source per FHIR_SOURCES
// name (spec §8). A vendor of auto uses the generic quirks: the vendor's
// paths and login must be known before the first request, so HeyDonto and
// the others whose quirks matter are set with FHIR_<N>_VENDOR.
func buildSources(cfg config.Config, metrics *mediator.Metrics) ([]mediator.Source, error) {
	var out []mediator.Source
	for _, s := range cfg.Sources {
		vendor := fhir.VendorGeneric
		if s.Vendor != "auto" {
			vendor = fhir.Vendor(s.Vendor)
		}
		auth, err := sourceAuth(s, vendor)
		if err != nil {
			return nil, err
		}
		client, err := fhir.New(fhir.Options{
			BaseURL:   s.URL.String(),
			Vendor:    vendor,
			PathStyle: fhir.PathStyle(s.PathStyle),
			Auth:      auth,
			Timeout:   cfg.UpstreamTimeout,
			Transport: metrics.Transport("fhir-"+s.Name, upstreamTransport(cfg.Workers)),
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Var("URL"), err)
		}
		src := mediator.Source{
			Name:               s.Name,
			Client:             client,
			Resource:           s.Resource,
			ClaimCodeSystem:    s.ClaimCodeSystem,
			ManageSubscription: s.Subscription == "manage",
			Criteria:           s.Criteria,
			Content:            s.Content,
			Topic:              s.Topic,
			Auth:               s.Auth,
			Filters:            splitFilters(s.Filter),
			Heartbeat:          s.Heartbeat,
			NotifyTimeout:      s.NotifyTimeout,
			MaxCount:           s.MaxCount,
			PollInterval:       s.PollInterval,
			Search:             s.Search,
		}
		if s.Dialect != "auto" {
			src.Dialect = fhir.Dialect(s.Dialect)
		}
		if s.CallbackEndpoint != nil {
			src.Endpoint = s.CallbackEndpoint.String()
		}
		out = append(out, src)
	}
	return out, nil
}

// splitFilters reads FHIR_<N>_FILTER: filter criteria separated by ";",
// each sent as given (R5 reads them into filterBy entries, fhir.SubscriptionSpec).
func splitFilters(raw string) []string {
	var out []string
	for _, f := range strings.Split(raw, ";") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// sourceAuth is the authenticator FHIR_<N>_AUTH names.
func sourceAuth(s config.Source, vendor fhir.Vendor) (fhir.Authenticator, error) {
	switch s.Auth {
	case "basic":
		return fhir.Basic{Username: s.Username, Password: s.Password.Value()}, nil
	case "bearer":
		return fhir.Bearer{Token: s.Token.Value()}, nil
	case "login":
		q, _ := fhir.QuirksOf(vendor)
		loginURL := fhir.DefaultLoginURL(vendor, s.URL.String())
		if s.LoginURL != nil {
			loginURL = s.LoginURL.String()
		}
		l, err := fhir.NewJSONLogin(fhir.JSONLoginOptions{
			URL: loginURL, UserField: cmp.Or(q.LoginUserField, "username"),
			Username: s.Username, Password: s.Password.Value(), TokenFields: q.TokenFields,
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Var("LOGIN_URL"), err)
		}
		return l, nil
	case "client-credentials":
		opts := fhir.ClientCredentialsOptions{
			BaseURL: s.URL.String(), ClientID: s.ClientID, ClientSecret: s.ClientSecret.Value(),
			Scopes: strings.Fields(s.Scope),
		}
		if s.TokenURL != nil {
			opts.TokenURL = s.TokenURL.String()
		}
		cc, err := fhir.NewClientCredentials(opts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Var("TOKEN_URL"), err)
		}
		return cc, nil
	}
	return fhir.None{}, nil
}
