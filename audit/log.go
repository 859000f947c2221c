// Package audit is phix's tamper-evident audit log: an append-only sequence
// of canonical-JSON events (schema without PHI, see Event) hashed into an
// RFC 6962 Merkle tree (golang.org/x/mod/sumdb/tlog), with signed checkpoints
// in the signed-note format, inclusion and consistency proofs, verification of
// the whole stored log, the /audit HTTP API, FHIR AuditEvent (IHE BALP)
// rendering, and retention. Storage is a Backend (audit/auditsqlite,
// audit/auditpg); SIEM export lives in audit/siem. See docs/audit.md.
package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"phix/suite"
)

// Retention bounds (seed 002: keep 7 years; China CSL Art. 21: at least 6 months).
const (
	DefaultRetention = 7 * 8766 * time.Hour // 7 years of 365.25 days
	MinRetention     = 183 * 24 * time.Hour // 6 months
)

// Defaults for Options.
const (
	DefaultCheckpointEvery    = 1000
	DefaultCheckpointInterval = 500 * time.Millisecond
	DefaultMaxBatch           = 4096
	DefaultQueueSize          = 16384
	commitTimeout             = time.Minute
)

// Errors of the log.
var (
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("audit: log closed")
	// ErrRetention: the retention period is below the legal minimum.
	ErrRetention = errors.New("audit: retention below the 6-month minimum (CSL Art. 21)")
	// ErrOptions: a required option is missing.
	ErrOptions = errors.New("audit: invalid options")
	// ErrOutOfRange: an index or size outside the tree.
	ErrOutOfRange = errors.New("audit: index or size out of range")
)

// Options configure a Log.
type Options struct {
	// Origin names the log in its checkpoints (e.g. "hospital-a.phix/audit").
	Origin string
	// Signer signs checkpoints: ML-DSA-87 (intl) or SM2 (gm) from suite.
	Signer suite.SigningKey
	// CheckpointEvery and CheckpointInterval: a checkpoint is signed after
	// this many new events or this much time, whichever comes first.
	CheckpointEvery    int
	CheckpointInterval time.Duration
	// MaxBatch bounds one group commit; QueueSize bounds waiting events.
	MaxBatch  int
	QueueSize int
	// Retention is how long event bodies are kept (default 7 years, never
	// under 6 months). PruneInterval is how often Prune runs in the
	// background; 0 means daily, negative disables it.
	Retention     time.Duration
	PruneInterval time.Duration
	// Pseudonyms maps search parameters (patient=Patient/123) to pseudonyms
	// in the AuditEvent API. Without it only pseudonyms are accepted there.
	Pseudonyms *Pseudonymizer
	// Authorizer guards Handler and AuditEventHandler. Nil refuses every request.
	Authorizer Authorizer
	// Logger receives operational messages (never event content). Default slog.Default().
	Logger *slog.Logger
	// Now is the clock (tests).
	Now func() time.Time
}

// Log is an open audit log. It is safe for concurrent use by many goroutines;
// several Logs (processes) may append to the same database.
type Log struct {
	b      Backend
	opts   Options
	signer *Signer
	th     *treeHasher // the tree hash of the signer's suite

	mu     sync.RWMutex // guards closed against sends on queue
	closed bool
	queue  chan *pending

	cache map[int64]tlog.Hash // committed stored hashes; committer goroutine only

	size    atomic.Int64 // size after our last commit
	cpSize  atomic.Int64 // size of our last checkpoint
	cpKick  chan struct{}
	stopCP  chan struct{}
	wg      sync.WaitGroup
	cpErr   atomic.Value // last checkpoint error (error)
	pruneMu sync.Mutex
}

type pending struct {
	ev   Event
	done chan result // nil for Record (fire and forget)
}

type result struct {
	index int64
	err   error
}

// Open starts a log over b. Callers close the log (Close) and then b.
func Open(ctx context.Context, b Backend, opts Options) (*Log, error) {
	if b == nil || opts.Signer == nil {
		return nil, fmt.Errorf("%w: backend and signer are required", ErrOptions)
	}
	if err := checkOrigin(opts.Origin); err != nil {
		return nil, fmt.Errorf("%w: origin", ErrOptions)
	}
	if opts.Retention == 0 {
		opts.Retention = DefaultRetention
	}
	if opts.Retention < MinRetention {
		return nil, ErrRetention
	}
	if opts.CheckpointEvery <= 0 {
		opts.CheckpointEvery = DefaultCheckpointEvery
	}
	if opts.CheckpointInterval <= 0 {
		opts.CheckpointInterval = DefaultCheckpointInterval
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.PruneInterval == 0 {
		opts.PruneInterval = 24 * time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	signer, err := NewSigner(opts.Origin, opts.Signer)
	if err != nil {
		return nil, err
	}
	if err := b.PutKey(ctx, signer.KeyID(), signer.VerifierKey()); err != nil {
		return nil, fmt.Errorf("audit: record verifier key: %w", err)
	}
	n, err := b.Size(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit: read size: %w", err)
	}
	l := &Log{
		b: b, opts: opts, signer: signer, th: hasherForAlg(signer.alg),
		queue:  make(chan *pending, opts.QueueSize),
		cache:  make(map[int64]tlog.Hash),
		cpKick: make(chan struct{}, 1),
		stopCP: make(chan struct{}),
	}
	l.size.Store(n)
	if cp, err := b.LatestCheckpoint(ctx); err == nil {
		l.cpSize.Store(cp.Size)
	} else {
		l.cpSize.Store(-1)
	}
	l.wg.Add(2)
	go l.committer()
	go l.checkpointer()
	return l, nil
}

// Backend returns the storage of the log.
func (l *Log) Backend() Backend { return l.b }

// Signer returns the checkpoint signer (for its VerifierKey).
func (l *Log) Signer() *Signer { return l.signer }

// Append validates ev, adds it to the log and returns its index once it is
// durable (committed with its tree hashes). Concurrent calls are grouped into
// one database transaction. If ctx ends first, Append returns ctx.Err() and
// the event may or may not have been written.
func (l *Log) Append(ctx context.Context, ev Event) (int64, error) {
	p := &pending{ev: ev, done: make(chan result, 1)}
	if err := l.enqueue(ctx, p); err != nil {
		return 0, err
	}
	select {
	case r := <-p.done:
		return r.index, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Record validates ev and queues it without waiting for it to be durable:
// the caller's cost is validation and a channel send. Use it for read events
// on the request path (docs/audit.md: a crash can lose the events of the
// last few milliseconds). Writes must use Append. Record blocks only when
// the queue is full (backpressure, never dropping).
func (l *Log) Record(ev Event) error {
	return l.enqueue(context.Background(), &pending{ev: ev})
}

func (l *Log) enqueue(ctx context.Context, p *pending) error {
	if err := p.ev.Validate(); err != nil {
		return err
	}
	p.ev.normalize(l.opts.Now())
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	select {
	case l.queue <- p:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops accepting events, commits every queued one, signs a final
// checkpoint and stops the background work. It does not close the Backend.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.queue)
	l.mu.Unlock()
	l.wg.Wait()
	if v := l.cpErr.Load(); v != nil {
		if b, _ := v.(errBox); b.error != nil {
			return b.error
		}
	}
	return nil
}

func (l *Log) committer() {
	defer l.wg.Done()
	defer close(l.stopCP)
	batch := make([]*pending, 0, l.opts.MaxBatch)
	for {
		p, ok := <-l.queue
		if !ok {
			return
		}
		batch = append(batch[:0], p)
		open := true
	drain:
		for len(batch) < l.opts.MaxBatch {
			select {
			case p, ok := <-l.queue:
				if !ok {
					open = false
					break drain
				}
				batch = append(batch, p)
			default:
				break drain
			}
		}
		l.commit(batch)
		if !open {
			return
		}
	}
}

// commit writes one batch in one transaction and answers its callers.
func (l *Log) commit(batch []*pending) {
	// A stuck database must not hold callers forever.
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	var (
		first   int64
		base    int64
		newHash []tlog.Hash
		read    map[int64]tlog.Hash
	)
	err := l.b.Append(ctx, func(size int64, r tlog.HashReader) (*Batch, error) {
		first, base = size, tlog.StoredHashCount(size)
		newHash = newHash[:0]
		read = make(map[int64]tlog.Hash)
		reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(idx))
			var miss []int64
			var pos []int
			for i, x := range idx {
				switch h, ok := l.cache[x]; {
				case x >= base && x-base < int64(len(newHash)):
					out[i] = newHash[x-base]
				case ok:
					out[i] = h
				default:
					miss = append(miss, x)
					pos = append(pos, i)
				}
			}
			if len(miss) > 0 {
				hs, err := r.ReadHashes(miss)
				if err != nil {
					return nil, err
				}
				for j, h := range hs {
					out[pos[j]] = h
					read[miss[j]] = h
				}
			}
			return out, nil
		})
		out := &Batch{Records: make([]Record, 0, len(batch))}
		for i, p := range batch {
			ev := p.ev
			ev.Index = size + int64(i)
			body, err := ev.Canonical()
			if err != nil {
				return nil, err
			}
			hs, err := l.th.storedHashes(ev.Index, l.th.leaf(body), reader)
			if err != nil {
				return nil, fmt.Errorf("audit: tree hashes: %w", err)
			}
			newHash = append(newHash, hs...)
			out.Records = append(out.Records, recordOf(&ev, body))
		}
		out.Hashes = newHash
		return out, nil
	})
	if err != nil {
		l.opts.Logger.Error("audit: append batch failed", "events", len(batch), "err", err)
		err = fmt.Errorf("audit: append: %w", err)
		for _, p := range batch {
			if p.done != nil {
				p.done <- result{err: err}
			}
		}
		return
	}
	if len(l.cache) > 1<<16 {
		clear(l.cache)
	}
	for i, h := range newHash {
		l.cache[base+int64(i)] = h
	}
	for k, h := range read {
		l.cache[k] = h
	}
	newSize := first + int64(len(batch))
	l.size.Store(newSize)
	for i, p := range batch {
		if p.done != nil {
			p.done <- result{index: first + int64(i)}
		}
	}
	if newSize-l.cpSize.Load() >= int64(l.opts.CheckpointEvery) {
		select {
		case l.cpKick <- struct{}{}:
		default:
		}
	}
}

// recordOf derives the stored row of an event.
func recordOf(ev *Event, body []byte) Record {
	r := Record{
		Index: ev.Index, Time: ev.Time, Body: body,
		Action: string(ev.Action), Outcome: string(ev.Outcome), Alert: string(ev.Alert),
		Patient: ev.What.Patient, Agent: ev.Who.User, Entity: ev.What.ResourceID,
	}
	if r.Patient == "" && ev.What.ResourceType == "Patient" {
		r.Patient = ev.What.ResourceID
	}
	return r
}

func (l *Log) checkpointer() {
	defer l.wg.Done()
	t := time.NewTicker(l.opts.CheckpointInterval)
	defer t.Stop()
	var prune <-chan time.Time
	if l.opts.PruneInterval > 0 {
		pt := time.NewTicker(l.opts.PruneInterval)
		defer pt.Stop()
		prune = pt.C
	}
	for {
		select {
		case <-t.C:
		case <-l.cpKick:
		case <-prune:
			if _, err := l.Prune(context.Background()); err != nil {
				l.opts.Logger.Error("audit: prune failed", "err", err)
			}
			continue
		case <-l.stopCP:
			l.storeErr(l.checkpoint(context.Background()))
			return
		}
		l.storeErr(l.checkpoint(context.Background()))
	}
}

func (l *Log) storeErr(err error) {
	if err != nil {
		l.opts.Logger.Error("audit: checkpoint failed", "err", err)
	}
	l.cpErr.Store(errBox{err})
}

type errBox struct{ error }

// checkpoint signs and stores a checkpoint of the current tree, if it grew.
func (l *Log) checkpoint(ctx context.Context) error {
	size, err := l.b.Size(ctx)
	if err != nil {
		return fmt.Errorf("audit: checkpoint: %w", err)
	}
	if size == 0 || size == l.cpSize.Load() {
		return nil
	}
	root, err := l.th.treeHash(size, l.hashReader(ctx))
	if err != nil {
		return fmt.Errorf("audit: checkpoint tree hash: %w", err)
	}
	note, err := l.signer.Sign(Checkpoint{Origin: l.opts.Origin, Size: size, Root: root})
	if err != nil {
		return err
	}
	if err := l.b.AddCheckpoint(ctx, size, note, l.opts.Now().UTC()); err != nil {
		return fmt.Errorf("audit: store checkpoint: %w", err)
	}
	l.cpSize.Store(size)
	return nil
}

// Sync signs a checkpoint of everything committed so far (if the tree grew
// since the last one) and returns the latest checkpoint.
func (l *Log) Sync(ctx context.Context) (StoredCheckpoint, error) {
	if err := l.checkpoint(ctx); err != nil {
		return StoredCheckpoint{}, err
	}
	return l.b.LatestCheckpoint(ctx)
}

// Size is the tree size after this process's last commit (the database may
// be ahead when other writers append).
func (l *Log) Size() int64 { return l.size.Load() }

// hashReader reads stored hashes from the backend outside any transaction.
func (l *Log) hashReader(ctx context.Context) tlog.HashReader {
	return BackendHashReader(ctx, l.b)
}

// BackendHashReader adapts a Backend to tlog.HashReader.
func BackendHashReader(ctx context.Context, b Backend) tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		return b.ReadHashes(ctx, idx)
	})
}

// Prune removes the bodies of events older than the retention period,
// keeping their hashes so that checkpoints and proofs still verify.
func (l *Log) Prune(ctx context.Context) (int64, error) {
	l.pruneMu.Lock()
	defer l.pruneMu.Unlock()
	return l.b.Prune(ctx, l.opts.Now().Add(-l.opts.Retention))
}
