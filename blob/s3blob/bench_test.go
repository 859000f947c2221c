package s3blob

import (
	"testing"

	"phix/blob/blobtest"
)

// BenchmarkAppend256MiB: go test -run X -bench Append -benchtime 3x ./blob/s3blob
func BenchmarkAppend256MiB(b *testing.B) {
	g := startVersitygw(b)
	blobtest.BenchAppend(b, g.newStore(b, 0), 256<<20, 8<<20)
}
