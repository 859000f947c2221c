package asynchash

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"sync"
	"testing"
)

// TestSameAsDirect writes the same bytes in writes of many sizes (smaller
// than, equal to and larger than a buffer) and checks the sums match the
// synchronous hash.
func TestSameAsDirect(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 9*bufSize+12345)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for _, step := range []int{1, 7, 4096, bufSize - 1, bufSize, bufSize + 3, 3 * bufSize, len(data)} {
		if step == 1 && testing.Short() {
			continue
		}
		a, b := sha256.New(), sha256.New()
		h := New(a, nil, b)
		for p := data; len(p) > 0; {
			k := min(step, len(p))
			if n, err := h.Write(p[:k]); n != k || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
			p = p[k:]
		}
		h.Wait()
		h.Close()
		want := sha256.Sum256(data)
		if !bytes.Equal(a.Sum(nil), want[:]) || !bytes.Equal(b.Sum(nil), want[:]) {
			t.Fatalf("step %d: sums differ from the direct hash", step)
		}
	}
}

func TestEmpty(t *testing.T) {
	a := sha256.New()
	h := New(a)
	h.Wait()
	want := sha256.Sum256(nil)
	if !bytes.Equal(a.Sum(nil), want[:]) {
		t.Fatal("empty stream: wrong sum")
	}
}

func TestWriteAfterWaitPanics(t *testing.T) {
	h := New(sha256.New())
	h.Wait()
	defer func() {
		if recover() == nil {
			t.Fatal("Write after Wait did not panic")
		}
	}()
	h.Write([]byte("x"))
}

func BenchmarkHasher(b *testing.B) {
	buf := make([]byte, 256<<10)
	b.SetBytes(int64(len(buf)))
	h := New(sha256.New())
	for range b.N {
		h.Write(buf)
	}
	h.Wait()
}

// TestBufferSubmit: bytes handed over in lent buffers (full, partial and
// empty ones) hash the same as Write; a writer reads a buffer (as a file
// write does) before submitting it. Two Hashers run at once, so that a
// buffer recycled while still in use would show as a race or a wrong sum.
func TestBufferSubmit(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	data := make([]byte, 7*bufSize+999)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	want := sha256.Sum256(data)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			a := sha256.New()
			h := New(a)
			var copied []byte
			for p, i := data, 0; len(p) > 0; i++ {
				b := h.Buffer()
				if len(b) != bufSize {
					t.Errorf("Buffer() gave %d bytes", len(b))
					return
				}
				k := copy(b[:min(len(b), len(p), 1+i*300007%bufSize)], p)
				p = p[k:]
				copied = append(copied, b[:k]...) // read before Submit, as a file write does
				h.Submit(b[:k])
				if i%3 == 0 {
					h.Submit(h.Buffer()[:0])
				}
			}
			h.Wait()
			if !bytes.Equal(a.Sum(nil), want[:]) || !bytes.Equal(copied, data) {
				t.Error("lent buffers: sum differs from the direct hash")
			}
		})
	}
	wg.Wait()
}
