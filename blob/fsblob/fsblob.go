// Package fsblob is the local-filesystem blob.Store: each object is a data
// file plus a small sidecar recording its durable size, so a crash in the
// middle of an append is truncated back to the last acknowledged offset.
// See docs/blob.md for the crash semantics.
package fsblob

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"phix/blob"
	"phix/blob/internal/keylock"
	"phix/internal/writeback"
)

// Store is a blob.Store under a root directory. One process owns a root.
type Store struct {
	root   string
	region string
	noSync bool
	// syncEach fsyncs every append before acknowledging it (the behaviour
	// where the boot id is unknown).
	syncEach bool
	locks    keylock.Map
}

var _ blob.Store = (*Store)(nil)

// New opens (creating if needed) a store under root. region is the data
// residency label reported by Region.
func New(root, region string) (*Store, error) {
	if root == "" {
		return nil, errors.New("fsblob: empty root directory")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("fsblob: root: %w", err)
	}
	for _, d := range []string{"meta", "data"} {
		if err := os.MkdirAll(filepath.Join(abs, d), 0o700); err != nil {
			return nil, fmt.Errorf("fsblob: create root: %w", err)
		}
	}
	return &Store{root: abs, region: region}, nil
}

// NoDataSync makes Append skip the fsync of the appended bytes (the
// metadata is still synced). An acknowledged append then survives a
// process crash but not a power loss: after one, the object reads as
// ErrCorrupt. For storage with a battery-backed write cache, and for
// measuring the cost of the sync (BENCHMARKS.md). Call before use.
func (s *Store) NoDataSync() { s.noSync = true }

// SyncEachAppend makes Append fsync the appended bytes and the sidecar
// before it returns, so an acknowledged append survives a power loss (the
// default defers the data fsync to Seal; see docs/blob.md). Call before use.
func (s *Store) SyncEachAppend() { s.syncEach = true }

// deferSync reports whether appends are acknowledged from the page cache,
// their fsync deferred to Seal.
func (s *Store) deferSync() bool {
	return !s.noSync && !s.syncEach && bootID != [16]byte{}
}

// copyBufs holds the 1 MiB buffers appends copy through.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// Region implements blob.Store.
func (s *Store) Region() string { return s.region }

func (s *Store) metaPath(key string) string {
	return filepath.Join(s.root, "meta", filepath.FromSlash(key))
}

func (s *Store) dataPath(key string) string {
	return filepath.Join(s.root, "data", filepath.FromSlash(key))
}

// Create implements blob.Store.
func (s *Store) Create(ctx context.Context, key string) (blob.Info, error) {
	if err := blob.ValidateKey(key); err != nil {
		return blob.Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return blob.Info{}, err
	}
	defer s.locks.Lock(key)()
	mp, dp := s.metaPath(key), s.dataPath(key)
	if _, err := os.Lstat(mp); err == nil {
		return blob.Info{}, blob.ErrExists
	}
	for _, d := range []string{filepath.Dir(mp), filepath.Dir(dp)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return blob.Info{}, fmt.Errorf("%w: key path collides with another object (%v)", blob.ErrExists, errors.Unwrap(err))
		}
	}
	// The data file first: a crash before the sidecar exists leaves an
	// invisible empty file that the next Create truncates again.
	df, err := os.OpenFile(dp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return blob.Info{}, fmt.Errorf("fsblob: create data file: %w", errors.Unwrap(err))
	}
	err = df.Sync()
	if cerr := df.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return blob.Info{}, fmt.Errorf("fsblob: sync data file: %w", err)
	}
	m := meta{seq: 1, created: time.Now().UTC().Truncate(time.Microsecond)}
	if err := s.publishMeta(mp, m); err != nil {
		return blob.Info{}, err
	}
	syncDir(filepath.Dir(dp))
	return info(key, m), nil
}

// publishMeta writes the first sidecar under a private temporary name and
// links it into place, so the sidecar appears complete or not at all.
func (s *Store) publishMeta(mp string, m meta) error {
	var rb [8]byte
	_, _ = rand.Read(rb[:])
	tmp := filepath.Join(filepath.Dir(mp), ".tmp-"+hex.EncodeToString(rb[:]))
	buf := make([]byte, 2*slotSize)
	copy(buf[int(m.seq%2)*slotSize:], m.encode())
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("fsblob: create metadata: %w", errors.Unwrap(err))
	}
	defer os.Remove(tmp)
	_, err = f.Write(buf)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsblob: write metadata: %w", err)
	}
	if err := os.Link(tmp, mp); err != nil {
		if errors.Is(err, os.ErrExist) {
			return blob.ErrExists
		}
		return fmt.Errorf("fsblob: publish metadata: %w", errors.Unwrap(err))
	}
	syncDir(filepath.Dir(mp))
	return nil
}

// Append implements blob.Store.
func (s *Store) Append(ctx context.Context, key string, offset int64, r io.Reader) (int64, error) {
	if err := blob.ValidateKey(key); err != nil {
		return 0, err
	}
	defer s.locks.Lock(key)()
	mp := s.metaPath(key)
	m, err := readMeta(mp)
	if err != nil {
		return 0, err
	}
	if m.sealed {
		return m.committed, blob.ErrSealed
	}
	if offset != m.committed {
		return m.committed, fmt.Errorf("%w: got %d, size %d", blob.ErrOffsetMismatch, offset, m.committed)
	}
	f, err := s.openData(key, m.committed)
	if err != nil {
		return m.committed, err
	}
	defer f.Close()
	var w io.Writer = f
	if !s.noSync {
		// Written out as it arrives and evicted once on disk: the
		// ciphertext is read again only by its download (docs/blob.md).
		w = &writeback.Writer{F: f, Off: m.committed, Drop: true}
	}
	deferred := s.deferSync()
	var n int64
	if wt, ok := r.(io.WriterTo); ok {
		// The reader's own copy loop (transfer's chunk reader fills 1 MiB
		// buffers it hashes in place); ctx is checked at each write.
		n, err = wt.WriteTo(ctxWriter{ctx, w})
	} else {
		buf := copyBufs.Get().(*[]byte)
		n, err = io.CopyBuffer(w, ctxReader{ctx, r}, *buf)
		copyBufs.Put(buf)
	}
	if err == nil && n > 0 && !s.noSync && !deferred {
		err = f.Sync()
	}
	if err != nil {
		// Nothing beyond the committed size counts; cut it off now rather
		// than waiting for the next open.
		_ = f.Truncate(m.committed)
		return m.committed, fmt.Errorf("fsblob: append: %w", err)
	}
	if n == 0 {
		return m.committed, nil
	}
	m.seq++
	m.committed += n
	if deferred {
		// Acknowledged from the page cache: the sidecar records the synced
		// size and this boot, so a process crash keeps these bytes and a
		// machine restart rolls them back (meta.effective). Neither the
		// data nor the sidecar needs an fsync now.
		if m.boot == ([16]byte{}) {
			m.synced = m.committed - n
		}
		m.boot = bootID
	}
	if err := writeMetaSync(mp, m, !deferred); err != nil {
		_ = f.Truncate(m.committed - n)
		return m.committed - n, err
	}
	return m.committed, nil
}

// openData opens the data file for appending, truncating bytes beyond the
// committed size (left by a crash between the data fsync and the sidecar
// write).
func (s *Store) openData(key string, committed int64) (*os.File, error) {
	f, err := os.OpenFile(s.dataPath(key), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("fsblob: open data file: %w", errors.Unwrap(err))
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("fsblob: stat data file: %w", err)
	}
	switch {
	case st.Size() > committed:
		if err := f.Truncate(committed); err != nil {
			f.Close()
			return nil, fmt.Errorf("fsblob: truncate torn append: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("fsblob: sync data file: %w", err)
		}
	case st.Size() < committed:
		f.Close()
		return nil, fmt.Errorf("%w: data file shorter than its committed size", blob.ErrCorrupt)
	}
	return f, nil
}

// Stat implements blob.Store.
func (s *Store) Stat(ctx context.Context, key string) (blob.Info, error) {
	if err := blob.ValidateKey(key); err != nil {
		return blob.Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return blob.Info{}, err
	}
	m, err := readMeta(s.metaPath(key))
	if err != nil {
		return blob.Info{}, err
	}
	return info(key, m), nil
}

// Seal implements blob.Store.
func (s *Store) Seal(ctx context.Context, key string) (blob.Info, error) {
	if err := blob.ValidateKey(key); err != nil {
		return blob.Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return blob.Info{}, err
	}
	defer s.locks.Lock(key)()
	mp := s.metaPath(key)
	m, err := readMeta(mp)
	if err != nil {
		return blob.Info{}, err
	}
	if m.sealed {
		return info(key, m), nil
	}
	f, err := s.openData(key, m.committed)
	if err != nil {
		return blob.Info{}, err
	}
	if m.boot != ([16]byte{}) {
		// Appends acknowledged from the page cache become durable here,
		// before the sidecar says sealed.
		err = f.Sync()
	}
	if err == nil && !s.noSync {
		writeback.DropAll(f) // the tails the appends left in the cache
	}
	f.Close()
	if err != nil {
		return blob.Info{}, fmt.Errorf("fsblob: sync data file: %w", err)
	}
	m.seq++
	m.sealed = true
	m.synced, m.boot = m.committed, [16]byte{}
	if err := writeMeta(mp, m); err != nil {
		return blob.Info{}, err
	}
	return info(key, m), nil
}

// ReadRange implements blob.Store.
func (s *Store) ReadRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := blob.ValidateKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m, err := readMeta(s.metaPath(key))
	if err != nil {
		return nil, err
	}
	if !m.sealed {
		return nil, blob.ErrNotSealed
	}
	n, err := blob.CheckRange(m.committed, off, length)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(s.dataPath(key))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && m.committed == 0 {
			return io.NopCloser(strings.NewReader("")), nil
		}
		return nil, fmt.Errorf("fsblob: open data file: %w", errors.Unwrap(err))
	}
	// Read in order and evicted behind the reader (docs/blob.md).
	return writeback.NewReader(f, off, n), nil
}

// Delete implements blob.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := blob.ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	defer s.locks.Lock(key)()
	return s.deleteLocked(key)
}

func (s *Store) deleteLocked(key string) error {
	mp, dp := s.metaPath(key), s.dataPath(key)
	// The sidecar goes first: once it is gone the object does not exist, and
	// a leftover data file is invisible and truncated by the next Create.
	if err := os.Remove(mp); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return blob.ErrNotFound
		}
		return fmt.Errorf("fsblob: delete metadata: %w", errors.Unwrap(err))
	}
	syncDir(filepath.Dir(mp))
	if err := os.Remove(dp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("fsblob: delete data file: %w", errors.Unwrap(err))
	}
	syncDir(filepath.Dir(dp))
	s.pruneDirs(filepath.Dir(mp), filepath.Join(s.root, "meta"))
	s.pruneDirs(filepath.Dir(dp), filepath.Join(s.root, "data"))
	return nil
}

// pruneDirs removes now-empty directories from dir up to (not including) top.
func (s *Store) pruneDirs(dir, top string) {
	for dir != top && strings.HasPrefix(dir, top+string(filepath.Separator)) {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// DeletePrefix implements blob.Store.
func (s *Store) DeletePrefix(ctx context.Context, prefix string) (int, error) {
	return blob.DeletePrefix(ctx, prefix, s.keys, func(_ context.Context, k string) error {
		defer s.locks.Lock(k)()
		return s.deleteLocked(k)
	})
}

// List implements blob.Store.
func (s *Store) List(ctx context.Context, prefix string, fn func(blob.Info) error) error {
	keys, err := s.keys(ctx, prefix)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, err := readMeta(s.metaPath(k))
		if errors.Is(err, blob.ErrNotFound) {
			continue // deleted since the walk
		}
		if err != nil {
			return err
		}
		if err := fn(info(k, m)); err != nil {
			return err
		}
	}
	return nil
}

// staleTemp is how old a leftover temporary sidecar must be before a listing
// removes it (younger ones may belong to a Create in progress).
const staleTemp = 10 * time.Minute

// keys returns the sorted keys under prefix, walking only the directory the
// prefix's complete segments name.
func (s *Store) keys(ctx context.Context, prefix string) ([]string, error) {
	if err := blob.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	top := filepath.Join(s.root, "meta")
	start := top
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = filepath.Join(top, filepath.FromSlash(prefix[:i]))
	}
	var keys []string
	err := filepath.WalkDir(start, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscallENOTDIR) {
				return nil
			}
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if d.IsDir() {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			if fi, err := d.Info(); err == nil && time.Since(fi.ModTime()) > staleTemp {
				_ = os.Remove(p)
			}
			return nil
		}
		rel, err := filepath.Rel(top, p)
		if err != nil {
			return err
		}
		k := filepath.ToSlash(rel)
		if strings.HasPrefix(k, prefix) && blob.ValidateKey(k) == nil {
			keys = append(keys, k)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fsblob: list: %w", err)
	}
	sort.Strings(keys)
	return keys, nil
}

func info(key string, m meta) blob.Info {
	return blob.Info{Key: key, Size: m.committed, Created: m.created, Sealed: m.sealed}
}

// syncDir fsyncs a directory so a create, link or remove in it is durable.
// Best effort: some filesystems refuse to sync directories.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// ctxWriter fails writes once ctx is done.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
