package app

import (
	"io"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// LogLevel is a log level that can change while the mediator runs (OpenHIM
// runtime configuration sets it).
type LogLevel struct {
	v atomic.Int32
}

// NewLogLevel returns a LogLevel set to l.
func NewLogLevel(l zerolog.Level) *LogLevel {
	ll := &LogLevel{}
	ll.Set(l)
	return ll
}

// Set changes the level.
func (l *LogLevel) Set(level zerolog.Level) { l.v.Store(int32(level)) }

// Get returns the level.
func (l *LogLevel) Get() zerolog.Level { return zerolog.Level(l.v.Load()) }

// NewLogger returns the mediator's logger: JSON lines on w, or a console
// format for people, with a timestamp, gated by level.
func NewLogger(w io.Writer, console bool, level *LogLevel) zerolog.Logger {
	if console {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	return zerolog.New(levelWriter{w: w, level: level}).With().Timestamp().Logger()
}

// levelWriter drops the lines below the current level.
type levelWriter struct {
	w     io.Writer
	level *LogLevel
}

func (lw levelWriter) Write(p []byte) (int, error) { return lw.w.Write(p) }

// WriteLevel implements zerolog.LevelWriter.
func (lw levelWriter) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	if l < lw.level.Get() && l != zerolog.NoLevel {
		return len(p), nil
	}
	return lw.w.Write(p)
}
