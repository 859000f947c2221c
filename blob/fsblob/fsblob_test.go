package fsblob

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"phix/blob"
	"phix/blob/blobtest"
)

func TestContract(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store {
		s, err := New(t.TempDir(), "test")
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestCrashTruncatesTornAppend simulates a crash after the data file grew but
// before the sidecar recorded the new size: the extra bytes must not count.
func TestCrashTruncatesTornAppend(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := New(root, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "t/f"); err != nil {
		t.Fatal(err)
	}
	good := blobtest.Random(4096)
	if _, err := s.Append(ctx, "t/f", 0, bytes.NewReader(good)); err != nil {
		t.Fatal(err)
	}
	// The torn write: garbage appended directly to the data file.
	f, err := os.OpenFile(filepath.Join(root, "data", "t", "f"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(make([]byte, 777))
	f.Close()

	s2, err := New(root, "test") // "after the restart"
	if err != nil {
		t.Fatal(err)
	}
	info, err := s2.Stat(ctx, "t/f")
	if err != nil || info.Size != 4096 {
		t.Fatalf("Stat after crash = %+v, %v; want the durable 4096", info, err)
	}
	more := blobtest.Random(100)
	if n, err := s2.Append(ctx, "t/f", 4096, bytes.NewReader(more)); err != nil || n != 4196 {
		t.Fatalf("resume = %d, %v", n, err)
	}
	if _, err := s2.Seal(ctx, "t/f"); err != nil {
		t.Fatal(err)
	}
	rc, err := s2.ReadRange(ctx, "t/f", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var got bytes.Buffer
	got.ReadFrom(rc)
	if !bytes.Equal(got.Bytes(), append(good, more...)) {
		t.Fatal("content after crash recovery is wrong")
	}
}

// TestTornSidecarSlot: a torn write of the newer metadata slot falls back to
// the older one.
func TestTornSidecarSlot(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, _ := New(root, "test")
	s.Create(ctx, "t/f")
	s.Append(ctx, "t/f", 0, bytes.NewReader(make([]byte, 10))) // seq 2
	s.Append(ctx, "t/f", 10, bytes.NewReader(make([]byte, 5))) // seq 3, slot 1
	mp := filepath.Join(root, "meta", "t", "f")
	b, _ := os.ReadFile(mp)
	b[slotSize+20] ^= 0xff // corrupt slot 1
	os.WriteFile(mp, b, 0o600)
	info, err := s.Stat(ctx, "t/f")
	if err != nil || info.Size != 10 {
		t.Fatalf("Stat = %+v, %v; want size 10 from the older slot", info, err)
	}
	os.WriteFile(mp, make([]byte, 2*slotSize), 0o600)
	if _, err := s.Stat(ctx, "t/f"); blob.Code(err) != "BLOB-008" {
		t.Fatalf("Stat with no valid slot: %v", err)
	}
}

// TestNoTempFilesLeft: after the contract operations no temporary files remain.
func TestNoTempFilesLeft(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, _ := New(root, "test")
	for _, k := range []string{"a/1", "a/2", "b/c/d"} {
		s.Create(ctx, k)
		s.Append(ctx, k, 0, bytes.NewReader([]byte("x")))
	}
	s.Seal(ctx, "a/1")
	s.Delete(ctx, "b/c/d")
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if d != nil && !d.IsDir() && d.Name()[0] == '.' {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(root, "meta", "b")); !os.IsNotExist(err) {
		t.Errorf("empty directories of a deleted object remain: %v", err)
	}
}

func FuzzDecodeMeta(f *testing.F) {
	f.Add(meta{seq: 1, committed: 5}.encode())
	f.Add(append(meta{seq: 2, committed: 9, sealed: true}.encode(), meta{seq: 3}.encode()...))
	f.Add([]byte{})
	f.Add(meta{seq: 4, committed: 900, synced: 300, boot: [16]byte{1, 2, 3}}.encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		if m.committed < 0 || m.synced < 0 || m.synced > m.committed {
			t.Fatalf("inconsistent sizes accepted: %+v", m)
		}
		// A decoded slot encodes back to a slot that decodes the same.
		if again, err := decodeMeta(m.encode()); err != nil || again != m {
			t.Fatalf("round trip: %+v -> %+v, %v", m, again, err)
		}
		if e := m.effective(); e.committed > m.committed {
			t.Fatalf("a restart grew the object: %+v -> %+v", m, e)
		}
	})
}

// TestPowerLossRollsBackUnsyncedAppends simulates a machine restart (a new
// boot id) after appends acknowledged from the page cache: the object must
// report its last synced size (never more), accept the resume from there,
// and a sealed object must keep every byte.
func TestPowerLossRollsBackUnsyncedAppends(t *testing.T) {
	if bootID == ([16]byte{}) {
		t.Skip("no boot id on this platform: every append is synced")
	}
	ctx := context.Background()
	root := t.TempDir()
	s, err := New(root, "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"t/open", "t/sealed"} {
		if _, err := s.Create(ctx, k); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, k, 0, bytes.NewReader(blobtest.Random(5000))); err != nil {
			t.Fatal(err)
		}
		if n, err := s.Append(ctx, k, 5000, bytes.NewReader(blobtest.Random(3000))); err != nil || n != 8000 {
			t.Fatalf("append = %d, %v", n, err)
		}
	}
	if _, err := s.Seal(ctx, "t/sealed"); err != nil {
		t.Fatal(err)
	}
	// A process crash (same boot): every acknowledged byte counts.
	s2, _ := New(root, "test")
	if info, err := s2.Stat(ctx, "t/open"); err != nil || info.Size != 8000 {
		t.Fatalf("after a process crash: %+v, %v; want 8000", info, err)
	}

	saved := bootID
	t.Cleanup(func() { bootID = saved })
	bootID[0] ^= 0xff // "after the power came back"
	s3, _ := New(root, "test")
	if info, err := s3.Stat(ctx, "t/open"); err != nil || info.Size != 0 {
		t.Fatalf("after a restart: %+v, %v; want the synced 0", info, err)
	}
	if _, err := s3.Append(ctx, "t/open", 8000, bytes.NewReader([]byte("x"))); !errors.Is(err, blob.ErrOffsetMismatch) {
		t.Fatalf("append at the lost offset = %v, want ErrOffsetMismatch", err)
	}
	data := blobtest.Random(700)
	if n, err := s3.Append(ctx, "t/open", 0, bytes.NewReader(data)); err != nil || n != 700 {
		t.Fatalf("resume from 0 = %d, %v", n, err)
	}
	if _, err := s3.Seal(ctx, "t/open"); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]int64{"t/open": 700, "t/sealed": 8000} {
		info, err := s3.Stat(ctx, k)
		if err != nil || info.Size != want || !info.Sealed {
			t.Fatalf("%s: %+v, %v; want sealed %d", k, info, err, want)
		}
		rc, err := s3.ReadRange(ctx, k, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if int64(len(got)) != want {
			t.Fatalf("%s: read %d bytes, want %d", k, len(got), want)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(root, "data", "t", "open")); !bytes.Equal(got, data) {
		t.Fatal("the resumed object does not hold exactly the bytes appended after the restart")
	}
}

// TestSyncEachAppendSurvivesRestart: with SyncEachAppend an acknowledged
// append is durable at once, so a new boot keeps it.
func TestSyncEachAppendSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, _ := New(root, "test")
	s.SyncEachAppend()
	if _, err := s.Create(ctx, "t/f"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "t/f", 0, bytes.NewReader(blobtest.Random(4096))); err != nil {
		t.Fatal(err)
	}
	saved := bootID
	t.Cleanup(func() { bootID = saved })
	bootID[0] ^= 0xff
	s2, _ := New(root, "test")
	if info, err := s2.Stat(ctx, "t/f"); err != nil || info.Size != 4096 {
		t.Fatalf("after a restart: %+v, %v; want 4096", info, err)
	}
}

// writerToFails is a reader with its own copy loop (as transfer's chunk
// reader has) that writes some bytes and then fails.
type writerToFails struct {
	data []byte
	err  error
}

func (w *writerToFails) Read([]byte) (int, error) { panic("Append must use WriteTo") }

func (w *writerToFails) WriteTo(dst io.Writer) (int64, error) {
	n, err := dst.Write(w.data)
	if err != nil {
		return int64(n), err
	}
	return int64(n), w.err
}

// TestAppendWriterTo: Append uses a reader's WriteTo; a failure there, or a
// cancelled context, leaves the object at its old size and the next append
// continues from it.
func TestAppendWriterTo(t *testing.T) {
	ctx := context.Background()
	s, err := New(t.TempDir(), "CN-SH")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "t/w"); err != nil {
		t.Fatal(err)
	}
	first := bytes.Repeat([]byte("a"), 3000)
	if n, err := s.Append(ctx, "t/w", 0, &writerToFails{data: first}); err != nil || n != 3000 {
		t.Fatalf("Append = %d, %v", n, err)
	}
	boom := errors.New("boom")
	if n, err := s.Append(ctx, "t/w", 3000, &writerToFails{data: []byte("partial"), err: boom}); !errors.Is(err, boom) || n != 3000 {
		t.Fatalf("failing WriteTo: Append = %d, %v", n, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if n, err := s.Append(cctx, "t/w", 3000, &writerToFails{data: []byte("late")}); !errors.Is(err, context.Canceled) || n != 3000 {
		t.Fatalf("cancelled: Append = %d, %v", n, err)
	}
	if n, err := s.Append(ctx, "t/w", 3000, &writerToFails{data: []byte("tail")}); err != nil || n != 3004 {
		t.Fatalf("Append after failures = %d, %v", n, err)
	}
	if _, err := s.Seal(ctx, "t/w"); err != nil {
		t.Fatal(err)
	}
	rc, err := s.ReadRange(ctx, "t/w", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, append(first, "tail"...)) {
		t.Fatalf("object holds %d bytes, not what was acknowledged", len(got))
	}
}
