package siem_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"phix/audit/siem"
	"phix/internal/testenv"
)

// rsyslogd runs a real rsyslog with rsyslog-gnutls on a loopback port.
type rsyslogd struct {
	t                       *testing.T
	bin, conf, pidfile, out string
	cmd                     *exec.Cmd
	port                    int
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func newRsyslog(t *testing.T, p *pki) *rsyslogd {
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		for _, c := range []string{"/usr/sbin/rsyslogd", "/sbin/rsyslogd"} {
			if _, err := os.Stat(c); err == nil {
				bin = c
			}
		}
	}
	if bin == "" {
		testenv.Missing(t, "rsyslogd not installed (apt-get install rsyslog rsyslog-gnutls)")
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	ca := write("ca.pem", p.caPEM)
	cert := write("server.pem", p.serverPEM)
	key := write("server.key", p.serverKey)
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o700); err != nil {
		t.Fatal(err)
	}
	r := &rsyslogd{t: t, bin: bin, port: freePort(t), pidfile: filepath.Join(dir, "rsyslogd.pid"), out: filepath.Join(dir, "out.log")}
	conf := fmt.Sprintf(`global(workDirectory=%q
  DefaultNetstreamDriver="gtls"
  DefaultNetstreamDriverCAFile=%q
  DefaultNetstreamDriverCertFile=%q
  DefaultNetstreamDriverKeyFile=%q)
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="x509/certvalid")
template(name="phixraw" type="string" string="%%msg%%\n")
input(type="imtcp" port="%d" address="127.0.0.1")
action(type="omfile" file=%q template="phixraw")
`, work, ca, cert, key, r.port, r.out)
	r.conf = write("rsyslog.conf", []byte(conf))
	if out, err := exec.Command(bin, "-N1", "-f", r.conf).CombinedOutput(); err != nil {
		if strings.Contains(string(out), "gtls") || strings.Contains(string(out), "lmnsd_gtls") {
			testenv.Missing(t, "rsyslog-gnutls not installed: %s", firstLine(out))
		}
		t.Fatalf("rsyslog config check: %v: %s", err, out)
	}
	return r
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return s
}

func (r *rsyslogd) start() {
	r.t.Helper()
	_ = os.Remove(r.pidfile)
	r.cmd = exec.Command(r.bin, "-n", "-f", r.conf, "-i", r.pidfile)
	r.cmd.Stdout, r.cmd.Stderr = os.Stderr, os.Stderr
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { r.stop() })
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(r.port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.t.Fatal("rsyslogd did not start listening")
}

// stop terminates rsyslogd gracefully (it flushes its queues) and waits.
func (r *rsyslogd) stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = r.cmd.Process.Kill()
		<-done
	}
	r.cmd = nil
}

// TestRsyslogOutage streams the log to a real rsyslog over TLS with
// mutual certificates, stops rsyslog mid-stream, restarts it, and checks that
// every event arrived, counting distinct sequence ids and reporting duplicates.
func TestRsyslogOutage(t *testing.T) {
	p := newPKI(t)
	rs := newRsyslog(t, p)
	const n = 1500
	b := logWith(t, n)
	rs.start()
	sink := &siem.Syslog{Addr: "127.0.0.1:" + strconv.Itoa(rs.port), TLS: p.clientTLS(), Hostname: "hospital-a", Timeout: 10 * time.Second}
	ex := &siem.Exporter{Source: b, Sink: sink, Batch: 50, Poll: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- ex.Run(ctx) }()

	waitCursor := func(min int64) int64 {
		t.Helper()
		for ctx.Err() == nil {
			c, err := b.Cursor(ctx, sink.Name())
			if err != nil {
				t.Fatal(err)
			}
			if c >= min {
				return c
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("exporter did not reach index %d", min)
		return 0
	}
	at := waitCursor(300)
	rs.stop() // mid-stream
	stoppedAt, _ := b.Cursor(ctx, sink.Name())
	time.Sleep(500 * time.Millisecond) // the exporter fails and backs off meanwhile
	if c, _ := b.Cursor(ctx, sink.Name()); c != stoppedAt {
		t.Fatalf("cursor advanced from %d to %d while rsyslog was down", stoppedAt, c)
	}
	rs.start()
	waitCursor(n - 1)
	cancel()
	<-runDone
	rs.stop()
	data, err := os.ReadFile(rs.out)
	if err != nil {
		t.Fatal(err)
	}
	dups := checkExactlyOnce(t, indexes(string(data)), n)
	// In order: each new index is the next one; a repeat only re-sends a
	// batch that was already written.
	highest := int64(-1)
	for _, m := range indexRE.FindAllStringSubmatch(string(data), -1) {
		i, _ := strconv.ParseInt(m[1], 10, 64)
		if i > highest+1 {
			t.Fatalf("event %d arrived before event %d", i, highest+1)
		}
		highest = max(highest, i)
	}
	t.Logf("stopped rsyslog at cursor %d (stop issued after %d); %d events delivered, %d duplicates", stoppedAt, at, n, dups)
	// Plain syslog has no acknowledgements, so exactly-once across a receiver
	// crash is impossible (docs/audit.md): a batch rsyslog read in full but
	// had not yet confirmed (by closing its side) when it was stopped is sent
	// again. What the exporter guarantees is: every event present, in order,
	// and duplicates confined to the one batch in flight at the outage, each
	// carrying the same seq so the SIEM can drop it.
	if dups > ex.Batch {
		t.Fatalf("%d events arrived twice; at most one batch (%d) may repeat per outage", dups, ex.Batch)
	}
}
