package seal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"
	"testing/iotest"
	"time"

	"phix/suite"
)

// withMode makes NewReader use mode until the test ends.
func withMode(t *testing.T, mode pipelineMode) {
	old := readerPipelineMode
	readerPipelineMode = mode
	t.Cleanup(func() { readerPipelineMode = old })
}

var modes = []struct {
	name string
	mode pipelineMode
}{{"sequential", pipelineOff}, {"pipelined", pipelineForce}}

// The whole tamper suite, the round trip and the vectors again, with the
// pipeline off and forced on from the first segment (the default mode only
// pipelines from segment 1 and when GOMAXPROCS > 1).
func TestTamperSuiteBothPaths(t *testing.T) {
	tests := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"RoundTrip", TestRoundTrip},
		{"DefaultSegmentSizeAndWriteTo", TestDefaultSegmentSizeAndWriteTo},
		{"HeaderBitFlip", TestTamperHeaderBitFlip},
		{"BodyBitFlip", TestTamperBodyBitFlip},
		{"Segments", TestTamperSegments},
		{"ExtensionAfterFullLastSegment", TestTamperExtensionAfterFullLastSegment},
		{"SpliceFromOtherFile", TestTamperSpliceFromOtherFile},
		{"WrongKey", TestWrongKey},
		{"KeyCommitment", TestKeyCommitment},
		{"SwappedSuiteID", TestSwappedSuiteID},
		{"Vectors", TestVectors},
		{"Rewrap", TestRewrap},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			withMode(t, m.mode)
			for _, tc := range tests {
				t.Run(tc.name, tc.fn)
			}
		})
	}
}

// result is what a reader released and how it ended.
type result struct {
	out []byte
	err string
}

// readWith opens sealed with the given mode, reading through rd (Read with
// small buffers, or WriteTo).
func readWith(mode pipelineMode, src io.Reader, writeTo bool, ids ...Identity) result {
	r, err := newReader(src, mode, ids)
	if err != nil {
		return result{err: err.Error()}
	}
	defer r.Close()
	var out bytes.Buffer
	if writeTo {
		_, err = r.WriteTo(&out)
	} else {
		buf := make([]byte, 37)
		for {
			var n int
			n, err = r.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				break
			}
		}
		if err == io.EOF {
			err = nil
		}
	}
	res := result{out: out.Bytes()}
	if err != nil {
		res.err = err.Error()
	}
	return res
}

// failAfter returns its data and then a non-seal I/O error.
type failAfter struct {
	r   io.Reader
	err error
}

func (f *failAfter) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

var errNetwork = errors.New("network down")

// The pipelined reader releases exactly the bytes the sequential one does and
// fails with the same error at the same segment, for random damage of every
// kind, through Read and WriteTo, from fast and one-byte-at-a-time sources.
func TestPipelineMatchesSequential(t *testing.T) {
	forSuites(t, func(t *testing.T, id suite.ID) {
		f := newFixture(t, id, 40*tseg+33)
		rng := rand.New(rand.NewPCG(1, uint64(len(id))))
		nseg := (len(f.sealed) - f.hdr + tseg + tagSize - 1) / (tseg + tagSize)
		cases := map[string][]byte{"intact": f.sealed}
		for i := range 40 {
			bad := bytes.Clone(f.sealed)
			bad[f.hdr+rng.IntN(len(bad)-f.hdr)] ^= byte(1 + rng.IntN(255))
			cases[fmt.Sprintf("flip%d", i)] = bad
			cut := f.hdr + rng.IntN(len(f.sealed)-f.hdr)
			cases[fmt.Sprintf("cut%d", i)] = f.sealed[:cut]
		}
		for i := range nseg {
			cases[fmt.Sprintf("boundary%d", i)] = f.sealed[:f.hdr+i*(tseg+tagSize)]
		}
		cases["extended"] = join(f.sealed, f.segmentBytes(2))
		cases["swapped"] = join(f.sealed[:f.hdr], f.segmentBytes(0), f.segmentBytes(5), f.segmentBytes(4), f.sealed[f.hdr+6*(tseg+tagSize):])
		for name, data := range cases {
			for _, writeTo := range []bool{false, true} {
				want := readWith(pipelineOff, bytes.NewReader(data), writeTo, f.p.identity())
				got := readWith(pipelineForce, bytes.NewReader(data), writeTo, f.p.identity())
				slow := readWith(pipelineForce, iotest.OneByteReader(bytes.NewReader(data)), writeTo, f.p.identity())
				for _, g := range []result{got, slow} {
					if g.err != want.err || !bytes.Equal(g.out, want.out) {
						t.Fatalf("%s (WriteTo %v): pipelined released %d bytes, err %q; sequential %d bytes, err %q",
							name, writeTo, len(g.out), g.err, len(want.out), want.err)
					}
				}
				if name == "intact" && (want.err != "" || !bytes.Equal(want.out, f.pt)) {
					t.Fatalf("intact file: %q", want.err)
				}
			}
		}
		// An I/O error from the source surfaces after the same bytes.
		for _, cut := range []int{f.hdr + 3, f.hdr + 5*(tseg+tagSize), f.hdr + 5*(tseg+tagSize) + 1, len(f.sealed) - 1} {
			src := func() io.Reader { return &failAfter{bytes.NewReader(f.sealed[:cut]), errNetwork} }
			want := readWith(pipelineOff, src(), true, f.p.identity())
			got := readWith(pipelineForce, src(), true, f.p.identity())
			if want.err != errNetwork.Error() || got.err != want.err || !bytes.Equal(got.out, want.out) {
				t.Fatalf("I/O error at %d: pipelined %d bytes %q, sequential %d bytes %q", cut, len(got.out), got.err, len(want.out), want.err)
			}
		}
	})
}

// goroutinesSettle waits (bounded) until the goroutine count is at most n
// and reports the last count seen: a worker that has signalled it is done
// still needs a moment to return, and an abandoned Reader's cleanup runs
// only after a GC.
func goroutinesSettle(n int) int {
	var g int
	for range 200 {
		if g = runtime.NumGoroutine(); g <= n {
			return g
		}
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
	return g
}

func TestPipelineGoroutines(t *testing.T) {
	p := newParty(t, suite.Intl)
	long := sealBytes(t, Options{Suite: p.s, Recipients: []Recipient{p.recipient()}, SegmentSize: tseg}, randBytes(200*tseg))
	short := sealBytes(t, Options{Suite: p.s, Recipients: []Recipient{p.recipient()}, SegmentSize: tseg}, randBytes(tseg))
	// Each subtest counts from its own start: t.Run adds a goroutine.
	t.Run("one segment starts none", func(t *testing.T) {
		r, err := newReader(bytes.NewReader(short), pipelineAuto, []Identity{p.identity()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			t.Fatal(err)
		}
		if r.pipe != nil {
			t.Fatal("a one-segment stream started the pipeline")
		}
	})

	t.Run("auto follows the calibration", func(t *testing.T) {
		for _, id := range suite.IDs() {
			q := newParty(t, id)
			data := sealBytes(t, Options{Suite: q.s, Recipients: []Recipient{q.recipient()}, SegmentSize: tseg}, randBytes(20*tseg))
			r, err := newReader(bytes.NewReader(data), pipelineAuto, []Identity{q.identity()})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				t.Fatal(err)
			}
			want := pipelineRing(tseg, pipelineAuto) > 0 && pipelinePays(q.s)
			if (r.pipe != nil) != want {
				t.Errorf("%s: pipelined %v, calibration says %v", id, r.pipe != nil, want)
			}
		}
	})

	t.Run("early close", func(t *testing.T) {
		base := runtime.NumGoroutine()
		r, err := newReader(bytes.NewReader(long), pipelineForce, []Identity{p.identity()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(r, make([]byte, 3*tseg+1)); err != nil {
			t.Fatal(err)
		}
		if runtime.NumGoroutine() <= base {
			t.Fatal("no workers running mid-stream")
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if g := goroutinesSettle(base); g > base {
			t.Fatalf("%d goroutines after Close, %d before", g, base)
		}
		if _, err := r.Read(make([]byte, 1)); !errors.Is(err, ErrClosed) {
			t.Fatalf("Read after Close: %v", err)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})

	t.Run("end and error stop the workers", func(t *testing.T) {
		base := runtime.NumGoroutine()
		bad := bytes.Clone(long)
		bad[len(bad)/2] ^= 1
		for _, data := range [][]byte{long, bad} {
			r, err := newReader(bytes.NewReader(data), pipelineForce, []Identity{p.identity()})
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, r)
			if g := goroutinesSettle(base); g > base {
				t.Fatalf("%d goroutines after the stream ended, %d before", g, base)
			}
		}
	})

	t.Run("abandoned reader", func(t *testing.T) {
		base := runtime.NumGoroutine()
		func() {
			r, err := newReader(bytes.NewReader(long), pipelineForce, []Identity{p.identity()})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(r, make([]byte, 2*tseg)); err != nil {
				t.Fatal(err)
			}
		}()
		if g := goroutinesSettle(base); g > base {
			t.Fatalf("%d goroutines after an abandoned reader was collected, %d before", g, base)
		}
	})
}

func TestPipelineRing(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	for _, tc := range []struct {
		seg  int
		mode pipelineMode
		want int
	}{
		{DefaultSegmentSize, pipelineOff, 0},
		{DefaultSegmentSize, pipelineForce, max(procs, 2) + 2},
		{MaxSegmentSize, pipelineAuto, 0},
		{MaxSegmentSize, pipelineForce, 3},
		{2 << 20, pipelineAuto, 0},
	} {
		got := pipelineRing(tc.seg, tc.mode)
		if tc.mode == pipelineForce && tc.seg == DefaultSegmentSize {
			tc.want = min(tc.want, maxPipelineBytes/slotBytes(tc.seg))
		}
		if got != tc.want {
			t.Errorf("ring(%d, %d) = %d, want %d", tc.seg, tc.mode, got, tc.want)
		}
		if tc.mode == pipelineAuto && got*slotBytes(tc.seg) > maxPipelineBytes {
			t.Errorf("ring(%d) uses %d bytes", tc.seg, got*slotBytes(tc.seg))
		}
	}
	// With GOMAXPROCS 1 the default reads sequentially.
	old := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(old)
	if got := pipelineRing(DefaultSegmentSize, pipelineAuto); got != 0 {
		t.Errorf("GOMAXPROCS=1: ring %d", got)
	}
	// A huge GOMAXPROCS is capped by the memory bound.
	runtime.GOMAXPROCS(1000)
	if got := pipelineRing(DefaultSegmentSize, pipelineAuto); got*slotBytes(DefaultSegmentSize) > maxPipelineBytes || got < 3 {
		t.Errorf("GOMAXPROCS=1000: ring %d", got)
	}
}

// FuzzPipeline: on any input the pipelined reader releases the same bytes
// and returns the same error as the sequential one.
func FuzzPipeline(f *testing.F) {
	seeds, ids := fuzzSeeds(f)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want := readWith(pipelineOff, bytes.NewReader(b), true, ids...)
		got := readWith(pipelineForce, bytes.NewReader(b), true, ids...)
		if got.err != want.err || !bytes.Equal(got.out, want.out) {
			t.Fatalf("pipelined %d bytes %q, sequential %d bytes %q", len(got.out), got.err, len(want.out), want.err)
		}
	})
}
