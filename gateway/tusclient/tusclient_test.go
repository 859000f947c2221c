package tusclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
)

// fakeTus is a minimal tus server: HEAD answers the offset, PATCH checks
// the offset and the SHA-256 Upload-Checksum and appends.
type fakeTus struct {
	mu      sync.Mutex
	data    []byte
	patches int
	// checksum: every PATCH must carry a right Upload-Checksum (else none).
	checksum bool
	// failAt makes the PATCH with this number fail with a 503 after
	// reading its body (the offset stays).
	failAt int
}

func (f *fakeTus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Upload-Offset", strconv.Itoa(len(f.data)))
	switch r.Method {
	case http.MethodHead:
		w.WriteHeader(http.StatusOK)
	case http.MethodPatch:
		f.patches++
		if off, _ := strconv.Atoi(r.Header.Get("Upload-Offset")); off != len(f.data) {
			w.WriteHeader(http.StatusConflict)
			return
		}
		b, _ := io.ReadAll(r.Body)
		if int64(len(b)) != r.ContentLength {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		sum := sha256.Sum256(b)
		if (r.Header.Get("Upload-Checksum") != "") != f.checksum || (f.checksum && r.Header.Get("Upload-Checksum") != "sha256 "+base64.StdEncoding.EncodeToString(sum[:])) {
			w.WriteHeader(460)
			return
		}
		if f.patches == f.failAt {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		f.data = append(f.data, b...)
		w.Header().Set("Upload-Offset", strconv.Itoa(len(f.data)))
		w.WriteHeader(http.StatusNoContent)
	}
}

// TestSendStreamsChunks: a source of 3.5 chunks arrives whole in 4
// PATCHes, each with its checksum when asked, the body streamed from the
// source; a chunk refused once is sent again; an empty upload sends one
// empty PATCH.
func TestSendStreamsChunks(t *testing.T) {
	src := make([]byte, 3*1000+500)
	for i := range src {
		src[i] = byte(i * 7)
	}
	for _, c := range []struct {
		name     string
		data     []byte
		failAt   int
		patches  int
		checksum bool
	}{
		{"chunks", src, 0, 4, false},
		{"chunks with checksums", src, 0, 4, true},
		{"a refused chunk is sent again", src, 2, 5, true},
		{"empty", nil, 0, 1, false},
		{"empty with checksum", nil, 0, 1, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeTus{failAt: c.failAt, checksum: c.checksum}
			srv := httptest.NewServer(f)
			defer srv.Close()
			var last int64
			_, err := Send(context.Background(), Upload{URL: srv.URL, Src: bytes.NewReader(c.data), Size: int64(len(c.data))},
				Options{HTTP: srv.Client(), ChunkSize: 1000, Backoff: 1, Checksum: c.checksum, Progress: func(o int64) { last = o }})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(f.data, c.data) || f.patches != c.patches || last != int64(len(c.data)) {
				t.Fatalf("server holds %d bytes after %d PATCHes (progress %d)", len(f.data), f.patches, last)
			}
		})
	}
}
