package mediator

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/cht-openimis/cht-openimis-mediator/mediator/storetype"
	"github.com/cht-openimis/cht-openimis-mediator/openhim"
)

// OpenHIM registration states, as /ready reports them.
const (
	openHIMDisabled    = "disabled"
	openHIMRegistering = "registering"
	openHIMRegistered  = "registered"
)

// maxUpstreamTimeout is the highest upstream timeout runtime configuration
// may set: under OpenHIM's own 60 s.
const maxUpstreamTimeout = 59 * time.Second

// Runtime configuration keys (configDefs of openhim-mediator.json).
const (
	configLogLevel          = "logLevel"
	configUpstreamTimeout   = "upstreamTimeoutSeconds"
	configClaimPollInterval = "claimPollIntervalSeconds"
)

// settingOpenHIMConfig is the store setting holding, as a JSON object, the
// runtime configuration this mediator last registered with OpenHIM: the
// environment's values at its previous start. Core keeps the config of the
// first registration and returns it at every start (docs/upstreams/openhim.md
// trap 22), so only this record tells a value edited in the console from one
// the mediator registered itself.
const settingOpenHIMConfig = "openhim_registered_config"

// openHIMLink is the mediator's link to OpenHIM: it registers, heartbeats,
// and applies the runtime configuration the core sends.
type openHIMLink struct {
	client       *openhim.Client
	registration openhim.Registration
	// store keeps the runtime configuration last registered
	// (settingOpenHIMConfig).
	store   storetype.Store
	log     zerolog.Logger
	now     func() time.Time
	started time.Time
	// heartbeatEvery is the heartbeat period; configRefresh how often a
	// heartbeat asks for the whole runtime configuration.
	heartbeatEvery, configRefresh time.Duration

	// What runtime configuration changes.
	setLogLevel     func(zerolog.Level)
	setTimeout      func(time.Duration)
	setPollInterval func(time.Duration)

	current atomic.Value // string: the registration state, for /ready
	// heartbeatFailing is true while the latest heartbeat failed, for
	// /metrics.
	heartbeatFailing atomic.Bool
	// applied is the runtime config last applied, by key (run's goroutine
	// only).
	applied map[string]any
	// effective is the runtime configuration in force; baseline what core
	// returned last, by key: a value core returns that differs from
	// baseline was edited in the console meanwhile. Both are nil until the
	// first configuration answer after a registration (run's goroutine
	// only).
	effective, baseline map[string]any
	// previous is the runtime configuration registered at the previous
	// start, read from the store at registration; previousKnown is false
	// without a record (run's goroutine only).
	previous      map[string]any
	previousKnown bool
}

// state returns the registration state.
func (l *openHIMLink) state() string {
	if v, _ := l.current.Load().(string); v != "" {
		return v
	}
	return openHIMRegistering
}

// run registers with OpenHIM, retrying with backoff while the core is down
// or refuses, then heartbeats every heartbeatEvery with the process uptime
// and applies the runtime configuration the core sends. It asks for the
// configuration at start and every configRefresh, since core delivers a
// console change only once (docs/upstreams/openhim.md trap 6). Nothing here
// ever stops the claim and feedback paths. It returns when ctx ends.
func (l *openHIMLink) run(ctx context.Context) {
	for {
		if !l.register(ctx) {
			return
		}
		if !l.heartbeat(ctx) {
			return
		}
		// The core forgot the mediator (404): register again.
		l.current.Store(openHIMRegistering)
	}
}

// register registers until it succeeds; false when ctx ends.
func (l *openHIMLink) register(ctx context.Context) bool {
	log := l.log
	delay := time.Second
	for attempt := 1; ; attempt++ {
		err := l.client.Register(ctx, l.registration.Doc)
		if err == nil {
			l.current.Store(openHIMRegistered)
			l.effective, l.baseline = nil, nil // decided again at the next configuration answer
			l.recordRegistration(ctx)
			log.Info().Str("version", l.registration.Version).Msg("registered with OpenHIM")
			l.checkRegistration(ctx)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		ev, msg := log.Warn(), "OpenHIM registration failed; claims and feedback are not affected"
		var ae *openhim.APIError
		switch {
		case errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden):
			// Wrong credentials or a user outside the admin group (docs/upstreams/openhim.md
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
// the old one (docs/upstreams/openhim.md trap 1): a changed MEDIATOR_URL or document
// without a new version would never reach it. Reading fails quietly: the
// registration itself succeeded.
func (l *openHIMLink) checkRegistration(ctx context.Context) {
	log := l.log
	held, err := l.client.Registration(ctx, l.registration.URN)
	if err != nil {
		log.Debug().Err(err).Msg("could not read back the OpenHIM registration")
		return
	}
	var sent openhim.Registered
	if err := json.Unmarshal(l.registration.Doc, &sent); err != nil {
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

// heartbeat heartbeats until ctx ends (false) or the core no longer knows
// the mediator (true).
func (l *openHIMLink) heartbeat(ctx context.Context) bool {
	log := l.log
	var lastForced time.Time
	failing := false
	for {
		now := l.now()
		force := lastForced.IsZero() || now.Sub(lastForced) >= l.configRefresh
		config, err := l.client.Heartbeat(ctx, l.registration.URN, time.Since(l.started), force)
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
			l.heartbeatFailing.Store(true)
		default:
			if failing {
				log.Info().Msg("OpenHIM heartbeat recovered")
			}
			failing = false
			l.heartbeatFailing.Store(false)
			if force {
				lastForced = now
			}
			if config != nil {
				l.applyConfig(l.reconcile(ctx, config))
			}
		}
		if !sleep(ctx, l.heartbeatEvery) {
			return false
		}
	}
}

// reconcile decides which runtime configuration is in force, given the
// whole configuration core returned (got), and returns it.
//
// Core returns the config it stored at the first registration, edited or
// not (docs/upstreams/openhim.md trap 22). At the first answer after a
// registration, for each setting of the environment (the registration's
// config): a value core holds that equals what this mediator registered at
// its previous start was not edited in the console, and the environment's
// value wins; a value that differs was edited in the console and wins,
// unless the environment's value changed since that previous start (the
// operator changed the variable and restarted: the environment wins).
// Without a record of the previous registration (a first start, or one
// after an upgrade) a value that differs from the environment is taken as
// a console edit. Afterwards, a value that changes in core is a console
// edit and wins. When core holds other values than those in force, the
// mediator writes them back (PUT /mediators/<urn>/config), so that the
// console shows what is in force; a failed write is tried again at the
// next configuration answer.
func (l *openHIMLink) reconcile(ctx context.Context, got map[string]any) map[string]any {
	if l.baseline == nil {
		l.effective = l.decide(got)
	} else {
		for k, v := range got {
			if !reflect.DeepEqual(v, l.baseline[k]) {
				l.effective[k] = v // edited in the console while running
				l.log.Info().Str("key", k).Interface("console", v).Msg("runtime setting edited in the OpenHIM console")
			}
		}
	}
	l.baseline = maps.Clone(got)
	stale := false
	for k, v := range l.effective {
		stale = stale || !reflect.DeepEqual(got[k], v)
	}
	if stale {
		if err := l.client.SetConfig(ctx, l.registration.URN, maps.Clone(l.effective)); err != nil {
			l.log.Warn().Err(err).Msg("could not write the runtime configuration in force to OpenHIM; trying again when OpenHIM next sends the configuration")
		} else {
			l.baseline = maps.Clone(l.effective)
		}
	}
	return maps.Clone(l.effective)
}

// recordRegistration reads the runtime configuration registered at the
// previous start (for decide) and records the one just registered: the
// environment's. The store is written even while ctx ends, so that a
// registration is never left unrecorded by a shutdown.
func (l *openHIMLink) recordRegistration(ctx context.Context) {
	log := l.log
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	l.previous, l.previousKnown = nil, false
	raw, known, err := l.store.Setting(sctx, settingOpenHIMConfig)
	if err != nil {
		log.Warn().Err(err).Msg("could not read the runtime configuration last registered with OpenHIM")
	}
	if err == nil && known && json.Unmarshal([]byte(raw), &l.previous) == nil {
		l.previousKnown = true
	}
	b, err := json.Marshal(l.envConfig())
	if err == nil {
		err = l.store.SetSetting(sctx, settingOpenHIMConfig, string(b))
	}
	if err != nil {
		log.Warn().Err(err).Msg("could not record the runtime configuration registered with OpenHIM")
	}
}

// decide is reconcile's decision at the first answer after a registration:
// see reconcile.
func (l *openHIMLink) decide(got map[string]any) map[string]any {
	log := l.log
	env := l.envConfig()
	known, prev := l.previousKnown, l.previous
	out := maps.Clone(got)
	for _, k := range slices.Sorted(maps.Keys(env)) {
		ev := env[k]
		gv, inCore := got[k]
		pv, recorded := prev[k]
		switch {
		case !inCore || reflect.DeepEqual(gv, ev):
			out[k] = ev
		case !known || !recorded:
			out[k] = gv
			log.Warn().Str("key", k).Interface("openhim", gv).Interface("environment", ev).
				Msg("OpenHIM holds another runtime setting than the environment and this mediator has no record of registering it: taking it as a console edit, which wins; change the variable again, or the value in the console, to change it")
		case reflect.DeepEqual(gv, pv):
			out[k] = ev
			log.Info().Str("key", k).Interface("openhim", gv).Interface("environment", ev).
				Msg("runtime setting from the environment replaces the value OpenHIM kept from an earlier registration")
		case !reflect.DeepEqual(ev, pv):
			out[k] = ev
			log.Info().Str("key", k).Interface("openhim", gv).Interface("environment", ev).
				Msg("runtime setting changed in the environment since the last start: it replaces the console's value")
		default:
			out[k] = gv
			log.Info().Str("key", k).Interface("openhim", gv).Interface("environment", ev).
				Msg("runtime setting edited in the OpenHIM console: it wins over the environment")
		}
	}
	return out
}

// envConfig is the runtime configuration of the environment: the
// registration's config, as JSON values.
func (l *openHIMLink) envConfig() map[string]any {
	var doc struct {
		Config map[string]any `json:"config"`
	}
	_ = json.Unmarshal(l.registration.Doc, &doc)
	if doc.Config == nil {
		doc.Config = map[string]any{}
	}
	return doc.Config
}

// applyConfig applies the runtime settings core sent (the whole config, at
// every periodic request). Unknown keys and bad values are logged and
// skipped; the rest still apply. A setting is logged when its value changes.
// It runs on the heartbeat goroutine only.
func (l *openHIMLink) applyConfig(config map[string]any) {
	log := l.log
	if l.applied == nil {
		l.applied = map[string]any{}
	}
	for key, v := range config {
		changed := !reflect.DeepEqual(l.applied[key], v)
		switch key {
		case configLogLevel:
			s, _ := v.(string)
			level, err := zerolog.ParseLevel(strings.ToLower(s))
			if err != nil || s == "" || l.setLogLevel == nil {
				log.Warn().Str("key", key).Msg("ignoring runtime setting: not a log level")
				continue
			}
			if changed {
				// Said before the new level may silence it.
				log.Info().Str("key", key).Interface("value", v).Msg("applied runtime setting from OpenHIM")
				l.applied[key] = v
			}
			l.setLogLevel(level)
			continue
		case configUpstreamTimeout:
			d, ok := seconds(v, time.Second, maxUpstreamTimeout)
			if !ok {
				log.Warn().Str("key", key).Msg("ignoring runtime setting: must be 1 to 59 seconds")
				continue
			}
			l.setTimeout(d)
		case configClaimPollInterval:
			d, ok := seconds(v, 0, 24*time.Hour)
			if !ok || d > 0 && d < time.Second {
				log.Warn().Str("key", key).Msg("ignoring runtime setting: must be 0 (off) or 1 to 86400 seconds")
				continue
			}
			l.setPollInterval(d)
		default:
			log.Warn().Str("key", key).Msg("ignoring unknown runtime setting")
			continue
		}
		if changed {
			log.Info().Str("key", key).Interface("value", v).Msg("applied runtime setting from OpenHIM")
			l.applied[key] = v
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
