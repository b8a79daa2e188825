// Package app wires the configured parts of the mediator together. The
// mediator command (serve, check, subscription) and the sandbox all build the
// mediator through it, so the sandbox runs exactly what a deployment runs.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/cht-openimis/cht-openimis-mediator"
	"github.com/cht-openimis/cht-openimis-mediator/cht"
	"github.com/cht-openimis/cht-openimis-mediator/config"
	"github.com/cht-openimis/cht-openimis-mediator/mediator"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/store"
	"github.com/cht-openimis/cht-openimis-mediator/mediator/storetype"
	"github.com/cht-openimis/cht-openimis-mediator/openhim"
	"github.com/cht-openimis/cht-openimis-mediator/openimis"
)

// App is a wired, not yet started mediator.
type App struct {
	Log      zerolog.Logger
	Mediator *mediator.Mediator
	Store    storetype.Store
}

// Close releases the store.
func (a *App) Close() error { return a.Store.Close() }

// Build wires the configured parts: logger, store, clients and mediator. It
// contacts no upstream system. With waiting set, a database that does not
// answer yet (PostgreSQL starting beside the mediator) is waited for, with
// backoff, and waiting receives each failed attempt; without it, or for any
// other store error, Build fails at once.
func Build(ctx context.Context, cfg config.Config, logOut io.Writer, waiting func(error)) (*App, error) {
	level, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil {
		return nil, fmt.Errorf("LOG_LEVEL: %w", err)
	}
	logLevel := NewLogLevel(level)
	log := NewLogger(logOut, cfg.LogFormat == "console", logLevel)

	registration, err := openhim.PrepareRegistration(chtopenimis.OpenHIMMediatorJSON, cfg.MediatorURL,
		mediator.RuntimeConfig(cfg.LogLevel, cfg.UpstreamTimeout, cfg.ClaimPollInterval))
	if err != nil {
		return nil, err
	}
	metrics := mediator.NewMetrics()
	limits := map[string]*mediator.UpstreamLimit{
		"openimis": mediator.NewUpstreamLimit(cfg.Workers),
		"cht":      mediator.NewUpstreamLimit(cfg.Workers),
	}
	var him *openhim.Client
	if cfg.OpenHIMAPIURL != nil {
		him, err = openhim.New(openhim.Options{
			APIURL:    cfg.OpenHIMAPIURL.String(),
			Username:  cfg.OpenHIMUsername,
			Password:  cfg.OpenHIMPassword.Value(),
			Transport: metrics.Transport("openhim", openhim.NewTransport(cfg.OpenHIMTrustSelfSigned)),
		})
		if err != nil {
			return nil, err
		}
	}
	oi, err := openimis.New(openimis.Options{
		Transport: metrics.Transport("openimis", limits["openimis"].Transport(upstreamTransport(cfg.Workers))),
		FHIRURL:   fhirURL(cfg),
		Username:  cfg.OpenIMISUsername,
		Password:  cfg.OpenIMISPassword.Value(),
		Timeout:   cfg.UpstreamTimeout,
	})
	if err != nil {
		return nil, err
	}
	ch, err := cht.New(cht.Options{
		Transport: metrics.Transport("cht", limits["cht"].Transport(upstreamTransport(cfg.Workers))),
		URL:       cfg.CHTURL.String(),
		Username:  cfg.CHTUsername,
		Password:  cfg.CHTPassword.Value(),
		Timeout:   cfg.UpstreamTimeout,
	})
	if err != nil {
		return nil, err
	}
	sources, err := buildSources(cfg, metrics)
	if err != nil {
		return nil, err
	}
	var st storetype.Store
	if waiting == nil {
		st, err = store.Open(ctx, cfg.DatabaseURL)
	} else {
		st, err = store.OpenWaiting(ctx, cfg.DatabaseURL, func(err error, retryIn time.Duration) {
			waiting(err)
			log.Warn().Err(err).Dur("retry_in", retryIn).Msg("store unreachable; waiting for it (not ready meanwhile)")
		})
	}
	if err != nil {
		return nil, err
	}
	m, err := mediator.New(mediator.Options{
		OpenIMIS:         oi,
		CHT:              ch,
		Store:            st,
		Logger:           log,
		Username:         cfg.MediatorUsername,
		Password:         cfg.MediatorPassword.Value(),
		RouteUsername:    cfg.OpenHIMRouteUsername,
		RoutePassword:    cfg.OpenHIMRoutePassword.Value(),
		CallbackEndpoint: cfg.CallbackEndpoint.String(),
		PlaceID:          cfg.CHTPlaceID,
		ClaimForm:        cfg.CHTClaimForm,
		FeedbackResource: cfg.FeedbackResource,
		Calendar:         cfg.OpenIMISCalendar,
		SubscriptionEnd:  cfg.SubscriptionEnd.Time,
		UpstreamTimeout:  cfg.UpstreamTimeout,
		Workers:          cfg.Workers,

		SetLogLevel:       logLevel.Set,
		ClaimPollInterval: cfg.ClaimPollInterval,
		CatchupLookback:   cfg.ClaimBackfill,
		OpenHIM:           him,
		Registration:      registration,
		Metrics:           metrics,
		UpstreamLimits:    limits,
		Sources:           sources,
	})
	if err != nil {
		return nil, errors.Join(err, st.Close())
	}
	return &App{Log: log, Mediator: m, Store: st}, nil
}

// fhirURL is the absolute URL of openIMIS's FHIR API, with one trailing
// slash whether OPENIMIS_FHIR_PATH has one or not.
func fhirURL(cfg config.Config) string {
	return strings.TrimSuffix(cfg.OpenIMISURL.JoinPath(cfg.OpenIMISFHIRPath).String(), "/") + "/"
}

// Serve builds the mediator and serves until ctx ends, logging to logOut.
// When ready is not nil it receives the listen address once the port is
// bound and the queue runs. While the store is unreachable at start, the
// port already answers: /health 200, everything else 503 with the reason.
func Serve(ctx context.Context, cfg config.Config, version string, logOut io.Writer, ready chan<- string) error {
	reg, err := openhim.PrepareRegistration(chtopenimis.OpenHIMMediatorJSON, nil, nil)
	if err != nil {
		return err
	}
	srv, err := mediator.Listen(net.JoinHostPort(cfg.ListenAddress, strconv.Itoa(cfg.Port)), reg.URN, cfg.OpenHIMAPIURL != nil)
	if err != nil {
		if cfg.ListenAddress != "" {
			return fmt.Errorf("listen on LISTEN_ADDRESS %s, PORT %d: %w", cfg.ListenAddress, cfg.Port, err)
		}
		return fmt.Errorf("listen on PORT %d: %w", cfg.Port, err)
	}
	defer srv.Close()
	if err := cfg.CheckServe(time.Now()); err != nil {
		return err
	}
	a, err := Build(ctx, cfg, logOut, srv.StoreUnreachable)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Cause(ctx)) {
			return nil // stopped while waiting for the store
		}
		return err
	}
	defer a.Close()
	log, m := a.Log, a.Mediator
	log.Info().Str("version", version).Interface("config", cfg.Summary()).Msg("starting")
	if cfg.OpenHIMTrustSelfSigned && cfg.OpenHIMAPIURL != nil {
		log.Warn().Msg("OPENHIM_TRUST_SELF_SIGNED is true: the OpenHIM core's TLS certificate is not verified")
	}
	if err := m.Start(ctx); err != nil {
		return err
	}
	log.Info().Str("addr", srv.Addr().String()).Msg("serving")
	if ready != nil {
		ready <- srv.Addr().String()
	}
	serveErr := srv.Serve(ctx, m) // closes the socket: new connections are refused while jobs stop

	log.Info().Msg("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	if err := m.Stop(sctx); err != nil {
		log.Warn().Err(err).Msg("jobs still running at shutdown were released; they resume after a restart")
	}
	log.Info().Msg("stopped")
	return serveErr
}

// upstreamTransport is the connection pool toward one upstream. Every worker
// keeps its connection between jobs: the default pool keeps two idle
// connections a host, so that more workers would open (and leave in
// TIME_WAIT) a connection for nearly every request.
func upstreamTransport(workers int) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = workers + 8 // the periodic jobs and admin calls too
	t.MaxIdleConns = 2 * t.MaxIdleConnsPerHost
	return t
}
