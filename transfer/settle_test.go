package transfer_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"phix/blob"
	"phix/transfer"
)

// failCompletion fails the first metadata update that would mark a file
// complete, as a database outage right after blob.Seal would.
type failCompletion struct {
	transfer.Store
	armed atomic.Bool
}

func (f *failCompletion) AdvanceFile(ctx context.Context, fl transfer.File, old int64) error {
	if fl.Status == transfer.FileComplete && f.armed.CompareAndSwap(true, false) {
		return errors.New("connection reset by peer")
	}
	return f.Store.AdvanceFile(ctx, fl, old)
}

// TestLostCompletionSettles: the last chunk is sealed in the blob store but
// recording the file complete fails. HEAD then reports the full offset and
// complete succeeds (before the fix complete answered 409 forever).
func TestLostCompletionSettles(t *testing.T) {
	var fc *failCompletion
	e := newEnv(t, "", func(c *transfer.Config) {
		fc = &failCompletion{Store: c.Store}
		c.Store = fc
	})
	data := randBytes(10_000)
	v := e.create(e.a, e.request(e.a, e.b, map[string][]byte{"f.bin": data}))
	url := e.ts.URL + v.Files[0].UploadURL
	e.upload(e.a, url, data[:4000], 0, 4000)
	fc.armed.Store(true)
	res := e.patch(e.a, url, 4000, data[4000:], "sha256 "+b64sum(data[4000:]))
	res.Body.Close()
	if res.StatusCode != 500 {
		t.Fatalf("last chunk with the failing update: %d", res.StatusCode)
	}
	res = e.do(e.a, "HEAD", url, nil, map[string]string{"Tus-Resumable": "1.0.0"})
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Upload-Offset") != "10000" {
		t.Fatalf("HEAD after the lost completion: %d offset %q", res.StatusCode, res.Header.Get("Upload-Offset"))
	}
	var done transfer.TransferView
	if code, prob := e.doJSON(e.a, "POST", "/v1/transfers/"+v.ID+"/complete", nil, &done); code != 200 || done.Status != transfer.TransferReady {
		t.Fatalf("complete: %d %v", code, prob)
	}
}

// TestLostCompletionSettlesAtComplete: the same, with complete as the
// first request after the failure (no HEAD).
func TestLostCompletionSettlesAtComplete(t *testing.T) {
	var fc *failCompletion
	e := newEnv(t, "", func(c *transfer.Config) {
		fc = &failCompletion{Store: c.Store}
		c.Store = fc
	})
	data := randBytes(5000)
	v := e.create(e.a, e.request(e.a, e.b, map[string][]byte{"f.bin": data}))
	fc.armed.Store(true)
	res := e.patch(e.a, e.ts.URL+v.Files[0].UploadURL, 0, data, "")
	res.Body.Close()
	if res.StatusCode != 500 {
		t.Fatalf("chunk with the failing update: %d", res.StatusCode)
	}
	if code, prob := e.doJSON(e.a, "POST", "/v1/transfers/"+v.ID+"/complete", nil, nil); code != 200 {
		t.Fatalf("complete: %d %v", code, prob)
	}
}

// TestLostUnsyncedChunksResumeLower: after a machine restart, fsblob
// reports an unsealed upload at its last synced size (here 0), below the
// offset the database recorded. HEAD must report the blob's smaller offset
// (never the larger one), a PATCH at the old offset must be refused, and
// the upload resent from there completes with the right hash.
func TestLostUnsyncedChunksResumeLower(t *testing.T) {
	e := newEnv(t, "")
	data := randBytes(10_000)
	v := e.create(e.a, e.request(e.a, e.b, map[string][]byte{"f.bin": data}))
	url := e.ts.URL + v.Files[0].UploadURL
	e.upload(e.a, url, data[:6000], 0, 3000)
	// What the restart leaves: the object back at its synced size, 0.
	key, err := blob.Key(v.ID, "f0")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := e.blobs.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := e.blobs.Create(ctx, key); err != nil {
		t.Fatal(err)
	}
	res := e.do(e.a, "HEAD", url, nil, map[string]string{"Tus-Resumable": "1.0.0"})
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Upload-Offset") != "0" {
		t.Fatalf("HEAD after the lost chunks: %d offset %q, want 0", res.StatusCode, res.Header.Get("Upload-Offset"))
	}
	res = e.patch(e.a, url, 6000, data[6000:], "sha256 "+b64sum(data[6000:]))
	res.Body.Close()
	if res.StatusCode != 409 {
		t.Fatalf("PATCH at the lost offset: %d, want 409", res.StatusCode)
	}
	e.upload(e.a, url, data, 0, 4000)
	var done transfer.TransferView
	if code, prob := e.doJSON(e.a, "POST", "/v1/transfers/"+v.ID+"/complete", nil, &done); code != 200 || done.Status != transfer.TransferReady {
		t.Fatalf("complete: %d %v", code, prob)
	}
}
