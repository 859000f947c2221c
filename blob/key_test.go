package blob

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateKey(t *testing.T) {
	for _, k := range []string{"a", "t1/f1", "A-b_c.d/0", "x/y/z", "a.b", "a..b", strings.Repeat("a", MaxKeyLen)} {
		if err := ValidateKey(k); err != nil {
			t.Errorf("ValidateKey(%q) = %v", k, err)
		}
	}
	for _, k := range []string{"", "/a", "a/", "a//b", "..", "../a", "a/..", ".", ".a", "a\\b", "a\x00", "a b", "é", strings.Repeat("a", MaxKeyLen+1)} {
		err := ValidateKey(k)
		if !errors.Is(err, ErrInvalidKey) || Code(err) != "BLOB-001" {
			t.Errorf("ValidateKey(%q) = %v", k, err)
		}
	}
	if k, err := Key("tr1", "file-2"); err != nil || k != "tr1/file-2" {
		t.Errorf("Key = %q, %v", k, err)
	}
	if _, err := Key("../x", "f"); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Key(../x) = %v", err)
	}
	if _, err := Key("a/b", "f"); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Key(a/b) = %v", err)
	}
}

func FuzzValidateKey(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "a\\b", "", "a//b", ".x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, k string) {
		if ValidateKey(k) != nil {
			return
		}
		for _, bad := range []string{"..", "\\", "\x00", "//"} {
			if strings.Contains(k, bad) && !(bad == ".." && !strings.Contains("/"+k+"/", "/../")) && bad != ".." {
				t.Fatalf("accepted %q containing %q", k, bad)
			}
		}
		if strings.HasPrefix(k, "/") || strings.HasSuffix(k, "/") || strings.Contains("/"+k, "/.") {
			t.Fatalf("accepted %q", k)
		}
	})
}
