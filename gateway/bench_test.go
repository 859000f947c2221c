package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"phix/devnet"
	"phix/gateway"
	"phix/internal/testenv"
	"phix/suite"
)

// benchSize is the end-to-end file: 64 MiB by default, 1 GiB with
// PHIX_BENCH_BIG=1 (10 GiB with PHIX_BENCH_BIG=10).
func benchSize() int64 {
	switch os.Getenv("PHIX_BENCH_BIG") {
	case "1":
		return 1 << 30
	case "10":
		return 10 << 30
	}
	return 64 << 20
}

// sparseRandomFile writes size bytes of random-looking data without
// holding them in memory.
func sparseRandomFile(b *testing.B, size int64) string {
	b.Helper()
	p := filepath.Join(b.TempDir(), "big.pdf")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	block := make([]byte, 1<<20)
	for i := range block {
		block[i] = byte(i*131 + i>>8)
	}
	copy(block, "%PDF-1.7\n")
	for n := int64(0); n < size; n += int64(len(block)) {
		block[9] = byte(n >> 20) // no two blocks alike
		block[10] = byte(n >> 28)
		if _, err := w.Write(block[:min(int64(len(block)), size-n)]); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	return p
}

// BenchmarkEndToEnd sends one file A → B through the whole pipeline (seal,
// sign, tus upload over mutual TLS, coordinator, download, verify, unseal,
// deliver) and reports MB/s, x-tusd (the ratio to tusd's plaintext upload
// of the same file, measured in the same run) and peak RSS growth of the
// process (which holds the coordinator and both gateways) from before the
// transfers to their peak.
//
//	go test -run '^$' -bench EndToEnd -benchtime 1x -count 5 ./gateway
//	PHIX_BENCH_BIG=1 go test -run '^$' -bench EndToEnd -benchtime 1x -count 5 -timeout 60m ./gateway
func BenchmarkEndToEnd(b *testing.B) {
	for _, s := range []string{"intl", "gm"} {
		b.Run(s, func(b *testing.B) {
			size := benchSize()
			src := sparseRandomFile(b, size)
			n, err := devnet.Start(context.Background(), devnet.Options{DataDir: b.TempDir(), BasePort: -1, NoAutoReceive: true, Suite: s})
			if err != nil {
				b.Fatal(err)
			}
			defer n.Close()
			tusSecs := tusdUpload(b, src, size)
			hashSecs := hashPass(b, s, src)
			// Growth is measured from the resident set now to the peak
			// during the transfers: the peak is reset first (clear_refs 5),
			// because setting up the network (argon2 for the dev users'
			// secrets among others) peaks higher than a transfer and would
			// hide it; freed memory is returned to the system first, so
			// that reusing it counts as growth.
			debug.FreeOSMemory()
			resetPeakRSS()
			rss0 := procStatus("VmRSS:")
			b.SetBytes(size)
			b.ResetTimer()
			cpu0 := cpuSeconds()
			start := time.Now()
			var stages, stagesCPU [3]float64 // seconds: send (to registration), upload (to sent), receive
			for i := 0; i < b.N; i++ {
				t0, c0 := time.Now(), cpuSeconds()
				job, err := n.Hospitals[0].Gateway.Send(context.Background(), gateway.SendRequest{To: "hospital-b", Purpose: "TREAT",
					Consent: n.Demo.Consent, Files: []gateway.SourceFile{{Path: src}}})
				if err != nil {
					b.Fatal(err)
				}
				t1, c1 := time.Now(), cpuSeconds()
				t2, c2 := benchWait(b, n, job.ID)
				stages[0] += t1.Sub(t0).Seconds()
				stages[1] += t2.Sub(t1).Seconds()
				stages[2] += time.Since(t2).Seconds()
				stagesCPU[0] += c1 - c0
				stagesCPU[1] += c2 - c1
				stagesCPU[2] += cpuSeconds() - c2
			}
			el := time.Since(start).Seconds() / float64(b.N)
			b.StopTimer()
			b.ReportMetric(tusSecs/el, "x-tusd")
			// The protocol hashes every byte with the suite's hash three
			// times, one after the other (the sender before registering,
			// the coordinator before complete, the receiver before it
			// trusts the download): no transfer can beat that.
			b.ReportMetric(tusSecs/(3*hashSecs), "hash-floor-x-tusd")
			b.ReportMetric(float64(size)/(3*hashSecs)/1e6, "hash-floor-MB/s")
			// CPU seconds of the whole process (coordinator and both
			// gateways) per transfer: the work done, which other jobs on a
			// shared machine disturb less than the elapsed time.
			b.ReportMetric((cpuSeconds()-cpu0)/float64(b.N), "cpu-s")
			for i, name := range []string{"send", "upload", "receive"} {
				b.ReportMetric(stages[i]/float64(b.N), name+"-s")
				b.ReportMetric(stagesCPU[i]/float64(b.N), name+"-cpu-s")
			}
			b.ReportMetric(float64(procStatus("VmHWM:")-rss0)/(1<<20), "rss-growth-MiB")
			b.ReportMetric(float64(rss0)/(1<<20), "rss-start-MiB")
		})
	}
}

// benchWait waits until transfer id is sent, then receives it at B; it
// returns when the sender saw it sent, and the process's CPU seconds then.
func benchWait(b *testing.B, n *devnet.Network, id string) (time.Time, float64) {
	ctx := context.Background()
	deadline := time.Now().Add(2 * time.Hour)
	var sent time.Time
	var sentCPU float64
	for time.Now().Before(deadline) {
		st, err := n.Hospitals[0].Gateway.Status(httptestRequest(), id)
		if err != nil {
			b.Fatal(err)
		}
		if st.Status == gateway.JobSent || st.Status == gateway.JobDelivered {
			sent, sentCPU = time.Now(), cpuSeconds()
			break
		}
		if st.Status != gateway.JobUploading {
			b.Fatalf("transfer %s %s %s", id, st.Status, st.Error)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for time.Now().Before(deadline) {
		recs, err := n.Hospitals[1].Gateway.ReceiveOnce(ctx, time.Second)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range recs {
			if r.ID == id {
				if r.Status != gateway.InDelivered {
					b.Fatalf("inbound %+v", r)
				}
				for _, f := range r.Files {
					os.Remove(filepath.Join(n.Hospitals[1].Gateway.DeliveryDir(), f))
				}
				return sent, sentCPU
			}
		}
	}
	b.Fatal("never delivered")
	return sent, sentCPU
}

// cpuSeconds is the user and system CPU time of the process so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// resetPeakRSS resets the process's peak resident set (VmHWM) to the
// current one (Linux 4.0+).
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// procStatus reads a size field of /proc/self/status (VmRSS:, VmHWM:) in
// bytes.
func procStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// tusdUpload starts tusd v2 on loopback and uploads src in 8 MiB PATCHes
// (the gateway's chunk size) in plaintext; it returns the seconds taken.
func tusdUpload(b *testing.B, src string, size int64) float64 {
	b.Helper()
	bin := filepath.Join(os.Getenv("HOME"), "go", "bin", "tusd")
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		bin = filepath.Join(strings.TrimSpace(string(out)), "bin", "tusd")
	}
	if _, err := os.Stat(bin); err != nil {
		testenv.Missing(b, "tusd not installed (go install github.com/tus/tusd/v2/cmd/tusd@v2.10.0)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	// tusd's copy is removed as soon as it is measured: a 10 GiB run
	// needs the disk for the transfer itself.
	updir, err := os.MkdirTemp("", "phix-tusd-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(updir)
	cmd := exec.Command(bin, "-host", "127.0.0.1", "-port", port, "-upload-dir", updir, "-disable-download")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	base := "http://127.0.0.1:" + port + "/files/"
	for i := 0; ; i++ {
		if res, err := http.Get(base); err == nil {
			res.Body.Close()
			break
		}
		if i > 100 {
			b.Fatal("tusd did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	f, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	start := time.Now()
	req, _ := http.NewRequest("POST", base, nil)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Length", strconv.FormatInt(size, 10))
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 201 {
		b.Fatalf("tusd create: %v %v", err, res)
	}
	res.Body.Close()
	loc := res.Header.Get("Location")
	if strings.HasPrefix(loc, "/") {
		loc = "http://127.0.0.1:" + port + loc
	}
	buf := make([]byte, 8<<20)
	for off := int64(0); off < size; {
		k, _ := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		req, _ := http.NewRequest("PATCH", loc, bytes.NewReader(buf[:k]))
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Content-Type", "application/offset+octet-stream")
		req.Header.Set("Upload-Offset", strconv.FormatInt(off, 10))
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != 204 {
			b.Fatalf("tusd patch: %v %v", err, res)
		}
		res.Body.Close()
		off += int64(k)
	}
	return time.Since(start).Seconds()
}

// hashPass times one pass of the suite's hash over src (from the page
// cache, on one core: a single hash stream cannot be split).
func hashPass(b *testing.B, id, src string) float64 {
	b.Helper()
	s, err := suite.Lookup(suite.ID(id))
	if err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	h := s.NewHash()
	start := time.Now()
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		b.Fatal(err)
	}
	h.Sum(nil)
	return time.Since(start).Seconds()
}

// BenchmarkSendSyntheaRecord: one Synthea patient's whole record (the
// smallest full bundle of ../shared), collected with $everything,
// minimized (clinical profile), de-identified (safe harbor) with its
// re-identification table, sealed, signed and uploaded, until the
// coordinator holds it.
//
//	PHIX_SHARED=/work/shared go test -run '^$' -bench SendSynthea -benchtime 5x -count 5 ./gateway
func BenchmarkSendSyntheaRecord(b *testing.B) {
	bundles := testenv.SyntheaBundles(b)
	if len(bundles) == 0 {
		b.Skip("no Synthea bundles")
	}
	small := bundles[0]
	for _, x := range bundles {
		if len(x.Data) < len(small.Data) {
			small = x
		}
	}
	n, err := devnet.Start(context.Background(), devnet.Options{DataDir: b.TempDir(), BasePort: -1, NoAutoReceive: true, NoSeed: false})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	demo, err := n.SeedPatient(context.Background(), small.Data)
	if err != nil {
		b.Fatal(err)
	}
	resources := len(fhirEverything(b, n, demo))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		job, err := n.Hospitals[0].Gateway.Send(context.Background(), gateway.SendRequest{To: "hospital-b", Purpose: "TREAT",
			Consent: demo.Consent, Deidentify: "safe-harbor", FHIR: demo.Patient + "/$everything"})
		if err != nil {
			b.Fatal(err)
		}
		for {
			st, err := n.Hospitals[0].Gateway.Status(httptestRequest(), job.ID)
			if err != nil {
				b.Fatal(err)
			}
			if st.Status == gateway.JobSent {
				break
			}
			if st.Status != gateway.JobUploading {
				b.Fatalf("%+v", st)
			}
			time.Sleep(time.Millisecond)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(resources), "resources")
}

func fhirEverything(b *testing.B, n *devnet.Network, d devnet.Demo) []any {
	req, _ := http.NewRequest("GET", n.Hospitals[0].FHIR+"/"+d.Patient+"/$everything", nil)
	req.Header.Set("Authorization", "Bearer "+n.Hospitals[0].Token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	var bundle struct {
		Entry []any `json:"entry"`
	}
	if err := jsonDecode(res.Body, &bundle); err != nil {
		b.Fatal(fmt.Errorf("everything: %w", err))
	}
	return bundle.Entry
}
