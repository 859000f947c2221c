package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// InclusionProof proves that the event at Index is in the tree of Size
// leaves with root Root. Anyone can check it offline (CheckInclusion): the
// leaf hash is the RFC 6962 leaf hash of Event (the canonical JSON), and the
// checkpoint, when present, is the signed note that commits to Root.
type InclusionProof struct {
	Index      int64           `json:"index"`
	Size       int64           `json:"size"`
	LeafHash   tlog.Hash       `json:"leaf_hash"`
	Root       tlog.Hash       `json:"root"`
	Proof      []tlog.Hash     `json:"proof"`
	Event      json.RawMessage `json:"event,omitempty"`
	Checkpoint string          `json:"checkpoint,omitempty"`
	// TreeHash is "SM3" for logs under the gm suite; empty means SHA-256.
	TreeHash string `json:"tree_hash,omitempty"`
}

// ConsistencyProof proves that the tree of size From is a prefix of the tree of size To.
type ConsistencyProof struct {
	From     int64       `json:"from"`
	To       int64       `json:"to"`
	FromRoot tlog.Hash   `json:"from_root"`
	ToRoot   tlog.Hash   `json:"to_root"`
	Proof    []tlog.Hash `json:"proof"`
	TreeHash string      `json:"tree_hash,omitempty"` // as in InclusionProof
}

// ErrProof: a proof does not check.
var ErrProof = errors.New("audit: proof does not verify")

// InclusionProof proves event index in the tree of the given size. size 0
// means the latest checkpoint's size (and the proof carries that checkpoint).
func (l *Log) InclusionProof(ctx context.Context, index, size int64) (*InclusionProof, error) {
	return prove(ctx, l.b, l.th, index, size)
}

// Prove builds an inclusion proof from storage alone (the CLI uses it); the
// recorded checkpoint keys tell it the tree hash.
func Prove(ctx context.Context, b Backend, index, size int64) (*InclusionProof, error) {
	th, err := hasherForBackend(ctx, b)
	if err != nil {
		return nil, err
	}
	return prove(ctx, b, th, index, size)
}

func prove(ctx context.Context, b Backend, th *treeHasher, index, size int64) (*InclusionProof, error) {
	var note string
	if size == 0 {
		cp, err := b.LatestCheckpoint(ctx)
		if err != nil {
			return nil, fmt.Errorf("%w: no checkpoint yet", ErrOutOfRange)
		}
		size, note = cp.Size, string(cp.Note)
	}
	n, err := b.Size(ctx)
	if err != nil {
		return nil, err
	}
	if index < 0 || size <= index || size > n {
		return nil, ErrOutOfRange
	}
	r := BackendHashReader(ctx, b)
	proof, err := th.proveRecord(size, index, r)
	if err != nil {
		return nil, fmt.Errorf("audit: prove: %w", err)
	}
	root, err := th.treeHash(size, r)
	if err != nil {
		return nil, fmt.Errorf("audit: tree hash: %w", err)
	}
	leaf, err := b.ReadHashes(ctx, []int64{tlog.StoredHashIndex(0, index)})
	if err != nil {
		return nil, err
	}
	p := &InclusionProof{Index: index, Size: size, LeafHash: leaf[0], Root: root, Proof: proof, Checkpoint: note, TreeHash: treeHashField(th)}
	if rec, err := b.Event(ctx, index); err == nil && rec.Body != nil {
		p.Event = json.RawMessage(rec.Body)
	}
	if p.Proof == nil {
		p.Proof = []tlog.Hash{}
	}
	return p, nil
}

// CheckInclusion verifies p on its own: the event (if present) hashes to the
// leaf hash, the proof leads from the leaf to the root, and, when verifiers
// are given, the checkpoint is validly signed and commits to that root and size.
func CheckInclusion(p *InclusionProof, verifiers []*Verifier) error {
	if p.Index < 0 || p.Index >= p.Size {
		return ErrOutOfRange
	}
	th, err := hasherByName(p.TreeHash)
	if err != nil {
		return err
	}
	if len(verifiers) > 0 {
		// The keys, not the proof, decide the hash: a proof cannot choose
		// a weaker tree than its log's suite.
		if th, err = hasherForVerifiers(verifiers); err != nil {
			return err
		}
	}
	if p.Event != nil {
		// Pretty-printing re-indents the event; compacting restores the
		// canonical bytes (keys keep their order, strings are untouched).
		var buf bytes.Buffer
		if err := json.Compact(&buf, p.Event); err != nil || th.leaf(buf.Bytes()) != p.LeafHash {
			return fmt.Errorf("%w: event does not match leaf hash", ErrProof)
		}
	}
	if err := th.checkRecord(p.Proof, p.Size, p.Root, p.Index, p.LeafHash); err != nil {
		return fmt.Errorf("%w: inclusion", ErrProof)
	}
	if len(verifiers) > 0 {
		if p.Checkpoint == "" {
			return fmt.Errorf("%w: no checkpoint to check the root against", ErrProof)
		}
		cp, err := OpenCheckpoint([]byte(p.Checkpoint), verifiers)
		if err != nil {
			return err
		}
		if cp.Size != p.Size || cp.Root != p.Root {
			return fmt.Errorf("%w: checkpoint is for another tree", ErrProof)
		}
	}
	return nil
}

// ConsistencyProof proves that the tree of size from is a prefix of the tree
// of size to (0 < from <= to <= current size).
func (l *Log) ConsistencyProof(ctx context.Context, from, to int64) (*ConsistencyProof, error) {
	n, err := l.b.Size(ctx)
	if err != nil {
		return nil, err
	}
	if from <= 0 || to < from || to > n {
		return nil, ErrOutOfRange
	}
	r := l.hashReader(ctx)
	proof, err := l.th.proveTree(to, from, r)
	if err != nil {
		return nil, fmt.Errorf("audit: prove: %w", err)
	}
	fr, err := l.th.treeHash(from, r)
	if err != nil {
		return nil, err
	}
	tr, err := l.th.treeHash(to, r)
	if err != nil {
		return nil, err
	}
	if proof == nil {
		proof = []tlog.Hash{}
	}
	return &ConsistencyProof{From: from, To: to, FromRoot: fr, ToRoot: tr, Proof: proof, TreeHash: treeHashField(l.th)}, nil
}

// CheckConsistency verifies p.
func CheckConsistency(p *ConsistencyProof) error {
	if p.From <= 0 || p.To < p.From {
		return ErrOutOfRange
	}
	th, err := hasherByName(p.TreeHash)
	if err != nil {
		return err
	}
	if err := th.checkTree(p.Proof, p.To, p.ToRoot, p.From, p.FromRoot); err != nil {
		return fmt.Errorf("%w: consistency", ErrProof)
	}
	return nil
}

// treeHashField is the tree_hash value of a proof: empty for SHA-256, which
// keeps proofs of intl logs as they were before SM3 trees existed.
func treeHashField(th *treeHasher) string {
	if th == sha256Tree {
		return ""
	}
	return th.Name()
}
