package dlp

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"phix/internal/testenv"
)

// benchCorpus is the concatenated labelled notes.
func benchCorpus(b *testing.B) string {
	var texts []string
	for _, n := range loadNotes(b, testenv.Shared(b, "testdata", "dlp", "notes.jsonl")) {
		texts = append(texts, n.Text)
	}
	return strings.Join(texts, "\n")
}

var emailRE = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}`)

// measure runs f b.N times over text and reports, besides wall-clock MB/s,
// cpu-MB/s (bytes over process CPU time), which a busy shared machine
// distorts far less.
func measure(b *testing.B, text string, f func() int) {
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	c0 := cpuSeconds()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if f() == 0 {
			b.Fatal("nothing found")
		}
	}
	b.StopTimer()
	if c := cpuSeconds() - c0; c > 0 {
		b.ReportMetric(float64(len(text))*float64(b.N)/c/1e6, "cpu-MB/s")
	}
}

// BenchmarkScanNotes measures the engine note by note over the labelled
// notes (b.SetBytes is their total size; run with GOMAXPROCS=1).
//
//   - engine: the engine alone, with cpu-MB/s (bytes over process CPU time,
//     which a busy shared machine distorts far less than the wall clock);
//   - interleaved: each iteration runs the engine and then a single regexp
//     email scan over the same notes, so machine noise hits both alike, and
//     reports regexp-time/engine-time as x-regexp-email (above 1: the whole
//     engine is faster than one regexp).
func BenchmarkScanNotes(b *testing.B) {
	var notes []string
	for _, n := range loadNotes(b, testenv.Shared(b, "testdata", "dlp", "notes.jsonl")) {
		notes = append(notes, n.Text)
	}
	size := 0
	for _, n := range notes {
		size += len(n)
	}
	sc := Default()
	b.Run("engine", func(b *testing.B) {
		measure(b, strings.Repeat(" ", size), func() int {
			k := 0
			for _, n := range notes {
				k += len(sc.ScanText(n))
			}
			return k
		})
	})
	b.Run("interleaved", func(b *testing.B) {
		b.SetBytes(int64(size))
		var engine, peer time.Duration
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			for _, n := range notes {
				sc.ScanText(n)
			}
			t1 := time.Now()
			for _, n := range notes {
				emailRE.FindAllStringIndex(n, -1)
			}
			engine += t1.Sub(t0)
			peer += time.Since(t1)
		}
		if engine > 0 {
			b.ReportMetric(float64(size)*float64(b.N)/engine.Seconds()/1e6, "engine-MB/s")
			b.ReportMetric(peer.Seconds()/engine.Seconds(), "x-regexp-email")
		}
	})
}

// BenchmarkScanCorpus scans the notes joined into one text, next to two
// peers over the same bytes: a regexp email scan and a bytes.IndexByte loop
// for '@' (the raw floor of any scan). cpu-MB/s divides by process CPU time,
// which a busy shared machine distorts less than the wall clock.
func BenchmarkScanCorpus(b *testing.B) {
	text := benchCorpus(b)
	sc := Default()
	b.Run("engine", func(b *testing.B) {
		measure(b, text, func() int { return len(sc.ScanText(text)) })
	})
	b.Run("regexp-email", func(b *testing.B) {
		measure(b, text, func() int { return len(emailRE.FindAllStringIndex(text, -1)) })
	})
	b.Run("indexbyte-at", func(b *testing.B) {
		measure(b, text, func() int {
			n := 0
			for s := text; ; {
				k := strings.IndexByte(s, '@')
				if k < 0 {
					return n
				}
				n++
				s = s[k+1:]
			}
		})
	})
}
