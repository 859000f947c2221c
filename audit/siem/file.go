package siem

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// File appends entries as JSON lines (one canonical event per line, each
// carrying its "index") and fsyncs every batch. On open it drops a torn last
// line and remembers the last index written, and Deliver skips entries at or
// below it, so a crash between the write and the cursor update gives no
// duplicates: delivery to a File is exactly-once.
type File struct {
	name string
	mu   sync.Mutex
	f    *os.File
	last int64
}

// OpenFile opens (creating) the JSON-lines file at path. name is the cursor name.
func OpenFile(name, path string) (*File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("siem: open file sink: %w", err)
	}
	fs := &File{name: name, f: f, last: -1}
	if err := fs.recover(); err != nil {
		f.Close()
		return nil, err
	}
	return fs, nil
}

// recover truncates a torn last line and reads the last index.
func (fs *File) recover() error {
	st, err := fs.f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	const tail = 64 << 10
	start := max(0, size-tail)
	buf := make([]byte, size-start)
	if _, err := fs.f.ReadAt(buf, start); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	end := bytes.LastIndexByte(buf, '\n') + 1 // keep up to the last complete line
	if int64(end) != int64(len(buf)) {
		if err := fs.f.Truncate(start + int64(end)); err != nil {
			return err
		}
	}
	buf = buf[:end]
	if len(buf) > 0 {
		lines := bytes.Split(bytes.TrimSuffix(buf, []byte("\n")), []byte("\n"))
		var ev struct {
			Index *int64 `json:"index"`
		}
		if err := json.Unmarshal(lines[len(lines)-1], &ev); err != nil || ev.Index == nil {
			return errors.New("siem: file sink's last line is not an event")
		}
		fs.last = *ev.Index
	}
	_, err = fs.f.Seek(0, io.SeekEnd)
	return err
}

// Name implements Sink.
func (fs *File) Name() string { return fs.name }

// Deliver implements Sink.
func (fs *File) Deliver(_ context.Context, batch []Entry) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var b bytes.Buffer
	last := fs.last
	for _, e := range batch {
		if e.Index <= last {
			continue
		}
		b.Write(e.Body)
		b.WriteByte('\n')
		last = e.Index
	}
	if b.Len() == 0 {
		return nil
	}
	if _, err := fs.f.Write(b.Bytes()); err != nil {
		return fmt.Errorf("siem: write file sink: %w", err)
	}
	if err := fs.f.Sync(); err != nil {
		return fmt.Errorf("siem: sync file sink: %w", err)
	}
	fs.last = last
	return nil
}

// Close closes the file.
func (fs *File) Close() error { return fs.f.Close() }
