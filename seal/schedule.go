package seal

import (
	"crypto/cipher"
	"encoding/binary"
	"fmt"

	"phix/suite"
)

// keys is everything derived from the data key for one file.
type keys struct {
	commitment []byte
	macKey     []byte
	aead       cipher.AEAD
}

// deriveKeys runs the key schedule: one suite-KDF call,
//
//	OKM = KDF(secret=dataKey, salt=salt, info="phix-seal v1 keys" 0x00 ‖ prefix, L)
//	commitment = OKM[0:32], macKey = OKM[32:64], segmentKey = OKM[64:64+AEADKeySize]
//
// prefix (magic, version, suite, segment size, salt, nonce prefix) in info
// binds every derived key to those header fields.
func deriveKeys(s suite.Suite, dataKey, salt, prefix []byte) (*keys, error) {
	info := append([]byte("phix-seal v1 keys\x00"), prefix...)
	okm, err := s.KDF(dataKey, salt, info, CommitmentSize+macKeySize+s.AEADKeySize())
	if err != nil {
		return nil, fmt.Errorf("seal: key schedule: %w", err)
	}
	segKey := okm[CommitmentSize+macKeySize:]
	a, err := s.NewAEAD(segKey)
	suite.Wipe(segKey)
	if err != nil {
		return nil, fmt.Errorf("seal: key schedule: %w", err)
	}
	return &keys{commitment: okm[:CommitmentSize], macKey: okm[CommitmentSize : CommitmentSize+macKeySize], aead: a}, nil
}

func (k *keys) headerMAC(s suite.Suite, raw []byte) []byte {
	m := s.NewMAC(k.macKey)
	m.Write(raw)
	return m.Sum(nil)
}

// nonce builds prefix(7) ‖ counter(4, big-endian) ‖ last(1) into dst.
func nonce(dst *[nonceSize]byte, prefix []byte, counter uint32, last bool) []byte {
	copy(dst[:NoncePrefixSize], prefix)
	binary.BigEndian.PutUint32(dst[NoncePrefixSize:], counter)
	dst[nonceSize-1] = 0
	if last {
		dst[nonceSize-1] = 1
	}
	return dst[:]
}
