package audit

import (
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// memTree stores hashes the way the backends do, built with one hasher.
type memTree struct {
	h      *treeHasher
	hashes []tlog.Hash
}

func (m *memTree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x < 0 || x >= int64(len(m.hashes)) {
			return nil, fmt.Errorf("no hash at %d", x)
		}
		out[i] = m.hashes[x]
	}
	return out, nil
}

func (m *memTree) add(t *testing.T, n int64) {
	hs, err := m.h.storedHashes(n, m.h.leaf(fmt.Appendf(nil, "event %d", n)), m)
	if err != nil {
		t.Fatal(err)
	}
	m.hashes = append(m.hashes, hs...)
}

// TestTreeHasherMatchesTlog: with SHA-256 every function gives exactly what
// tlog gives, so logs and proofs made before the hasher existed still verify.
func TestTreeHasherMatchesTlog(t *testing.T) {
	m := &memTree{h: sha256Tree}
	const n = 70
	for i := int64(0); i < n; i++ {
		data := fmt.Appendf(nil, "event %d", i)
		want, err := tlog.StoredHashesForRecordHash(i, tlog.RecordHash(data), m)
		if err != nil {
			t.Fatal(err)
		}
		m.add(t, i)
		got := m.hashes[len(m.hashes)-len(want):]
		for k := range want {
			if got[k] != want[k] {
				t.Fatalf("stored hashes of leaf %d differ from tlog", i)
			}
		}
	}
	for size := int64(1); size <= n; size++ {
		want, _ := tlog.TreeHash(size, m)
		got, err := m.h.treeHash(size, m)
		if err != nil || got != want {
			t.Fatalf("root of %d differs from tlog (%v)", size, err)
		}
		for i := int64(0); i < size; i += 7 {
			wp, _ := tlog.ProveRecord(size, i, m)
			gp, err := m.h.proveRecord(size, i, m)
			if err != nil || len(gp) != len(wp) {
				t.Fatalf("inclusion proof %d/%d: %d hashes, tlog %d (%v)", i, size, len(gp), len(wp), err)
			}
			for k := range wp {
				if gp[k] != wp[k] {
					t.Fatalf("inclusion proof %d/%d differs from tlog", i, size)
				}
			}
			if err := m.h.checkRecord(gp, size, got, i, m.hashes[tlog.StoredHashIndex(0, i)]); err != nil {
				t.Fatalf("inclusion proof %d/%d does not check: %v", i, size, err)
			}
		}
		for old := int64(1); old <= size; old += 5 {
			wp, _ := tlog.ProveTree(size, old, m)
			gp, err := m.h.proveTree(size, old, m)
			if err != nil || len(gp) != len(wp) {
				t.Fatalf("consistency %d->%d: %d hashes, tlog %d (%v)", old, size, len(gp), len(wp), err)
			}
			for k := range wp {
				if gp[k] != wp[k] {
					t.Fatalf("consistency proof %d->%d differs from tlog", old, size)
				}
			}
			oldRoot, _ := m.h.treeHash(old, m)
			if err := m.h.checkTree(gp, size, got, old, oldRoot); err != nil {
				t.Fatalf("consistency %d->%d does not check: %v", old, size, err)
			}
		}
	}
}

// TestSM3Tree: the SM3 tree has its own roots, its proofs check under SM3
// and fail under SHA-256.
func TestSM3Tree(t *testing.T) {
	sm, sha := &memTree{h: sm3Tree}, &memTree{h: sha256Tree}
	for i := int64(0); i < 33; i++ {
		sm.add(t, i)
		sha.add(t, i)
	}
	r1, _ := sm.h.treeHash(33, sm)
	r2, _ := sha.h.treeHash(33, sha)
	if r1 == r2 {
		t.Fatal("SM3 and SHA-256 trees have the same root")
	}
	p, err := sm.h.proveRecord(33, 17, sm)
	if err != nil {
		t.Fatal(err)
	}
	leaf := sm.hashes[tlog.StoredHashIndex(0, 17)]
	if err := sm3Tree.checkRecord(p, 33, r1, 17, leaf); err != nil {
		t.Fatalf("SM3 inclusion: %v", err)
	}
	if err := sha256Tree.checkRecord(p, 33, r1, 17, leaf); err == nil {
		t.Fatal("an SM3 proof checked under SHA-256")
	}
	cp, err := sm.h.proveTree(33, 20, sm)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := sm.h.treeHash(20, sm)
	if err := sm3Tree.checkTree(cp, 33, r1, 20, old); err != nil {
		t.Fatalf("SM3 consistency: %v", err)
	}
	// GM/T 0004-2012 appendix A.1: SM3("abc").
	if got := fmt.Sprintf("%x", sm3Tree.sum([]byte("abc"))); got != "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0" {
		t.Fatalf("SM3(abc) = %s", got)
	}
}

// BenchmarkCheckInclusion compares checking an inclusion proof in a tree of
// 1M leaves under SM3 with the same under SHA-256.
func BenchmarkCheckInclusion(b *testing.B) {
	for _, h := range []*treeHasher{sha256Tree, sm3Tree} {
		b.Run(h.Name(), func(b *testing.B) {
			// A 2^20-leaf proof has 20 hashes; any values exercise the same work.
			p := make([]tlog.Hash, 20)
			for i := range p {
				p[i][0] = byte(i)
			}
			leaf := h.leaf([]byte("event"))
			root, _ := proofRoot(h, p, 1<<20, 12345, leaf)
			b.ResetTimer()
			for b.Loop() {
				if err := h.checkRecord(p, 1<<20, root, 12345, leaf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// proofRoot recomputes the root a proof leads to (for the benchmark's input).
func proofRoot(h *treeHasher, p []tlog.Hash, n, i int64, leaf tlog.Hash) (tlog.Hash, error) {
	cur := leaf
	for k, s := range p {
		if (i>>uint(k))&1 == 1 {
			cur = h.node(s, cur)
		} else {
			cur = h.node(cur, s)
		}
	}
	return cur, nil
}
