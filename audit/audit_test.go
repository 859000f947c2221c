package audit_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"phix/audit"
	"phix/audit/audittest"
	"phix/suite"
)

// sortedCompact re-encodes JSON through maps, which encoding/json writes with
// sorted keys: the reference canonical form.
func sortedCompact(t *testing.T, b []byte) []byte {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func TestCanonicalIsSortedCompact(t *testing.T) {
	p := audittest.Pseudonyms(t)
	for _, a := range []audit.Action{audit.ActionRead, audit.ActionSecurityAlert, audit.ActionSearch} {
		ev := audittest.SampleEvent(p, 3, a)
		ev.PayloadHash = "sha256:" + strings.Repeat("ab", 32)
		ev.What.QueryHash = strings.Repeat("cd", 32)
		ev.What.QueryParams = []string{"name", "birthdate"}
		ev.Who.CertFP = strings.Repeat("0f", 32)
		ev.Time = time.Date(2025, 1, 2, 3, 4, 5, 123456000, time.UTC)
		ev.Index = 42
		ev.V = audit.SchemaVersion
		got, err := ev.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		if want := sortedCompact(t, got); !bytes.Equal(got, want) {
			t.Fatalf("canonical form is not sorted and compact:\n got %s\nwant %s", got, want)
		}
		back, err := audit.ParseEvent(got)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := back.Canonical()
		if !bytes.Equal(got, again) {
			t.Fatalf("canonical form does not round-trip")
		}
	}
}

func TestCheckpointNoteBothSuites(t *testing.T) {
	for _, id := range suite.IDs() {
		t.Run(string(id), func(t *testing.T) {
			key := audittest.SigningKey(t, id)
			s, err := audit.NewSigner("hospital-a.phix/audit", key)
			if err != nil {
				t.Fatal(err)
			}
			v, err := audit.ParseVerifier(s.VerifierKey())
			if err != nil {
				t.Fatal(err)
			}
			cp := audit.Checkpoint{Origin: "hospital-a.phix/audit", Size: 123, Root: tlog.RecordHash([]byte("x"))}
			note, err := s.Sign(cp)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(note, []byte("hospital-a.phix/audit\n123\n")) || !bytes.Contains(note, []byte("\n\n\u2014 hospital-a.phix/audit ")) {
				t.Fatalf("not in the note format:\n%s", note)
			}
			got, err := audit.OpenCheckpoint(note, []*audit.Verifier{v})
			if err != nil || got != cp {
				t.Fatalf("open: %+v %v", got, err)
			}
			// Any change to the signed text breaks the signature.
			for _, mut := range [][2]string{{"\n123\n", "\n124\n"}, {"hospital-a", "hospital-b"}} {
				bad := bytes.Replace(note, []byte(mut[0]), []byte(mut[1]), 1)
				if _, err := audit.OpenCheckpoint(bad, []*audit.Verifier{v}); err == nil {
					t.Fatalf("mutated note %q accepted", mut)
				}
			}
			// A different key is not trusted.
			other, _ := audit.NewSigner("hospital-a.phix/audit", audittest.SigningKey(t, otherSuite(id)))
			ov, _ := audit.ParseVerifier(other.VerifierKey())
			if _, err := audit.OpenCheckpoint(note, []*audit.Verifier{ov}); !errors.Is(err, audit.ErrCheckpointSignature) {
				t.Fatalf("note accepted under another key: %v", err)
			}
		})
	}
}

func otherSuite(id suite.ID) suite.ID {
	if id == suite.Intl {
		return suite.GM
	}
	return suite.Intl
}

func TestPseudonyms(t *testing.T) {
	s, _ := suite.Lookup(suite.GM)
	if _, err := audit.NewPseudonymizer(s, make([]byte, 16)); !errors.Is(err, audit.ErrPseudonymKey) {
		t.Fatalf("short key accepted: %v", err)
	}
	p1 := audittest.Pseudonyms(t)
	p2 := audittest.Pseudonyms(t)
	a := p1.Patient("123")
	if !audit.IsPseudonym(a) || a != p1.Resource("Patient", "123") {
		t.Fatal("patient pseudonym is not the resource pseudonym")
	}
	if ref, ok := p1.Reference("Patient/123"); !ok || ref != a {
		t.Fatal("reference pseudonym differs")
	}
	if a == p2.Patient("123") || a == p1.Patient("124") || a == p1.User("123") || a == p1.Resource("Observation", "123") {
		t.Fatal("pseudonyms collide across keys, ids, or domains")
	}
	for _, bad := range []string{"Patient", "Patient/", "patient/1", "Patient/a b", "/1"} {
		if _, ok := p1.Reference(bad); ok {
			t.Fatalf("reference %q accepted", bad)
		}
	}
}
