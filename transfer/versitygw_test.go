package transfer_test

import (
	"context"
	"testing"

	"phix/blob/s3blob"
	"phix/internal/testenv"
)

// s3Gateway is a versitygw on loopback.
type s3Gateway = testenv.S3Gateway

func startVersitygw(t *testing.T) s3Gateway { return testenv.VersityGW(t) }

func newS3Blob(t *testing.T, g s3Gateway, bucket string) *s3blob.Store {
	t.Helper()
	s, err := s3blob.New(context.Background(), s3blob.Config{Endpoint: g.Endpoint, Bucket: bucket, AccessKey: g.AccessKey,
		SecretKey: g.SecretKey, Residency: "CN-SH", PartSize: 5 << 20, Prefix: "coord/"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
