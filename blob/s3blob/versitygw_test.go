package s3blob

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"phix/internal/testenv"
)

// gateway is a versitygw started on loopback with a temporary posix backend.
type gateway struct{ testenv.S3Gateway }

// startVersitygw starts versitygw for the test (skipping, or failing under
// CI, when it is not installed) and stops it at cleanup.
func startVersitygw(t testing.TB) *gateway { return &gateway{testenv.VersityGW(t)} }

var bucketSeq int

// newStore creates a fresh bucket on g and a store on it.
func (g *gateway) newStore(t testing.TB, partSize int64) *Store {
	t.Helper()
	ctx := context.Background()
	bucketSeq++
	bucket := fmt.Sprintf("phix-test-%d-%d", os.Getpid(), bucketSeq)
	s, err := New(ctx, Config{Endpoint: g.Endpoint, Bucket: bucket, AccessKey: g.AccessKey, SecretKey: g.SecretKey, Residency: "test-region", PartSize: partSize, Prefix: "blobs/"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return s
}
