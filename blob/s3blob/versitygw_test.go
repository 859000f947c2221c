package s3blob

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"phix/internal/testenv"
)

// gateway is a versitygw started on loopback with a temporary posix backend.
type gateway struct {
	endpoint       string
	access, secret string
}

// startVersitygw starts versitygw for the test (skipping, or failing under
// CI, when it is not installed) and stops it at cleanup.
func startVersitygw(t testing.TB) *gateway {
	t.Helper()
	bin, err := exec.LookPath("versitygw")
	if err != nil {
		gobin := filepath.Join(os.Getenv("HOME"), "go", "bin", "versitygw")
		if out, gerr := exec.Command("go", "env", "GOPATH").Output(); gerr == nil {
			gobin = filepath.Join(string(trimNL(out)), "bin", "versitygw")
		}
		if _, serr := os.Stat(gobin); serr != nil {
			testenv.Missing(t, "versitygw not installed (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)")
		}
		bin = gobin
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var b [12]byte
	_, _ = rand.Read(b[:])
	g := &gateway{endpoint: "http://" + addr, access: "phixtest", secret: hex.EncodeToString(b[:])}
	dir := t.TempDir()
	cmd := exec.Command(bin, "--access", g.access, "--secret", g.secret, "--port", addr, "posix", dir)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(g.endpoint + "/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw did not come up on %s", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return g
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

var bucketSeq int

// newStore creates a fresh bucket on g and a store on it.
func (g *gateway) newStore(t testing.TB, partSize int64) *Store {
	t.Helper()
	ctx := context.Background()
	bucketSeq++
	bucket := fmt.Sprintf("phix-test-%d-%d", os.Getpid(), bucketSeq)
	s, err := New(ctx, Config{Endpoint: g.endpoint, Bucket: bucket, AccessKey: g.access, SecretKey: g.secret, Residency: "test-region", PartSize: partSize, Prefix: "blobs/"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return s
}
