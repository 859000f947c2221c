package blobtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"phix/blob"
)

// BenchAppend appends an object of size bytes in chunk-byte chunks per
// iteration and reports MB/s and the ratio to a plain os.File write plus
// fsync of the same bytes measured in the same run.
func BenchAppend(b *testing.B, s blob.Store, size, chunk int) {
	data := Random(chunk)
	ctx := context.Background()
	// The raw primitive: os.File writes + fsync per chunk.
	dir := b.TempDir()
	start := time.Now()
	f, err := os.Create(filepath.Join(dir, "raw"))
	if err != nil {
		b.Fatal(err)
	}
	for off := 0; off < size; off += chunk {
		f.Write(data)
		f.Sync()
	}
	f.Close()
	os.Remove(filepath.Join(dir, "raw"))
	raw := time.Since(start)

	b.SetBytes(int64(size))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		key := fmt.Sprintf("bench/%d-%d", time.Now().UnixNano(), i)
		if _, err := s.Create(ctx, key); err != nil {
			b.Fatal(err)
		}
		var off int64
		for off < int64(size) {
			if off, err = s.Append(ctx, key, off, bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := s.Seal(ctx, key); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		s.Delete(ctx, key)
		b.StartTimer()
	}
	per := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(per)/float64(raw), "x_raw_file")
}
