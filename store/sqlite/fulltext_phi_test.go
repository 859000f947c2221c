package sqlite_test

import (
	"context"
	"crypto/rand"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"phix/fhir"
	"phix/fhir/search"
	"phix/internal/testenv"
	"phix/kms"
	"phix/kms/keyring"
	kmsstore "phix/kms/sqlstore"
	"phix/phi"
	"phix/store"
	"phix/store/sqlite"
	"phix/suite"
)

func newProtector(t *testing.T) *phi.Protector {
	ctx := context.Background()
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	master, err := keyring.MasterKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kmsstore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "keyring.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	be, err := keyring.Open(ctx, st, master, keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := kms.Open(ctx, kms.Config{Store: st, Backend: be})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.InitHospital(ctx, "h", string(suite.Intl)); err != nil {
		t.Fatal(err)
	}
	s, err := suite.Lookup(suite.Intl)
	if err != nil {
		t.Fatal(err)
	}
	p, err := phi.New(phi.Config{KMS: m, Hospital: "h", Suite: s})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFullTextIndexesStoredForm: the full-text index is built from the body
// the store receives. A Synthea Patient stored in clear is found by its
// names in _text and _content; stored sealed (field encryption), by none of
// them, and the index holds none of their tokens.
func TestFullTextIndexesStoredForm(t *testing.T) {
	bundles := testenv.SyntheaBundles(t)
	if len(bundles) > 3 {
		bundles = bundles[:3]
	}
	prot := newProtector(t)
	ctx := context.Background()
	for _, sealed := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "ft.db")
		s, err := sqlite.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		var words []string
		for _, b := range bundles {
			pw := testenv.SyntheaPHI(t, b.Data)
			for _, raw := range b.Entries(t) {
				r, err := fhir.Parse(raw, fhir.ParseOptions{})
				if err != nil || r.Type != "Patient" {
					continue
				}
				if sealed {
					if r, _, err = prot.Seal(ctx, r, r.ID); err != nil {
						t.Fatal(err)
					}
				}
				body, err := fhir.Marshal(r)
				if err != nil {
					t.Fatal(err)
				}
				w := &store.Write{Type: "Patient", ID: r.ID, Version: 1, Method: "POST", LastUpdated: time.Now(), Body: body}
				if err := s.Tx(ctx, func(tx store.Tx) error { _, err := tx.Put(ctx, w); return err }); err != nil {
					t.Fatal(err)
				}
			}
			for _, w := range pw.Words {
				// Names end in digits in Synthea ("Aaron697"): one token each.
				if len(search.FullTextTokens(w)) == 1 {
					words = append(words, w)
				}
			}
		}
		if len(words) == 0 {
			t.Fatal("no PHI words")
		}
		for _, w := range words {
			for _, p := range []string{"_text", "_content"} {
				q, _, err := search.Parse("Patient", url.Values{p: {w}}, search.ParseOptions{Strict: true})
				if err != nil {
					t.Fatal(err)
				}
				q.Total = search.TotalAccurate
				res, err := s.Search(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				if sealed && res.Total != 0 {
					t.Errorf("sealed: %s finds %d Patients by a PHI word", p, res.Total)
				}
				if !sealed && p == "_content" && res.Total == 0 {
					t.Errorf("clear: _content does not find a Patient by a name word")
				}
			}
		}
		s.Close()
		// The lower-cased words are only in the full-text index (bodies keep
		// the case): found in the file in clear (FTS5 compresses shared term
		// prefixes, so not every word shows whole), never when sealed.
		raw := readAll(t, path)
		found := 0
		for _, w := range words {
			if testenv.ContainsWord(raw, strings.ToLower(w)) {
				found++
			}
		}
		t.Logf("sealed=%v: %d of %d lower-cased PHI words in the raw file", sealed, found, len(words))
		if sealed && found > 0 {
			t.Errorf("sealed: the database holds %d lower-cased PHI words", found)
		}
		if !sealed && found == 0 {
			t.Error("clear: the raw scan finds no indexed word: it could not detect a leak")
		}
	}
}

// readAll returns the database file and its WAL, if any.
func readAll(t *testing.T, path string) string {
	var out []byte
	for _, p := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	return string(out)
}
