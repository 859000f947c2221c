package transfer_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"phix/blob"
	"phix/blob/fsblob"
	"phix/queue/natsq"
	"phix/transfer"
	"phix/transfer/transfersql"
)

// childEnv names the state directory when the test binary runs as a
// coordinator child process (TestMain).
const childEnv = "PHIX_TRANSFER_TEST_COORDINATOR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		if err := runChildCoordinator(dir); err != nil {
			fmt.Fprintln(os.Stderr, "child coordinator:", transfer.ErrorKind(err))
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChildCoordinator serves the coordinator over the on-disk state in dir
// (SQLite, fs blobs, embedded NATS JetStream), as the embedded mode of
// `phix coordinator serve` does, and prints its address. It runs until
// killed.
func runChildCoordinator(dir string) error {
	ctx := context.Background()
	st, err := transfersql.Open(ctx, filepath.Join(dir, "meta.db"))
	if err != nil {
		return err
	}
	blobs, err := fsblob.New(filepath.Join(dir, "blobs"), "CN-SH")
	if err != nil {
		return err
	}
	q, err := natsq.Open(ctx, natsq.Config{StoreDir: filepath.Join(dir, "nats")})
	if err != nil {
		return err
	}
	srv, err := transfer.NewServer(transfer.Config{Store: st, Blobs: blobs, Queue: q, Auditor: &memAuditor{},
		Identifier: headerIdentity{}, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("ADDR %s\n", ln.Addr())
	return http.Serve(ln, srv)
}

// child is one coordinator child process.
type child struct {
	cmd *exec.Cmd
	url string
}

func startChild(t *testing.T, dir string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
				addr <- a
			}
		}
	}()
	select {
	case a := <-addr:
		return &child{cmd: cmd, url: "http://" + a}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("child coordinator did not start")
	}
	return nil
}

func (c *child) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.cmd.Wait()
}

// current is the address of the live child, or "" while none runs.
type current struct {
	mu      sync.Mutex
	url     string
	gen     int
	changed chan struct{}
}

func newCurrent() *current { return &current{changed: make(chan struct{})} }

func (c *current) set(url string) {
	c.mu.Lock()
	c.url = url
	c.gen++
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// get returns the live address, waiting for one (up to the deadline).
func (c *current) get(ctx context.Context) (string, int, error) {
	for {
		c.mu.Lock()
		url, gen, ch := c.url, c.gen, c.changed
		c.mu.Unlock()
		if url != "" {
			return url, gen, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return "", 0, ctx.Err()
		}
	}
}

// waitAfter waits until the generation moves past gen.
func (c *current) waitAfter(ctx context.Context, gen int) {
	for {
		c.mu.Lock()
		g, ch := c.gen, c.changed
		c.mu.Unlock()
		if g > gen {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// pacedReader streams b in small pieces with pauses, so that a SIGKILL
// lands in the middle of a PATCH body.
type pacedReader struct {
	b       []byte
	pace    *atomic.Bool
	started func()
	once    sync.Once
}

func (r *pacedReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	r.once.Do(r.started)
	n := min(len(p), len(r.b), 4096)
	if r.pace.Load() {
		time.Sleep(3 * time.Millisecond)
	}
	copy(p, r.b[:n])
	r.b = r.b[n:]
	return n, nil
}

// resumableUpload drives one tus upload to the end across coordinator
// crashes: HEAD for the offset, PATCH the next chunk, and on a transport
// error wait for the next coordinator. The last chunk waits for release.
func resumableUpload(ctx context.Context, cur *current, p *party, tid, path string, data []byte, chunk int,
	pace *atomic.Bool, inflight, interrupted *atomic.Int64, release <-chan struct{}) error {
	client := &http.Client{Timeout: 20 * time.Second}
	defer client.CloseIdleConnections()
	do := func(req *http.Request) (*http.Response, error) {
		req.Header.Set("X-Test-Hospital", p.ID)
		req.Header.Set("X-Test-Cert", p.Cert)
		req.Header.Set("Tus-Resumable", "1.0.0")
		return client.Do(req)
	}
	for {
		base, gen, err := cur.get(ctx)
		if err != nil {
			return err
		}
		req, _ := http.NewRequestWithContext(ctx, "HEAD", base+path, nil)
		res, err := do(req)
		if err != nil {
			cur.waitAfter(ctx, gen)
			continue
		}
		res.Body.Close()
		if res.StatusCode == http.StatusGone {
			// The capability died with the file's completion (the last
			// PATCH landed but its response was lost): ask the transfer.
			return checkComplete(ctx, do, base, tid, len(data))
		}
		if res.StatusCode != 200 {
			return fmt.Errorf("HEAD: %d", res.StatusCode)
		}
		var off int
		fmt.Sscan(res.Header.Get("Upload-Offset"), &off)
		if off == len(data) {
			return nil
		}
		end := min(off+chunk, len(data))
		if end == len(data) {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		body := &pacedReader{b: data[off:end], pace: pace, started: func() { inflight.Add(1) }}
		req, _ = http.NewRequestWithContext(ctx, "PATCH", base+path, body)
		req.ContentLength = int64(end - off)
		req.Header.Set("Content-Type", "application/offset+octet-stream")
		req.Header.Set("Upload-Offset", fmt.Sprint(off))
		req.Header.Set("Upload-Checksum", "sha256 "+b64sum(data[off:end]))
		res, err = do(req)
		body.once.Do(func() { inflight.Add(1) })
		inflight.Add(-1)
		if err != nil {
			interrupted.Add(1)
			cur.waitAfter(ctx, gen)
			continue
		}
		msg := readAll(res)
		switch res.StatusCode {
		case 204, 409, 423: // 409/423: another attempt moved the offset or holds the file; HEAD again
		default:
			return fmt.Errorf("PATCH at %d: %d %s", off, res.StatusCode, msg)
		}
	}
}

func checkComplete(ctx context.Context, do func(*http.Request) (*http.Response, error), base, tid string, size int) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/transfers/"+tid, nil)
	res, err := do(req)
	if err != nil {
		return err
	}
	var v transfer.TransferView
	err = json.NewDecoder(res.Body).Decode(&v)
	res.Body.Close()
	if err != nil || len(v.Files) != 1 || v.Files[0].Status != transfer.FileComplete || v.Files[0].Offset != int64(size) {
		return fmt.Errorf("HEAD answered 410 but the file is not complete: %+v", v.Files)
	}
	return nil
}

// TestSIGKILLDuringUploads kills the coordinator process with SIGKILL 20
// times while several tus uploads stream into it (and once during
// complete). Every upload resumes from the offset HEAD reports and
// completes with the manifest's hash; each file is one blob object and
// each transfer one queued delivery and one inbox entry.
func TestSIGKILLDuringUploads(t *testing.T) {
	const kills, nFiles, chunk = 20, 3, 32 << 10
	size := 40*chunk + 12345
	if testing.Short() {
		t.Skip("spawns 22 coordinator processes")
	}
	dir := t.TempDir()
	e := newEnv(t, filepath.Join(dir, "meta.db")) // registers the hospitals in the shared database
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Second)
	defer cancel()

	first := startChild(t, dir)
	e.base = first.url
	type upload struct {
		data []byte
		id   string
		path string
	}
	ups := make([]*upload, nFiles)
	for i := range ups {
		data := randBytes(size + i*1000)
		v := e.create(e.a, e.request(e.a, e.b, map[string][]byte{fmt.Sprintf("part-%d.bin", i): data}))
		ups[i] = &upload{data: data, id: v.ID, path: v.Files[0].UploadURL}
	}
	cur := newCurrent()
	cur.set(first.url)
	live := first

	var pace atomic.Bool
	pace.Store(true)
	var inflight, interrupted atomic.Int64
	release := make(chan struct{})
	errs := make(chan error, nFiles)
	for _, u := range ups {
		go func() {
			errs <- resumableUpload(ctx, cur, e.a, u.id, u.path, u.data, chunk, &pace, &inflight, &interrupted, release)
		}()
	}
	for i := range kills {
		// Kill while a PATCH body is streaming (or after 2 s if all wait).
		deadline := time.Now().Add(2 * time.Second)
		for inflight.Load() == 0 && time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
		}
		time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
		cur.set("")
		live.kill(t)
		if i < kills-1 {
			live = startChild(t, dir)
			cur.set(live.url)
		}
	}
	// One more crash: in the middle of complete.
	live = startChild(t, dir)
	cur.set(live.url)
	e.base = live.url
	pace.Store(false)
	close(release)
	for range ups {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if interrupted.Load() < kills/2 {
		t.Fatalf("only %d of %d kills interrupted a PATCH", interrupted.Load(), kills)
	}
	t.Logf("%d kills interrupted %d PATCH requests", kills, interrupted.Load())
	go func() {
		req, _ := http.NewRequest("POST", live.url+"/v1/transfers/"+ups[0].id+"/complete", nil)
		req.Header.Set("X-Test-Hospital", e.a.ID)
		req.Header.Set("X-Test-Cert", e.a.Cert)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
		}
	}()
	time.Sleep(time.Duration(rand.IntN(15)) * time.Millisecond)
	live.kill(t)
	live = startChild(t, dir)
	e.base = live.url
	for _, u := range ups {
		var v transfer.TransferView
		if code, prob := e.doJSON(e.a, "POST", "/v1/transfers/"+u.id+"/complete", nil, &v); code != 200 || v.Status != transfer.TransferReady {
			t.Fatalf("complete %s: %d %v", u.id, code, prob)
		}
	}
	live.kill(t)

	// One queued delivery per transfer (read from the embedded store).
	q, err := natsq.Open(ctx, natsq.Config{StoreDir: filepath.Join(dir, "nats")})
	if err != nil {
		t.Fatal(err)
	}
	pending, err := q.Pending(ctx, e.b.ID, 100)
	q.Close()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, d := range pending {
		seen[d.Transfer]++
	}
	for _, u := range ups {
		if seen[u.id] != 1 {
			t.Fatalf("transfer %d has %d queued deliveries (%d in all)", 0, seen[u.id], len(pending))
		}
	}
	if len(pending) != nFiles {
		t.Fatalf("%d queued deliveries for %d transfers", len(pending), nFiles)
	}
	// One blob object per file, with the manifest's length and hash.
	blobs, err := fsblob.New(filepath.Join(dir, "blobs"), "CN-SH")
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range ups {
		var objs []blob.Info
		if err := blobs.List(ctx, u.id+"/", func(in blob.Info) error { objs = append(objs, in); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(objs) != 1 || objs[0].Size != int64(len(u.data)) {
			t.Fatalf("upload %d: blob objects %+v", i, objs)
		}
	}

	// The receiver sees each transfer once and downloads the right bytes.
	live = startChild(t, dir)
	defer live.kill(t)
	e.base = live.url
	var inbox struct{ Deliveries []transfer.TransferView }
	if code, prob := e.doJSON(e.b, "GET", "/v1/inbox?wait=5s", nil, &inbox); code != 200 || len(inbox.Deliveries) != nFiles {
		t.Fatalf("inbox: %d %v %d deliveries", code, prob, len(inbox.Deliveries))
	}
	ids := map[string]bool{}
	for _, d := range inbox.Deliveries {
		ids[d.ID] = true
	}
	for i, u := range ups {
		if !ids[u.id] {
			t.Fatalf("upload %d missing from the inbox", i)
		}
		var rv transfer.TransferView
		if code, prob := e.doJSON(e.b, "GET", "/v1/transfers/"+u.id, nil, &rv); code != 200 {
			t.Fatalf("receiver get: %d %v", code, prob)
		}
		res := e.do(e.b, "GET", rv.Files[0].DownloadURL, nil, nil)
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		want := sha256.Sum256(u.data)
		if sum := sha256.Sum256(got); res.StatusCode != 200 || !bytes.Equal(sum[:], want[:]) {
			t.Fatalf("download %d: %d, %d bytes, hash mismatch", i, res.StatusCode, len(got))
		}
	}
}
