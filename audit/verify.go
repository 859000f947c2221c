package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"golang.org/x/mod/sumdb/tlog"
)

// FailureKind names what Verify found wrong.
type FailureKind string

// The failure kinds, in the order a verifier meets them.
const (
	// FailMissing: an index has no event (a deleted event).
	FailMissing FailureKind = "missing-event"
	// FailReordered: the event stored at an index carries another index.
	FailReordered FailureKind = "reordered"
	// FailMalformed: a stored body is not a valid canonical event.
	FailMalformed FailureKind = "malformed-event"
	// FailLeafMismatch: the event does not hash to the stored leaf hash (a changed event).
	FailLeafMismatch FailureKind = "changed-event"
	// FailHashMismatch: a stored interior hash differs from the recomputed one.
	FailHashMismatch FailureKind = "hash-mismatch"
	// FailPrunedOutOfOrder: a pruned (body-less) event after a kept one; retention only prunes a prefix.
	FailPrunedOutOfOrder FailureKind = "pruned-out-of-order"
	// FailTruncated: fewer events than a checkpoint (or the hash storage) covers.
	FailTruncated FailureKind = "truncated"
	// FailHashStorage: the hash storage does not match the number of events.
	FailHashStorage FailureKind = "hash-storage-size"
	// FailBadSignature: a stored checkpoint's signature does not verify.
	FailBadSignature FailureKind = "bad-checkpoint-signature"
	// FailRewritten: the recomputed root differs from a signed checkpoint (history rewritten).
	FailRewritten FailureKind = "rewritten-history"
	// FailTrusted: the trusted checkpoint is not consistent with the stored log.
	FailTrusted FailureKind = "inconsistent-with-trusted"
)

// Failure is the first problem Verify found.
type Failure struct {
	Kind FailureKind `json:"kind"`
	// Index is the first leaf index that fails (for FailRewritten and
	// FailTrusted: the first index after the last verified checkpoint).
	Index int64 `json:"index"`
	// Detail is a fixed description (never event content).
	Detail string `json:"detail"`
}

func (f *Failure) Error() string {
	return fmt.Sprintf("audit: verification failed at index %d: %s: %s", f.Index, f.Kind, f.Detail)
}

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// Verifiers check checkpoint signatures. When empty, the keys recorded in
	// the database are used (that proves internal consistency only; pass the
	// keys you trust to prove authenticity).
	Verifiers []*Verifier
	// Trusted is a checkpoint note the caller kept from earlier; the stored log
	// must extend it.
	Trusted []byte
	// PageSize bounds memory (default 2048 events per read).
	PageSize int
}

// Report is the result of a successful verification.
type Report struct {
	Size        int64     `json:"size"`
	Root        tlog.Hash `json:"root"`
	Pruned      int64     `json:"pruned"`
	Checkpoints int       `json:"checkpoints"`
	// TreeHash is the tree's hash function: SHA-256 (intl) or SM3 (gm).
	TreeHash string `json:"tree_hash"`
	// UsedStoredKeys is true when no verifiers were given.
	UsedStoredKeys bool `json:"used_stored_keys"`
}

// Verify recomputes the whole tree from the stored events, compares it with
// the stored hashes and every checkpoint (whose signatures it checks), and
// checks that the log extends the trusted checkpoint. It returns a *Failure
// naming the first failing index, or another error when storage cannot be read.
func Verify(ctx context.Context, b Backend, opts VerifyOptions) (*Report, error) {
	rep := &Report{}
	if opts.PageSize <= 0 {
		opts.PageSize = 2048
	}
	vs := opts.Verifiers
	if len(vs) == 0 {
		keys, err := b.Keys(ctx)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			v, err := ParseVerifier(k)
			if err != nil {
				return nil, &Failure{Kind: FailBadSignature, Index: 0, Detail: "stored verifier key does not parse"}
			}
			vs = append(vs, v)
		}
		rep.UsedStoredKeys = true
	}
	// Checkpoints to meet on the way, smallest first; the trusted one too.
	type target struct {
		cp      Checkpoint
		trusted bool
	}
	var targets []target
	stored, err := b.Checkpoints(ctx)
	if err != nil {
		return nil, err
	}
	for _, sc := range stored {
		cp, err := OpenCheckpoint(sc.Note, vs)
		if err != nil || cp.Size != sc.Size {
			return nil, &Failure{Kind: FailBadSignature, Index: sc.Size, Detail: "stored checkpoint does not verify"}
		}
		targets = append(targets, target{cp: cp})
	}
	if opts.Trusted != nil {
		cp, err := OpenCheckpoint(opts.Trusted, vs)
		if err != nil {
			return nil, fmt.Errorf("audit: trusted checkpoint: %w", err)
		}
		targets = append(targets, target{cp: cp, trusted: true})
	}
	sort.SliceStable(targets, func(i, j int) bool { return targets[i].cp.Size < targets[j].cp.Size })
	rep.Checkpoints = len(stored)

	st, err := b.Stats(ctx)
	if err != nil {
		return nil, err
	}

	th, err := hasherForVerifiers(vs)
	if err != nil {
		return nil, err
	}
	rep.TreeHash = th.Name()
	var (
		fr       = frontier{th: th}
		n        int64 // events processed
		lastGood int64 // size of the last checkpoint that matched
		keptSeen bool
	)
	checkTargets := func() error {
		for len(targets) > 0 && targets[0].cp.Size == n {
			t := targets[0]
			targets = targets[1:]
			if fr.root() != t.cp.Root {
				kind, detail := FailRewritten, "recomputed root differs from a signed checkpoint"
				if t.trusted {
					kind, detail = FailTrusted, "recomputed root differs from the trusted checkpoint"
				}
				return &Failure{Kind: kind, Index: lastGood, Detail: detail + fmt.Sprintf(" of size %d; the first changed index is in [%d, %d)", t.cp.Size, lastGood, t.cp.Size)}
			}
			lastGood = n
		}
		return nil
	}
	// Verify the log as it was when Stats ran; appends that arrive while
	// verifying are left for the next run.
	limit := st.MaxIndex + 1
	for n < limit {
		recs, err := b.Events(ctx, n-1, opts.PageSize)
		if err != nil {
			return nil, err
		}
		for len(recs) > 0 && recs[len(recs)-1].Index >= limit {
			recs = recs[:len(recs)-1]
		}
		if len(recs) == 0 {
			break
		}
		first := n
		hashes, err := b.HashRange(ctx, tlog.StoredHashIndex(0, first), tlog.StoredHashCount(first+int64(len(recs))))
		if err != nil {
			return nil, err
		}
		base := tlog.StoredHashIndex(0, first)
		for _, r := range recs {
			if r.Index != n {
				return nil, &Failure{Kind: FailMissing, Index: n, Detail: "no event stored at this index"}
			}
			var leaf tlog.Hash
			stIdx := tlog.StoredHashIndex(0, n)
			if stIdx-base >= int64(len(hashes)) {
				return nil, &Failure{Kind: FailHashStorage, Index: n, Detail: "stored hashes missing for this event"}
			}
			if r.Body == nil {
				if keptSeen {
					return nil, &Failure{Kind: FailPrunedOutOfOrder, Index: n, Detail: "event body missing after kept events"}
				}
				leaf = hashes[stIdx-base]
				rep.Pruned++
			} else {
				keptSeen = true
				var ev Event
				if err := json.Unmarshal(r.Body, &ev); err != nil {
					return nil, &Failure{Kind: FailMalformed, Index: n, Detail: "stored body is not an event"}
				}
				if ev.Index != n {
					return nil, &Failure{Kind: FailReordered, Index: n, Detail: "event carries another index"}
				}
				leaf = fr.th.leaf(r.Body)
				if leaf != hashes[stIdx-base] {
					return nil, &Failure{Kind: FailLeafMismatch, Index: n, Detail: "event does not match its stored leaf hash"}
				}
			}
			computed := fr.push(leaf)
			for k, h := range computed {
				pos := stIdx - base + int64(k)
				if pos >= int64(len(hashes)) {
					return nil, &Failure{Kind: FailHashStorage, Index: n, Detail: "stored hashes missing for this event"}
				}
				if hashes[pos] != h {
					return nil, &Failure{Kind: FailHashMismatch, Index: n, Detail: "stored tree hash differs from the recomputed one"}
				}
			}
			n++
			if err := checkTargets(); err != nil {
				return nil, err
			}
		}
	}
	if n != limit || st.Events != limit {
		return nil, &Failure{Kind: FailMissing, Index: n, Detail: "events stored beyond a gap"}
	}
	if want := tlog.StoredHashCount(n); st.Hashes != want {
		if st.Hashes > want {
			return nil, &Failure{Kind: FailTruncated, Index: n, Detail: "hash storage covers more events than are stored"}
		}
		return nil, &Failure{Kind: FailHashStorage, Index: n, Detail: "hash storage smaller than the event count"}
	}
	if len(targets) > 0 {
		kind := FailTruncated
		if targets[0].trusted {
			kind = FailTrusted
		}
		return nil, &Failure{Kind: kind, Index: n, Detail: fmt.Sprintf("log has %d events but a checkpoint covers %d", n, targets[0].cp.Size)}
	}
	rep.Size = n
	rep.Root = fr.root()
	return rep, nil
}

// frontier is the right edge of an RFC 6962 tree under construction: at
// each level, the hash of the complete left subtree still waiting for a
// sibling. Memory is O(log n).
type frontier struct {
	th    *treeHasher
	n     int64
	nodes []tlog.Hash // nodes[level], valid when bit level of n is set
}

// push adds a leaf and returns the stored hashes of that record, in tlog's
// storage order (leaf, then each completed parent).
func (f *frontier) push(leaf tlog.Hash) []tlog.Hash {
	out := []tlog.Hash{leaf}
	h := leaf
	level := 0
	for m := f.n; m&1 == 1; m >>= 1 {
		h = f.th.node(f.nodes[level], h)
		out = append(out, h)
		level++
	}
	for len(f.nodes) <= level {
		f.nodes = append(f.nodes, tlog.Hash{})
	}
	f.nodes[level] = h
	f.n++
	return out
}

// root is the RFC 6962 root of the leaves pushed so far.
func (f *frontier) root() tlog.Hash {
	var h tlog.Hash
	first := true
	for level := 0; level < len(f.nodes); level++ {
		if f.n>>level&1 == 0 {
			continue
		}
		if first {
			h, first = f.nodes[level], false
		} else {
			h = f.th.node(f.nodes[level], h)
		}
	}
	return h
}
