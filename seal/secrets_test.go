package seal

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"

	"phix/suite"
)

// containsSecret reports whether msg holds any 12-character window of a
// common encoding of secret.
func containsSecret(msg string, secret []byte) bool {
	for _, enc := range []string{string(secret), hex.EncodeToString(secret), strings.ToUpper(hex.EncodeToString(secret)),
		base64.StdEncoding.EncodeToString(secret), base64.RawURLEncoding.EncodeToString(secret)} {
		for i := 0; i+12 <= len(enc); i += 3 {
			if strings.Contains(msg, enc[i:i+12]) {
				return true
			}
		}
	}
	return false
}

// Every error the reader can give, on inputs whose keys, data key, KEK and
// plaintext are known: none may carry them.
func TestErrorsCarryNoSecrets(t *testing.T) {
	b, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	codes := map[string]bool{}
	n := 0
	for _, v := range vs {
		s, _ := suite.Lookup(suite.ID(v.Suite))
		priv, _ := s.ParseRecipientKey(unhex(t, v.RecipientPrivate))
		secrets := [][]byte{unhex(t, v.RecipientPrivate), unhex(t, v.DataKey)}
		if v.KEK != "" {
			secrets = append(secrets, unhex(t, v.KEK))
		}
		if pt := unhex(t, v.Plaintext); len(pt) >= 12 {
			secrets = append(secrets, pt)
		}
		ids := []Identity{PrivateKeyIdentity(priv, 0), anyID{PrivateKeyIdentity(priv, 99)}}
		sealed := unhex(t, v.Sealed)
		var inputs [][]byte
		for i := 0; i < len(sealed); i += 11 {
			m := bytes.Clone(sealed)
			m[i] ^= 0x01
			inputs = append(inputs, m)
		}
		for _, cut := range []int{1, 16, 17, len(sealed) / 2} {
			inputs = append(inputs, sealed[:len(sealed)-cut])
		}
		inputs = append(inputs, append(bytes.Clone(sealed), 0))
		for _, in := range inputs {
			for _, id := range ids {
				r, err := NewReader(bytes.NewReader(in), id)
				if err == nil {
					_, err = io.Copy(io.Discard, r)
				}
				if err == nil {
					continue
				}
				n++
				codes[Code(err)] = true
				for _, sec := range secrets {
					if containsSecret(err.Error(), sec) {
						t.Fatalf("error %q carries secret material", err)
					}
				}
			}
		}
		// Suite-level errors with the same keys.
		for _, e := range []error{
			func() error { _, err := s.UnwrapKey(priv, sealed[:40], nil); return err }(),
			func() error { _, err := s.ParseRecipientKey(unhex(t, v.RecipientPrivate)[:31]); return err }(),
			func() error { _, err := s.NewAEAD(unhex(t, v.DataKey)[:5]); return err }(),
			func() error { _, err := s.ParseSigningKey(append(unhex(t, v.RecipientPrivate), 1)); return err }(),
		} {
			if e == nil {
				t.Fatal("expected an error")
			}
			for _, sec := range secrets {
				if containsSecret(e.Error(), sec) {
					t.Fatalf("error %q carries secret material", e)
				}
			}
		}
	}
	if n < 100 || len(codes) < 5 {
		t.Fatalf("only %d errors with %d codes exercised: %v", n, len(codes), codes)
	}
}
