package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/tlog"

	"phix/suite"
)

// Checkpoint is a signed statement of the tree: its origin (which log), size
// and root hash. Its text and signatures use the signed-note format of
// golang.org/x/mod/sumdb/note, with the suite's signature algorithms in place
// of Ed25519 (docs/audit.md):
//
//	<origin>\n<size>\n<base64 root>\n\n— <name> <base64(keyhash[4] || signature)>\n
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
}

// Signature algorithm bytes in key hashes and verifier keys.
const (
	algEd25519 byte = 0x01 // as in x/mod/sumdb/note
	algMLDSA87 byte = 0x10
	algSM2     byte = 0x11
)

// Errors from checkpoint parsing and verification.
var (
	// ErrMalformedCheckpoint: the note text is not a checkpoint.
	ErrMalformedCheckpoint = errors.New("audit: malformed checkpoint")
	// ErrCheckpointSignature: no known key signed it, or a known key's signature is bad.
	ErrCheckpointSignature = errors.New("audit: checkpoint signature does not verify")
	// ErrVerifierKey: a verifier key string does not parse.
	ErrVerifierKey = errors.New("audit: malformed verifier key")
)

// Text is the signed part of the checkpoint: three lines, each ending in \n.
func (c Checkpoint) Text() []byte {
	return fmt.Appendf(nil, "%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root[:]))
}

// Signer signs checkpoints with a suite signing key under a name.
type Signer struct {
	name string
	key  suite.SigningKey
	alg  byte
	hash uint32
}

func algByte(algorithm string) (byte, error) {
	switch algorithm {
	case "ML-DSA-87":
		return algMLDSA87, nil
	case "SM2":
		return algSM2, nil
	case suite.Ed25519Algorithm:
		return algEd25519, nil
	}
	return 0, fmt.Errorf("%w: unsupported signature algorithm", ErrVerifierKey)
}

func keyHash(name string, alg byte, pub []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte("\n"))
	h.Write([]byte{alg})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

func isKeyName(name string) bool {
	if name == "" || !utf8.ValidString(name) {
		return false
	}
	for _, r := range name {
		if unicode.IsSpace(r) || r == '+' || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// NewSigner returns a checkpoint signer named name (conventionally the
// log's origin) using key (ML-DSA-87 under intl, SM2 under gm, or Ed25519).
func NewSigner(name string, key suite.SigningKey) (*Signer, error) {
	if !isKeyName(name) {
		return nil, fmt.Errorf("%w: bad key name", ErrVerifierKey)
	}
	alg, err := algByte(key.Algorithm())
	if err != nil {
		return nil, err
	}
	return &Signer{name: name, key: key, alg: alg, hash: keyHash(name, alg, key.Public().Bytes())}, nil
}

// Name is the signer's name.
func (s *Signer) Name() string { return s.name }

// KeyID is the short id of the key: name+hex(keyhash).
func (s *Signer) KeyID() string { return fmt.Sprintf("%s+%08x", s.name, s.hash) }

// VerifierKey is the public verifier key string: name+hex(keyhash)+base64(alg||pubkey).
func (s *Signer) VerifierKey() string {
	return fmt.Sprintf("%s+%08x+%s", s.name, s.hash,
		base64.StdEncoding.EncodeToString(append([]byte{s.alg}, s.key.Public().Bytes()...)))
}

// Sign returns the signed note of c.
func (s *Signer) Sign(c Checkpoint) ([]byte, error) {
	if err := checkOrigin(c.Origin); err != nil {
		return nil, err
	}
	text := c.Text()
	sig, err := s.key.Sign(text)
	if err != nil {
		return nil, fmt.Errorf("audit: sign checkpoint: %w", err)
	}
	var hb [4]byte
	binary.BigEndian.PutUint32(hb[:], s.hash)
	var b bytes.Buffer
	b.Write(text)
	b.WriteString("\n\u2014 ")
	b.WriteString(s.name)
	b.WriteString(" ")
	b.WriteString(base64.StdEncoding.EncodeToString(append(hb[:], sig...)))
	b.WriteString("\n")
	return b.Bytes(), nil
}

func checkOrigin(o string) error {
	if o == "" || len(o) > 256 || !utf8.ValidString(o) || strings.ContainsAny(o, "\n\r") {
		return fmt.Errorf("%w: bad origin", ErrMalformedCheckpoint)
	}
	return nil
}

// Verifier checks checkpoint signatures of one key.
type Verifier struct {
	Name string
	Hash uint32
	Key  suite.VerifyKey
}

// ParseVerifier reads a verifier key string (Signer.VerifierKey).
func ParseVerifier(vkey string) (*Verifier, error) {
	name, rest, ok1 := strings.Cut(strings.TrimSpace(vkey), "+")
	h16, b64, ok2 := strings.Cut(rest, "+")
	if !ok1 || !ok2 || !isKeyName(name) || len(h16) != 8 {
		return nil, ErrVerifierKey
	}
	hb, err := hex.DecodeString(h16)
	if err != nil {
		return nil, ErrVerifierKey
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) < 2 {
		return nil, ErrVerifierKey
	}
	var key suite.VerifyKey
	switch raw[0] {
	case algMLDSA87:
		s, _ := suite.Lookup(suite.Intl)
		key, err = s.ParseVerifyKey(raw[1:])
	case algSM2:
		s, _ := suite.Lookup(suite.GM)
		key, err = s.ParseVerifyKey(raw[1:])
	case algEd25519:
		key, err = suite.ParseEd25519VerifyKey(raw[1:])
	default:
		return nil, fmt.Errorf("%w: unknown algorithm", ErrVerifierKey)
	}
	if err != nil {
		return nil, ErrVerifierKey
	}
	h := binary.BigEndian.Uint32(hb)
	if h != keyHash(name, raw[0], raw[1:]) {
		return nil, fmt.Errorf("%w: key hash mismatch", ErrVerifierKey)
	}
	return &Verifier{Name: name, Hash: h, Key: key}, nil
}

// NoteSignature is one signature line of a note.
type NoteSignature struct {
	Name string
	Hash uint32
	Sig  []byte
}

// ParseCheckpoint reads a signed checkpoint without checking signatures.
func ParseCheckpoint(note []byte) (Checkpoint, []NoteSignature, error) {
	var c Checkpoint
	bad := func(why string) (Checkpoint, []NoteSignature, error) {
		return Checkpoint{}, nil, fmt.Errorf("%w: %s", ErrMalformedCheckpoint, why)
	}
	if len(note) > 64<<10 || !utf8.Valid(note) {
		return bad("too large or not UTF-8")
	}
	s := string(note)
	text, sigs, ok := strings.Cut(s, "\n\n")
	if !ok {
		return bad("no signature block")
	}
	lines := strings.Split(text, "\n")
	if len(lines) != 3 {
		return bad("want origin, size and root lines")
	}
	if err := checkOrigin(lines[0]); err != nil {
		return Checkpoint{}, nil, err
	}
	c.Origin = lines[0]
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != lines[1] {
		return bad("bad size")
	}
	c.Size = n
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		return bad("bad root hash")
	}
	copy(c.Root[:], root)
	if string(c.Text()) != text+"\n" {
		return bad("non-canonical text")
	}
	if !strings.HasSuffix(sigs, "\n") {
		return bad("signature block must end in a newline")
	}
	var out []NoteSignature
	for _, line := range strings.Split(strings.TrimSuffix(sigs, "\n"), "\n") {
		rest, ok := strings.CutPrefix(line, "\u2014 ")
		if !ok {
			return bad("bad signature line")
		}
		name, b64, ok := strings.Cut(rest, " ")
		if !ok || !isKeyName(name) {
			return bad("bad signature line")
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(raw) < 5 {
			return bad("bad signature encoding")
		}
		out = append(out, NoteSignature{Name: name, Hash: binary.BigEndian.Uint32(raw), Sig: raw[4:]})
		if len(out) > 16 {
			return bad("too many signatures")
		}
	}
	return c, out, nil
}

// OpenCheckpoint parses note and checks its signatures against verifiers: at
// least one must be by a known key, and every signature by a known key must
// verify. Signatures by unknown keys are ignored (as in sumdb/note).
func OpenCheckpoint(note []byte, verifiers []*Verifier) (Checkpoint, error) {
	c, sigs, err := ParseCheckpoint(note)
	if err != nil {
		return Checkpoint{}, err
	}
	text := c.Text()
	good := 0
	for _, sg := range sigs {
		for _, v := range verifiers {
			if v.Name != sg.Name || v.Hash != sg.Hash {
				continue
			}
			if !v.Key.Verify(text, sg.Sig) {
				return Checkpoint{}, ErrCheckpointSignature
			}
			good++
		}
	}
	if good == 0 {
		return Checkpoint{}, fmt.Errorf("%w: no signature by a known key", ErrCheckpointSignature)
	}
	return c, nil
}
