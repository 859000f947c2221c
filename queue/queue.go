// Package queue is the durable delivery queue of the transfer coordinator:
// "transfer X is ready for hospital H". The Queue interface lives here with
// its consumer; the backend is queue/natsq (NATS JetStream, embedded
// in-process or an external cluster) and queue/queuetest is the contract
// suite.
//
// Delivery is at least once. Every delivery carries an idempotency key (its
// ID); publishing the same ID twice within the duplicate window stores it
// once, and a consumer that records the IDs it has processed gets exactly-once
// processing.
package queue

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Delivery is one notification for a receiving hospital. It carries
// identifiers only, never PHI.
type Delivery struct {
	// ID is the idempotency key and deduplication id, unique per delivery.
	ID string
	// Receiver is the receiving hospital's id.
	Receiver string
	// Transfer is the transfer id.
	Transfer string
	// Body is an optional small opaque payload (no PHI).
	Body []byte
}

// Message is a fetched delivery that must be acknowledged.
type Message interface {
	// Delivery is the delivery.
	Delivery() Delivery
	// Attempt is the delivery attempt, starting at 1.
	Attempt() int
	// Ack marks the delivery done; it will not be delivered again.
	Ack(ctx context.Context) error
	// Nak asks for redelivery after delay (0: the configured backoff for
	// this attempt).
	Nak(ctx context.Context, delay time.Duration) error
	// InProgress extends the acknowledgement deadline.
	InProgress(ctx context.Context) error
}

// Stats counts a receiver's deliveries.
type Stats struct {
	// Waiting is the number of deliveries not yet fetched.
	Waiting uint64
	// InFlight is the number fetched but not yet acknowledged.
	InFlight int
	// DeadLetters is the number moved to the dead-letter subject.
	DeadLetters uint64
}

// Queue is a durable delivery queue.
type Queue interface {
	// Publish stores a delivery. Publishing an ID again within the duplicate
	// window is a no-op that succeeds.
	Publish(ctx context.Context, d Delivery) error
	// Fetch waits up to wait for deliveries to receiver and returns at most
	// max of them, in publish order for first attempts; an empty result is
	// not an error. Deliveries that exceeded the maximum attempts are moved
	// to the dead letters instead of being returned.
	Fetch(ctx context.Context, receiver string, max int, wait time.Duration) ([]Message, error)
	// Pending lists the deliveries to receiver that are not yet
	// acknowledged (waiting or in flight), oldest first, at most limit.
	Pending(ctx context.Context, receiver string, limit int) ([]Delivery, error)
	// Stats counts receiver's deliveries.
	Stats(ctx context.Context, receiver string) (Stats, error)
	// DeadLetters lists receiver's dead-lettered deliveries, oldest first,
	// at most limit.
	DeadLetters(ctx context.Context, receiver string, limit int) ([]Delivery, error)
	// Close releases the connection (and stops an embedded server).
	Close() error
}

// Errors with stable codes.
var (
	ErrInvalid     = errors.New("QUEUE-001 invalid delivery")
	ErrUnavailable = errors.New("QUEUE-002 queue unavailable")
	ErrClosed      = errors.New("QUEUE-003 queue closed")
)

// ValidID checks a hospital, transfer or delivery id: 1–64 bytes of
// [A-Za-z0-9_-] (safe as a NATS subject token and consumer name).
func ValidID(kind, id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("%w: %s id length %d", ErrInvalid, kind, len(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %s id has a disallowed byte at %d", ErrInvalid, kind, i)
		}
	}
	return nil
}

// Validate checks a delivery before publishing.
func (d Delivery) Validate() error {
	if err := ValidID("delivery", d.ID); err != nil {
		return err
	}
	if err := ValidID("receiver", d.Receiver); err != nil {
		return err
	}
	if err := ValidID("transfer", d.Transfer); err != nil {
		return err
	}
	if len(d.Body) > MaxBody {
		return fmt.Errorf("%w: body of %d bytes exceeds %d", ErrInvalid, len(d.Body), MaxBody)
	}
	return nil
}

// MaxBody bounds a delivery's body.
const MaxBody = 16 << 10
