// Package blobtest is the contract suite every blob.Store backend passes.
package blobtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"phix/blob"
)

// Run runs the contract suite. open returns a fresh, empty store for each
// subtest (or at least one whose keys no other subtest uses).
func Run(t *testing.T, open func(t *testing.T) blob.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s blob.Store)
	}{
		{"CreateStat", testCreateStat},
		{"AppendResume", testAppendResume},
		{"OffsetMismatch", testOffsetMismatch},
		{"FailedAppendIsAtomic", testFailedAppend},
		{"SealAndRead", testSealAndRead},
		{"RangeReads", testRangeReads},
		{"Reader", testReader},
		{"EmptyObject", testEmpty},
		{"Delete", testDelete},
		{"ListAndDeletePrefix", testList},
		{"InvalidKeys", testInvalidKeys},
		{"ConcurrentKeys", testConcurrent},
		{"LargeObject", testLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// Random returns n random bytes (ciphertext-like: incompressible).
func Random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func mustCreate(t *testing.T, s blob.Store, key string) {
	t.Helper()
	if _, err := s.Create(ctx(t), key); err != nil {
		t.Fatalf("Create(%s): %v", key, err)
	}
}

func mustAppend(t *testing.T, s blob.Store, key string, off int64, b []byte) int64 {
	t.Helper()
	n, err := s.Append(ctx(t), key, off, bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Append(%s, %d, %d bytes): %v", key, off, len(b), err)
	}
	if n != off+int64(len(b)) {
		t.Fatalf("Append returned size %d, want %d", n, off+int64(len(b)))
	}
	return n
}

func mustSeal(t *testing.T, s blob.Store, key string) blob.Info {
	t.Helper()
	info, err := s.Seal(ctx(t), key)
	if err != nil {
		t.Fatalf("Seal(%s): %v", key, err)
	}
	return info
}

func readAll(t *testing.T, s blob.Store, key string, off, n int64) []byte {
	t.Helper()
	rc, err := s.ReadRange(ctx(t), key, off, n)
	if err != nil {
		t.Fatalf("ReadRange(%s, %d, %d): %v", key, off, n, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read range: %v", err)
	}
	return b
}

func testCreateStat(t *testing.T, s blob.Store) {
	before := time.Now().Add(-time.Minute)
	info, err := s.Create(ctx(t), "t1/f1")
	if err != nil {
		t.Fatal(err)
	}
	if info.Key != "t1/f1" || info.Size != 0 || info.Sealed {
		t.Fatalf("Create info = %+v", info)
	}
	got, err := s.Stat(ctx(t), "t1/f1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Size != 0 || got.Sealed || got.Created.Before(before) || got.Created.After(time.Now().Add(time.Minute)) {
		t.Fatalf("Stat = %+v", got)
	}
	if _, err := s.Create(ctx(t), "t1/f1"); !errors.Is(err, blob.ErrExists) {
		t.Fatalf("second Create: %v, want ErrExists", err)
	}
	if _, err := s.Stat(ctx(t), "t1/none"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Stat(missing): %v, want ErrNotFound", err)
	}
	if _, err := s.Append(ctx(t), "t1/none", 0, strings.NewReader("x")); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Append(missing): %v, want ErrNotFound", err)
	}
	if blob.Code(blob.ErrExists) != "BLOB-003" {
		t.Fatalf("Code = %q", blob.Code(blob.ErrExists))
	}
}

func testAppendResume(t *testing.T, s blob.Store) {
	data := Random(300 << 10)
	mustCreate(t, s, "t/resume")
	// Chunks of uneven, small sizes as tus clients send them.
	var off int64
	for _, n := range []int{1, 1000, 64 << 10, 7, 100 << 10} {
		off = mustAppend(t, s, "t/resume", off, data[off:off+int64(n)])
		info, err := s.Stat(ctx(t), "t/resume")
		if err != nil || info.Size != off {
			t.Fatalf("Stat after append = %+v, %v; want size %d", info, err, off)
		}
	}
	// Resume from Stat's size, as a client does after a reconnect.
	info, _ := s.Stat(ctx(t), "t/resume")
	off = mustAppend(t, s, "t/resume", info.Size, data[info.Size:])
	// An empty append changes nothing.
	if n, err := s.Append(ctx(t), "t/resume", off, bytes.NewReader(nil)); err != nil || n != off {
		t.Fatalf("empty Append = %d, %v", n, err)
	}
	mustSeal(t, s, "t/resume")
	if got := readAll(t, s, "t/resume", 0, -1); !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, differ from the %d written", len(got), len(data))
	}
}

func testOffsetMismatch(t *testing.T, s blob.Store) {
	mustCreate(t, s, "t/off")
	mustAppend(t, s, "t/off", 0, []byte("hello"))
	for _, off := range []int64{0, 4, 6, 1 << 30, -1} {
		n, err := s.Append(ctx(t), "t/off", off, strings.NewReader("world"))
		if !errors.Is(err, blob.ErrOffsetMismatch) {
			t.Fatalf("Append at %d: %v, want ErrOffsetMismatch", off, err)
		}
		if n != 5 {
			t.Fatalf("Append at %d returned size %d, want the durable size 5", off, n)
		}
	}
	if info, _ := s.Stat(ctx(t), "t/off"); info.Size != 5 {
		t.Fatalf("size after mismatches = %d", info.Size)
	}
}

type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func testFailedAppend(t *testing.T, s blob.Store) {
	mustCreate(t, s, "t/fail")
	first := Random(1000)
	mustAppend(t, s, "t/fail", 0, first)
	boom := errors.New("connection reset")
	for _, n := range []int{10, 200 << 10, 6 << 20} {
		_, err := s.Append(ctx(t), "t/fail", 1000, &failingReader{data: Random(n), err: boom})
		if err == nil {
			t.Fatalf("Append with a failing reader (%d bytes) succeeded", n)
		}
		if info, _ := s.Stat(ctx(t), "t/fail"); info.Size != 1000 {
			t.Fatalf("size after a failed append of %d bytes = %d, want 1000", n, info.Size)
		}
	}
	second := Random(2000)
	mustAppend(t, s, "t/fail", 1000, second)
	mustSeal(t, s, "t/fail")
	if got := readAll(t, s, "t/fail", 0, -1); !bytes.Equal(got, append(first, second...)) {
		t.Fatal("content after a failed append is wrong")
	}
}

func testSealAndRead(t *testing.T, s blob.Store) {
	mustCreate(t, s, "t/seal")
	mustAppend(t, s, "t/seal", 0, []byte("ciphertext"))
	if _, err := s.ReadRange(ctx(t), "t/seal", 0, -1); !errors.Is(err, blob.ErrNotSealed) {
		t.Fatalf("ReadRange before Seal: %v, want ErrNotSealed", err)
	}
	info := mustSeal(t, s, "t/seal")
	if !info.Sealed || info.Size != 10 {
		t.Fatalf("Seal info = %+v", info)
	}
	again := mustSeal(t, s, "t/seal")
	if again.Size != 10 || !again.Sealed {
		t.Fatalf("second Seal = %+v", again)
	}
	if st, _ := s.Stat(ctx(t), "t/seal"); !st.Sealed || st.Size != 10 || !st.Created.Equal(info.Created) {
		t.Fatalf("Stat after Seal = %+v (seal said %+v)", st, info)
	}
	if _, err := s.Append(ctx(t), "t/seal", 10, strings.NewReader("more")); !errors.Is(err, blob.ErrSealed) {
		t.Fatalf("Append after Seal: %v, want ErrSealed", err)
	}
	if string(readAll(t, s, "t/seal", 0, -1)) != "ciphertext" {
		t.Fatal("sealed content differs")
	}
}

func testRangeReads(t *testing.T, s blob.Store) {
	data := Random(100 << 10)
	mustCreate(t, s, "t/range")
	mustAppend(t, s, "t/range", 0, data)
	mustSeal(t, s, "t/range")
	for _, r := range [][2]int64{{0, 1}, {0, 100 << 10}, {5, 10}, {99 << 10, 1 << 10}, {50000, -1}, {100 << 10, 0}, {100 << 10, -1}} {
		got := readAll(t, s, "t/range", r[0], r[1])
		end := int64(len(data))
		if r[1] >= 0 {
			end = r[0] + r[1]
		}
		if !bytes.Equal(got, data[r[0]:end]) {
			t.Fatalf("range %v: got %d bytes, content differs", r, len(got))
		}
	}
	for _, r := range [][2]int64{{-1, 1}, {0, 100<<10 + 1}, {100<<10 + 1, -1}, {1 << 40, 1}} {
		if _, err := s.ReadRange(ctx(t), "t/range", r[0], r[1]); !errors.Is(err, blob.ErrRange) {
			t.Fatalf("range %v: %v, want ErrRange", r, err)
		}
	}
	if _, err := s.ReadRange(ctx(t), "t/none", 0, 1); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("ReadRange(missing): %v, want ErrNotFound", err)
	}
}

func testReader(t *testing.T, s blob.Store) {
	data := Random(70 << 10)
	mustCreate(t, s, "t/reader")
	mustAppend(t, s, "t/reader", 0, data)
	if _, err := blob.Open(ctx(t), s, "t/reader"); !errors.Is(err, blob.ErrNotSealed) {
		t.Fatalf("Open before Seal: %v", err)
	}
	mustSeal(t, s, "t/reader")
	r, err := blob.Open(ctx(t), s, "t/reader")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Size() != int64(len(data)) {
		t.Fatalf("Size = %d", r.Size())
	}
	all, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(all, data) {
		t.Fatalf("ReadAll: %v (equal=%v)", err, bytes.Equal(all, data))
	}
	if _, err := r.Seek(-100, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	tail, _ := io.ReadAll(r)
	if !bytes.Equal(tail, data[len(data)-100:]) {
		t.Fatal("read after Seek differs")
	}
	buf := make([]byte, 50)
	if n, err := r.ReadAt(buf, 1234); n != 50 || err != nil || !bytes.Equal(buf, data[1234:1284]) {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	if n, err := r.ReadAt(buf, int64(len(data))-10); n != 10 || err != io.EOF {
		t.Fatalf("ReadAt at the end = %d, %v; want 10, EOF", n, err)
	}
}

func testEmpty(t *testing.T, s blob.Store) {
	mustCreate(t, s, "t/empty")
	info := mustSeal(t, s, "t/empty")
	if info.Size != 0 || !info.Sealed {
		t.Fatalf("Seal = %+v", info)
	}
	if got := readAll(t, s, "t/empty", 0, -1); len(got) != 0 {
		t.Fatalf("empty object read %d bytes", len(got))
	}
}

func testDelete(t *testing.T, s blob.Store) {
	for _, seal := range []bool{false, true} {
		key := fmt.Sprintf("t/del-%v", seal)
		mustCreate(t, s, key)
		mustAppend(t, s, key, 0, Random(3000))
		if seal {
			mustSeal(t, s, key)
		}
		if err := s.Delete(ctx(t), key); err != nil {
			t.Fatalf("Delete(sealed=%v): %v", seal, err)
		}
		if _, err := s.Stat(ctx(t), key); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("Stat after Delete: %v", err)
		}
		if err := s.Delete(ctx(t), key); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("second Delete: %v, want ErrNotFound", err)
		}
		// The key is free again and starts empty.
		mustCreate(t, s, key)
		if info, _ := s.Stat(ctx(t), key); info.Size != 0 || info.Sealed {
			t.Fatalf("recreated object = %+v", info)
		}
	}
}

func testList(t *testing.T, s blob.Store) {
	keys := []string{"a/1", "a/2", "a-b/1", "ab/x/y", "b/1"}
	for i, k := range keys {
		mustCreate(t, s, k)
		mustAppend(t, s, k, 0, Random(i+1))
	}
	mustSeal(t, s, "a/2")
	list := func(prefix string) []string {
		var got []string
		err := s.List(ctx(t), prefix, func(i blob.Info) error {
			got = append(got, fmt.Sprintf("%s:%d:%v", i.Key, i.Size, i.Sealed))
			return nil
		})
		if err != nil {
			t.Fatalf("List(%q): %v", prefix, err)
		}
		return got
	}
	for _, tc := range []struct {
		prefix string
		want   string
	}{
		{"", "a-b/1:3:false a/1:1:false a/2:2:true ab/x/y:4:false b/1:5:false"},
		{"a/", "a/1:1:false a/2:2:true"},
		{"a", "a-b/1:3:false a/1:1:false a/2:2:true ab/x/y:4:false"},
		{"ab/x", "ab/x/y:4:false"},
		{"c", ""},
	} {
		if got := strings.Join(list(tc.prefix), " "); got != tc.want {
			t.Errorf("List(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
	}
	stop := errors.New("stop")
	n := 0
	if err := s.List(ctx(t), "", func(blob.Info) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("List with a failing callback: %v after %d calls", err, n)
	}
	if _, err := s.DeletePrefix(ctx(t), ""); !errors.Is(err, blob.ErrInvalidKey) {
		t.Fatalf("DeletePrefix(\"\"): %v, want ErrInvalidKey", err)
	}
	if n, err := s.DeletePrefix(ctx(t), "a/"); err != nil || n != 2 {
		t.Fatalf("DeletePrefix(a/) = %d, %v", n, err)
	}
	if got := strings.Join(list(""), " "); got != "a-b/1:3:false ab/x/y:4:false b/1:5:false" {
		t.Fatalf("after DeletePrefix: %q", got)
	}
	if err := s.List(ctx(t), "../", func(blob.Info) error { return nil }); !errors.Is(err, blob.ErrInvalidKey) {
		t.Fatalf("List(../): %v, want ErrInvalidKey", err)
	}
}

// BadKeys are keys every backend must reject.
var BadKeys = []string{
	"", "/", "/abs", "abs/", "a//b", "..", "../x", "a/../b", "a/..", ".", "./a", "a/./b",
	".hidden", "a/.hidden", "a\\b", "..\\x", "a\x00b", "a b", "a:b", "a*b", "ä", "a/%2e%2e",
	"C:\\x", "a\nb", strings.Repeat("a", blob.MaxKeyLen+1),
}

func testInvalidKeys(t *testing.T, s blob.Store) {
	c := ctx(t)
	for _, k := range BadKeys {
		checks := map[string]error{}
		_, checks["Create"] = s.Create(c, k)
		_, checks["Append"] = s.Append(c, k, 0, strings.NewReader("x"))
		_, checks["Stat"] = s.Stat(c, k)
		_, checks["Seal"] = s.Seal(c, k)
		_, checks["ReadRange"] = s.ReadRange(c, k, 0, -1)
		checks["Delete"] = s.Delete(c, k)
		for op, err := range checks {
			if !errors.Is(err, blob.ErrInvalidKey) {
				t.Errorf("%s(%q): %v, want ErrInvalidKey", op, k, err)
			}
			if err != nil && k != "" && strings.Contains(err.Error(), k) {
				t.Errorf("%s(%q): error echoes the key: %v", op, k, err)
			}
		}
	}
	var n int
	if err := s.List(c, "", func(blob.Info) error { n++; return nil }); err != nil || n != 0 {
		t.Fatalf("after invalid keys the store lists %d objects (%v)", n, err)
	}
}

func testConcurrent(t *testing.T, s blob.Store) {
	const workers, chunks = 6, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	datas := make([][]byte, workers)
	for w := 0; w < workers; w++ {
		datas[w] = Random(chunks * 10 << 10)
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			key := fmt.Sprintf("c/%d", w)
			if _, err := s.Create(context.Background(), key); err != nil {
				errs <- err
				return
			}
			var off int64
			for i := 0; i < chunks; i++ {
				n, err := s.Append(context.Background(), key, off, bytes.NewReader(datas[w][off:off+10<<10]))
				if err != nil {
					errs <- err
					return
				}
				off = n
			}
			if _, err := s.Seal(context.Background(), key); err != nil {
				errs <- err
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for w := 0; w < workers; w++ {
		if got := readAll(t, s, fmt.Sprintf("c/%d", w), 0, -1); !bytes.Equal(got, datas[w]) {
			t.Fatalf("object %d differs", w)
		}
	}
}

func testLarge(t *testing.T, s blob.Store) {
	// 13 MiB in chunks of 1, 3, 6 and the rest: crosses the S3 5 MiB part
	// minimum with small chunks buffered and a large one spanning parts.
	data := Random(13 << 20)
	mustCreate(t, s, "big/obj")
	var off int64
	for _, n := range []int64{1 << 20, 3 << 20, 6 << 20, int64(len(data)) - 10<<20} {
		off = mustAppend(t, s, "big/obj", off, data[off:off+n])
	}
	info := mustSeal(t, s, "big/obj")
	if info.Size != int64(len(data)) {
		t.Fatalf("sealed size %d", info.Size)
	}
	if got := readAll(t, s, "big/obj", 0, -1); !bytes.Equal(got, data) {
		t.Fatal("large object differs")
	}
	// A range that crosses a 5 MiB and an 8 MiB boundary.
	if got := readAll(t, s, "big/obj", 5<<20-10, 3<<20+20); !bytes.Equal(got, data[5<<20-10:8<<20+10]) {
		t.Fatal("range across part boundaries differs")
	}
}
