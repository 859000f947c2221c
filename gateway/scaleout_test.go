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

// TestEndToEndScaleOut runs the end-to-end flow with the coordinator on
// PostgreSQL, S3 (versitygw on loopback) and the machine's NATS, as two
// replicas: hospital-a's gateway talks to one, hospital-b's to the other.
func TestEndToEndScaleOut(t *testing.T) {
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
	n := startNet(t, devnet.Options{Coordinator: devnet.CoordinatorOptions{StoreURL: pg, NATS: &ncfg, Replicas: 2,
		NewBlobs: func() (blob.Store, error) {
			return s3blob.New(ctx, s3blob.Config{Endpoint: g.Endpoint, Bucket: bucket, AccessKey: g.AccessKey,
				SecretKey: g.SecretKey, Residency: "CN-SH", PartSize: 5 << 20, Prefix: "coord/"})
		}}})
	if len(n.Coordinators) != 2 || n.Coordinators[0] == n.Coordinators[1] {
		t.Fatalf("replicas %v", n.Coordinators)
	}
	runRecordAndFile(t, n)
	runDeidentified(t, n)
}
