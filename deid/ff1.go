package deid

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"math/big"

	"github.com/emmansun/gmsm/sm4"
)

// FF1 is NIST SP 800-38G FF1 format-preserving encryption over a 128-bit
// block cipher (AES for the intl suite, SM4 for gm). It encrypts strings of
// digits in a radix of 2..36 into strings of the same length and radix.
type FF1 struct {
	block cipher.Block
	radix int
}

// FF1 limits from SP 800-38G: radix^minlen >= 1,000,000. maxLen bounds work.
const (
	ff1MaxLen    = 256
	ff1MaxTweak  = 256
	ff1MinDomain = 1_000_000
)

var errFF1Input = errors.New("deid: FF1 input outside the domain")

// NewFF1 returns FF1 over AES (16, 24 or 32-byte keys) or, when sm is true,
// over SM4 (16-byte keys), for the given radix.
func NewFF1(key []byte, radix int, sm bool) (*FF1, error) {
	if radix < 2 || radix > 36 {
		return nil, errors.New("deid: FF1 radix must be 2..36")
	}
	var (
		b   cipher.Block
		err error
	)
	if sm {
		b, err = sm4.NewCipher(key)
	} else {
		b, err = aes.NewCipher(key)
	}
	if err != nil {
		return nil, errors.New("deid: FF1 key has the wrong size")
	}
	return &FF1{block: b, radix: radix}, nil
}

// MinLen is the shortest input the radix allows (radix^minlen >= 10^6).
func (f *FF1) MinLen() int {
	n, d := 1, f.radix
	for d < ff1MinDomain {
		d *= f.radix
		n++
	}
	return n
}

// Encrypt enciphers x (numerals 0..radix-1) under tweak t.
func (f *FF1) Encrypt(x []byte, t []byte) ([]byte, error) { return f.crypt(x, t, true) }

// Decrypt reverses Encrypt.
func (f *FF1) Decrypt(x []byte, t []byte) ([]byte, error) { return f.crypt(x, t, false) }

func (f *FF1) crypt(x, t []byte, enc bool) ([]byte, error) {
	n := len(x)
	if n < f.MinLen() || n > ff1MaxLen || len(t) > ff1MaxTweak {
		return nil, errFF1Input
	}
	for _, c := range x {
		if int(c) >= f.radix {
			return nil, errFF1Input
		}
	}
	u := n / 2
	v := n - u
	a := append([]byte(nil), x[:u]...)
	b := append([]byte(nil), x[u:]...)
	radix := big.NewInt(int64(f.radix))
	rv := new(big.Int).Exp(radix, big.NewInt(int64(v)), nil)
	bl := new(big.Int).Sub(rv, big.NewInt(1)).BitLen()
	bb := (bl + 7) / 8
	d := 4*((bb+3)/4) + 4

	p := [16]byte{1, 2, 1}
	p[3], p[4], p[5] = byte(f.radix>>16), byte(f.radix>>8), byte(f.radix)
	p[6] = 10
	p[7] = byte(u)
	p[8], p[9], p[10], p[11] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	tl := len(t)
	p[12], p[13], p[14], p[15] = byte(tl>>24), byte(tl>>16), byte(tl>>8), byte(tl)

	pad := (-(tl+bb+1)%16 + 16) % 16
	q := make([]byte, tl+pad+1+bb)
	copy(q, t)
	var prefix [16]byte
	f.block.Encrypt(prefix[:], p[:])
	modU := new(big.Int).Exp(radix, big.NewInt(int64(u)), nil)
	modV := rv
	s := make([]byte, ((d+15)/16)*16)
	y, c, num := new(big.Int), new(big.Int), new(big.Int)
	for step := 0; step < 10; step++ {
		i := step
		if !enc {
			i = 9 - step
		}
		// Q = T || 0^pad || [i] || [NUM(B or A)]^b
		src := b
		if !enc {
			src = a
		}
		q[tl+pad] = byte(i)
		numRadix(num, src, radix)
		nb := num.Bytes()
		clear(q[tl+pad+1:])
		copy(q[len(q)-len(nb):], nb)
		// R = PRF(P || Q): CBC-MAC with zero IV; P's block is already in prefix.
		r := prefix
		for off := 0; off < len(q); off += 16 {
			for j := 0; j < 16; j++ {
				r[j] ^= q[off+j]
			}
			f.block.Encrypt(r[:], r[:])
		}
		copy(s, r[:])
		for j := 1; j*16 < d; j++ {
			blk := r
			// R xor [j]^16 (j as a 16-byte big-endian integer)
			blk[15] ^= byte(j)
			blk[14] ^= byte(j >> 8)
			f.block.Encrypt(s[j*16:], blk[:])
		}
		y.SetBytes(s[:d])
		m, mod := u, modU
		if i%2 == 1 {
			m, mod = v, modV
		}
		if enc {
			numRadix(c, a, radix)
			c.Add(c, y)
		} else {
			numRadix(c, b, radix)
			c.Sub(c, y)
		}
		c.Mod(c, mod)
		out := strRadix(c, m, f.radix)
		if enc {
			a, b = b, out
		} else {
			b, a = a, out
		}
	}
	return append(a, b...), nil
}

func numRadix(z *big.Int, x []byte, radix *big.Int) {
	z.SetInt64(0)
	d := new(big.Int)
	for _, c := range x {
		z.Mul(z, radix)
		z.Add(z, d.SetInt64(int64(c)))
	}
}

func strRadix(x *big.Int, m, radix int) []byte {
	out := make([]byte, m)
	z := new(big.Int).Set(x)
	r := big.NewInt(int64(radix))
	mod := new(big.Int)
	for i := m - 1; i >= 0; i-- {
		z.QuoRem(z, r, mod)
		out[i] = byte(mod.Int64())
	}
	return out
}

const alphabet36 = "0123456789abcdefghijklmnopqrstuvwxyz"

// toNumerals maps "0-9a-z" text to numerals; ok is false on other characters.
func toNumerals(s string, radix int) ([]byte, bool) {
	out := make([]byte, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		var v int
		switch {
		case c >= '0' && c <= '9':
			v = int(c - '0')
		case c >= 'a' && c <= 'z':
			v = int(c-'a') + 10
		default:
			return nil, false
		}
		if v >= radix {
			return nil, false
		}
		out[i] = byte(v)
	}
	return out, true
}

func fromNumerals(x []byte) string {
	b := make([]byte, len(x))
	for i, c := range x {
		b[i] = alphabet36[c]
	}
	return string(b)
}
