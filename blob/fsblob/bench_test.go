package fsblob

import (
	"testing"

	"phix/blob/blobtest"
)

// BenchmarkAppend256MiB: go test -run X -bench Append -benchtime 3x ./blob/fsblob
func BenchmarkAppend256MiB(b *testing.B) {
	s, err := New(b.TempDir(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	blobtest.BenchAppend(b, s, 256<<20, 8<<20)
}
