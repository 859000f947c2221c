package phi_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"phix/errcode"
	"phix/fhir"
	"phix/fhir/search"
	"phix/store"
	"phix/store/sqlite"
	"phix/suite"
)

// twoStores writes the same patients into a plaintext store and a protected
// one (sealed bodies, Seal's entries).
func twoStores(t *testing.T, e *env, pats []*fhir.Resource, prot store.Store) (plain, _ store.Store, protPath string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	var err error
	if plain, err = sqlite.Open(filepath.Join(dir, "plain.db")); err != nil {
		t.Fatal(err)
	}
	if prot == nil {
		protPath = filepath.Join(dir, "prot.db")
		if prot, err = sqlite.Open(protPath); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = plain.Close(); _ = prot.Close() })
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, r := range pats {
		body, _ := fhir.Marshal(r)
		if err := plain.Tx(ctx, func(tx store.Tx) error {
			_, err := tx.Put(ctx, &store.Write{Type: r.Type, ID: r.ID, Version: 1, Method: "POST", Body: body, LastUpdated: now, Index: search.Extract(r)})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		stored, entries, err := e.p.Seal(ctx, r, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		sb, _ := fhir.Marshal(stored)
		if err := prot.Tx(ctx, func(tx store.Tx) error {
			_, err := tx.Put(ctx, &store.Write{Type: r.Type, ID: r.ID, Version: 1, Method: "POST", Body: sb, LastUpdated: now, Index: entries})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	return plain, prot, protPath
}

func ids(t *testing.T, s store.Store, q *search.Query) []string {
	t.Helper()
	res, err := s.Search(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range res.Matches {
		out = append(out, m.ID)
	}
	slices.Sort(out)
	return out
}

func chinesePatients() []*fhir.Resource {
	var out []*fhir.Resource
	for i, n := range []struct{ family, given string }{{"陈", "小明"}, {"陈", "大文"}, {"程", "小明"}, {"Chen", "Li"}} {
		r, err := fhir.Parse([]byte(fmt.Sprintf(`{"resourceType":"Patient","id":"cn%d","name":[{"family":%q,"given":[%q]}],"birthDate":"19%02d-0%d-1%d"}`, i, n.family, n.given, 70+i, i+1, i)), fhir.ParseOptions{})
		if err != nil {
			panic(err)
		}
		out = append(out, r)
	}
	return out
}

func testPatients(t *testing.T) []*fhir.Resource {
	pats := chinesePatients()
	for _, b := range synthea(t, 0) {
		for _, r := range b.resources {
			if r.Type == "Patient" {
				pats = append(pats, r)
			}
		}
	}
	return pats
}

func TestBlindSearchEquivalence(t *testing.T) {
	e := newEnv(t, suite.Intl)
	pats := testPatients(t)
	plain, prot, protPath := twoStores(t, e, pats, nil)
	checkEquivalence(t, e, pats, plain, prot)

	// Raw scan of the protected database: no name, identifier, phone, email
	// or address of any patient anywhere in the file or its WAL.
	if err := prot.Close(); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	for _, f := range []string{protPath, protPath + "-wal"} {
		b, _ := os.ReadFile(f)
		raw = append(raw, b...)
	}
	scanRaw(t, raw, pats)

	// Control: the same scan finds PHI in the plaintext store.
	if err := plain.Close(); err != nil {
		t.Fatal(err)
	}
	var plainRaw []byte
	for _, f := range []string{filepath.Join(filepath.Dir(protPath), "plain.db"), filepath.Join(filepath.Dir(protPath), "plain.db-wal")} {
		b, _ := os.ReadFile(f)
		plainRaw = append(plainRaw, b...)
	}
	found := 0
	for _, r := range pats[4:] {
		for _, s := range phiStrings(r) {
			if contains(plainRaw, s) {
				found++
			}
		}
	}
	if found == 0 {
		t.Fatal("control: the scan finds nothing in the plaintext store")
	}
}

func scanRaw(t *testing.T, raw []byte, pats []*fhir.Resource) {
	t.Helper()
	if len(raw) < 10000 {
		t.Fatalf("raw store is only %d bytes", len(raw))
	}
	for _, r := range pats[4:] {
		for _, s := range phiStrings(r) {
			if contains(raw, s) {
				t.Fatalf("raw store holds PHI of Patient/%s", r.ID)
			}
		}
	}
	for _, s := range []string{"陈", "小明", "Chen"} {
		if strings.Contains(string(raw), s) {
			t.Fatal("raw store holds a Chinese test name")
		}
	}
}

func checkEquivalence(t *testing.T, e *env, pats []*fhir.Resource, plain, prot store.Store) {
	t.Helper()
	ctx := context.Background()
	queries := []string{"name=陈", "name=陈小", "family=陈", "given=小明", "name=chen", "family:exact=Chen", "family:exact=chen",
		"birthdate=1970", "birthdate=1971-02", "birthdate=1972-03-12", "birthdate=ge1972-03-12", "birthdate=lt1971-02-11",
		"birthdate=gt1970&birthdate=le1990-06"}
	for _, r := range pats[4:] {
		o := r.Object
		n := list(o["name"])[0]
		fam := str(n["family"])
		queries = append(queries, "family="+fam, "name="+fam[:3], "family:exact="+fam, "given="+str(anyList(n["given"])[0]))
		for _, id := range list(o["identifier"]) {
			queries = append(queries, "identifier="+url.QueryEscape(str(id["value"])),
				"identifier="+url.QueryEscape(str(id["system"])+"|"+str(id["value"])))
		}
		for _, c := range list(o["telecom"]) {
			queries = append(queries, "telecom="+url.QueryEscape(str(c["value"])))
			if str(c["system"]) == "phone" {
				queries = append(queries, "phone="+url.QueryEscape(str(c["value"])))
			}
		}
		a := list(o["address"])[0]
		queries = append(queries, "address-city="+url.QueryEscape(str(a["city"])), "address-postalcode="+str(a["postalCode"]))
		bd := str(o["birthDate"])
		queries = append(queries, "birthdate="+bd, "birthdate="+bd[:7], "birthdate="+bd[:4], "birthdate=ge"+bd, "birthdate=lt"+bd[:7])
	}
	nonEmpty := 0
	for _, qs := range queries {
		vals, err := url.ParseQuery(qs)
		if err != nil {
			t.Fatal(err)
		}
		vals.Set("_count", "1000")
		q1, _, err := search.Parse("Patient", vals, search.ParseOptions{})
		if err != nil {
			t.Fatalf("%s: %v", qs, err)
		}
		q2, _, _ := search.Parse("Patient", vals, search.ParseOptions{})
		if err := e.p.BlindQuery(ctx, q2); err != nil {
			t.Fatalf("%s: BlindQuery: %v", qs, err)
		}
		want, got := ids(t, plain, q1), ids(t, prot, q2)
		if !slices.Equal(want, got) {
			t.Errorf("%s: plaintext %v, blind %v", qs, want, got)
		}
		if len(want) > 0 {
			nonEmpty++
		}
	}
	if nonEmpty < len(queries)*3/4 {
		t.Fatalf("only %d of %d queries match anything", nonEmpty, len(queries))
	}
}

func TestBlindQueryRefusals(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, suite.Intl)
	for _, qs := range []string{"name:contains=hen", "birthdate=ne1980", "birthdate=ap1980", "identifier:text=x"} {
		vals, _ := url.ParseQuery(qs)
		q, _, err := search.Parse("Patient", vals, search.ParseOptions{})
		if err != nil {
			t.Fatalf("%s: %v", qs, err)
		}
		if err := e.p.BlindQuery(ctx, q); errcode.CodeOf(err) != errcode.PHIEncryptionRequired {
			t.Errorf("%s: %v", qs, err)
		}
	}
}
