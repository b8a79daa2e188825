package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/cht-openimis/mediator/cht"
	"github.com/cht-openimis/mediator/config"
	"github.com/cht-openimis/mediator/mediator"
	"github.com/cht-openimis/mediator/mediator/store"
	"github.com/cht-openimis/mediator/openimis"
)

// serve wires the configured parts together and serves until ctx ends. When
// ready is not nil it receives the listen address once the port is bound.
func serve(ctx context.Context, cfg config.Config, logOut io.Writer, ready chan<- string) error {
	log := newLogger(cfg, logOut)
	log.Info().Str("version", version).Interface("config", cfg.Summary()).Msg("starting")

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

	oi, err := openimis.New(openimis.Options{
		FHIRURL:  cfg.OpenIMISURL.JoinPath(cfg.OpenIMISFHIRPath).String() + "/",
		Username: cfg.OpenIMISUsername,
		Password: cfg.OpenIMISPassword.Value(),
		Timeout:  cfg.UpstreamTimeout,
	})
	if err != nil {
		return err
	}
	ch, err := cht.New(cht.Options{
		URL:      cfg.CHTURL.String(),
		Username: cfg.CHTUsername,
		Password: cfg.CHTPassword.Value(),
		Timeout:  cfg.UpstreamTimeout,
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

// newLogger builds the zerolog logger: JSON by default, console on request.
func newLogger(cfg config.Config, out io.Writer) zerolog.Logger {
	if cfg.LogFormat == "console" {
		out = zerolog.ConsoleWriter{Out: out, TimeFormat: time.RFC3339}
	}
	level, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil {
		level = zerolog.InfoLevel
	}
	return zerolog.New(out).Level(level).With().Timestamp().Logger()
}
