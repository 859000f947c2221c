package gateway

import (
	"io"
	"os"
	"path/filepath"
)

// FS is where inbound files are delivered. A file is written under a
// temporary name and renamed into place only once the whole transfer is
// imported, so a failure (a full disk) leaves nothing half-delivered.
type FS interface {
	MkdirAll(dir string) error
	// CreateTemp creates a new temporary file in dir.
	CreateTemp(dir, pattern string) (File, error)
	Rename(from, to string) error
	Remove(name string) error
}

// File is a file being written.
type File interface {
	io.Writer
	Name() string
	Sync() error
	Close() error
}

// OSFS is the operating system's file system.
type OSFS struct{}

func (OSFS) MkdirAll(dir string) error { return os.MkdirAll(dir, 0o700) }
func (OSFS) CreateTemp(dir, pattern string) (File, error) {
	return os.CreateTemp(dir, pattern)
}
func (OSFS) Rename(from, to string) error { return os.Rename(from, to) }
func (OSFS) Remove(name string) error     { return os.Remove(name) }

var _ FS = OSFS{}

// LimitFS is an FS whose files together may hold at most Limit bytes (the
// rest fails with ErrNoSpace), for tests of a full disk.
type LimitFS struct {
	FS
	Limit int64
	used  int64
}

// ErrNoSpace is LimitFS's "no space left on device".
var ErrNoSpace = &os.PathError{Op: "write", Path: "delivery", Err: errNoSpace{}}

type errNoSpace struct{}

func (errNoSpace) Error() string { return "no space left on device" }

// CreateTemp creates a file that counts against the limit.
func (l *LimitFS) CreateTemp(dir, pattern string) (File, error) {
	f, err := l.FS.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return &limitFile{File: f, fs: l}, nil
}

type limitFile struct {
	File
	fs *LimitFS
}

func (f *limitFile) Write(p []byte) (int, error) {
	room := f.fs.Limit - f.fs.used
	if int64(len(p)) > room {
		n, _ := f.File.Write(p[:max(room, 0)])
		f.fs.used += int64(n)
		return n, ErrNoSpace
	}
	n, err := f.File.Write(p)
	f.fs.used += int64(n)
	return n, err
}

// deliveryPath joins the delivery folder, the transfer id and a checked
// plain file name.
func deliveryPath(root, id, name string) string { return filepath.Join(root, id, name) }
