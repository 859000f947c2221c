package natsq

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Config configures the queue. The zero value with StoreDir set is a
// working embedded queue.
type Config struct {
	// URL of an external NATS JetStream server or cluster
	// ("nats://10.0.0.5:4222,nats://10.0.0.6:4222"). Empty: embedded.
	URL string
	// NATSOptions are extra client options for an external server
	// (credentials, TLS).
	NATSOptions []nats.Option

	// StoreDir is the embedded server's JetStream directory (required when
	// embedded).
	StoreDir string
	// Listen is the embedded server's client address ("127.0.0.1:0" for a
	// random loopback port). Empty: in-process connections only.
	Listen string
	// SyncAlways makes the embedded server fsync every write (default
	// true via Defaults; set NoSync to trade durability for throughput).
	NoSync bool

	// Stream is the JetStream stream name (default PHIX_DELIVERIES); the
	// dead letters live in Stream+"_DLQ".
	Stream string
	// SubjectPrefix is the delivery subject prefix (default
	// phix.deliveries): a delivery to H goes to SubjectPrefix+"."+H.
	SubjectPrefix string
	// DeadLetterPrefix is the dead-letter subject prefix (default
	// phix.deadletter).
	DeadLetterPrefix string
	// Replicas is the stream replica count on a cluster (default 1).
	Replicas int

	// DuplicateWindow is how long a delivery ID is remembered for
	// deduplication (default 1h).
	DuplicateWindow time.Duration
	// MaxAge drops undelivered deliveries older than this (default 30 days).
	MaxAge time.Duration
	// MaxMsgs and MaxBytes bound the stream (0: unlimited). When full,
	// Publish fails rather than dropping older deliveries.
	MaxMsgs  int64
	MaxBytes int64
	// DeadLetterMaxAge is how long dead letters are kept (default 90 days).
	DeadLetterMaxAge time.Duration

	// AckWait is how long a fetched delivery may stay unacknowledged
	// before it is redelivered (default 30s).
	AckWait time.Duration
	// Backoff is the redelivery delay by attempt, for both a Nak without a
	// delay and an ack timeout; the last value repeats. Empty: AckWait
	// for timeouts and 1s for Naks.
	Backoff []time.Duration
	// MaxDeliveries is how many attempts a delivery gets before it moves
	// to the dead letters (default 10).
	MaxDeliveries int
}

func (c Config) withDefaults() (Config, error) {
	if c.URL == "" && c.StoreDir == "" {
		return c, errors.New("natsq: embedded mode needs StoreDir")
	}
	if c.Stream == "" {
		c.Stream = "PHIX_DELIVERIES"
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = "phix.deliveries"
	}
	if c.DeadLetterPrefix == "" {
		c.DeadLetterPrefix = "phix.deadletter"
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = time.Hour
	}
	if c.MaxAge == 0 {
		c.MaxAge = 30 * 24 * time.Hour
	}
	if c.DeadLetterMaxAge == 0 {
		c.DeadLetterMaxAge = 90 * 24 * time.Hour
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.MaxDeliveries == 0 {
		c.MaxDeliveries = 10
	}
	for _, p := range []string{c.SubjectPrefix, c.DeadLetterPrefix} {
		if p == "" || strings.ContainsAny(p, " *>\t\r\n") || strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".") {
			return c, fmt.Errorf("natsq: invalid subject prefix %q", p)
		}
	}
	if c.SubjectPrefix == c.DeadLetterPrefix {
		return c, errors.New("natsq: subject and dead-letter prefixes must differ")
	}
	if c.MaxDeliveries < 1 || c.AckWait < 0 || c.Replicas < 1 {
		return c, errors.New("natsq: MaxDeliveries, AckWait and Replicas must be positive")
	}
	return c, nil
}

// backoff is the redelivery delay after attempt (1-based).
func (c Config) backoff(attempt int) time.Duration {
	if len(c.Backoff) == 0 {
		return time.Second
	}
	if attempt < 1 {
		attempt = 1
	}
	if attempt > len(c.Backoff) {
		return c.Backoff[len(c.Backoff)-1]
	}
	return c.Backoff[attempt-1]
}
