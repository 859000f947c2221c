package writeback

import (
	"bytes"
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
