// Package tusclient is a tus 1.0 client (core, checksum) for the edge
// gateway: it uploads a file that already sits on disk in chunks, each with
// an Upload-Checksum if asked, and resumes from the server's offset (HEAD) after a
// network failure, a server restart or a restart of the gateway itself.
package tusclient

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"phix/gateway/coord"
	"phix/internal/writeback"
)

// DefaultChunkSize is the bytes per PATCH. Chunks are streamed from the
// source, not buffered, so their size costs no memory; large ones save a
// round trip, a checksum check and a capability check at the server per
// chunk (1 GiB in 16 PATCHes instead of 128).
const DefaultChunkSize = 64 << 20

// hashBufSize is the buffer a chunk is read through for its checksum.
const hashBufSize = 256 << 10

// Upload is one file to upload.
type Upload struct {
	// URL is the upload capability URL.
	URL string
	// Src holds the bytes to upload; Size is their length.
	Src  io.ReaderAt
	Size int64
}

// Options tune Send.
type Options struct {
	HTTP      *http.Client
	ChunkSize int // DefaultChunkSize if 0
	// Checksum sends each chunk with a SHA-256 Upload-Checksum (the chunk is
	// then read twice: for the header, then as the body). Over TLS, which
	// authenticates every byte in transit, it catches nothing more, and it
	// costs a SHA-256 pass over the file on each side.
	Checksum bool
	// Progress, if set, is told each confirmed offset.
	Progress func(offset int64)
	// Renew, if set, is asked for a fresh URL when the capability expired
	// (410 TRF-1203), was replaced, or is bound to a certificate the
	// gateway no longer uses (403 TRF-1202, after a certificate renewal).
	Renew func(ctx context.Context) (string, error)
	// Check, if set, runs before every chunk; an error stops the upload
	// (for example a consent that was withdrawn meanwhile).
	Check func(ctx context.Context) error
	// MaxWait bounds the time spent retrying one chunk across failures
	// (default 10 minutes); Backoff is the first retry delay (default 200 ms).
	MaxWait time.Duration
	Backoff time.Duration
}

// ErrStopped wraps the error of Options.Check.
var ErrStopped = errors.New("tusclient: upload stopped")

// Send uploads u from the server's current offset to the end. It returns
// the URL finally used (a renewed capability replaces the first).
func Send(ctx context.Context, u Upload, o Options) (string, error) {
	if o.ChunkSize <= 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 10 * time.Minute
	}
	if o.Backoff <= 0 {
		o.Backoff = 200 * time.Millisecond
	}
	hbuf := make([]byte, hashBufSize)
	url := u.URL
	var failingSince time.Time
	delay := o.Backoff
	retry := func(err error) error {
		if !coord.Retryable(err) {
			return err
		}
		if failingSince.IsZero() {
			failingSince = time.Now()
		}
		if time.Since(failingSince) > o.MaxWait {
			return fmt.Errorf("tusclient: gave up after %s: %w", o.MaxWait, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
		return nil
	}
	renewed := false
	for {
		if err := ctx.Err(); err != nil {
			return url, err
		}
		off, err := head(ctx, o.HTTP, url)
		if err != nil {
			if coord.IsProblem(err, "TRF-1203", "TRF-1201", "TRF-1202") && o.Renew != nil && !renewed {
				if url, err = o.Renew(ctx); err != nil {
					return url, err
				}
				renewed = true
				continue
			}
			if coord.IsProblem(err, "TRF-1204") {
				return url, nil // the file is complete
			}
			if err := retry(err); err != nil {
				return url, err
			}
			continue
		}
		renewed = false
		if o.Progress != nil {
			o.Progress(off)
		}
		if off >= u.Size && !(u.Size == 0 && off == 0) {
			return url, nil
		}
		for off < u.Size || u.Size == 0 {
			if o.Check != nil {
				if err := o.Check(ctx); err != nil {
					return url, fmt.Errorf("%w: %w", ErrStopped, err)
				}
			}
			// The chunk is read twice, for its checksum (which the header
			// carries) and then as the body: the second read comes from the
			// page cache, and memory stays one small buffer.
			n := min(int64(o.ChunkSize), u.Size-off)
			var sum []byte
			if o.Checksum {
				h := sha256.New()
				if k, err := io.CopyBuffer(h, io.NewSectionReader(u.Src, off, n), hbuf); err != nil || k != n {
					if err == nil {
						err = io.ErrUnexpectedEOF
					}
					return url, fmt.Errorf("tusclient: read source: %w", err)
				}
				sum = h.Sum(nil)
			}
			next, err := patch(ctx, o.HTTP, url, off, chunk{src: u.Src, off: off, n: n, sum: sum})
			if err != nil {
				if coord.IsProblem(err, "TRF-1501") { // offset mismatch: HEAD again
					break
				}
				if coord.IsProblem(err, "TRF-1204") {
					return url, nil
				}
				if coord.IsProblem(err, "TRF-1203", "TRF-1201", "TRF-1202") && o.Renew != nil {
					break // HEAD fails the same way and renews
				}
				if err := retry(err); err != nil {
					return url, err
				}
				break // resume from the server's offset
			}
			failingSince, delay = time.Time{}, o.Backoff
			off = next
			if o.Progress != nil {
				o.Progress(off)
			}
			if u.Size == 0 {
				return url, nil
			}
		}
		if off >= u.Size && u.Size > 0 {
			return url, nil
		}
	}
}

func head(ctx context.Context, c *http.Client, url string) (int64, error) {
	req, err := http.NewRequestWithContext(context.WithValue(ctx, clientKey{}, c), http.MethodHead, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	res, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK && res.StatusCode != http.StatusNoContent {
		return 0, headProblem(req, res)
	}
	return strconv.ParseInt(res.Header.Get("Upload-Offset"), 10, 64)
}

// headProblem turns a HEAD failure (which has no body) into a Problem. For
// 403 and 410 an empty PATCH asks the same URL again, because only a body
// says which (expired, used up, withdrawn...); the capability check runs
// before anything is written.
func headProblem(req *http.Request, res *http.Response) error {
	if res.StatusCode == http.StatusGone || res.StatusCode == http.StatusForbidden {
		c := http.DefaultClient
		if hc, ok := req.Context().Value(clientKey{}).(*http.Client); ok {
			c = hc
		}
		if _, err := patch(req.Context(), c, req.URL.String(), 0, chunk{}); err != nil {
			return err
		}
	}
	return &coord.Problem{Status: res.StatusCode, Code: "HTTP-" + strconv.Itoa(res.StatusCode), Title: http.StatusText(res.StatusCode)}
}

type clientKey struct{}

// chunk is the body of one PATCH: n bytes of src at off, whose SHA-256 is
// sum (nil: no Upload-Checksum).
type chunk struct {
	src io.ReaderAt
	off int64
	n   int64
	sum []byte
}

func (c chunk) body() io.ReadCloser {
	if c.src == nil || c.n == 0 {
		return http.NoBody
	}
	if f, ok := c.src.(*os.File); ok {
		// A spool file is sent once: read it in order and evict it
		// behind the read (internal/writeback). Not closed: the caller
		// owns the file.
		return io.NopCloser(writeback.NewReader(f, c.off, c.n))
	}
	return io.NopCloser(io.NewSectionReader(c.src, c.off, c.n))
}

func patch(ctx context.Context, c *http.Client, url string, off int64, ch chunk) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, url, ch.body())
	if err != nil {
		return 0, err
	}
	req.GetBody = func() (io.ReadCloser, error) { return ch.body(), nil }
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", strconv.FormatInt(off, 10))
	if ch.sum != nil {
		req.Header.Set("Upload-Checksum", "sha256 "+base64.StdEncoding.EncodeToString(ch.sum))
	}
	req.ContentLength = ch.n
	res, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
		return 0, coord.ParseProblem(res.StatusCode, b)
	}
	return strconv.ParseInt(res.Header.Get("Upload-Offset"), 10, 64)
}
