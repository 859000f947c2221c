package seal

import (
	"bytes"
	"crypto/cipher"
	"io"
	"slices"
	"testing"
	"time"

	"phix/suite"
)

const benchSize = 32 << 20

// rawSeal is the bare primitive over the same bytes and segment size: the
// suite AEAD sealing each 64 KiB segment with a fresh nonce into a reused buffer.
func rawSeal(a cipher.AEAD, pt, out []byte) {
	var n [nonceSize]byte
	for i := 0; i < len(pt); i += DefaultSegmentSize {
		end := min(i+DefaultSegmentSize, len(pt))
		a.Seal(out[:0], nonce(&n, n[:NoncePrefixSize], uint32(i/DefaultSegmentSize), end == len(pt)), pt[i:end], nil)
	}
}

// rawReadOpen is rawOpen with the one copy any streaming reader makes: each
// segment is read from an io.Reader into a buffer first.
func rawReadOpen(a cipher.AEAD, body io.Reader, sizes []int, buf, out []byte) {
	var n [nonceSize]byte
	for i, sz := range sizes {
		if _, err := io.ReadFull(body, buf[:sz]); err != nil {
			panic("raw read failed")
		}
		if _, err := a.Open(out[:0], nonce(&n, n[:NoncePrefixSize], uint32(i), i == len(sizes)-1), buf[:sz], nil); err != nil {
			panic("raw open failed")
		}
	}
}

func rawOpen(a cipher.AEAD, cts [][]byte, out []byte) {
	var n [nonceSize]byte
	for i, ct := range cts {
		if _, err := a.Open(out[:0], nonce(&n, n[:NoncePrefixSize], uint32(i), i == len(cts)-1), ct, nil); err != nil {
			panic("raw open failed")
		}
	}
}

// BenchmarkSeal streams benchSize bytes through a Writer and, in the same
// iteration, the bare AEAD over the same segments; it reports both
// throughputs and their ratio (seal/raw; the target is >= 0.85).
func BenchmarkSeal(b *testing.B) {
	benchSeal(b, func(w *Writer, pt []byte) error {
		w.Write(pt)
		return nil
	})
}

// BenchmarkSealCopy is BenchmarkSeal through io.Copy from a plain io.Reader
// (as phix seal does from a file): the Writer's ReadFrom reads each segment
// straight into its buffer.
func BenchmarkSealCopy(b *testing.B) {
	benchSeal(b, func(w *Writer, pt []byte) error {
		_, err := io.Copy(w, onlyReader{bytes.NewReader(pt)})
		return err
	})
}

// benchSeal times fill writing benchSize bytes into a Writer against the bare
// AEAD run before and after it in the same iteration, for every suite.
func benchSeal(b *testing.B, fill func(w *Writer, pt []byte) error) {
	for _, id := range suite.IDs() {
		b.Run(string(id), func(b *testing.B) {
			p := newParty(b, id)
			pt := randBytes(benchSize)
			raw, _ := p.s.NewAEAD(make([]byte, p.s.AEADKeySize()))
			out := make([]byte, DefaultSegmentSize+tagSize)
			var rs ratios
			for b.Loop() {
				t0 := time.Now()
				rawSeal(raw, pt, out)
				t1 := time.Now()
				w, err := NewWriter(io.Discard, Options{Suite: p.s, Recipients: []Recipient{p.recipient()}})
				if err != nil {
					b.Fatal(err)
				}
				if err := fill(w, pt); err != nil {
					b.Fatal(err)
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
				t2 := time.Now()
				rawSeal(raw, pt, out)
				rs.add(t2.Sub(t1), (t1.Sub(t0)+time.Since(t2))/2)
			}
			rs.report(b)
		})
	}
}

// BenchmarkUnseal opens benchSize bytes with the default Reader (pipelined
// when GOMAXPROCS > 1) and, in the same iteration, runs the bare AEAD over
// the same segments, from slices and read from an io.Reader; it reports the
// ratios (the target is >= 0.85 against the bare AEAD).
func BenchmarkUnseal(b *testing.B) { benchUnseal(b, pipelineAuto) }

// BenchmarkUnsealSequential is BenchmarkUnseal with the pipeline off: one
// goroutine reads, opens and writes each segment in turn.
func BenchmarkUnsealSequential(b *testing.B) { benchUnseal(b, pipelineOff) }

func benchUnseal(b *testing.B, mode pipelineMode) {
	for _, id := range suite.IDs() {
		b.Run(string(id), func(b *testing.B) {
			p := newParty(b, id)
			pt := randBytes(benchSize)
			sealed := sealBytes(b, Options{Suite: p.s, Recipients: []Recipient{p.recipient()}}, pt)
			raw, _ := p.s.NewAEAD(make([]byte, p.s.AEADKeySize()))
			var cts [][]byte
			for i := 0; i < len(pt); i += DefaultSegmentSize {
				end := min(i+DefaultSegmentSize, len(pt))
				var n [nonceSize]byte
				cts = append(cts, raw.Seal(nil, nonce(&n, n[:NoncePrefixSize], uint32(len(cts)), end == len(pt)), pt[i:end], nil))
			}
			out := make([]byte, DefaultSegmentSize)
			id := p.identity()
			body := bytes.Join(cts, nil)
			var sizes []int
			for _, ct := range cts {
				sizes = append(sizes, len(ct))
			}
			rbuf := make([]byte, DefaultSegmentSize+tagSize)
			var rs ratios
			var tRead time.Duration
			for b.Loop() {
				tr := time.Now()
				rawReadOpen(raw, bytes.NewReader(body), sizes, rbuf, out)
				t0 := time.Now()
				tRead += t0.Sub(tr)
				rawOpen(raw, cts, out)
				t1 := time.Now()
				r, err := newReader(bytes.NewReader(sealed), mode, []Identity{id})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := r.WriteTo(io.Discard); err != nil {
					b.Fatal(err)
				}
				t2 := time.Now()
				rawOpen(raw, cts, out)
				rs.add(t2.Sub(t1), (t1.Sub(t0)+time.Since(t2))/2)
			}
			rs.report(b)
			b.ReportMetric(tRead.Seconds()/rs.t.Seconds(), "ratio-vs-read+open")
		})
	}
}

// ratios collects, per iteration, the time of the path measured and of the
// bare primitive over the same bytes (the mean of one run just before and one
// just after it, so load that drifts during the iteration hits both alike).
type ratios struct {
	t, raw time.Duration
	per    []float64
}

func (r *ratios) add(t, raw time.Duration) {
	r.t += t
	r.raw += raw
	r.per = append(r.per, raw.Seconds()/t.Seconds())
}

// report gives throughputs and two ratios to the bare primitive (the target
// is >= 0.85): over all iterations, and the median of the per-iteration ratios,
// which a burst of load from other processes moves less.
func (r *ratios) report(b *testing.B) {
	n := float64(len(r.per)) * benchSize / (1 << 20)
	b.ReportMetric(n/r.t.Seconds(), "MiB/s")
	b.ReportMetric(n/r.raw.Seconds(), "raw-MiB/s")
	b.ReportMetric(r.raw.Seconds()/r.t.Seconds(), "ratio")
	slices.Sort(r.per)
	b.ReportMetric(r.per[len(r.per)/2], "ratio-median")
}
