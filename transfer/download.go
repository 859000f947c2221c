package transfer

import (
	"io"
	"net/http"
	"strconv"

	"phix/blob"
)

// countingWriter counts ciphertext bytes written with a 200 or 206 (not
// the text of a 416).
type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *countingWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	if w.status == 0 || w.status == http.StatusOK || w.status == http.StatusPartialContent {
		w.n += int64(n)
	}
	return n, err
}

// download serves a file's ciphertext with Range support (206, 416). The
// capability stays usable (for resumption) until the receipt or its idle TTL.
func (s *Server) download(w http.ResponseWriter, r *http.Request, c caller) {
	ctx := r.Context()
	cp, err := s.checkCapability(ctx, r, c, CapDownload)
	if err != nil {
		writeProblem(w, err)
		return
	}
	t, _, err := s.cfg.Store.Transfer(ctx, cp.Transfer)
	if err != nil {
		writeProblem(w, s.internal(err))
		return
	}
	if t.Status != TransferReady {
		writeProblem(w, errf(http.StatusGone, CodeCapUsed, "Download closed", "the transfer is no longer downloadable"))
		return
	}
	rd, err := blob.Open(ctx, s.cfg.Blobs, fileKey(t.ID, cp.File))
	if err != nil {
		writeProblem(w, s.internal(err))
		return
	}
	defer rd.Close()
	s.touch(ctx, &cp)
	spec := t.Request.Files[cp.File]
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Phix-File-Hash", spec.HashAlg+":"+spec.Hash)
	w.Header().Set("Phix-File-Index", strconv.Itoa(cp.File))
	cw := &countingWriter{ResponseWriter: w}
	// ServeContent handles Range, If-Range, 206 and 416.
	http.ServeContent(cw, r, "", t.Updated, readSeeker{rd})
	s.metrics.bytesOut.Add(float64(cw.n))
}

type readSeeker struct{ r *blob.Reader }

func (r readSeeker) Read(p []byte) (int, error)                { return r.r.Read(p) }
func (r readSeeker) Seek(off int64, whence int) (int64, error) { return r.r.Seek(off, whence) }

var _ io.ReadSeeker = readSeeker{}
