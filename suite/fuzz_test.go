package suite

import "testing"

// FuzzParseKeys feeds arbitrary bytes to every key parser and to UnwrapKey:
// they must return an error or a usable key, never panic.
func FuzzParseKeys(f *testing.F) {
	for _, s := range allSuites(f) {
		sk, _ := s.GenerateSigningKey()
		rk, _ := s.GenerateRecipientKey()
		f.Add(s.Wire(), sk.Bytes())
		f.Add(s.Wire(), sk.Public().Bytes())
		f.Add(s.Wire(), rk.Bytes())
		f.Add(s.Wire(), rk.Public().Bytes())
		w, _ := s.WrapKey(rk.Public(), make([]byte, s.AEADKeySize()), nil)
		f.Add(s.Wire(), w)
	}
	f.Add(byte(0), []byte{})
	rks := map[byte]RecipientKey{}
	for _, s := range allSuites(f) {
		rks[s.Wire()], _ = s.GenerateRecipientKey()
	}
	f.Fuzz(func(t *testing.T, wire byte, b []byte) {
		s, err := FromWire(wire)
		if err != nil {
			return
		}
		if k, err := s.ParseSigningKey(b); err == nil {
			sig, err := k.Sign([]byte("m"))
			if err != nil || !k.Public().Verify([]byte("m"), sig) {
				t.Fatal("parsed signing key does not sign")
			}
		}
		if k, err := s.ParseVerifyKey(b); err == nil {
			k.Verify([]byte("m"), b)
		}
		if k, err := s.ParseRecipientKey(b); err == nil {
			_ = k.Public().KeyID()
		}
		if k, err := s.ParseRecipientPublicKey(b); err == nil {
			if _, err := s.WrapKey(k, make([]byte, 16), nil); err != nil {
				t.Fatalf("wrap for parsed public key: %v", err)
			}
		}
		if _, err := s.UnwrapKey(rks[wire], b, nil); err == nil {
			t.Fatal("random bytes unwrapped")
		}
		_, _ = ParseEd25519VerifyKey(b)
	})
}
