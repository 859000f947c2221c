package audittest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"phix/audit"
	"phix/suite"
)

// CrashEnv names the environment variable that makes a test binary act as
// the crash child: its value is the database to append to.
const CrashEnv = "PHIX_AUDIT_CRASH_CHILD"

// CrashChild appends from several goroutines until killed, printing
// "ok INDEX REQUEST-ID" to stdout after each Append returned success. Call it
// from a test that runs only when CrashEnv is set.
func CrashChild(t *testing.T, b audit.Backend) {
	s, _ := suite.Lookup(suite.Intl)
	key, err := s.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.Open(context.Background(), b, audit.Options{
		Origin: "crash.phix/audit", Signer: key, CheckpointInterval: 20 * time.Millisecond,
		MaxBatch: 64, PruneInterval: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	p := Pseudonyms(t)
	round := os.Getenv(CrashEnv + "_ROUND")
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; ; i++ {
				ev := SampleEvent(p, i, audit.ActionCreate)
				ev.RequestID = fmt.Sprintf("c%s-%d-%d", round, g, i)
				idx, err := l.Append(context.Background(), ev)
				if err != nil {
					fmt.Fprintf(os.Stderr, "append: %v\n", err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "ok %d %s\n", idx, ev.RequestID)
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
}

// Crash runs the child (cmd gives a fresh command for a round) rounds times,
// SIGKILLs it at a random point while it appends, and then checks that the
// log verifies, that no half-appended tree was left (events == max index + 1,
// hash storage == tlog.StoredHashCount(events)), and that every Append that
// returned success is present with its own event.
func Crash(t *testing.T, rounds int, cmd func(round int) *exec.Cmd, open func(t *testing.T) audit.Backend) {
	acked := map[int64]string{}
	for r := 0; r < rounds; r++ {
		c := cmd(r)
		if c.Env == nil {
			c.Env = os.Environ()
		}
		c.Env = append(c.Env, fmt.Sprintf("%s_ROUND=%d", CrashEnv, r))
		out, err := c.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		c.Stderr = os.Stderr
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		killAfter := 50 + rand.IntN(400) // acknowledged appends before the kill
		br := bufio.NewReader(out)
		seen := 0
		deadline := time.AfterFunc(60*time.Second, func() { _ = c.Process.Kill() })
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				break
			}
			f := strings.Fields(line)
			if len(f) == 3 && f[0] == "ok" {
				idx, _ := strconv.ParseInt(f[1], 10, 64)
				if prev, dup := acked[idx]; dup {
					t.Fatalf("index %d acknowledged twice (%s, %s)", idx, prev, f[2])
				}
				acked[idx] = f[2]
				seen++
			}
			if seen == killAfter {
				_ = c.Process.Signal(syscall.SIGKILL)
			}
		}
		_, _ = io.Copy(io.Discard, out)
		_ = c.Wait()
		deadline.Stop()
		if seen < killAfter {
			t.Fatalf("round %d: child exited after %d appends", r, seen)
		}
	}
	ctx := context.Background()
	b := open(t)
	st, err := b.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != st.MaxIndex+1 || st.Hashes != tlog.StoredHashCount(st.Events) {
		t.Fatalf("half-appended tree: %+v (want hashes %d)", st, tlog.StoredHashCount(st.Events))
	}
	if _, err := audit.Verify(ctx, b, audit.VerifyOptions{}); err != nil {
		t.Fatalf("verify after %d kills: %v", rounds, err)
	}
	for idx, req := range acked {
		rec, err := b.Event(ctx, idx)
		if err != nil {
			t.Fatalf("acknowledged event %d lost: %v", idx, err)
		}
		if !strings.Contains(string(rec.Body), `"request_id":"`+req+`"`) {
			t.Fatalf("event %d is not the one acknowledged", idx)
		}
	}
	t.Logf("%d kills; %d acknowledged appends all present; %d events in a consistent tree", rounds, len(acked), st.Events)
}
