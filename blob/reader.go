package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Reader reads a sealed object through ranged reads; it implements
// io.ReadSeeker (for http.ServeContent) and io.ReaderAt.
type Reader struct {
	ctx  context.Context
	s    Store
	key  string
	size int64
	pos  int64
	body io.ReadCloser // open range starting at bodyPos, or nil
	bpos int64
}

// Open returns a Reader over a sealed object. Close it when done.
func Open(ctx context.Context, s Store, key string) (*Reader, error) {
	info, err := s.Stat(ctx, key)
	if err != nil {
		return nil, err
	}
	if !info.Sealed {
		return nil, ErrNotSealed
	}
	return &Reader{ctx: ctx, s: s, key: key, size: info.Size}, nil
}

// Size is the object's size.
func (r *Reader) Size() int64 { return r.size }

// Read reads from the current position, keeping one ranged read open for
// sequential reads.
func (r *Reader) Read(p []byte) (int, error) {
	if r.pos >= r.size {
		return 0, io.EOF
	}
	if r.body != nil && r.bpos != r.pos {
		r.body.Close()
		r.body = nil
	}
	if r.body == nil {
		b, err := r.s.ReadRange(r.ctx, r.key, r.pos, -1)
		if err != nil {
			return 0, err
		}
		r.body, r.bpos = b, r.pos
	}
	if max := r.size - r.pos; int64(len(p)) > max {
		p = p[:max]
	}
	n, err := r.body.Read(p)
	r.pos += int64(n)
	r.bpos += int64(n)
	if err == io.EOF {
		if r.pos < r.size {
			return n, io.ErrUnexpectedEOF
		}
		err = nil
	}
	return n, err
}

// Seek implements io.Seeker.
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = r.pos + offset
	case io.SeekEnd:
		abs = r.size + offset
	default:
		return 0, errors.New("blob: invalid whence")
	}
	if abs < 0 {
		return 0, fmt.Errorf("%w: negative position", ErrRange)
	}
	r.pos = abs
	return abs, nil
}

// ReadAt implements io.ReaderAt with one ranged read per call.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w: negative offset", ErrRange)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	n := int64(len(p))
	short := false
	if off+n > r.size {
		n, short = r.size-off, true
	}
	b, err := r.s.ReadRange(r.ctx, r.key, off, n)
	if err != nil {
		return 0, err
	}
	defer b.Close()
	got, err := io.ReadFull(b, p[:n])
	if err != nil {
		return got, err
	}
	if short {
		return got, io.EOF
	}
	return got, nil
}

// Close releases the open ranged read.
func (r *Reader) Close() error {
	if r.body != nil {
		err := r.body.Close()
		r.body = nil
		return err
	}
	return nil
}
