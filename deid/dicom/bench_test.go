package dicom

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// BenchmarkVsGdcmanon de-identifies the pydicom test files (single
// goroutine, read and write included) and, in the same run, times
// gdcmanon --dumb over the same files (gdcmanon -e needs a certificate).
// It reports median MB/s and files/s for both, the median ratio
// phix/gdcmanon (single goroutine) and batch/gdcmanon (DeidentifyTree,
// GOMAXPROCS workers; gdcmanon is single-threaded).
func BenchmarkVsGdcmanon(b *testing.B) {
	gdcm := tool(b, "gdcmanon")
	d := newTestDeid(b, "basic")
	in := b.TempDir()
	var files []string
	var total int64
	for _, f := range pydicomFiles(b) {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := d.Deidentify(data); err != nil {
			continue // only files both sides take
		}
		p := filepath.Join(in, filepath.Base(f))
		if err := os.WriteFile(p, data, 0o600); err != nil {
			b.Fatal(err)
		}
		files = append(files, p)
		total += int64(len(data))
	}
	outPhix, outGdcm := b.TempDir(), b.TempDir()
	var phixT, batchT, gdcmT []float64 // seconds per iteration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				b.Fatal(err)
			}
			res, err := d.Deidentify(data)
			if err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(outPhix, filepath.Base(f)), res.Data, 0o600); err != nil {
				b.Fatal(err)
			}
		}
		phixT = append(phixT, time.Since(start).Seconds())

		b.StopTimer()
		outBatch := b.TempDir()
		b.StartTimer()
		start = time.Now()
		sum, err := d.DeidentifyTree(context.Background(), in, filepath.Join(outBatch, "out"), filepath.Join(outBatch, "q"))
		if err != nil || sum.Failed > 0 {
			b.Fatalf("batch: %v, %d failed", err, sum.Failed)
		}
		batchT = append(batchT, time.Since(start).Seconds())

		start = time.Now()
		cmd := exec.Command(gdcm, "--dumb", "--continue", "-r", "-i", in, "-o", outGdcm,
			"--empty", "10,10", "--empty", "10,20", "--empty", "10,30", "--empty", "8,20", "--empty", "8,50", "--empty", "8,80", "--empty", "8,90")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("gdcmanon: %v: %s", err, out)
		}
		gdcmT = append(gdcmT, time.Since(start).Seconds())
	}
	b.StopTimer()
	// Medians per iteration, and ratios of iterations run back to back, so
	// machine noise hits both sides alike.
	mb, n := float64(total)/1e6, float64(len(files))
	ratio, batchRatio := make([]float64, b.N), make([]float64, b.N)
	for i := range phixT {
		ratio[i] = gdcmT[i] / phixT[i]
		batchRatio[i] = gdcmT[i] / batchT[i]
	}
	b.ReportMetric(mb/median(phixT), "phix-MB/s")
	b.ReportMetric(n/median(phixT), "phix-files/s")
	b.ReportMetric(mb/median(batchT), "batch-MB/s")
	b.ReportMetric(mb/median(gdcmT), "gdcmanon-MB/s")
	b.ReportMetric(n/median(gdcmT), "gdcmanon-files/s")
	b.ReportMetric(median(ratio), "phix/gdcmanon")
	b.ReportMetric(median(batchRatio), "batch/gdcmanon")
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkDeidentify is the in-memory cost (no file I/O) over the
// pydicom files phix accepts, single goroutine, with allocations.
func BenchmarkDeidentify(b *testing.B) {
	d := newTestDeid(b, "basic")
	var inputs [][]byte
	var total int64
	for _, f := range pydicomFiles(b) {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := d.Deidentify(data); err == nil {
			inputs = append(inputs, data)
			total += int64(len(data))
		}
	}
	b.SetBytes(total)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, in := range inputs {
			if _, err := d.Deidentify(in); err != nil {
				b.Fatal(err)
			}
		}
	}
}
