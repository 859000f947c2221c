package transfer_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"phix/blob/fsblob"
	"phix/queue/natsq"
	"phix/transfer"
	"phix/transfer/transfersql"
)

// freeLoopbackPort returns a port that was free on 127.0.0.1 a moment ago.
func freeLoopbackPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitTCP(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not come up", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// privatePG is a PostgreSQL instance of the test's own (initdb on a temp
// directory, loopback port), so that restarting it disturbs no other test.
// The server refuses to run as root; as root the test runs it as the
// postgres user.
type privatePG struct {
	bin, dir string
	port     int
	cred     *syscall.Credential
	cmd      *exec.Cmd
}

func startPrivatePG(t *testing.T) *privatePG {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		testenvMissing(t, "no /usr/lib/postgresql/*/bin/initdb for a private PostgreSQL")
	}
	sort.Strings(bins)
	p := &privatePG{bin: filepath.Dir(bins[len(bins)-1]), port: freeLoopbackPort(t)}
	dir, err := os.MkdirTemp("", "phix-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p.dir = filepath.Join(dir, "data")
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			testenvMissing(t, "running as root without a postgres user to run a private PostgreSQL")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	init := exec.Command(filepath.Join(p.bin, "initdb"), "-D", p.dir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions")
	init.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	if out, err := init.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.stop)
	return p
}

func (p *privatePG) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}

func (p *privatePG) start() error {
	p.cmd = exec.Command(filepath.Join(p.bin, "postgres"), "-D", p.dir, "-p", strconv.Itoa(p.port), "-k", p.dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=50", "-c", "shared_buffers=16MB")
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	if err := p.cmd.Start(); err != nil {
		return err
	}
	return waitTCP(fmt.Sprintf("127.0.0.1:%d", p.port), 30*time.Second)
}

// stop is an immediate shutdown (SIGQUIT: no checkpoint, crash recovery on
// the next start), the harshest stop short of losing the machine.
func (p *privatePG) stop() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGQUIT)
	p.cmd.Wait()
	p.cmd = nil
}

// privateNATS is a nats-server process of the test's own with JetStream
// on a temp store directory.
type privateNATS struct {
	dir  string
	port int
	cmd  *exec.Cmd
}

func startPrivateNATS(t *testing.T) *privateNATS {
	t.Helper()
	if _, err := os.Stat("/usr/sbin/nats-server"); err != nil {
		testenvMissing(t, "no /usr/sbin/nats-server for a private NATS")
	}
	n := &privateNATS{dir: t.TempDir(), port: freeLoopbackPort(t)}
	if err := n.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.stop)
	return n
}

func (n *privateNATS) start() error {
	n.cmd = exec.Command("/usr/sbin/nats-server", "-js", "-sd", n.dir, "-a", "127.0.0.1", "-p", strconv.Itoa(n.port))
	if err := n.cmd.Start(); err != nil {
		return err
	}
	return waitTCP(fmt.Sprintf("127.0.0.1:%d", n.port), 30*time.Second)
}

func (n *privateNATS) stop() {
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGKILL)
	n.cmd.Wait()
	n.cmd = nil
}

// retry calls f until it reports done, sleeping between attempts, for at
// most 30 s (the services come back within a second or two).
func retry(ctx context.Context, what string, f func() (bool, error)) error {
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		done, err := f()
		if done {
			return nil
		}
		if err != nil {
			last = err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s: gave up: %v", what, last)
}

// TestRestartPostgresAndNATSDuringDelivery restarts a private PostgreSQL
// and a private nats-server again and again while senders create, upload
// and complete transfers and the receiver polls its inbox, downloads and
// posts receipts. Every transfer reaches the receiver exactly once: it is
// listed until its receipt and never after, with the right bytes.
func TestRestartPostgresAndNATSDuringDelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("starts private PostgreSQL and NATS servers")
	}
	pg := startPrivatePG(t)
	nt := startPrivateNATS(t)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Second)
	defer cancel()

	st, err := transfersql.Open(ctx, pg.url())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	q, err := natsq.Open(ctx, natsq.Config{URL: fmt.Sprintf("nats://127.0.0.1:%d", nt.port), AckWait: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	e := newEnv(t, "", func(c *transfer.Config) {
		c.Store, c.Queue = st, q
		blobs, err := fsblob.New(filepath.Join(t.TempDir(), "blobs"), "CN-SH")
		if err != nil {
			t.Fatal(err)
		}
		c.Blobs = blobs
		c.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	})

	const n = 12
	client := &http.Client{Timeout: 10 * time.Second}
	send := func(p *party, method, path string, body io.Reader, hdr map[string]string) (int, []byte, error) {
		req, _ := http.NewRequestWithContext(ctx, method, e.ts.URL+path, body)
		req.Header.Set("X-Test-Hospital", p.ID)
		req.Header.Set("X-Test-Cert", p.Cert)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return res.StatusCode, b, nil
	}
	sendJSON := func(p *party, method, path string, in, out any) (int, error) {
		var rd io.Reader
		if in != nil {
			b, _ := json.Marshal(in)
			rd = bytes.NewReader(b)
		}
		code, b, err := send(p, method, path, rd, map[string]string{"Content-Type": "application/json"})
		if err == nil && code < 300 && out != nil {
			err = json.Unmarshal(b, out)
		}
		return code, err
	}

	// The disruptor restarts PostgreSQL and NATS alternately until the
	// receiver has everything.
	stopDisrupt := make(chan struct{})
	var pgRestarts, natsRestarts int
	disruptErr := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stopDisrupt:
				disruptErr <- nil
				return
			case <-time.After(300 * time.Millisecond):
			}
			var err error
			if i%2 == 0 {
				pg.stop()
				time.Sleep(200 * time.Millisecond)
				err = pg.start()
				pgRestarts++
			} else {
				nt.stop()
				time.Sleep(200 * time.Millisecond)
				err = nt.start()
				natsRestarts++
			}
			if err != nil {
				disruptErr <- err
				return
			}
		}
	}()

	// Senders: create, upload and complete, retrying through outages.
	datas := map[string][]byte{}
	var mu sync.Mutex
	senderErr := make(chan error, n)
	for i := range n {
		go func() {
			data := randBytes(50_000 + i*997)
			req := e.request(e.a, e.b, map[string][]byte{fmt.Sprintf("f%d.bin", i): data})
			var v transfer.TransferView
			err := retry(ctx, "create", func() (bool, error) {
				code, err := sendJSON(e.a, "POST", "/v1/transfers", req, &v)
				return code == 201, err
			})
			if err != nil {
				senderErr <- err
				return
			}
			mu.Lock()
			datas[v.ID] = data
			mu.Unlock()
			url := v.Files[0].UploadURL
			for off := 0; off < len(data); {
				end := min(off+16<<10, len(data))
				err := retry(ctx, "patch", func() (bool, error) {
					code, _, err := send(e.a, "PATCH", url, bytes.NewReader(data[off:end]), map[string]string{"Tus-Resumable": "1.0.0",
						"Content-Type": "application/offset+octet-stream", "Upload-Offset": strconv.Itoa(off), "Upload-Checksum": "sha256 " + b64sum(data[off:end])})
					if code == 409 || code == 410 || code == 204 || (err == nil && code >= 500) {
						// Learn the real offset (the chunk may have landed before an error).
						var tv transfer.TransferView
						if c, _ := sendJSON(e.a, "GET", "/v1/transfers/"+v.ID, nil, &tv); c == 200 {
							off = int(tv.Files[0].Offset)
							return true, nil
						}
					}
					return false, err
				})
				if err != nil {
					senderErr <- err
					return
				}
			}
			senderErr <- retry(ctx, "complete", func() (bool, error) {
				var done transfer.TransferView
				code, err := sendJSON(e.a, "POST", "/v1/transfers/"+v.ID+"/complete", nil, &done)
				if code >= 400 && code < 500 {
					return false, fmt.Errorf("complete: %d", code)
				}
				return code == 200 && done.Status == transfer.TransferReady, err
			})
		}()
	}

	// Receiver: poll, download, verify, receipt. A transfer listed again
	// after its receipt was accepted is a duplicate delivery.
	received := map[string]int{}
	receiverDone := make(chan error, 1)
	go func() {
		receiverDone <- func() error {
			for len(received) < n {
				if ctx.Err() != nil {
					return fmt.Errorf("received %d of %d before the deadline", len(received), n)
				}
				var inbox struct{ Deliveries []transfer.TransferView }
				code, err := sendJSON(e.b, "GET", "/v1/inbox?wait=1s", nil, &inbox)
				if err != nil || code != 200 {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				for _, d := range inbox.Deliveries {
					if received[d.ID] > 0 {
						return fmt.Errorf("a transfer was listed again after its receipt")
					}
					var rv transfer.TransferView
					if code, err := sendJSON(e.b, "GET", "/v1/transfers/"+d.ID, nil, &rv); err != nil || code != 200 {
						continue // next poll
					}
					code, body, err := send(e.b, "GET", rv.Files[0].DownloadURL, nil, nil)
					if err != nil || code != 200 {
						continue
					}
					mu.Lock()
					want := datas[d.ID]
					mu.Unlock()
					if sha256.Sum256(body) != sha256.Sum256(want) {
						return errors.New("downloaded bytes differ from the upload")
					}
					at := time.Now().UTC()
					tr := transfer.Transfer{ID: d.ID, Sender: e.a.ID, Receiver: e.b.ID, Request: *rv.Request}
					rr := transfer.ReceiptRequest{ReceivedAt: at, Signature: sign(t, e.b.Key, transfer.ReceiptMessage(&tr, at))}
					code, err = sendJSON(e.b, "POST", "/v1/transfers/"+d.ID+"/receipt", rr, nil)
					if err == nil && code == 200 {
						received[d.ID]++
					}
					// On an error the receipt is posted again after the next poll
					// (a 409 there would mean our receipt landed: it is then no
					// longer listed, which the next poll shows).
				}
			}
			return nil
		}()
	}()

	for range n {
		if err := <-senderErr; err != nil {
			t.Fatal(err)
		}
	}
	if err := <-receiverDone; err != nil {
		t.Fatal(err)
	}
	close(stopDisrupt)
	if err := <-disruptErr; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d transfers delivered through %d PostgreSQL and %d NATS restarts", n, pgRestarts, natsRestarts)
	if pgRestarts == 0 || natsRestarts == 0 {
		t.Fatal("no restart happened during the deliveries")
	}
	// Each transfer is delivered, with exactly one receipt, and the inbox is empty.
	var list struct{ Transfers []transfer.TransferView }
	if err := retry(ctx, "list", func() (bool, error) {
		code, err := sendJSON(e.a, "GET", "/v1/transfers?role=sender", nil, &list)
		return code == 200, err
	}); err != nil {
		t.Fatal(err)
	}
	delivered := 0
	for _, tv := range list.Transfers {
		if tv.Status == transfer.TransferDelivered && tv.Receipt != nil && received[tv.ID] == 1 {
			delivered++
		}
	}
	if delivered != n || len(received) != n {
		t.Fatalf("%d delivered with one receipt, %d received, want %d", delivered, len(received), n)
	}
}
