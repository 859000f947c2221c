package transfer_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"phix/transfer"
)

// TestConcurrentTransfers runs 200 small transfers at once on loopback
// (create, upload, complete), bounded by a deadline, and expects no error.
func TestConcurrentTransfers(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	e := newEnv(t, "")
	const n = 200
	reqs := make([]transfer.Request, n)
	datas := make([][]byte, n)
	for i := range reqs {
		datas[i] = randBytes(2048)
		reqs[i] = e.request(e.a, e.b, map[string][]byte{"f.bin": datas[i]})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ctx.Err() != nil {
				errs <- "deadline"
				return
			}
			var v transfer.TransferView
			if code, _ := e.doJSON(e.a, "POST", "/v1/transfers", reqs[i], &v); code != 201 {
				errs <- "create"
				return
			}
			res := e.patch(e.a, e.ts.URL+v.Files[0].UploadURL, 0, datas[i], "sha256 "+b64sum(datas[i]))
			res.Body.Close()
			if res.StatusCode != 204 {
				errs <- "patch"
				return
			}
			if code, _ := e.doJSON(e.a, "POST", "/v1/transfers/"+v.ID+"/complete", nil, nil); code != 200 {
				errs <- "complete"
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ts, err := e.store.Transfers(context.Background(), e.b.ID, "receiver", 500)
	if err != nil || len(ts) != n {
		t.Fatalf("receiver sees %d transfers (%v)", len(ts), err)
	}
}
