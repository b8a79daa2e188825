package mediator

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/cht-openimis/cht-openimis-mediator/openhim"
)

// OpenHIM registration states, as /ready reports them.
const (
	openHIMDisabled    = "disabled"
	openHIMRegistering = "registering"
	openHIMRegistered  = "registered"
)

// Runtime configuration keys (configDefs of openhim-mediator.json).
const (
	configLogLevel          = "logLevel"
	configUpstreamTimeout   = "upstreamTimeoutSeconds"
	configClaimPollInterval = "claimPollIntervalSeconds"
)

// openHIMState tracks the registration for /ready.
type openHIMState struct {
	v atomic.Value // string
}

func (s *openHIMState) set(v string) { s.v.Store(v) }

func (s *openHIMState) get() string {
	v, _ := s.v.Load().(string)
	return v
}

// openHIMLoop registers with OpenHIM, retrying with backoff while the core is
// down or refuses, then heartbeats every HeartbeatInterval with the process
// uptime and applies the runtime configuration the core sends. It asks for
// the configuration at start and every ConfigRefresh, since core delivers a
// console change only once (OpenHIM contract trap 6). Nothing here ever
// stops the claim and feedback paths.
func (m *Mediator) openHIMLoop(ctx context.Context) {
	log := m.log.With().Str("component", "openhim").Str("urn", m.opts.Registration.URN).Logger()
	for {
		if !m.registerOpenHIM(ctx, log) {
			return
		}
		if !m.heartbeatOpenHIM(ctx, log) {
			return
		}
		// The core forgot the mediator (404): register again.
		m.openhim.set(openHIMRegistering)
	}
}

// registerOpenHIM registers until it succeeds; false when ctx ends.
func (m *Mediator) registerOpenHIM(ctx context.Context, log zerolog.Logger) bool {
	delay := time.Second
	for attempt := 1; ; attempt++ {
		err := m.opts.OpenHIM.Register(ctx, m.opts.Registration.Doc)
		if err == nil {
			m.openhim.set(openHIMRegistered)
			log.Info().Str("version", m.opts.Registration.Version).Msg("registered with OpenHIM")
			m.checkRegistration(ctx, log)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		ev, msg := log.Warn(), "OpenHIM registration failed; claims and feedback are not affected"
		var ae *openhim.APIError
		switch {
		case errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden):
			// Wrong credentials or a user outside the admin group (OpenHIM
			// trap 9): nothing changes until an operator acts, so say so
			// at every attempt.
			ev, msg = log.Error(), "OpenHIM refused the registration: OPENHIM_USERNAME and OPENHIM_PASSWORD must be those of an OpenHIM user in the admin group; claims and feedback are not affected"
		case attempt > 1:
			ev = log.Debug()
		}
		ev.Err(err).Dur("retry_in", delay).Msg(msg)
		if !sleep(ctx, delay) {
			return false
		}
		delay = min(delay*2, 5*time.Minute)
	}
}

// checkRegistration reads back what core keeps. Core answers 201 to a
// registration whose version is not higher than the one it holds, and keeps
// the old one (OpenHIM contract trap 1): a changed MEDIATOR_URL or document
// without a new version would never reach it. Reading fails quietly: the
// registration itself succeeded.
func (m *Mediator) checkRegistration(ctx context.Context, log zerolog.Logger) {
	held, err := m.opts.OpenHIM.Registration(ctx, m.opts.Registration.URN)
	if err != nil {
		log.Debug().Err(err).Msg("could not read back the OpenHIM registration")
		return
	}
	var sent openhim.Registered
	if err := json.Unmarshal(m.opts.Registration.Doc, &sent); err != nil {
		return
	}
	endpoints := func(r openhim.Registered) []string {
		out := make([]string, len(r.Endpoints))
		for i, e := range r.Endpoints {
			out[i] = e.String()
		}
		slices.Sort(out)
		return out
	}
	if held.Version == sent.Version && slices.Equal(endpoints(held), endpoints(sent)) {
		return
	}
	log.Warn().Str("held_version", held.Version).Strs("held_endpoints", endpoints(held)).
		Str("sent_version", sent.Version).Strs("sent_endpoints", endpoints(sent)).
		Msg("OpenHIM keeps another registration of this mediator: it ignores one whose version is not higher. " +
			"Raise version in openhim-mediator.json, or delete the mediator in the OpenHIM console, to update it")
}

// heartbeatOpenHIM heartbeats until ctx ends (false) or the core no longer
// knows the mediator (true).
func (m *Mediator) heartbeatOpenHIM(ctx context.Context, log zerolog.Logger) bool {
	var lastForced time.Time
	failing := false
	for {
		now := m.opts.Now()
		force := lastForced.IsZero() || now.Sub(lastForced) >= m.opts.ConfigRefresh
		config, err := m.opts.OpenHIM.Heartbeat(ctx, m.opts.Registration.URN, time.Since(m.started), force)
		var ae *openhim.APIError
		switch {
		case ctx.Err() != nil:
			return false
		case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
			log.Warn().Msg("OpenHIM no longer knows this mediator; registering again")
			return true
		case err != nil:
			if !failing {
				log.Warn().Err(err).Msg("OpenHIM heartbeat failed")
			}
			failing = true
		default:
			if failing {
				log.Info().Msg("OpenHIM heartbeat recovered")
			}
			failing = false
			if force {
				lastForced = now
			}
			if config != nil {
				m.applyConfig(log, config)
			}
		}
		if !sleep(ctx, m.opts.HeartbeatInterval) {
			return false
		}
	}
}

// applyConfig applies the runtime settings core sent (the whole config, at
// every periodic request). Unknown keys and bad values are logged and
// skipped; the rest still apply. A setting is logged when its value changes.
// It runs on the heartbeat goroutine only.
func (m *Mediator) applyConfig(log zerolog.Logger, config map[string]any) {
	if m.appliedConfig == nil {
		m.appliedConfig = map[string]any{}
	}
	for key, v := range config {
		changed := !reflect.DeepEqual(m.appliedConfig[key], v)
		switch key {
		case configLogLevel:
			s, _ := v.(string)
			level, err := zerolog.ParseLevel(strings.ToLower(s))
			if err != nil || s == "" || m.opts.LogLevel == nil {
				log.Warn().Str("key", key).Msg("ignoring runtime setting: not a log level")
				continue
			}
			if changed {
				// Said before the new level may silence it.
				log.Info().Str("key", key).Interface("value", v).Msg("applied runtime setting from OpenHIM")
				m.appliedConfig[key] = v
			}
			m.opts.LogLevel.Set(level)
			continue
		case configUpstreamTimeout:
			d, ok := seconds(v, time.Second, 59*time.Second)
			if !ok {
				log.Warn().Str("key", key).Msg("ignoring runtime setting: must be 1 to 59 seconds")
				continue
			}
			m.opts.OpenIMIS.SetTimeout(d)
			m.opts.CHT.SetTimeout(d)
		case configClaimPollInterval:
			d, ok := seconds(v, 0, 24*time.Hour)
			if !ok || d > 0 && d < time.Second {
				log.Warn().Str("key", key).Msg("ignoring runtime setting: must be 0 (off) or 1 to 86400 seconds")
				continue
			}
			m.pollInterval.Store(int64(d))
		default:
			log.Warn().Str("key", key).Msg("ignoring unknown runtime setting")
			continue
		}
		if changed {
			log.Info().Str("key", key).Interface("value", v).Msg("applied runtime setting from OpenHIM")
			m.appliedConfig[key] = v
		}
	}
}

// seconds reads a JSON number of seconds within [lo, hi].
func seconds(v any, lo, hi time.Duration) (time.Duration, bool) {
	f, ok := v.(float64)
	if !ok {
		return 0, false
	}
	d := time.Duration(f * float64(time.Second))
	return d, d >= lo && d <= hi
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// RuntimeConfig is the OpenHIM runtime configuration of a deployment's
// starting values: registered as the config defaults, and changed from the
// OpenHIM console afterwards.
func RuntimeConfig(logLevel string, upstreamTimeout, claimPollInterval time.Duration) map[string]any {
	return map[string]any{
		configLogLevel:          logLevel,
		configUpstreamTimeout:   upstreamTimeout.Seconds(),
		configClaimPollInterval: claimPollInterval.Seconds(),
	}
}
