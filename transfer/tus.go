package transfer

import (
	"bytes"
	"context"
	"encoding"
	"encoding/base64"
	"errors"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"phix/audit"
	"phix/blob"
	"phix/internal/asynchash"
)

const tusVersion = "1.0.0"

var (
	errChecksum = errors.New("checksum mismatch")
	errTooLong  = errors.New("chunk past the declared length")
)

// fileLocks serialises uploads to one file within this process (blob.Store
// requires its caller to serialise operations on one key).
type fileLocks struct{ m sync.Map }

func (l *fileLocks) tryLock(key string) (func(), bool) {
	v, _ := l.m.LoadOrStore(key, new(sync.Mutex))
	mu := v.(*sync.Mutex)
	if !mu.TryLock() {
		return nil, false
	}
	return mu.Unlock, true
}

// FileLocker is implemented by stores shared between coordinator replicas
// (PostgreSQL): LockFile takes a cross-process lock on one file's upload
// for the length of a PATCH, reporting false if another replica holds it.
// The lock must die with its holder (a crashed replica must not block the
// resume).
type FileLocker interface {
	LockFile(ctx context.Context, transferID string, idx int) (unlock func(), ok bool, err error)
}

func (s *Server) tusOptions(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Tus-Resumable", tusVersion)
	h.Set("Tus-Version", tusVersion)
	h.Set("Tus-Extension", "creation,checksum,expiration,termination")
	h.Set("Tus-Checksum-Algorithm", "sha256,sm3")
	h.Set("Tus-Max-Size", strconv.FormatInt(s.cfg.MaxFileSize, 10))
	w.WriteHeader(http.StatusNoContent)
}

// tusPrelude checks the protocol version and resolves the upload.
func (s *Server) tusPrelude(w http.ResponseWriter, r *http.Request, c caller) (Capability, Transfer, File, bool) {
	w.Header().Set("Tus-Resumable", tusVersion)
	w.Header().Set("Cache-Control", "no-store")
	if r.Header.Get("Tus-Resumable") != tusVersion {
		w.Header().Set("Tus-Version", tusVersion)
		writeProblem(w, errf(http.StatusPreconditionFailed, CodeUnsupportedTus, "Unsupported tus version", "Tus-Resumable must be 1.0.0"))
		return Capability{}, Transfer{}, File{}, false
	}
	cp, err := s.checkCapability(r.Context(), r, c, CapUpload)
	if err != nil {
		writeProblem(w, err)
		return cp, Transfer{}, File{}, false
	}
	t, files, err := s.cfg.Store.Transfer(r.Context(), cp.Transfer)
	if err != nil || cp.File >= len(files) {
		writeProblem(w, s.internal(errors.New("capability without transfer")))
		return cp, t, File{}, false
	}
	if t.Status == TransferWithdrawn {
		writeProblem(w, errf(http.StatusGone, CodeConsentWithdrawn, "Consent withdrawn", "the sender withdrew the consent this transfer relied on"))
		return cp, t, File{}, false
	}
	if t.Status != TransferUploading {
		writeProblem(w, errf(http.StatusGone, CodeCapUsed, "Upload closed", "the transfer no longer accepts uploads"))
		return cp, t, File{}, false
	}
	return cp, t, files[cp.File], true
}

// reconcile aligns the stored offset with the blob's size. The blob is
// ahead after a crash between blob.Append and the metadata update; it is
// behind after a machine restart lost appends the store acknowledged from
// the page cache (fsblob syncs at Seal; see docs/coordinator.md,
// "Durability"), and the client then resumes from the smaller offset. The
// running hash for the new offset is unknown either way, so it is dropped:
// finalize then re-reads the sealed object.
func (s *Server) reconcile(ctx context.Context, f *File) error {
	info, err := s.cfg.Blobs.Stat(ctx, fileKey(f.Transfer, f.Index))
	if err != nil {
		return err
	}
	if info.Size == f.Offset {
		return nil
	}
	if info.Size > f.Size || (info.Size < f.Offset && info.Sealed) {
		return blob.ErrCorrupt
	}
	old := f.Offset
	f.Offset, f.HashState = info.Size, nil
	return s.cfg.Store.AdvanceFile(ctx, *f, old)
}

// settle reconciles a pending file with its blob and finishes it when all
// its bytes are stored: a crash or a database outage between blob.Seal (or
// the last Append) and the metadata update leaves such a file, which no
// PATCH can finish (there is nothing left to send).
func (s *Server) settle(ctx context.Context, f *File) error {
	if f.Status != FilePending {
		return nil
	}
	err := s.reconcile(ctx, f)
	switch {
	case errors.Is(err, ErrConflict), errors.Is(err, blob.ErrNotFound):
		return nil // another request moved it, or nothing was written yet
	case err != nil:
		return err
	}
	if f.Size == 0 || f.Offset != f.Size {
		return nil
	}
	err = s.finishFile(ctx, f, f.Offset)
	if errors.Is(err, ErrConflict) {
		return nil
	}
	return err
}

func (s *Server) tusHeaders(w http.ResponseWriter, f File, cp Capability) {
	h := w.Header()
	h.Set("Upload-Offset", strconv.FormatInt(f.Offset, 10))
	h.Set("Upload-Length", strconv.FormatInt(f.Size, 10))
	h.Set("Upload-Expires", httpTime(cp.Expires))
}

// tusCreate is the creation extension for a pre-declared file: the
// Upload-Length must be the manifest's size and the URL stays the same.
func (s *Server) tusCreate(w http.ResponseWriter, r *http.Request, c caller) {
	cp, _, f, ok := s.tusPrelude(w, r, c)
	if !ok {
		return
	}
	if r.Header.Get("Upload-Defer-Length") != "" {
		writeProblem(w, errf(400, CodeBadRequest, "Deferred length unsupported", "the length is fixed by the manifest"))
		return
	}
	n, err := strconv.ParseInt(r.Header.Get("Upload-Length"), 10, 64)
	switch {
	case err != nil || n < 0:
		writeProblem(w, errf(400, CodeBadRequest, "Invalid Upload-Length", "Upload-Length must be a non-negative integer"))
		return
	case n > f.Size:
		writeProblem(w, errf(http.StatusRequestEntityTooLarge, CodeLengthExceeded, "Upload too large", "Upload-Length exceeds the size declared in the manifest"))
		return
	case n != f.Size:
		writeProblem(w, errf(400, CodeBadRequest, "Upload-Length mismatch", "Upload-Length must equal the size declared in the manifest"))
		return
	}
	if f.Size == 0 {
		if err := s.finishFile(r.Context(), &f, f.Offset); err != nil {
			writeProblem(w, s.internal(err))
			return
		}
	}
	s.tusHeaders(w, f, cp)
	w.Header().Set("Location", s.cfg.BaseURL+"/v1/uploads/"+r.PathValue("token"))
	w.WriteHeader(http.StatusCreated)
}

func (s *Server) tusHead(w http.ResponseWriter, r *http.Request, c caller) {
	cp, _, f, ok := s.tusPrelude(w, r, c)
	if !ok {
		return
	}
	if err := s.settle(r.Context(), &f); err != nil {
		writeProblem(w, s.internal(err))
		return
	}
	s.tusHeaders(w, f, cp)
	w.WriteHeader(http.StatusOK)
}

// chunkReader hashes what passes through it into the file's running hash and
// the chunk checksum, refuses bytes past max, and turns EOF into
// errChecksum when the checksum does not match, so that blob.Append (all or
// nothing) keeps the offset unchanged. The hashing runs on a goroutine of
// its own (asynchash), overlapping TLS and the file writes.
type chunkReader struct {
	r      io.Reader
	left   int64
	hasher *asynchash.Hasher // writes the running hash and sum
	sum    hash.Hash
	want   []byte
	n      int64
	end    error // the verdict once the chunk ended (io.EOF, errChecksum, errTooLong)
}

// Read may be called again after it returned the chunk's end (a reader
// such as io.ReadFull drops an io.EOF that came with the bytes that filled
// its buffer, as an HTTP/1.1 body gives it): it then returns the same
// verdict and leaves the finished hashes alone.
func (c *chunkReader) Read(p []byte) (int, error) {
	if c.end != nil {
		return 0, c.end
	}
	if c.left == 0 {
		c.end = c.atLimit()
		return 0, c.end
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	c.n += int64(n)
	c.hasher.Write(p[:n])
	if err == io.EOF {
		c.end = c.eof()
		return n, c.end
	}
	return n, err
}

// WriteTo is the copy loop blob stores use when they can (fsblob does): it
// fills 1 MiB buffers lent by the hasher, so that the file sees one write
// per MiB instead of one per TLS record, and the hasher reads the buffer
// the file write read instead of a copy of it. A buffer goes to the hasher
// after its write: once submitted it may be recycled for another upload
// as soon as it is hashed. Its hashing overlaps the next buffer's read.
func (c *chunkReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if c.left == 0 {
			return total, noEOF(c.atLimit())
		}
		buf := c.hasher.Buffer()
		n, err := fill(c.r, buf[:min(int64(len(buf)), c.left)])
		c.left -= int64(n)
		c.n += int64(n)
		if n > 0 {
			k, werr := w.Write(buf[:n])
			total += int64(k)
			if werr != nil {
				c.hasher.Submit(buf[:0]) // hands the buffer back
				return total, werr
			}
		}
		c.hasher.Submit(buf[:n])
		switch {
		case err == io.EOF:
			return total, noEOF(c.eof())
		case err != nil:
			return total, err
		}
	}
}

// noEOF maps the io.EOF of a complete chunk to WriteTo's nil.
func noEOF(err error) error {
	if err == io.EOF {
		return nil
	}
	return err
}

// fill reads into p until it is full or r fails; io.EOF only when r ended
// (an io.ErrUnexpectedEOF from r, a body cut short, stays an error).
func fill(r io.Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k, err := r.Read(p[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// atLimit ends a chunk that reached the declared length: one extra byte
// tells "exactly at the limit" from "past it".
func (c *chunkReader) atLimit() error {
	var one [1]byte
	if n, _ := io.ReadFull(c.r, one[:]); n > 0 {
		return errTooLong
	}
	return c.eof()
}

func (c *chunkReader) eof() error {
	c.hasher.Wait()
	if c.sum != nil && !bytes.Equal(c.sum.Sum(nil), c.want) {
		return errChecksum
	}
	return io.EOF
}

// parseChecksum parses Upload-Checksum into a fresh hash of its algorithm,
// the algorithm's name and the expected sum (all zero without the header).
func parseChecksum(v, senderSuite string) (hash.Hash, string, []byte, error) {
	if v == "" {
		return nil, "", nil, nil
	}
	alg, enc, ok := strings.Cut(v, " ")
	want, err := base64.StdEncoding.DecodeString(enc)
	if !ok || err != nil || len(want) != 32 || (alg != "sha256" && alg != "sm3") || (alg == "sm3" && senderSuite != "gm") {
		return nil, "", nil, errf(400, CodeBadRequest, "Unsupported checksum", "Upload-Checksum must be 'sha256 <base64>' (or 'sm3 <base64>' under gm)")
	}
	return newFileHash(alg), alg, want, nil
}

func (s *Server) tusPatch(w http.ResponseWriter, r *http.Request, c caller) {
	ctx := r.Context()
	cp, t, f, ok := s.tusPrelude(w, r, c)
	if !ok {
		return
	}
	if r.Header.Get("Content-Type") != "application/offset+octet-stream" {
		writeProblem(w, errf(http.StatusUnsupportedMediaType, CodeBadRequest, "Wrong content type", "PATCH bodies are application/offset+octet-stream"))
		return
	}
	off, err := strconv.ParseInt(r.Header.Get("Upload-Offset"), 10, 64)
	if err != nil || off < 0 {
		writeProblem(w, errf(400, CodeBadRequest, "Invalid Upload-Offset", "Upload-Offset must be a non-negative integer"))
		return
	}
	if ul := r.Header.Get("Upload-Length"); ul != "" && ul != strconv.FormatInt(f.Size, 10) {
		writeProblem(w, errf(http.StatusRequestEntityTooLarge, CodeLengthExceeded, "Upload-Length mismatch", "Upload-Length must equal the size declared in the manifest"))
		return
	}
	sum, sumAlg, want, err := parseChecksum(r.Header.Get("Upload-Checksum"), c.Hospital.Suite)
	if err != nil {
		writeProblem(w, err)
		return
	}
	busy := errf(http.StatusLocked, CodeConflict, "Upload busy", "another request is writing this file")
	unlock, ok := s.uploadLocks.tryLock(fileKey(f.Transfer, f.Index))
	if !ok {
		writeProblem(w, busy)
		return
	}
	defer unlock()
	if fl, shared := s.cfg.Store.(FileLocker); shared {
		unlockShared, ok, err := fl.LockFile(ctx, f.Transfer, f.Index)
		if err != nil {
			writeProblem(w, s.internal(err))
			return
		}
		if !ok {
			writeProblem(w, busy)
			return
		}
		defer unlockShared()
	}
	// Re-read under the lock: another request may have advanced the file.
	if _, files, err := s.cfg.Store.Transfer(ctx, f.Transfer); err == nil {
		f = files[f.Index]
	}
	if f.Status == FileComplete {
		writeProblem(w, errf(http.StatusGone, CodeCapUsed, "Capability used", "the file is complete"))
		return
	}
	if err := s.reconcile(ctx, &f); err != nil && !errors.Is(err, ErrConflict) {
		writeProblem(w, s.internal(err))
		return
	}
	if off != f.Offset {
		s.tusHeaders(w, f, cp)
		writeProblem(w, errf(http.StatusConflict, CodeOffsetMismatch, "Offset mismatch", "Upload-Offset does not match the upload's offset; HEAD for the current offset"))
		return
	}
	left := f.Size - f.Offset
	if r.ContentLength > left {
		writeProblem(w, errf(http.StatusRequestEntityTooLarge, CodeLengthExceeded, "Chunk too large", "the chunk would write past the declared length"))
		return
	}
	// The running hash continues from the stored state. Without one past
	// offset 0 (after a reconcile) it cannot be continued: finalize
	// re-reads the sealed object instead, so nothing is hashed for it here.
	fileAlg := t.Request.Files[f.Index].HashAlg
	var running hash.Hash
	switch {
	case f.Offset == 0:
		running = newFileHash(fileAlg)
	case f.HashState != nil:
		running = newFileHash(fileAlg)
		if err := running.(encoding.BinaryUnmarshaler).UnmarshalBinary(f.HashState); err != nil {
			f.HashState, running = nil, nil
		}
	}
	hashes := []hash.Hash{running, sum}
	if f.Offset == 0 && sum != nil && running != nil && sameHash(sumAlg, fileAlg) {
		// From offset 0 the chunk's hash and the file's running hash are
		// the same stream: hash it once and compare the running sum (Sum
		// leaves the state as it is).
		sum, hashes = running, []hash.Hash{running}
	}
	cr := &chunkReader{r: r.Body, left: left, hasher: asynchash.New(hashes...), sum: sum, want: want}
	defer cr.hasher.Close()
	s.metrics.activeUploads.Inc()
	defer s.metrics.activeUploads.Dec()
	size, err := s.cfg.Blobs.Append(ctx, fileKey(f.Transfer, f.Index), f.Offset, cr)
	switch {
	case errors.Is(err, errChecksum):
		s.tusHeaders(w, f, cp)
		s.metrics.checksumFails.Inc()
		s.metrics.failure(CodeChecksumMismatch)
		writeProblem(w, errf(StatusChecksumMismatch, CodeChecksumMismatch, "Checksum mismatch", "the chunk does not match Upload-Checksum; the offset is unchanged"))
		return
	case errors.Is(err, errTooLong):
		s.tusHeaders(w, f, cp)
		writeProblem(w, errf(http.StatusRequestEntityTooLarge, CodeLengthExceeded, "Chunk too large", "the chunk would write past the declared length; the offset is unchanged"))
		return
	case errors.Is(err, blob.ErrOffsetMismatch):
		writeProblem(w, errf(http.StatusConflict, CodeOffsetMismatch, "Offset mismatch", "the upload moved; HEAD for the current offset"))
		return
	case err != nil:
		if ctx.Err() != nil {
			return // the client went away; the offset is unchanged
		}
		writeProblem(w, errf(http.StatusBadRequest, CodeBadRequest, "Chunk not stored", "the chunk could not be read completely; the offset is unchanged"))
		return
	}
	cr.hasher.Wait()
	s.metrics.bytesIn.Add(float64(cr.n))
	old := f.Offset
	f.Offset = size
	if f.HashState != nil || old == 0 {
		f.HashState = marshalHash(running)
	}
	if f.Offset == f.Size {
		err = s.finishFile(ctx, &f, old)
	} else {
		err = s.cfg.Store.AdvanceFile(ctx, f, old)
	}
	if err != nil {
		writeProblem(w, s.internal(err))
		return
	}
	if f.Status == FilePending {
		s.touch(ctx, &cp)
	}
	s.tusHeaders(w, f, cp)
	w.WriteHeader(http.StatusNoContent)
}

// sameHash reports whether two algorithm names select the same hash
// (newFileHash: sm3, else sha256).
func sameHash(a, b string) bool { return (a == "sm3") == (b == "sm3") }

// finishFile seals a fully uploaded file and kills its upload capabilities.
func (s *Server) finishFile(ctx context.Context, f *File, old int64) error {
	if _, err := s.cfg.Blobs.Seal(ctx, fileKey(f.Transfer, f.Index)); err != nil {
		return err
	}
	f.Status = FileComplete
	if err := s.cfg.Store.AdvanceFile(ctx, *f, old); err != nil {
		return err
	}
	return s.cfg.Store.KillCapabilities(ctx, CapUpload, f.Transfer, f.Index)
}

// tusDelete is termination: the whole transfer is cancelled and its
// ciphertext erased (a transfer with a missing file can never complete).
func (s *Server) tusDelete(w http.ResponseWriter, r *http.Request, c caller) {
	ctx := r.Context()
	_, t, _, ok := s.tusPrelude(w, r, c)
	if !ok {
		return
	}
	if err := s.cfg.Store.SetTransferStatus(ctx, t.ID, []string{TransferUploading}, TransferCancelled, nil, "terminated"); err != nil && !errors.Is(err, ErrConflict) {
		writeProblem(w, s.internal(err))
		return
	}
	_ = s.cfg.Store.KillCapabilities(ctx, CapUpload, t.ID, -1)
	if _, err := s.cfg.Blobs.DeletePrefix(ctx, t.ID+"/"); err != nil {
		s.log.Warn("erase after termination failed", "kind", ErrorKind(err))
	}
	s.audit(ctx, audit.Event{Action: audit.ActionDelete, Outcome: audit.OutcomeSuccess, RequestID: t.ID,
		Who: audit.Who{Org: c.Hospital.ID, CertFP: c.CertFP, Role: "sender"}, What: audit.What{ResourceType: "Transfer"}})
	w.WriteHeader(http.StatusNoContent)
}
