package audit

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/emmansun/gmsm/sm3"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/tlog"
)

// Tree hash algorithms. The tree follows the suite of the checkpoint key:
// SHA-256 under intl (ML-DSA-87 or Ed25519 checkpoints), SM3 under gm (SM2
// checkpoints), so that a gm deployment uses only GM/T algorithms end to end.
// Both are RFC 6962 trees (leaf prefix 0x00, node prefix 0x01) with 32-byte
// hashes, so tlog's storage order and index math serve both.
const (
	TreeSHA256 = "SHA-256"
	TreeSM3    = "SM3"
)

// treeHasher is an RFC 6962 hasher over a 32-byte hash function. It also
// implements transparency-dev/merkle's LogHasher, whose proof code builds and
// checks the proofs.
type treeHasher struct {
	name string
	sum  func([]byte) [32]byte
}

var (
	sha256Tree = &treeHasher{name: TreeSHA256, sum: sha256.Sum256}
	sm3Tree    = &treeHasher{name: TreeSM3, sum: sm3.Sum}
)

// hasherByName returns the hasher for a tree_hash value ("" means SHA-256,
// the value of logs and proofs made before the field existed).
func hasherByName(name string) (*treeHasher, error) {
	switch name {
	case "", TreeSHA256:
		return sha256Tree, nil
	case TreeSM3:
		return sm3Tree, nil
	}
	return nil, fmt.Errorf("%w: unknown tree hash", ErrProof)
}

// hasherForAlg returns the tree hasher that goes with a checkpoint signature algorithm.
func hasherForAlg(alg byte) *treeHasher {
	if alg == algSM2 {
		return sm3Tree
	}
	return sha256Tree
}

// hasherForVerifiers picks the tree hash from the checkpoint keys: every key
// of one log is of the same suite, and a mix is refused rather than guessed.
func hasherForVerifiers(vs []*Verifier) (*treeHasher, error) {
	var h *treeHasher
	for _, v := range vs {
		alg, err := algByte(v.Key.Algorithm())
		if err != nil {
			return nil, err
		}
		vh := hasherForAlg(alg)
		if h != nil && h != vh {
			return nil, errors.New("audit: checkpoint keys of both suites: cannot tell the tree hash")
		}
		h = vh
	}
	if h == nil {
		return sha256Tree, nil
	}
	return h, nil
}

// hasherForBackend reads the log's recorded checkpoint keys to pick its tree hash.
func hasherForBackend(ctx context.Context, b Backend) (*treeHasher, error) {
	keys, err := b.Keys(ctx)
	if err != nil {
		return nil, err
	}
	vs := make([]*Verifier, 0, len(keys))
	for _, k := range keys {
		v, err := ParseVerifier(k)
		if err != nil {
			return nil, fmt.Errorf("audit: stored verifier key does not parse: %w", err)
		}
		vs = append(vs, v)
	}
	return hasherForVerifiers(vs)
}

// Name is the tree_hash value of proofs made with h.
func (h *treeHasher) Name() string { return h.name }

// leaf is the RFC 6962 leaf hash: H(0x00 || data).
func (h *treeHasher) leaf(data []byte) tlog.Hash {
	if h == sha256Tree {
		return tlog.RecordHash(data) // the same function; tlog's avoids a copy
	}
	buf := make([]byte, 1+len(data))
	copy(buf[1:], data)
	return h.sum(buf)
}

// node is the RFC 6962 interior hash: H(0x01 || left || right).
func (h *treeHasher) node(l, r tlog.Hash) tlog.Hash {
	var buf [1 + 2*tlog.HashSize]byte
	buf[0] = 1
	copy(buf[1:], l[:])
	copy(buf[1+tlog.HashSize:], r[:])
	return h.sum(buf[:])
}

// EmptyRoot, HashLeaf, HashChildren and Size implement merkle.LogHasher.
func (h *treeHasher) EmptyRoot() []byte {
	s := h.sum(nil)
	return s[:]
}
func (h *treeHasher) HashLeaf(leaf []byte) []byte { l := h.leaf(leaf); return l[:] }
func (h *treeHasher) HashChildren(l, r []byte) []byte {
	n := h.node(tlog.Hash(l), tlog.Hash(r))
	return n[:]
}
func (h *treeHasher) Size() int { return tlog.HashSize }

// storedHashes returns the hashes to store when appending the leaf with hash
// lh at index n: the leaf, then one interior hash per subtree it completes
// (tlog.StoredHashesForRecordHash with this hasher).
func (h *treeHasher) storedHashes(n int64, lh tlog.Hash, r tlog.HashReader) ([]tlog.Hash, error) {
	m := 0 // subtrees n completes = trailing one bits of n
	for i := n; i&1 == 1; i >>= 1 {
		m++
	}
	hashes := []tlog.Hash{lh}
	if m == 0 {
		return hashes, nil
	}
	// The left siblings at levels 0..m-1 of the subtrees n completes, in
	// ascending storage order as tlog reads them.
	idx := make([]int64, m)
	for i := 0; i < m; i++ {
		idx[m-1-i] = tlog.StoredHashIndex(i, (n>>uint(i))-1)
	}
	old, err := r.ReadHashes(idx)
	if err != nil {
		return nil, err
	}
	if len(old) != m {
		return nil, fmt.Errorf("audit: read %d hashes, want %d", len(old), m)
	}
	cur := lh
	for i := 0; i < m; i++ {
		cur = h.node(old[m-1-i], cur)
		hashes = append(hashes, cur)
	}
	return hashes, nil
}

// readNodes reads stored hashes of perfect subtrees by their node ids.
func readNodes(r tlog.HashReader, ids []compact.NodeID) ([][]byte, error) {
	idx := make([]int64, len(ids))
	for i, id := range ids {
		idx[i] = tlog.StoredHashIndex(int(id.Level), int64(id.Index))
	}
	hs, err := r.ReadHashes(idx)
	if err != nil {
		return nil, err
	}
	if len(hs) != len(ids) {
		return nil, fmt.Errorf("audit: read %d hashes, want %d", len(hs), len(ids))
	}
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out, nil
}

// treeHash is the root of the first n leaves: the perfect subtrees that make
// up [0, n) folded right to left.
func (h *treeHasher) treeHash(n int64, r tlog.HashReader) (tlog.Hash, error) {
	if n == 0 {
		return tlog.Hash(h.EmptyRoot()), nil
	}
	ids := compact.RangeNodes(0, uint64(n), nil)
	hs, err := readNodes(r, ids)
	if err != nil {
		return tlog.Hash{}, err
	}
	root := tlog.Hash(hs[len(hs)-1])
	for i := len(hs) - 2; i >= 0; i-- {
		root = h.node(tlog.Hash(hs[i]), root)
	}
	return root, nil
}

// proofHashes fetches and rehashes the nodes of a proof.
func (h *treeHasher) proofHashes(nodes proof.Nodes, r tlog.HashReader) ([]tlog.Hash, error) {
	hs, err := readNodes(r, nodes.IDs)
	if err != nil {
		return nil, err
	}
	hs, err = nodes.Rehash(hs, h.HashChildren)
	if err != nil {
		return nil, err
	}
	out := make([]tlog.Hash, len(hs))
	for i := range hs {
		out[i] = tlog.Hash(hs[i])
	}
	return out, nil
}

// proveRecord is the RFC 6962 inclusion proof of leaf i in the tree of size n.
func (h *treeHasher) proveRecord(n, i int64, r tlog.HashReader) ([]tlog.Hash, error) {
	nodes, err := proof.Inclusion(uint64(i), uint64(n))
	if err != nil {
		return nil, err
	}
	return h.proofHashes(nodes, r)
}

// proveTree is the RFC 6962 consistency proof from size m to size n.
func (h *treeHasher) proveTree(n, m int64, r tlog.HashReader) ([]tlog.Hash, error) {
	nodes, err := proof.Consistency(uint64(m), uint64(n))
	if err != nil {
		return nil, err
	}
	return h.proofHashes(nodes, r)
}

func asBytes(p []tlog.Hash) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out
}

// checkRecord verifies an inclusion proof.
func (h *treeHasher) checkRecord(p []tlog.Hash, n int64, root tlog.Hash, i int64, leaf tlog.Hash) error {
	return proof.VerifyInclusion(h, uint64(i), uint64(n), leaf[:], asBytes(p), root[:])
}

// checkTree verifies a consistency proof from (m, oldRoot) to (n, root).
func (h *treeHasher) checkTree(p []tlog.Hash, n int64, root tlog.Hash, m int64, oldRoot tlog.Hash) error {
	return proof.VerifyConsistency(h, uint64(m), uint64(n), asBytes(p), oldRoot[:], root[:])
}
