package seal

import (
	"bufio"
	"hash/crc32"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"phix/suite"
)

// patternReader yields n bytes of a cheap, non-constant pattern.
type patternReader struct {
	n   int64
	buf []byte
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.n == 0 {
		return 0, io.EOF
	}
	m := int(min(int64(len(b)), p.n))
	for i := 0; i < m; {
		i += copy(b[i:m], p.buf[(int(p.n)+i)%len(p.buf):])
	}
	p.n -= int64(m)
	return m, nil
}

// rssKiB reads VmRSS from /proc/self/status (0 where unavailable).
func rssKiB() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// TestStreamMemory streams seal -> io.Pipe -> unseal with no disk and checks
// that resident memory stays flat: the growth in RSS over the run is at most
// 32 MiB. 64 MiB per suite by default; PHIX_BENCH_10G=1 streams 10 GiB.
func TestStreamMemory(t *testing.T) {
	size := int64(64 << 20)
	if os.Getenv("PHIX_BENCH_10G") == "1" {
		size = 10 << 30
	}
	for _, id := range suite.IDs() {
		t.Run(string(id), func(t *testing.T) {
			p := newParty(t, id)
			runtime.GC()
			base := rssKiB()
			var peak, heapPeak atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				var ms runtime.MemStats
				tick := time.NewTicker(20 * time.Millisecond)
				defer tick.Stop()
				for {
					if r := rssKiB(); r > peak.Load() {
						peak.Store(r)
					}
					runtime.ReadMemStats(&ms)
					if h := int64(ms.HeapInuse); h > heapPeak.Load() {
						heapPeak.Store(h)
					}
					select {
					case <-stop:
						return
					case <-tick.C:
					}
				}
			}()
			pr, pw := io.Pipe()
			src := &patternReader{n: size, buf: randBytes(1<<16 + 7)}
			inCRC := crc32.NewIEEE()
			go func() {
				w, err := NewWriter(pw, Options{Suite: p.s, Recipients: []Recipient{p.recipient()}})
				if err != nil {
					pw.CloseWithError(err)
					return
				}
				if _, err := io.Copy(w, io.TeeReader(src, inCRC)); err != nil {
					pw.CloseWithError(err)
					return
				}
				pw.CloseWithError(w.Close())
			}()
			r, err := NewReader(pr, p.identity())
			if err != nil {
				t.Fatal(err)
			}
			outCRC := crc32.NewIEEE()
			n, err := r.WriteTo(outCRC)
			close(stop)
			wg.Wait()
			if err != nil || n != size || inCRC.Sum32() != outCRC.Sum32() {
				t.Fatalf("streamed %d of %d bytes, err %v, crc match %v", n, size, err, inCRC.Sum32() == outCRC.Sum32())
			}
			growth := max(peak.Load()-base, 0) >> 10
			t.Logf("%s: streamed %d MiB, RSS growth %d MiB (base %d MiB), peak heap in use %d MiB", id, size>>20, growth, base>>10, heapPeak.Load()>>20)
			if base > 0 && growth > 32 {
				t.Fatalf("RSS grew by %d MiB streaming %d MiB", growth, size>>20)
			}
		})
	}
}
