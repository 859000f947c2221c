// Package queuetest is the contract suite every queue.Queue backend passes.
package queuetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"phix/queue"
)

// Options are the queue settings a subtest needs; the environment applies
// them to the queues it opens.
type Options struct {
	AckWait       time.Duration
	MaxDeliveries int
	Backoff       []time.Duration
}

// Env is one isolated queue deployment (its own store or stream).
type Env interface {
	// Open opens a queue on the environment's durable state; opening again
	// after closing sees the same deliveries. The environment closes what it
	// opened when the test ends.
	Open(t *testing.T) queue.Queue
}

// LooseCounter is implemented by environments whose server may report a
// redelivery with the count of the delivery before it. Seen once in CI
// against the machine's nats-server 2.9: a message fetched and not
// acknowledged came back as attempt 1 again (older servers have known
// NumDelivered defects, e.g. nats-server issue 5346). Attempts then must
// only never go down; elsewhere each must be exactly one more. A count
// that lags costs one extra retry before the dead letters, no loss.
type LooseCounter interface {
	LooseDeliveryCount() bool
}

func looseCounts(e Env) bool {
	l, ok := e.(LooseCounter)
	return ok && l.LooseDeliveryCount()
}

// Partitioner is implemented by environments whose queues reach the server
// through a link the test can cut and restore.
type Partitioner interface {
	Cut()
	Restore()
}

// Run runs the contract suite.
func Run(t *testing.T, newEnv func(t *testing.T, o Options) Env) {
	def := Options{AckWait: 30 * time.Second, MaxDeliveries: 5}
	tests := []struct {
		name string
		o    Options
		fn   func(t *testing.T, e Env)
	}{
		{"PublishFetchAck", def, testPublishFetchAck},
		// The second attempt's ack wait (2 s) outlasts a slow fetch on a
		// loaded machine, so the redelivery seen is the second one; the
		// nak then redelivers at once.
		{"RedeliveryWithoutAck", Options{AckWait: 500 * time.Millisecond, MaxDeliveries: 5, Backoff: []time.Duration{500 * time.Millisecond, 2 * time.Second}}, testRedelivery},
		{"DeadLetter", Options{AckWait: 30 * time.Second, MaxDeliveries: 2, Backoff: []time.Duration{50 * time.Millisecond}}, testDeadLetter},
		{"Dedup", def, testDedup},
		{"OrderPerReceiver", def, testOrder},
		{"ReceiverIsolation", def, testIsolation},
		{"PersistsAcrossRestart", def, testRestart},
		{"InvalidInput", def, testInvalid},
		{"ReconnectExactlyOnce", Options{AckWait: time.Second, MaxDeliveries: 1000}, testReconnect},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newEnv(t, tc.o)) })
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func dlv(rcv string, i int) queue.Delivery {
	return queue.Delivery{ID: fmt.Sprintf("%s-d%04d", rcv, i), Receiver: rcv, Transfer: fmt.Sprintf("tr%d", i), Body: []byte(fmt.Sprintf("file-%d", i))}
}

func publish(t *testing.T, q queue.Queue, ds ...queue.Delivery) {
	t.Helper()
	for _, d := range ds {
		if err := q.Publish(ctx(t), d); err != nil {
			t.Fatalf("Publish(%s): %v", d.ID, err)
		}
	}
}

// fetchN fetches until it has n messages (or a bounded number of tries).
func fetchN(t *testing.T, q queue.Queue, rcv string, n int) []queue.Message {
	t.Helper()
	var out []queue.Message
	for tries := 0; len(out) < n && tries < 40; tries++ {
		ms, err := q.Fetch(ctx(t), rcv, n-len(out), 500*time.Millisecond)
		if err != nil {
			t.Fatalf("Fetch(%s): %v", rcv, err)
		}
		out = append(out, ms...)
	}
	if len(out) != n {
		t.Fatalf("fetched %d messages for %s, want %d", len(out), rcv, n)
	}
	return out
}

func ids(ms []queue.Message) []string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Delivery().ID)
	}
	return s
}

func ackAll(t *testing.T, ms []queue.Message) {
	t.Helper()
	for _, m := range ms {
		if err := m.Ack(ctx(t)); err != nil {
			t.Fatalf("Ack(%s): %v", m.Delivery().ID, err)
		}
	}
}

func expectEmpty(t *testing.T, q queue.Queue, rcv string) {
	t.Helper()
	ms, err := q.Fetch(ctx(t), rcv, 10, 300*time.Millisecond)
	if err != nil || len(ms) != 0 {
		t.Fatalf("Fetch(%s) = %v, %v; want nothing", rcv, ids(ms), err)
	}
}

func testPublishFetchAck(t *testing.T, e Env) {
	q := e.Open(t)
	publish(t, q, dlv("H1", 1), dlv("H1", 2), dlv("H1", 3))
	if st, err := q.Stats(ctx(t), "H1"); err != nil || st.Waiting != 3 {
		t.Fatalf("Stats before fetch = %+v, %v", st, err)
	}
	if p, err := q.Pending(ctx(t), "H1", 0); err != nil || len(p) != 3 || p[0].ID != "H1-d0001" {
		t.Fatalf("Pending = %+v, %v", p, err)
	}
	ms := fetchN(t, q, "H1", 3)
	for i, m := range ms {
		want := dlv("H1", i+1)
		got := m.Delivery()
		if got.ID != want.ID || got.Receiver != "H1" || got.Transfer != want.Transfer || string(got.Body) != string(want.Body) || m.Attempt() != 1 {
			t.Fatalf("message %d = %+v attempt %d, want %+v", i, got, m.Attempt(), want)
		}
	}
	if st, _ := q.Stats(ctx(t), "H1"); st.InFlight != 3 || st.Waiting != 0 {
		t.Fatalf("Stats in flight = %+v", st)
	}
	ackAll(t, ms)
	if p, err := q.Pending(ctx(t), "H1", 0); err != nil || len(p) != 0 {
		t.Fatalf("Pending after ack = %+v, %v", p, err)
	}
	expectEmpty(t, q, "H1")
}

func testRedelivery(t *testing.T, e Env) {
	q := e.Open(t)
	publish(t, q, dlv("H1", 1))
	first := fetchN(t, q, "H1", 1)[0]
	if first.Attempt() != 1 {
		t.Fatalf("attempt = %d", first.Attempt())
	}
	// No ack: the ack wait expires and it comes back.
	loose := looseCounts(e)
	again := fetchN(t, q, "H1", 1)[0]
	if again.Delivery().ID != first.Delivery().ID || (again.Attempt() != 2 && !(loose && again.Attempt() == 1)) {
		t.Fatalf("redelivered %s attempt %d", again.Delivery().ID, again.Attempt())
	}
	// An explicit nak with the configured backoff.
	if err := again.Nak(ctx(t), 0); err != nil {
		t.Fatal(err)
	}
	third := fetchN(t, q, "H1", 1)[0]
	if third.Attempt() != again.Attempt()+1 && !(loose && third.Attempt() >= again.Attempt()) {
		t.Fatalf("attempt after nak = %d (the one before: %d)", third.Attempt(), again.Attempt())
	}
	if err := third.InProgress(ctx(t)); err != nil {
		t.Fatal(err)
	}
	ackAll(t, []queue.Message{third})
	expectEmpty(t, q, "H1")
}

func testDeadLetter(t *testing.T, e Env) {
	q := e.Open(t)
	publish(t, q, dlv("H1", 1), dlv("H1", 2))
	ms := fetchN(t, q, "H1", 2)
	ackAll(t, ms[1:])
	m := ms[0]
	if err := m.Nak(ctx(t), 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	m = fetchN(t, q, "H1", 1)[0]
	if m.Attempt() != 2 {
		t.Fatalf("attempt %d", m.Attempt())
	}
	if err := m.Nak(ctx(t), 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// The third attempt exceeds MaxDeliveries=2: it is dead-lettered, not returned.
	var dl []queue.Delivery
	for tries := 0; len(dl) == 0 && tries < 20; tries++ {
		got, err := q.Fetch(ctx(t), "H1", 10, 300*time.Millisecond)
		if err != nil || len(got) != 0 {
			t.Fatalf("Fetch past max deliveries = %v, %v", ids(got), err)
		}
		if dl, err = q.DeadLetters(ctx(t), "H1", 0); err != nil {
			t.Fatal(err)
		}
	}
	if len(dl) != 1 || dl[0].ID != "H1-d0001" || dl[0].Transfer != "tr1" {
		t.Fatalf("DeadLetters = %+v", dl)
	}
	// The termination of the original is asynchronous: poll, bounded.
	var st queue.Stats
	var err error
	for tries := 0; tries < 50; tries++ {
		if st, err = q.Stats(ctx(t), "H1"); err == nil && st.InFlight == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || st.DeadLetters != 1 || st.InFlight != 0 || st.Waiting != 0 {
		t.Fatalf("Stats = %+v, %v", st, err)
	}
	if p, _ := q.Pending(ctx(t), "H1", 0); len(p) != 0 {
		t.Fatalf("dead letter still pending: %+v", p)
	}
}

func testDedup(t *testing.T, e Env) {
	q := e.Open(t)
	d := dlv("H1", 1)
	publish(t, q, d, d)
	d2 := d
	d2.Body = []byte("different body, same id")
	publish(t, q, d2)
	if p, _ := q.Pending(ctx(t), "H1", 0); len(p) != 1 {
		t.Fatalf("Pending after republishing = %d deliveries, want 1", len(p))
	}
	ms := fetchN(t, q, "H1", 1)
	ackAll(t, ms)
	// Republished after ack, still within the window: not delivered again.
	publish(t, q, d)
	expectEmpty(t, q, "H1")
}

func testOrder(t *testing.T, e Env) {
	q := e.Open(t)
	const n = 50
	for i := 0; i < n; i++ {
		publish(t, q, dlv("H1", i))
	}
	next := 0
	for next < n {
		ms, err := q.Fetch(ctx(t), "H1", 7, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 {
			t.Fatalf("nothing fetched after %d of %d", next, n)
		}
		for _, m := range ms {
			if want := dlv("H1", next).ID; m.Delivery().ID != want {
				t.Fatalf("got %s, want %s", m.Delivery().ID, want)
			}
			next++
		}
		ackAll(t, ms)
	}
}

func testIsolation(t *testing.T, e Env) {
	q := e.Open(t)
	publish(t, q, dlv("HA", 1), dlv("HB", 1), dlv("HA", 2))
	b := fetchN(t, q, "HB", 1)
	if b[0].Delivery().ID != "HB-d0001" || b[0].Delivery().Receiver != "HB" {
		t.Fatalf("HB got %+v", b[0].Delivery())
	}
	ackAll(t, b)
	expectEmpty(t, q, "HB")
	if p, _ := q.Pending(ctx(t), "HB", 0); len(p) != 0 {
		t.Fatalf("HB pending = %+v", p)
	}
	if p, _ := q.Pending(ctx(t), "HA", 0); len(p) != 2 {
		t.Fatalf("HA pending = %+v", p)
	}
	// A receiver whose id is a prefix of another's sees nothing of it.
	expectEmpty(t, q, "H")
	a := fetchN(t, q, "HA", 2)
	if got := ids(a); got[0] != "HA-d0001" || got[1] != "HA-d0002" {
		t.Fatalf("HA got %v", got)
	}
}

func testRestart(t *testing.T, e Env) {
	q := e.Open(t)
	for i := 1; i <= 5; i++ {
		publish(t, q, dlv("H1", i))
	}
	ackAll(t, fetchN(t, q, "H1", 2))
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = e.Open(t)
	ms := fetchN(t, q, "H1", 3)
	if got := fmt.Sprint(ids(ms)); got != "[H1-d0003 H1-d0004 H1-d0005]" {
		t.Fatalf("after restart fetched %s", got)
	}
	ackAll(t, ms)
	// Deduplication state survives too.
	publish(t, q, dlv("H1", 5))
	expectEmpty(t, q, "H1")
}

func testInvalid(t *testing.T, e Env) {
	q := e.Open(t)
	bad := []queue.Delivery{
		{ID: "", Receiver: "H1", Transfer: "t"},
		{ID: "x", Receiver: "", Transfer: "t"},
		{ID: "x", Receiver: "H1.H2", Transfer: "t"},
		{ID: "x", Receiver: "*", Transfer: "t"},
		{ID: "x", Receiver: ">", Transfer: "t"},
		{ID: "x", Receiver: "H 1", Transfer: "t"},
		{ID: "x", Receiver: "H1", Transfer: "t/../x"},
		{ID: "x", Receiver: "H1", Transfer: "t", Body: make([]byte, queue.MaxBody+1)},
	}
	for _, d := range bad {
		if err := q.Publish(ctx(t), d); !errors.Is(err, queue.ErrInvalid) {
			t.Errorf("Publish(%q/%q) = %v, want ErrInvalid", d.ID, d.Receiver, err)
		}
	}
	for _, r := range []string{"", "*", ">", "a.b"} {
		if _, err := q.Fetch(ctx(t), r, 1, 10*time.Millisecond); !errors.Is(err, queue.ErrInvalid) {
			t.Errorf("Fetch(%q) = %v, want ErrInvalid", r, err)
		}
	}
}

// testReconnect cuts the link mid-stream. The publisher retries with the
// same ID, the consumer records the idempotency keys it has processed, and
// every delivery must be processed exactly once.
func testReconnect(t *testing.T, e Env) {
	p, ok := e.(Partitioner)
	if !ok {
		t.Skip("environment cannot partition its link")
	}
	q := e.Open(t)
	const n = 200
	var wg sync.WaitGroup
	wg.Add(1)
	pubErrs := 0
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			for try := 0; ; try++ {
				c, cancel := context.WithTimeout(context.Background(), time.Second)
				err := q.Publish(c, dlv("H1", i))
				cancel()
				if err == nil {
					break
				}
				pubErrs++
				if try > 200 {
					t.Errorf("publish %d: gave up: %v", i, err)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			if i == n/3 {
				p.Cut()
				time.Sleep(time.Second)
				p.Restore()
			}
		}
	}()
	processed := map[string]int{}
	duplicates := 0
	deadline := time.Now().Add(90 * time.Second)
	for len(processed) < n && time.Now().Before(deadline) {
		c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ms, err := q.Fetch(c, "H1", 20, 500*time.Millisecond)
		cancel()
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		for _, m := range ms {
			id := m.Delivery().ID
			if processed[id] > 0 {
				duplicates++ // the idempotency check: seen, not processed again
			} else {
				processed[id]++
			}
			c, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = m.Ack(c) // a lost ack means a redelivery, caught above
			cancel()
		}
	}
	wg.Wait()
	if len(processed) != n {
		t.Fatalf("processed %d distinct deliveries, want %d", len(processed), n)
	}
	for i := 0; i < n; i++ {
		if processed[dlv("H1", i).ID] != 1 {
			t.Fatalf("delivery %d processed %d times", i, processed[dlv("H1", i).ID])
		}
	}
	// Nothing is left over once the redeliveries of lost acks are drained.
	for tries := 0; tries < 10; tries++ {
		ms, err := q.Fetch(ctx(t), "H1", 50, 1500*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if processed[m.Delivery().ID] == 0 {
				t.Fatalf("unexpected delivery %s", m.Delivery().ID)
			}
			duplicates++
			_ = m.Ack(ctx(t))
		}
		if p, _ := q.Pending(ctx(t), "H1", 0); len(p) == 0 {
			break
		}
	}
	if pend, _ := q.Pending(ctx(t), "H1", 0); len(pend) != 0 {
		t.Fatalf("%d deliveries still pending", len(pend))
	}
	t.Logf("publish retries %d, redelivered duplicates skipped %d", pubErrs, duplicates)
}
