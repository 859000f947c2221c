// Package siem exports the audit log to a SIEM: RFC 5424 syslog over TLS
// with mutual certificates (RFC 5425 octet-counting framing) and a JSON-lines
// file sink. An Exporter reads the log after a durable per-sink cursor (the
// outbox, in the audit_cursors table), delivers in index order and advances
// the cursor only after the sink confirmed the batch, so nothing is lost while
// a SIEM is down and delivery resumes where it stopped. docs/audit.md explains
// the delivery guarantee of each sink.
package siem

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"phix/audit"
)

// Entry is one event to deliver.
type Entry struct {
	Index int64
	Time  time.Time
	Body  []byte // canonical JSON of the event
}

// Sink receives batches of entries in index order.
type Sink interface {
	// Name identifies the sink's cursor; keep it stable across restarts.
	Name() string
	// Deliver sends the batch. It returns nil only when the sink has the
	// whole batch (see each sink for what "has" means).
	Deliver(ctx context.Context, batch []Entry) error
}

// Source is what the exporter reads: an audit.Backend satisfies it.
type Source interface {
	Events(ctx context.Context, after int64, limit int) ([]audit.Record, error)
	Cursor(ctx context.Context, sink string) (int64, error)
	SetCursor(ctx context.Context, sink string, index int64) error
}

// Exporter moves events from a Source to a Sink.
type Exporter struct {
	Source Source
	Sink   Sink
	// Batch bounds one delivery (default 200).
	Batch int
	// Poll is how long to wait when there is nothing new (default 200ms).
	Poll time.Duration
	// MaxBackoff bounds the wait between failed deliveries (default 30s).
	MaxBackoff time.Duration
	// Logger gets delivery failures (never event content). Default slog.Default().
	Logger *slog.Logger
}

// Step delivers at most one batch after the sink's cursor. It returns the
// number of events delivered (0 when there was nothing to do).
func (e *Exporter) Step(ctx context.Context) (int, error) {
	batch := e.Batch
	if batch <= 0 {
		batch = 200
	}
	cur, err := e.Source.Cursor(ctx, e.Sink.Name())
	if err != nil {
		return 0, fmt.Errorf("siem: read cursor: %w", err)
	}
	recs, err := e.Source.Events(ctx, cur, batch)
	if err != nil {
		return 0, fmt.Errorf("siem: read events: %w", err)
	}
	if len(recs) == 0 {
		return 0, nil
	}
	entries := make([]Entry, 0, len(recs))
	for i, r := range recs {
		if r.Index != cur+1+int64(i) {
			return 0, fmt.Errorf("siem: gap in the log at index %d", cur+1+int64(i))
		}
		if r.Body != nil { // pruned events are skipped: nothing left to send
			entries = append(entries, Entry{Index: r.Index, Time: r.Time, Body: r.Body})
		}
	}
	if len(entries) > 0 {
		if err := e.Sink.Deliver(ctx, entries); err != nil {
			return 0, fmt.Errorf("siem: deliver to %s: %w", e.Sink.Name(), err)
		}
	}
	last := recs[len(recs)-1].Index
	if err := e.Source.SetCursor(ctx, e.Sink.Name(), last); err != nil {
		return 0, fmt.Errorf("siem: advance cursor: %w", err)
	}
	return len(recs), nil
}

// Run delivers until ctx ends, retrying failed deliveries with exponential
// backoff. It returns ctx's error.
func (e *Exporter) Run(ctx context.Context) error {
	poll := e.Poll
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	maxBackoff := e.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = 30 * time.Second
	}
	logger := e.Logger
	if logger == nil {
		logger = slog.Default()
	}
	backoff := 100 * time.Millisecond
	for {
		n, err := e.Step(ctx)
		wait := time.Duration(0)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			logger.Warn("siem: delivery failed; will retry", "sink", e.Sink.Name(), "err", err)
			wait = backoff
			backoff = min(backoff*2, maxBackoff)
		case n == 0:
			wait = poll
			backoff = 100 * time.Millisecond
		default:
			backoff = 100 * time.Millisecond
		}
		if wait > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		} else if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// ErrNotConfirmed: the receiver did not confirm it read the whole batch.
var ErrNotConfirmed = errors.New("siem: delivery not confirmed")
