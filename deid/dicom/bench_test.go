package dicom

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkVsGdcmanon de-identifies the pydicom test files (single
// goroutine, read and write included) and, in the same run, times
// gdcmanon --dumb over the same files (gdcmanon -e needs a certificate).
// It reports MB/s and files/s for both and the ratio phix/gdcmanon.
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
	var phixT, gdcmT time.Duration
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
		phixT += time.Since(start)
		start = time.Now()
		cmd := exec.Command(gdcm, "--dumb", "--continue", "-r", "-i", in, "-o", outGdcm,
			"--empty", "10,10", "--empty", "10,20", "--empty", "10,30", "--empty", "8,20", "--empty", "8,50", "--empty", "8,80", "--empty", "8,90")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("gdcmanon: %v: %s", err, out)
		}
		gdcmT += time.Since(start)
	}
	b.StopTimer()
	mb := float64(total) * float64(b.N) / 1e6
	n := float64(len(files) * b.N)
	b.ReportMetric(mb/phixT.Seconds(), "phix-MB/s")
	b.ReportMetric(n/phixT.Seconds(), "phix-files/s")
	b.ReportMetric(mb/gdcmT.Seconds(), "gdcmanon-MB/s")
	b.ReportMetric(n/gdcmT.Seconds(), "gdcmanon-files/s")
	b.ReportMetric(gdcmT.Seconds()/phixT.Seconds(), "phix/gdcmanon")
}
