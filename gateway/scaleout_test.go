package gateway_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"phix/blob"
	"phix/blob/s3blob"
	"phix/devnet"
	"phix/internal/testenv"
	"phix/queue/natsq"
)

// netMode is one way of running the coordinator. The end-to-end and fault
// tests run in each, sharing their code.
type netMode struct {
	name string
	// opts returns the base options of a network in this mode (their
	// external resources are released when t ends).
	opts func(t *testing.T) devnet.Options
}

var netModes = []netMode{
	{"embedded", func(*testing.T) devnet.Options { return devnet.Options{} }},
	{"scale-out", scaleOutOptions},
}

// inModes runs f once per mode, as a subtest named after the mode.
func inModes(t *testing.T, f func(t *testing.T, base devnet.Options)) {
	for _, m := range netModes {
		t.Run(m.name, func(t *testing.T) { f(t, m.opts(t)) })
	}
}

// scaleOutOptions: the coordinator on PostgreSQL (a fresh database), S3
// (versitygw on loopback, a fresh bucket) and the machine's NATS (fresh
// streams), as two replicas: hospital-a's gateway talks to one,
// hospital-b's to the other. A restart with the same options finds the
// same store, bucket and streams.
func scaleOutOptions(t *testing.T) devnet.Options {
	t.Helper()
	pg := testenv.Postgres(t)
	nurl := testenv.NATSURL(t)
	g := testenv.VersityGW(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	bucket := "phix-gw-" + id
	ctx := context.Background()
	c := s3.New(s3.Options{BaseEndpoint: aws.String(g.Endpoint), Region: "us-east-1", UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(g.AccessKey, g.SecretKey, "")})
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	ncfg := natsq.Config{URL: nurl, Stream: "PHIXTEST_GW_" + strings.ToUpper(id), SubjectPrefix: "phixtest." + id + ".deliveries",
		DeadLetterPrefix: "phixtest." + id + ".deadletter", AckWait: 5 * time.Second}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if q, err := natsq.Open(ctx, ncfg); err == nil {
			if err := q.Destroy(ctx); err != nil {
				t.Errorf("delete test streams: %v", err)
			}
		}
	})
	return devnet.Options{Coordinator: devnet.CoordinatorOptions{StoreURL: pg, NATS: &ncfg, Replicas: 2,
		NewBlobs: func() (blob.Store, error) {
			return s3blob.New(ctx, s3blob.Config{Endpoint: g.Endpoint, Bucket: bucket, AccessKey: g.AccessKey,
				SecretKey: g.SecretKey, Residency: "CN-SH", PartSize: 5 << 20, Prefix: "coord/"})
		}}}
}

// TestEndToEndScaleOut runs the end-to-end flow in the scale-out mode.
func TestEndToEndScaleOut(t *testing.T) {
	n := startNet(t, scaleOutOptions(t))
	if len(n.Coordinators) != 2 || n.Coordinators[0] == n.Coordinators[1] {
		t.Fatalf("replicas %v", n.Coordinators)
	}
	runRecordAndFile(t, n)
	runDeidentified(t, n)
}
