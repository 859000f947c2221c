package testenv

import (
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
)

// S3Gateway is an S3 endpoint for tests: versitygw on loopback over a
// temporary posix directory. It starts with no buckets.
type S3Gateway struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string // random per gateway
}

// versitygwBin finds the versitygw binary on PATH or in GOPATH/bin.
func versitygwBin(t testing.TB) string {
	t.Helper()
	if bin, err := exec.LookPath("versitygw"); err == nil {
		return bin
	}
	gopath := filepath.Join(os.Getenv("HOME"), "go")
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		gopath = strings.TrimSpace(string(out))
	}
	bin := filepath.Join(gopath, "bin", "versitygw")
	if _, err := os.Stat(bin); err != nil {
		Missing(t, "versitygw not installed (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)")
	}
	return bin
}

// VersityGW starts versitygw on 127.0.0.1 with a free port and a temporary
// directory, waits until it answers, and stops it when the test ends. It
// skips (fails under CI) when the binary is not installed.
func VersityGW(t testing.TB) S3Gateway {
	t.Helper()
	bin := versitygwBin(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var b [12]byte
	_, _ = rand.Read(b[:])
	g := S3Gateway{Endpoint: "http://" + addr, AccessKey: "phixtest", SecretKey: hex.EncodeToString(b[:])}
	cmd := exec.Command(bin, "--access", g.AccessKey, "--secret", g.SecretKey, "--port", addr, "posix", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(g.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return g
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw did not come up on %s", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
