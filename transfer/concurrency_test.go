package transfer_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"phix/transfer"
)

func concurrentRequests(e *env, n int) ([]transfer.Request, [][]byte) {
	reqs := make([]transfer.Request, n)
	datas := make([][]byte, n)
	for i := range reqs {
		datas[i] = randBytes(2048)
		reqs[i] = e.request(e.a, e.b, map[string][]byte{"f.bin": datas[i]})
	}
	return reqs, datas
}

// runConcurrent runs the transfers all at once (create, upload with a
// checksum, complete) within limit and returns what failed.
func runConcurrent(e *env, reqs []transfer.Request, datas [][]byte, limit time.Duration) []error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(reqs))
	for i := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ctx.Err() != nil {
				errs <- fmt.Errorf("transfer %d: deadline", i)
				return
			}
			var v transfer.TransferView
			if code, prob := e.doJSON(e.a, "POST", "/v1/transfers", reqs[i], &v); code != 201 {
				errs <- fmt.Errorf("transfer %d: create %d %v", i, code, prob)
				return
			}
			url := v.Files[0].UploadURL
			if e.base == "" {
				url = e.ts.URL + url
			}
			res := e.patch(e.a, url, 0, datas[i], "sha256 "+b64sum(datas[i]))
			res.Body.Close()
			if res.StatusCode != 204 {
				errs <- fmt.Errorf("transfer %d: patch %d", i, res.StatusCode)
				return
			}
			if code, prob := e.doJSON(e.a, "POST", "/v1/transfers/"+v.ID+"/complete", nil, nil); code != 200 {
				errs <- fmt.Errorf("transfer %d: complete %d %v", i, code, prob)
			}
		}()
	}
	wg.Wait()
	close(errs)
	var out []error
	for err := range errs {
		out = append(out, err)
	}
	return out
}

func testConcurrent(t *testing.T, e *env) {
	const n = 200
	reqs, datas := concurrentRequests(e, n)
	for _, err := range runConcurrent(e, reqs, datas, 2*time.Minute) {
		t.Error(err)
	}
	ts, err := e.store.Transfers(context.Background(), e.b.ID, "receiver", 500)
	if err != nil || len(ts) != n {
		t.Fatalf("receiver sees %d transfers (%v)", len(ts), err)
	}
	for _, tr := range ts {
		if tr.Status != transfer.TransferReady {
			t.Fatalf("transfer %s", tr.Status)
		}
	}
}

// TestConcurrentTransfers runs 200 small transfers at once on loopback
// (create, upload, complete), bounded by a deadline, and expects no error.
func TestConcurrentTransfers(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	testConcurrent(t, newEnv(t, ""))
}

// TestConcurrentTransfersMutualTLS is the same over TLS 1.3 with client
// certificates (HTTP/2, one connection per hospital).
func TestConcurrentTransfersMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	testConcurrent(t, newTLSEnv(t, newTLSNet(t), nil))
}
