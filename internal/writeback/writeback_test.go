package writeback

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestWritesEverything: the bytes reach the file unchanged whatever the
// write sizes, across several write-back starts.
func TestWritesEverything(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := bytes.Repeat([]byte("0123456789abcdef"), (3*Every+12345)/16)
	w := &Writer{F: f}
	for p := want; len(p) > 0; {
		k := min(len(p), 1<<20+7)
		if n, err := w.Write(p[:k]); n != k || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		p = p[k:]
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("file differs from what was written (%d vs %d bytes, %v)", len(got), len(want), err)
	}
	if w.Off == 0 {
		t.Fatal("no write-back was started")
	}
}

// TestDropWriterAndReader: with drop-behind the bytes still reach the file
// unchanged, and a Reader returns exactly [off, off+n) of it, whatever the
// read sizes, then io.EOF; a file shorter than promised is
// io.ErrUnexpectedEOF.
func TestDropWriterAndReader(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := make([]byte, 5*Lag+777)
	for i := range want {
		want[i] = byte(i*31 + i>>13)
	}
	w := &Writer{F: f, Drop: true}
	for p := want; len(p) > 0; {
		k := min(len(p), 1<<20+3)
		if n, err := w.Write(p[:k]); n != k || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		p = p[k:]
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	DropAll(f)
	if w.dropped == 0 {
		t.Fatal("nothing was dropped behind the write")
	}
	got, err := os.ReadFile(f.Name())
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("file differs from what was written (%d vs %d bytes, %v)", len(got), len(want), err)
	}
	for _, tc := range []struct {
		name   string
		off, n int64
		chunk  int
	}{
		{"whole, odd reads", 0, int64(len(want)), 65537},
		{"middle, big reads", 12345, 3 * Lag, 3 << 20},
		{"tail", int64(len(want)) - 100, 100, 4096},
		{"empty", 7, 0, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(f, tc.off, tc.n)
			var out []byte
			buf := make([]byte, tc.chunk)
			for {
				k, err := r.Read(buf)
				out = append(out, buf[:k]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(out, want[tc.off:tc.off+tc.n]) {
				t.Fatalf("read %d bytes, not the range's %d", len(out), tc.n)
			}
		})
	}
	short := NewReader(f, int64(len(want))-10, 20)
	if _, err := io.ReadAll(short); err != io.ErrUnexpectedEOF {
		t.Fatalf("reading past the end: %v, want io.ErrUnexpectedEOF", err)
	}
}
