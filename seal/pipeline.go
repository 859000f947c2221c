package seal

import (
	"crypto/cipher"
	"runtime"
	"sync"
	"sync/atomic"
)

// Pipelined reading. The consumer's goroutine (the caller of Read or WriteTo)
// still does every read of the source and every "is this the last segment"
// decision, in order, through segmentSource; only the AEAD work — opening a
// segment whose position and flag are already fixed — goes to worker
// goroutines. Segments sit in a ring of slots and are released strictly in
// ring order, each only after its own open succeeded, so plaintext order,
// the error reported and the segment index it names are those of the
// sequential reader. While it has nothing to read ahead, the consumer opens
// queued segments itself instead of waiting. The source is never read
// outside a Read or WriteTo call, so nothing touches it after Close or after
// the caller stops. See docs/formats/sealed-file.md, "Pipelined reading".

// maxPipelineBytes bounds the buffers of one pipelined Reader. Segment
// sizes whose ring would not fit three slots in it are read sequentially
// (large segments already amortise the per-segment cost).
const maxPipelineBytes = 8 << 20

// pipelineMode selects when a Reader pipelines (tests force either path).
type pipelineMode int

const (
	pipelineAuto  pipelineMode = iota // from segment 1 on, when GOMAXPROCS > 1, the ring fits and pipelinePays
	pipelineOff                       // always sequential
	pipelineForce                     // from segment 0, whatever GOMAXPROCS says
)

// readerPipelineMode is read by NewReader. Only tests change it.
var readerPipelineMode = pipelineAuto

// slot is one segment in flight: its sealed bytes, its plaintext buffer and
// the result of opening it.
type slot struct {
	buf   []byte // sealed segment plus the look-ahead byte, cap full+1
	out   []byte // plaintext buffer, cap segment size; apart from buf so a failed open keeps ct
	ct    []byte // buf[:len of this segment]
	idx   uint32
	last  bool
	pt    []byte // authenticated plaintext (set by the worker)
	err   error  // read or open error (set before done is signalled)
	nonce [nonceSize]byte
	done  chan struct{} // cap 1: signalled once per use of the slot
}

// workers is the part of a pipeline the worker goroutines share. It holds no
// reference to the Reader, so an abandoned Reader can be collected and its
// cleanup stop the workers.
//
// Jobs are not handed to a particular goroutine (a channel send to a parked
// receiver would be, and on a busy machine that thread may not run for
// milliseconds while everything waits on it): the consumer publishes job q
// in jobq and bumps queued; whoever runs first — a worker, or the consumer
// while it would otherwise wait — claims the oldest unclaimed job with a
// CAS on claimed. At most len(jobq) jobs are outstanding (one per slot), so
// an entry is not overwritten before its job is claimed.
type workers struct {
	a       cipher.AEAD
	prefix  []byte
	full    int
	jobq    []*slot
	queued  atomic.Uint64 // jobs published (written by the consumer only)
	claimed atomic.Uint64 // jobs claimed
	wake    chan struct{} // a token per published job, for parked workers
	quit    chan struct{}
	stop    atomic.Bool
	once    sync.Once
	wg      sync.WaitGroup
}

// shutdown makes the workers skip any queued job and exit; it does not wait.
func (w *workers) shutdown() {
	w.once.Do(func() {
		w.stop.Store(true)
		close(w.quit)
	})
}

// submit publishes a job (consumer only).
func (w *workers) submit(s *slot) {
	q := w.queued.Load()
	w.jobq[q%uint64(len(w.jobq))] = s
	w.queued.Store(q + 1)
	select {
	case w.wake <- struct{}{}:
	default: // enough tokens pending: a worker will see the job
	}
}

// claim takes the oldest unclaimed job, or returns nil.
func (w *workers) claim() *slot {
	for {
		c := w.claimed.Load()
		if c >= w.queued.Load() {
			return nil
		}
		if w.claimed.CompareAndSwap(c, c+1) {
			return w.jobq[c%uint64(len(w.jobq))]
		}
	}
}

func (w *workers) run() {
	defer w.wg.Done()
	for {
		for s := w.claim(); s != nil; s = w.claim() {
			w.open(s)
		}
		select {
		case <-w.wake:
		case <-w.quit:
			return
		}
	}
}

// open does one job and signals its slot.
func (w *workers) open(s *slot) {
	if w.stop.Load() {
		s.err = ErrClosed
	} else {
		s.pt, s.err = openSegment(w.a, w.prefix, &s.nonce, s.idx, s.last, w.full, s.ct, s.out)
	}
	s.done <- struct{}{}
}

// pipeline is a ring of slots: slots[head] is the oldest segment not yet
// released (n slots are queued from head on, the one being consumed
// included).
type pipeline struct {
	w       *workers
	slots   []*slot
	head, n int
	cur     bool // slots[head] is being consumed
	cleanup runtime.Cleanup
}

// pipelineRing returns how many slots a pipelined Reader of segSize uses,
// or 0 when it should read sequentially.
func pipelineRing(segSize int, mode pipelineMode) int {
	procs := runtime.GOMAXPROCS(0)
	switch mode {
	case pipelineOff:
		return 0
	case pipelineForce:
		procs = max(procs, 2)
	case pipelineAuto:
		if procs < 2 {
			return 0
		}
	}
	// GOMAXPROCS+1 segments in flight plus the one being consumed.
	ring := min(procs+2, maxPipelineBytes/slotBytes(segSize))
	if ring < 3 {
		if mode == pipelineForce {
			return 3
		}
		return 0
	}
	return ring
}

func slotBytes(segSize int) int { return 2*segSize + tagSize + 1 }

func newSlot(segSize int, buf, out []byte) *slot {
	if buf == nil {
		buf = make([]byte, segSize+tagSize+1)
		out = make([]byte, 0, segSize)
	}
	return &slot{buf: buf, out: out, done: make(chan struct{}, 1)}
}

// startPipeline switches r to pipelined reading. The sequential buffers
// become the first slot, so at most ring slots of memory are in use.
func (r *Reader) startPipeline() {
	p := &pipeline{slots: make([]*slot, r.ring)}
	p.slots[0] = newSlot(r.segSize, r.buf, r.out)
	for i := 1; i < r.ring; i++ {
		p.slots[i] = newSlot(r.segSize, nil, nil)
	}
	r.buf, r.out = nil, nil
	// The consumer opens segments too while it waits, so GOMAXPROCS-1
	// workers keep every P busy; forced mode keeps two to exercise
	// out-of-order completion.
	nw := max(runtime.GOMAXPROCS(0)-1, 1)
	if r.mode == pipelineForce {
		nw = max(nw, 2)
	}
	nw = min(nw, r.ring-1)
	w := &workers{a: r.keys.aead, prefix: r.h.NoncePrefix, full: r.segs.full,
		jobq: make([]*slot, r.ring), wake: make(chan struct{}, nw), quit: make(chan struct{})}
	p.w = w
	w.wg.Add(nw)
	for range nw {
		go w.run()
	}
	// A Reader dropped without Close or reading to the end must not leave
	// its workers blocked forever.
	p.cleanup = runtime.AddCleanup(r, (*workers).shutdown, w)
	r.pipe = p
}

// stop ends the workers and waits for them; queued jobs are skipped.
func (p *pipeline) stop() {
	p.cleanup.Stop()
	p.w.shutdown()
	p.w.wg.Wait()
}

// next releases the slot consumed last and returns the next segment's
// plaintext, reading ahead while the oldest segment is still being opened.
func (p *pipeline) next(r *Reader) error {
	if p.cur {
		p.head = (p.head + 1) % len(p.slots)
		p.n--
		p.cur = false
	}
	s := p.slots[p.head]
	for {
		if p.n > 0 {
			// The oldest segment ready wins over reading ahead: a slow
			// source must not hold back plaintext that is already open.
			select {
			case <-s.done:
				return p.release(r, s)
			default:
			}
		}
		if p.n < len(p.slots) && !r.segs.end {
			p.fill(r)
			continue
		}
		// Nothing left to read ahead: open a queued segment here rather
		// than sleep until a worker is scheduled (on a busy machine the
		// wake-ups, not the AEAD, would set the pace).
		if j := p.w.claim(); j != nil {
			p.w.open(j)
			continue
		}
		<-s.done
		return p.release(r, s)
	}
}

// fill reads one more segment into the next free slot and queues it.
func (p *pipeline) fill(r *Reader) {
	s := p.slots[(p.head+p.n)%len(p.slots)]
	p.n++
	s.ct, s.idx, s.last, s.err = r.segs.read(s.buf)
	s.pt = nil
	if s.err != nil {
		// A read error takes its place in order: the segments before it
		// are still released first.
		s.done <- struct{}{}
		return
	}
	p.w.submit(s)
}

func (p *pipeline) release(r *Reader, s *slot) error {
	p.cur = true
	if s.err != nil {
		p.stop()
		return s.err
	}
	r.pt = s.pt
	if s.last {
		r.done = true
		p.stop()
	}
	return nil
}
