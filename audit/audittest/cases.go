package audittest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/emmansun/gmsm/sm3"
	"golang.org/x/mod/sumdb/tlog"

	"phix/audit"
	"phix/suite"
)

// testAppendProveVerify runs the log, its proofs and Verify under the suite:
// the tree is SHA-256 under intl and SM3 under gm.
func testAppendProveVerify(id suite.ID) func(t *testing.T, f Factory) {
	return func(t *testing.T, f Factory) { appendProveVerify(t, f, id) }
}

func appendProveVerify(t *testing.T, f Factory, id suite.ID) {
	h := f(t)
	ctx := context.Background()
	b := h.Open(t)
	p := Pseudonyms(t)
	l := OpenLog(t, b, func(o *audit.Options) { o.Signer = SigningKey(t, id) })
	const producers, each = 8, 40
	var wg sync.WaitGroup
	seen := make(chan int64, producers*each)
	for g := 0; g < producers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				idx, err := l.Append(ctx, SampleEvent(p, g*each+i, audit.ActionRead))
				if err != nil {
					t.Error(err)
					return
				}
				seen <- idx
			}
		}(g)
	}
	wg.Wait()
	close(seen)
	got := map[int64]bool{}
	for idx := range seen {
		if got[idx] {
			t.Fatalf("index %d returned twice", idx)
		}
		got[idx] = true
	}
	const n = producers * each
	for i := int64(0); i < n; i++ {
		if !got[i] {
			t.Fatalf("index %d never returned", i)
		}
	}
	cp, err := l.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != n {
		t.Fatalf("checkpoint size %d, want %d", cp.Size, n)
	}
	v, err := audit.ParseVerifier(l.Signer().VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	vs := []*audit.Verifier{v}
	c, err := audit.OpenCheckpoint(cp.Note, vs)
	if err != nil {
		t.Fatal(err)
	}
	root, err := tlog.TreeHash(n, audit.BackendHashReader(ctx, b))
	wantTree := audit.TreeSHA256
	if id == suite.GM {
		wantTree = audit.TreeSM3
		if err != nil || root == c.Root {
			t.Fatalf("a gm log's root equals the SHA-256 tree's: %v", err)
		}
	} else if err != nil || root != c.Root {
		t.Fatalf("checkpoint root does not match tlog.TreeHash: %v", err)
	}
	rep := mustVerify(t, b, audit.VerifyOptions{Verifiers: vs, Trusted: cp.Note, PageSize: 37})
	if rep.Size != n || rep.Root != c.Root || rep.TreeHash != wantTree {
		t.Fatalf("verify report %+v", rep)
	}
	// The stored keys alone tell Verify the tree hash.
	if rep := mustVerify(t, b, audit.VerifyOptions{}); rep.Root != c.Root || rep.TreeHash != wantTree {
		t.Fatalf("verify with stored keys: %+v", rep)
	}
	for _, i := range []int64{0, 1, 7, n / 2, n - 1} {
		pr, err := l.InclusionProof(ctx, i, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := audit.CheckInclusion(pr, vs); err != nil {
			t.Fatalf("inclusion %d: %v", i, err)
		}
		if err := audit.CheckInclusion(pr, nil); err != nil {
			t.Fatalf("inclusion %d without keys (tree_hash %q): %v", i, pr.TreeHash, err)
		}
		if leaf := leafHash(id, pr.Event); leaf != pr.LeafHash {
			t.Fatalf("inclusion %d: leaf hash is not the %s leaf hash of the event", i, wantTree)
		}
		if id == suite.GM {
			// Read as SHA-256, an SM3 proof fails.
			sha := *pr
			sha.TreeHash = ""
			if audit.CheckInclusion(&sha, nil) == nil {
				t.Fatalf("an SM3 proof checked as SHA-256")
			}
		}
		// A proof for another index must fail.
		bad := *pr
		bad.Index = (i + 1) % n
		bad.Event = nil
		if audit.CheckInclusion(&bad, nil) == nil {
			t.Fatalf("inclusion proof for %d accepted at another index", i)
		}
	}
	for _, sz := range [][2]int64{{1, n}, {5, 17}, {n / 3, n}, {n, n}} {
		cpf, err := l.ConsistencyProof(ctx, sz[0], sz[1])
		if err != nil {
			t.Fatal(err)
		}
		if err := audit.CheckConsistency(cpf); err != nil {
			t.Fatalf("consistency %v: %v", sz, err)
		}
		if sz[0] != sz[1] {
			cpf.FromRoot[0] ^= 1
			if audit.CheckConsistency(cpf) == nil {
				t.Fatalf("tampered consistency proof accepted")
			}
		}
	}
	if _, err := l.ConsistencyProof(ctx, 0, n); !errors.Is(err, audit.ErrOutOfRange) {
		t.Fatalf("from=0: %v", err)
	}
	if _, err := l.InclusionProof(ctx, n, n); !errors.Is(err, audit.ErrOutOfRange) {
		t.Fatalf("index=size: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, SampleEvent(p, 1, audit.ActionRead)); !errors.Is(err, audit.ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	st, err := b.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != n || st.MaxIndex != n-1 || st.Hashes != tlog.StoredHashCount(n) {
		t.Fatalf("storage invariants: %+v", st)
	}
}

func testWriters(t *testing.T, f Factory) {
	h := f(t)
	ctx := context.Background()
	p := Pseudonyms(t)
	b1, b2 := h.Open(t), h.Open(t)
	l1 := OpenLog(t, b1, func(o *audit.Options) { o.MaxBatch = 16 })
	l2 := OpenLog(t, b2, func(o *audit.Options) { o.MaxBatch = 16 })
	var wg sync.WaitGroup
	for g, l := range []*audit.Log{l1, l2, l1, l2} {
		wg.Add(1)
		go func(g int, l *audit.Log) {
			defer wg.Done()
			for i := 0; i < 60; i++ {
				if _, err := l.Append(ctx, SampleEvent(p, g*100+i, audit.ActionCreate)); err != nil {
					t.Error(err)
					return
				}
			}
		}(g, l)
	}
	// Verifying a live log sees a consistent prefix.
	stop := make(chan struct{})
	verified := make(chan error, 1)
	vb := h.Open(t)
	go func() {
		var err error
		for err == nil {
			select {
			case <-stop:
				verified <- nil
				return
			default:
			}
			_, err = audit.Verify(ctx, vb, audit.VerifyOptions{})
		}
		verified <- err
	}()
	wg.Wait()
	close(stop)
	if err := <-verified; err != nil {
		t.Fatalf("verify during appends: %v", err)
	}
	if err := errors.Join(l1.Close(), l2.Close()); err != nil {
		t.Fatal(err)
	}
	rep := mustVerify(t, b1, audit.VerifyOptions{})
	if rep.Size != 240 {
		t.Fatalf("size %d, want 240", rep.Size)
	}
	// Reopen and continue.
	b3 := h.Open(t)
	l3 := OpenLog(t, b3, nil)
	idx, err := l3.Append(ctx, SampleEvent(p, 1000, audit.ActionDelete))
	if err != nil || idx != 240 {
		t.Fatalf("append after reopen: %d %v", idx, err)
	}
	if err := l3.Close(); err != nil {
		t.Fatal(err)
	}
	if rep := mustVerify(t, b3, audit.VerifyOptions{}); rep.Size != 241 {
		t.Fatalf("size %d", rep.Size)
	}
}

func testRefuses(t *testing.T, f Factory) {
	h := f(t)
	ctx := context.Background()
	p := Pseudonyms(t)
	l := OpenLog(t, h.Open(t), nil)
	defer l.Close()
	bad := []func(*audit.Event){
		func(e *audit.Event) { e.Action = "steal" },
		func(e *audit.Event) { e.Outcome = "" },
		func(e *audit.Event) { e.Who.User = "Jane Doe" },
		func(e *audit.Event) { e.What.Patient = "Patient/123" },
		func(e *audit.Event) { e.What.ResourceID = "obs-1" },
		func(e *audit.Event) { e.What.QueryParams = []string{"name=Smith"} },
		func(e *audit.Event) { e.Who.Org = "St Mary's Hospital" },
		func(e *audit.Event) { e.Decision.Policies = []string{"allowed because John asked"} },
		func(e *audit.Event) { e.Why.ConsentID = "consent for John Smith" },
		func(e *audit.Event) { e.PayloadHash = "md5:abc" },
		func(e *audit.Event) { e.Alert = audit.AlertBreakGlass },
		func(e *audit.Event) { e.Index = -1 },
	}
	for i, mod := range bad {
		ev := SampleEvent(p, i, audit.ActionRead)
		mod(&ev)
		if _, err := l.Append(ctx, ev); !errors.Is(err, audit.ErrInvalidEvent) {
			t.Errorf("case %d: got %v, want ErrInvalidEvent", i, err)
		}
		if err := l.Record(ev); !errors.Is(err, audit.ErrInvalidEvent) {
			t.Errorf("case %d (Record): got %v", i, err)
		}
	}
	if n, _ := l.Backend().Size(ctx); n != 0 {
		t.Fatalf("refused events were stored: size %d", n)
	}
	// Unknown fields are refused on the wire.
	if _, err := audit.ParseEvent([]byte(`{"action":"read","outcome":"success","details":"John Smith"}`)); !errors.Is(err, audit.ErrInvalidEvent) {
		t.Fatalf("ParseEvent accepted a free-text field: %v", err)
	}
	if _, err := audit.Open(ctx, l.Backend(), audit.Options{Origin: "x", Signer: SigningKey(t, "intl"), Retention: 30 * 24 * time.Hour}); !errors.Is(err, audit.ErrRetention) {
		t.Fatalf("retention under 6 months accepted: %v", err)
	}
}

func testCursors(t *testing.T, f Factory) {
	h := f(t)
	ctx := context.Background()
	b := h.Open(t)
	if c, err := b.Cursor(ctx, "siem"); err != nil || c != -1 {
		t.Fatalf("fresh cursor %d %v", c, err)
	}
	for _, v := range []int64{0, 41, 42} {
		if err := b.SetCursor(ctx, "siem", v); err != nil {
			t.Fatal(err)
		}
		if c, err := b.Cursor(ctx, "siem"); err != nil || c != v {
			t.Fatalf("cursor %d %v, want %d", c, err, v)
		}
	}
	if c, _ := b.Cursor(ctx, "other"); c != -1 {
		t.Fatalf("cursors are not per sink")
	}
}

func testRetention(t *testing.T, f Factory) {
	h := f(t)
	ctx := context.Background()
	b := h.Open(t)
	p := Pseudonyms(t)
	now := time.Now()
	clock := func() time.Time { return now }
	l := OpenLog(t, b, func(o *audit.Options) { o.Now = clock; o.Retention = audit.MinRetention })
	old := now.Add(-audit.MinRetention - 48*time.Hour)
	for i := 0; i < 20; i++ {
		ev := SampleEvent(p, i, audit.ActionRead)
		if i < 12 {
			ev.Time = old.Add(time.Duration(i) * time.Second)
		}
		if _, err := l.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
		if i == 5 {
			if _, err := l.Sync(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	cp, err := l.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	early, err := l.InclusionProof(ctx, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	n, err := l.Prune(ctx)
	if err != nil || n != 12 {
		t.Fatalf("pruned %d (%v), want 12", n, err)
	}
	rec, err := b.Event(ctx, 3)
	if err != nil || !rec.Pruned() || rec.Patient != "" {
		t.Fatalf("event 3 not pruned: %+v %v", rec.Index, err)
	}
	rep := mustVerify(t, b, audit.VerifyOptions{Trusted: cp.Note})
	if rep.Pruned != 12 || rep.Size != 20 {
		t.Fatalf("report %+v", rep)
	}
	v, _ := audit.ParseVerifier(l.Signer().VerifierKey())
	pr, err := l.InclusionProof(ctx, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	if pr.Event != nil || pr.LeafHash != early.LeafHash {
		t.Fatalf("pruned proof still has a body or another leaf")
	}
	if err := audit.CheckInclusion(pr, []*audit.Verifier{v}); err != nil {
		t.Fatalf("proof of pruned event: %v", err)
	}
	if err := audit.CheckInclusion(early, []*audit.Verifier{v}); err != nil {
		t.Fatalf("old proof after pruning: %v", err)
	}
	// Pruning again is a no-op; a body-less event after kept ones is tampering.
	if n, _ := l.Prune(ctx); n != 0 {
		t.Fatalf("second prune removed %d", n)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	h.Exec(t, "UPDATE audit_events SET body = NULL WHERE idx = 15")
	_, err = audit.Verify(ctx, b, audit.VerifyOptions{})
	wantFailure(t, err, audit.FailPrunedOutOfOrder, 15)
}

// leafHash is the RFC 6962 leaf hash of a compacted event under the suite's
// tree hash, computed here independently of the audit package.
func leafHash(id suite.ID, event []byte) tlog.Hash {
	var buf bytes.Buffer
	_ = json.Compact(&buf, event)
	data := append([]byte{0}, buf.Bytes()...)
	if id == suite.GM {
		return sm3.Sum(data)
	}
	return sha256.Sum256(data)
}
