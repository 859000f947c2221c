package seal

import (
	"bytes"
	"crypto/cipher"
	"io"
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
	for _, id := range suite.IDs() {
		b.Run(string(id), func(b *testing.B) {
			p := newParty(b, id)
			pt := randBytes(benchSize)
			raw, _ := p.s.NewAEAD(make([]byte, p.s.AEADKeySize()))
			out := make([]byte, DefaultSegmentSize+tagSize)
			var tSeal, tRaw time.Duration
			for b.Loop() {
				t0 := time.Now()
				rawSeal(raw, pt, out)
				t1 := time.Now()
				w, err := NewWriter(io.Discard, Options{Suite: p.s, Recipients: []Recipient{p.recipient()}})
				if err != nil {
					b.Fatal(err)
				}
				w.Write(pt)
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
				tSeal += time.Since(t1)
				tRaw += t1.Sub(t0)
			}
			report(b, tSeal, tRaw)
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
			var tOpen, tRaw, tRead time.Duration
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
				tOpen += time.Since(t1)
				tRaw += t1.Sub(t0)
			}
			report(b, tOpen, tRaw)
			b.ReportMetric(tRead.Seconds()/tOpen.Seconds(), "ratio-vs-read+open")
		})
	}
}

func report(b *testing.B, t, raw time.Duration) {
	n := float64(b.N) * benchSize / (1 << 20)
	b.ReportMetric(n/t.Seconds(), "MiB/s")
	b.ReportMetric(n/raw.Seconds(), "raw-MiB/s")
	b.ReportMetric(raw.Seconds()/t.Seconds(), "ratio")
}
