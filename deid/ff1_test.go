package deid

import (
	"encoding/hex"
	"testing"
)

// NIST SP 800-38G FF1 samples (AES-128/192/256).
func TestFF1NISTVectors(t *testing.T) {
	k128 := "2B7E151628AED2A6ABF7158809CF4F3C"
	k192 := "2B7E151628AED2A6ABF7158809CF4F3CEF4359D8D580AA4F"
	k256 := "2B7E151628AED2A6ABF7158809CF4F3CEF4359D8D580AA4F7F036D6F04FC6A94"
	cases := []struct {
		key, tweak string
		radix      int
		pt, ct     string
	}{
		{k128, "", 10, "0123456789", "2433477484"},
		{k128, "39383736353433323130", 10, "0123456789", "6124200773"},
		{k128, "3737373770717273373737", 36, "0123456789abcdefghi", "a9tv40mll9kdu509eum"},
		{k192, "", 10, "0123456789", "2830668132"},
		{k192, "39383736353433323130", 10, "0123456789", "2496655549"},
		{k192, "3737373770717273373737", 36, "0123456789abcdefghi", "xbj3kv35jrawxv32ysr"},
		{k256, "", 10, "0123456789", "6657667009"},
		{k256, "39383736353433323130", 10, "0123456789", "1001623463"},
		{k256, "3737373770717273373737", 36, "0123456789abcdefghi", "xs8a0azh2avyalyzuwd"},
	}
	for i, c := range cases {
		key, _ := hex.DecodeString(c.key)
		tw, _ := hex.DecodeString(c.tweak)
		f, err := NewFF1(key, c.radix, false)
		if err != nil {
			t.Fatal(err)
		}
		x, _ := toNumerals(c.pt, c.radix)
		y, err := f.Encrypt(x, tw)
		if err != nil {
			t.Fatal(err)
		}
		if got := fromNumerals(y); got != c.ct {
			t.Errorf("sample %d: got %s want %s", i+1, got, c.ct)
		}
		back, err := f.Decrypt(y, tw)
		if err != nil || fromNumerals(back) != c.pt {
			t.Errorf("sample %d: decrypt gave %s", i+1, fromNumerals(back))
		}
	}
}

func TestFF1SM4RoundTrip(t *testing.T) {
	f, err := NewFF1(make([]byte, 16), 10, true)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := toNumerals("11010519491231002", 10)
	y, err := f.Encrypt(x, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fromNumerals(y) == "11010519491231002" {
		t.Fatal("SM4 FF1 is the identity")
	}
	back, _ := f.Decrypt(y, nil)
	if fromNumerals(back) != "11010519491231002" {
		t.Fatal("SM4 FF1 does not round-trip")
	}
	if _, err := f.Encrypt([]byte{1, 2, 3}, nil); err == nil {
		t.Fatal("too-short input accepted")
	}
}

func TestResidentIDFF1(t *testing.T) {
	// GB 11643 example number.
	id := "11010519491231002X"
	if !ValidResidentID(id) {
		t.Fatal("example resident ID rejected")
	}
	for _, sm := range []bool{false, true} {
		f, _ := NewFF1(make([]byte, 16), 10, sm)
		seen := map[string]bool{}
		for _, in := range []string{id, "440524188001010014", "11010519491231002X"} {
			out, err := residentIDFF1(f, in, nil, true)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != 18 || !ValidResidentID(out) || out == in {
				t.Fatalf("output not a valid, different resident ID")
			}
			for _, c := range out[:17] {
				if c < '0' || c > '9' {
					t.Fatal("body not digits")
				}
			}
			back, err := residentIDFF1(f, out, nil, false)
			if err != nil || back[:17] != in[:17] {
				t.Fatal("does not decrypt")
			}
			seen[out] = true
		}
		if len(seen) != 2 {
			t.Fatalf("FF1 not deterministic per input: %d outputs", len(seen))
		}
	}
}
