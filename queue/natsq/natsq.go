// Package natsq is the NATS JetStream queue.Queue: embedded in-process
// (the default; nats-server runs inside the process with a store directory)
// or an external server or cluster by URL. One work-queue stream holds the
// deliveries on SubjectPrefix.<receiver>; each receiver has a durable pull
// consumer with explicit acks. See docs/queue.md.
package natsq

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"phix/queue"
)

// Header names carried on each delivery message.
const (
	HeaderIdempotencyKey = "Phix-Idempotency-Key"
	HeaderTransfer       = "Phix-Transfer"
)

// Queue is a JetStream delivery queue.
type Queue struct {
	cfg    Config
	ns     *server.Server // nil when external
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	dlq    jetstream.Stream

	mu        sync.Mutex
	consumers map[string]jetstream.Consumer
}

var _ queue.Queue = (*Queue)(nil)

// Open starts the embedded server (when cfg.URL is empty) or connects to the
// external one, and creates or updates the streams.
func Open(ctx context.Context, cfg Config) (*Queue, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	q := &Queue{cfg: cfg, consumers: map[string]jetstream.Consumer{}}
	opts := []nats.Option{
		nats.Name("phix-queue"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(false),
	}
	url := cfg.URL
	if url == "" {
		if q.ns, err = startEmbedded(cfg); err != nil {
			return nil, err
		}
		url = q.ns.ClientURL()
		opts = append(opts, nats.InProcessServer(q.ns))
	} else {
		opts = append(opts, cfg.NATSOptions...)
	}
	q.nc, err = nats.Connect(url, opts...)
	if err != nil {
		q.shutdownServer()
		return nil, fmt.Errorf("%w: connect: %v", queue.ErrUnavailable, err)
	}
	if err := q.setup(ctx); err != nil {
		q.Close()
		return nil, err
	}
	return q, nil
}

func startEmbedded(cfg Config) (*server.Server, error) {
	o := &server.Options{
		ServerName: "phix-embedded",
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		SyncAlways: !cfg.NoSync,
		NoLog:      true,
		NoSigs:     true,
		DontListen: cfg.Listen == "",
	}
	if cfg.Listen != "" {
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("natsq: listen address: %w", err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("natsq: listen port: %w", err)
		}
		if p == 0 {
			p = server.RANDOM_PORT
		}
		o.Host, o.Port = host, p
	}
	ns, err := server.NewServer(o)
	if err != nil {
		return nil, fmt.Errorf("natsq: embedded server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("%w: embedded server did not start", queue.ErrUnavailable)
	}
	return ns, nil
}

func (q *Queue) setup(ctx context.Context) error {
	js, err := jetstream.New(q.nc)
	if err != nil {
		return fmt.Errorf("natsq: jetstream: %w", err)
	}
	q.js = js
	c := q.cfg
	q.stream, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        c.Stream,
		Description: "phix deliveries",
		Subjects:    []string{c.SubjectPrefix + ".*"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
		Duplicates:  c.DuplicateWindow,
		MaxAge:      c.MaxAge,
		MaxMsgs:     orUnlimited(c.MaxMsgs),
		MaxBytes:    orUnlimited(c.MaxBytes),
		MaxMsgSize:  int32(queue.MaxBody + 4096),
		Discard:     jetstream.DiscardNew,
		AllowDirect: true,
	})
	if err != nil {
		return fmt.Errorf("%w: create stream: %v", queue.ErrUnavailable, err)
	}
	q.dlq, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        c.Stream + "_DLQ",
		Description: "phix dead-lettered deliveries",
		Subjects:    []string{c.DeadLetterPrefix + ".*"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
		Duplicates:  c.DuplicateWindow,
		MaxAge:      c.DeadLetterMaxAge,
		AllowDirect: true,
	})
	if err != nil {
		return fmt.Errorf("%w: create dead-letter stream: %v", queue.ErrUnavailable, err)
	}
	return nil
}

func orUnlimited(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// ClientURL is the embedded server's client URL ("" when external or
// in-process only).
func (q *Queue) ClientURL() string {
	if q.ns == nil || q.cfg.Listen == "" {
		return ""
	}
	return q.ns.ClientURL()
}

// Publish implements queue.Queue.
func (q *Queue) Publish(ctx context.Context, d queue.Delivery) error {
	if err := d.Validate(); err != nil {
		return err
	}
	m := nats.NewMsg(q.cfg.SubjectPrefix + "." + d.Receiver)
	m.Header.Set(HeaderIdempotencyKey, d.ID)
	m.Header.Set(HeaderTransfer, d.Transfer)
	m.Data = d.Body
	if _, err := q.js.PublishMsg(ctx, m, jetstream.WithMsgID(d.ID)); err != nil {
		return q.wrap("publish", err)
	}
	return nil
}

func (q *Queue) consumer(ctx context.Context, receiver string) (jetstream.Consumer, error) {
	if err := queue.ValidID("receiver", receiver); err != nil {
		return nil, err
	}
	q.mu.Lock()
	c := q.consumers[receiver]
	q.mu.Unlock()
	if c != nil {
		return c, nil
	}
	cc := jetstream.ConsumerConfig{
		Durable:       "rcv-" + receiver,
		Description:   "phix deliveries for one receiver",
		FilterSubject: q.cfg.SubjectPrefix + "." + receiver,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       q.cfg.AckWait,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		// Fetch moves deliveries past MaxDeliveries to the dead letters;
		// the server's own limit is higher so a failed dead-letter publish
		// gets retried (older servers refuse -1 together with BackOff).
		MaxDeliver:    max(q.cfg.MaxDeliveries, len(q.cfg.Backoff)) + 10,
		MaxAckPending: 1000,
		Replicas:      q.cfg.Replicas,
	}
	if len(q.cfg.Backoff) > 0 {
		cc.BackOff = q.cfg.Backoff
	}
	c, err := q.stream.CreateOrUpdateConsumer(ctx, cc)
	if err != nil {
		return nil, q.wrap("create consumer", err)
	}
	q.mu.Lock()
	q.consumers[receiver] = c
	q.mu.Unlock()
	return c, nil
}

// Fetch implements queue.Queue.
func (q *Queue) Fetch(ctx context.Context, receiver string, max int, wait time.Duration) ([]queue.Message, error) {
	if max < 1 {
		return nil, fmt.Errorf("%w: fetch of %d", queue.ErrInvalid, max)
	}
	c, err := q.consumer(ctx, receiver)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
		wait = time.Until(dl)
	}
	if wait < 10*time.Millisecond {
		wait = 10 * time.Millisecond
	}
	batch, err := c.Fetch(max, jetstream.FetchMaxWait(wait))
	if err != nil {
		return nil, q.wrap("fetch", err)
	}
	var out []queue.Message
	for m := range batch.Messages() {
		md, err := m.Metadata()
		if err != nil {
			_ = m.Term()
			continue
		}
		msg := &message{q: q, m: m, d: decode(receiver, m.Headers(), m.Data()), attempt: int(md.NumDelivered)}
		if msg.attempt > q.cfg.MaxDeliveries {
			if err := q.deadLetter(ctx, msg); err != nil {
				// Left unacknowledged: it comes back and is retried.
				continue
			}
			continue
		}
		out = append(out, msg)
	}
	if err := batch.Error(); err != nil && len(out) == 0 && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		return nil, q.wrap("fetch", err)
	}
	return out, nil
}

func (q *Queue) deadLetter(ctx context.Context, msg *message) error {
	m := nats.NewMsg(q.cfg.DeadLetterPrefix + "." + msg.d.Receiver)
	m.Header.Set(HeaderIdempotencyKey, msg.d.ID)
	m.Header.Set(HeaderTransfer, msg.d.Transfer)
	m.Header.Set("Phix-Attempts", strconv.Itoa(msg.attempt-1))
	m.Data = msg.d.Body
	if _, err := q.js.PublishMsg(ctx, m, jetstream.WithMsgID("dl-"+msg.d.ID)); err != nil {
		return err
	}
	return msg.m.Term()
}

func decode(receiver string, h nats.Header, body []byte) queue.Delivery {
	d := queue.Delivery{ID: h.Get(HeaderIdempotencyKey), Receiver: receiver, Transfer: h.Get(HeaderTransfer)}
	if len(body) > 0 {
		d.Body = append([]byte(nil), body...)
	}
	return d
}

// Pending implements queue.Queue: it walks the stream by subject (acked
// deliveries are removed from the work queue, so what remains is pending).
func (q *Queue) Pending(ctx context.Context, receiver string, limit int) ([]queue.Delivery, error) {
	return q.list(ctx, q.stream, q.cfg.SubjectPrefix, receiver, limit)
}

// DeadLetters implements queue.Queue.
func (q *Queue) DeadLetters(ctx context.Context, receiver string, limit int) ([]queue.Delivery, error) {
	return q.list(ctx, q.dlq, q.cfg.DeadLetterPrefix, receiver, limit)
}

func (q *Queue) list(ctx context.Context, s jetstream.Stream, prefix, receiver string, limit int) ([]queue.Delivery, error) {
	if err := queue.ValidID("receiver", receiver); err != nil {
		return nil, err
	}
	var out []queue.Delivery
	subj := prefix + "." + receiver
	for seq := uint64(1); limit <= 0 || len(out) < limit; {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, q.wrap("list", err)
		}
		out = append(out, decode(receiver, m.Header, m.Data))
		seq = m.Sequence + 1
	}
	return out, nil
}

// Stats implements queue.Queue.
func (q *Queue) Stats(ctx context.Context, receiver string) (queue.Stats, error) {
	c, err := q.consumer(ctx, receiver)
	if err != nil {
		return queue.Stats{}, err
	}
	ci, err := c.Info(ctx)
	if err != nil {
		return queue.Stats{}, q.wrap("consumer info", err)
	}
	subj := q.cfg.DeadLetterPrefix + "." + receiver
	si, err := q.dlq.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		return queue.Stats{}, q.wrap("dead-letter info", err)
	}
	return queue.Stats{Waiting: ci.NumPending, InFlight: ci.NumAckPending, DeadLetters: si.State.Subjects[subj]}, nil
}

// Destroy deletes both streams and everything in them (decommissioning,
// tests), then closes the queue.
func (q *Queue) Destroy(ctx context.Context) error {
	err := q.js.DeleteStream(ctx, q.cfg.Stream)
	if err2 := q.js.DeleteStream(ctx, q.cfg.Stream+"_DLQ"); err == nil {
		err = err2
	}
	q.Close()
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return q.wrap("delete streams", err)
	}
	return nil
}

// Close implements queue.Queue. It is safe to call more than once.
func (q *Queue) Close() error {
	if q.nc != nil {
		_ = q.nc.FlushTimeout(2 * time.Second)
		q.nc.Close()
	}
	q.shutdownServer()
	return nil
}

func (q *Queue) shutdownServer() {
	if q.ns != nil {
		q.ns.Shutdown()
		q.ns.WaitForShutdown()
	}
}

func (q *Queue) wrap(op string, err error) error {
	if errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("%w: %s", queue.ErrClosed, op)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("natsq: %s: %w", op, err)
	}
	return fmt.Errorf("%w: %s: %v", queue.ErrUnavailable, op, err)
}

type message struct {
	q       *Queue
	m       jetstream.Msg
	d       queue.Delivery
	attempt int
}

func (m *message) Delivery() queue.Delivery { return m.d }
func (m *message) Attempt() int             { return m.attempt }

func (m *message) Ack(ctx context.Context) error {
	if err := m.m.DoubleAck(ctx); err != nil {
		return m.q.wrap("ack", err)
	}
	return nil
}

func (m *message) Nak(_ context.Context, delay time.Duration) error {
	if delay <= 0 {
		delay = m.q.cfg.backoff(m.attempt)
	}
	if err := m.m.NakWithDelay(delay); err != nil {
		return m.q.wrap("nak", err)
	}
	return nil
}

func (m *message) InProgress(_ context.Context) error {
	if err := m.m.InProgress(); err != nil {
		return m.q.wrap("in progress", err)
	}
	return nil
}
