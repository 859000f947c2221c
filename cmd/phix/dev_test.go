package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for the command's goroutine and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDevStopsOnSignal runs `phix dev` through the real entry point and
// sends the process a real SIGTERM: it exits 0 after a graceful shutdown.
func TestDevStopsOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			port := freePort(t)
			var stderr lockedBuffer
			done := make(chan int, 1)
			go func() {
				done <- run([]string{"dev", "--data", dir, "--base-port", strconv.Itoa(port), "--quiet"}, &stderr)
			}()
			waitUp(t, "http://127.0.0.1:"+strconv.Itoa(port)+"/fhir/r4/metadata")
			// A server answers, so run has registered its signal handler
			// (before it started the command).
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				if _, err := os.Stat(filepath.Join(dir, "dev", "endpoints.json")); err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("phix dev did not write endpoints.json")
				}
			}
			if err := syscall.Kill(syscall.Getpid(), sig); err != nil {
				t.Fatal(err)
			}
			select {
			case code := <-done:
				if code != 0 {
					t.Fatalf("exit %d: %s", code, stderr.String())
				}
			case <-time.After(60 * time.Second):
				t.Fatal("phix dev did not stop on the signal")
			}
		})
	}
}
