package transfer_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"phix/blob/s3blob"
	"phix/internal/testenv"
)

// s3Gateway is a versitygw on loopback (as blob/s3blob's tests start it).
type s3Gateway struct{ endpoint, access, secret string }

func startVersitygw(t *testing.T) s3Gateway {
	t.Helper()
	bin, err := exec.LookPath("versitygw")
	if err != nil {
		out, _ := exec.Command("go", "env", "GOPATH").Output()
		bin = filepath.Join(strings.TrimSpace(string(out)), "bin", "versitygw")
		if _, err := os.Stat(bin); err != nil {
			testenv.Missing(t, "versitygw not installed (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)")
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var b [12]byte
	rand.Read(b[:])
	g := s3Gateway{endpoint: "http://" + addr, access: "phixtest", secret: hex.EncodeToString(b[:])}
	cmd := exec.Command(bin, "--access", g.access, "--secret", g.secret, "--port", addr, "posix", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(g.endpoint + "/")
		if err == nil {
			res.Body.Close()
			return g
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw did not come up on %s", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func newS3Blob(t *testing.T, g s3Gateway, bucket string) *s3blob.Store {
	t.Helper()
	s, err := s3blob.New(context.Background(), s3blob.Config{Endpoint: g.endpoint, Bucket: bucket, AccessKey: g.access,
		SecretKey: g.secret, Residency: "CN-SH", PartSize: 5 << 20, Prefix: "coord/"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
