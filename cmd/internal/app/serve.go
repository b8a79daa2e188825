// Package app wires the configured parts of the mediator together. The
// mediator command and the sandbox both start the mediator through it, so
// the sandbox runs exactly what a deployment runs.
package app

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	chtopenimis "github.com/cht-openimis/mediator"
	"github.com/cht-openimis/mediator/cht"
	"github.com/cht-openimis/mediator/config"
	"github.com/cht-openimis/mediator/mediator"
	"github.com/cht-openimis/mediator/mediator/openhim"
	"github.com/cht-openimis/mediator/mediator/store"
	"github.com/cht-openimis/mediator/openimis"
)

// Serve wires the configured parts together and serves until ctx ends,
// logging to logOut. When ready is not nil it receives the listen address
// once the port is bound and the queue runs.
func Serve(ctx context.Context, cfg config.Config, version string, logOut io.Writer, ready chan<- string) error {
	level, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil {
		return fmt.Errorf("LOG_LEVEL: %w", err)
	}
	logLevel := mediator.NewLogLevel(level)
	log := mediator.NewLogger(logOut, cfg.LogFormat == "console", logLevel)
	log.Info().Str("version", version).Interface("config", cfg.Summary()).Msg("starting")

	registration, err := openhim.PrepareRegistration(chtopenimis.OpenHIMMediatorJSON, cfg.MediatorURL,
		mediator.RuntimeConfig(cfg.LogLevel, cfg.UpstreamTimeout, cfg.ClaimPollInterval))
	if err != nil {
		return err
	}
	var him *openhim.Client
	if cfg.OpenHIMAPIURL != nil {
		him, err = openhim.New(openhim.Options{
			APIURL:          cfg.OpenHIMAPIURL.String(),
			Username:        cfg.OpenHIMUsername,
			Password:        cfg.OpenHIMPassword.Value(),
			TrustSelfSigned: cfg.OpenHIMTrustSelfSigned,
		})
		if err != nil {
			return err
		}
		if cfg.OpenHIMTrustSelfSigned {
			log.Warn().Msg("OPENHIM_TRUST_SELF_SIGNED is true: the OpenHIM core's TLS certificate is not verified")
		}
	}

	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(cfg.Port)))
	if err != nil {
		return fmt.Errorf("listen on PORT %d: %w", cfg.Port, err)
	}
	defer ln.Close()

	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer st.Close()

	metrics := mediator.NewMetrics()
	oi, err := openimis.New(openimis.Options{
		Transport: metrics.Transport("openimis", nil),
		FHIRURL:   cfg.OpenIMISURL.JoinPath(cfg.OpenIMISFHIRPath).String() + "/",
		Username:  cfg.OpenIMISUsername,
		Password:  cfg.OpenIMISPassword.Value(),
		Timeout:   cfg.UpstreamTimeout,
	})
	if err != nil {
		return err
	}
	ch, err := cht.New(cht.Options{
		Transport: metrics.Transport("cht", nil),
		URL:       cfg.CHTURL.String(),
		Username:  cfg.CHTUsername,
		Password:  cfg.CHTPassword.Value(),
		Timeout:   cfg.UpstreamTimeout,
	})
	if err != nil {
		return err
	}
	m, err := mediator.New(mediator.Options{
		OpenIMIS:         oi,
		CHT:              ch,
		Store:            st,
		Logger:           log,
		Username:         cfg.MediatorUsername,
		Password:         cfg.MediatorPassword.Value(),
		CallbackEndpoint: cfg.CallbackEndpoint.String(),
		PlaceID:          cfg.CHTPlaceID,
		ClaimForm:        cfg.CHTClaimForm,
		FeedbackResource: cfg.FeedbackResource,
		SubscriptionEnd:  cfg.SubscriptionEnd.Time,
		UpstreamTimeout:  cfg.UpstreamTimeout,
		Workers:          cfg.Workers,

		LogLevel:          logLevel,
		ClaimPollInterval: cfg.ClaimPollInterval,
		OpenHIM:           him,
		Registration:      registration,
		Metrics:           metrics,
	})
	if err != nil {
		return err
	}
	if err := m.Start(ctx); err != nil {
		return err
	}
	log.Info().Str("addr", ln.Addr().String()).Msg("serving")
	if ready != nil {
		ready <- ln.Addr().String()
	}
	serveErr := m.Serve(ctx, ln)

	log.Info().Msg("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	if err := m.Stop(sctx); err != nil {
		log.Warn().Err(err).Msg("jobs still running at shutdown were released; they resume after a restart")
	}
	log.Info().Msg("stopped")
	return serveErr
}
