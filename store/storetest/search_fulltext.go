package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"phix/fhir/search"
	"phix/store"
)

// ftWrite is version v of a resource whose body has the narrative div (none
// when "") and the extra top-level fields.
func ftWrite(typ, id string, v int64, div string, extra map[string]any) *store.Write {
	obj := map[string]any{"resourceType": typ, "id": id, "meta": map[string]any{"versionId": "1"}}
	if div != "" {
		obj["text"] = map[string]any{"status": "generated", "div": `<div xmlns="http://www.w3.org/1999/xhtml">` + div + `</div>`}
	}
	for k, x := range extra {
		obj[k] = x
	}
	b, err := json.Marshal(obj)
	if err != nil {
		panic(err)
	}
	return &store.Write{
		Type: typ, ID: id, Version: v, Method: "PUT",
		LastUpdated: t0.Add(time.Duration(v) * time.Minute), Body: b,
	}
}

func name(family string, given ...string) map[string]any {
	return map[string]any{"name": []any{map[string]any{"family": family, "given": given}}}
}

// ftQuery parses a query string the way the server does, so the clauses carry
// the registry's _text/_content definitions.
func ftQuery(t *testing.T, typ, query string) *search.Query {
	t.Helper()
	vals, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	qq, _, err := search.Parse(typ, vals, search.ParseOptions{Strict: true})
	if err != nil {
		t.Fatalf("parse %s: %v", query, err)
	}
	qq.Total = search.TotalAccurate
	return qq
}

func testSearchFullText(t *testing.T, open Opener) {
	s := open(t)
	put(t, s,
		ftWrite("Patient", "a", 1, `<p>Patient has <b>bone</b> metastases &amp; liver cancer.</p>`, name("Smith", "Alice")),
		ftWrite("Patient", "b", 1, `<p>Bone fracture, no cancer</p>`, name("Jones", "Bob")),
		ftWrite("Patient", "c", 1, `<p>Liver function normal</p>`, name("Müller", "Renée")),
		ftWrite("Patient", "d", 1, "", map[string]any{
			"name":    []any{map[string]any{"text": "张三丰"}},
			"address": []any{map[string]any{"city": "北京市"}},
			// phix machinery (a sealed value) is never content.
			"extension": []any{map[string]any{"url": "urn:phix:fhir:StructureDefinition:encrypted-value", "valueString": "Zm9vYmFyY2lwaGVydGV4dA"}},
		}),
		ftWrite("Patient", "e", 1, `<p>患者张三，诊断：肺癌。</p>`, nil),
		ftWrite("Observation", "o", 1, `<p>Bone density scan</p>`, nil),
	)
	for _, tc := range []struct {
		typ, query string
		want       []string
	}{
		{"Patient", "_text=bone", []string{"Patient/a", "Patient/b"}},
		{"Patient", "_text=BONE", []string{"Patient/a", "Patient/b"}},
		{"Patient", "_text=bone metastases", []string{"Patient/a"}},
		{"Patient", "_text=bone AND cancer", []string{"Patient/a", "Patient/b"}},
		{"Patient", "_text=(bone OR liver) and metastases", []string{"Patient/a"}},
		{"Patient", "_text=fracture OR function", []string{"Patient/b", "Patient/c"}},
		{"Patient", "_text=fracture,function", []string{"Patient/b", "Patient/c"}},
		{"Patient", "_text=fracture&_text=cancer", []string{"Patient/b"}},
		{"Patient", `_text="no cancer"`, []string{"Patient/b"}},
		{"Patient", `_text="cancer no"`, nil},
		{"Patient", "_text=metast*", []string{"Patient/a"}},
		{"Patient", "_text=metast", nil},
		{"Patient", "_text=smith", nil}, // names are not narrative
		{"Patient", "_content=smith", []string{"Patient/a"}},
		{"Patient", "_content=metastases", []string{"Patient/a"}}, // narrative is content
		{"Patient", "_content=renee", []string{"Patient/c"}},
		{"Patient", "_content=RENÉE MÜLLER", []string{"Patient/c"}},
		{"Patient", "_content=Zm9vYmFyY2lwaGVydGV4dA", nil},
		// Chinese: bigrams, and unigrams for one character.
		{"Patient", "_text=肺癌", []string{"Patient/e"}},
		{"Patient", "_text=张三", []string{"Patient/e"}},
		{"Patient", "_text=张", []string{"Patient/e"}},
		{"Patient", "_text=癌肺", nil},
		{"Patient", "_text=张三丰", nil},
		{"Patient", "_content=张三丰", []string{"Patient/d"}},
		{"Patient", "_content=三丰", []string{"Patient/d"}},
		{"Patient", "_content=丰", []string{"Patient/d"}},
		{"Patient", "_content=北京", []string{"Patient/d"}},
		{"Patient", "_content=张三", []string{"Patient/d", "Patient/e"}},
		{"Patient", "_content=张三 北京", []string{"Patient/d"}},
		// Combined with other parameters and the type.
		{"Patient", "_text=bone&_id=b", []string{"Patient/b"}},
		{"Observation", "_text=bone", []string{"Observation/o"}},
		{"", "_content=bone", []string{"Observation/o", "Patient/a", "Patient/b"}},
	} {
		t.Run(tc.typ+"?"+tc.query, func(t *testing.T) {
			expect(t, s, ftQuery(t, tc.typ, tc.query), tc.want...)
		})
	}

	// At the end of a chain.
	obs := ftWrite("Observation", "o2", 1, "", nil)
	obs.Index = []search.Entry{ref("subject", "Patient", "e")}
	put(t, s, obs)
	expect(t, s, ftQuery(t, "Observation", "subject:Patient._text=肺癌"), "Observation/o2")
	expect(t, s, ftQuery(t, "Observation", "subject:Patient._text=fracture"))

	// A page smaller than the matches still reports the full total.
	qq := ftQuery(t, "", "_content=bone&_count=1")
	res, err := s.Search(ctx, qq)
	if err != nil || res.Total != 3 || len(res.Matches) != 1 {
		t.Fatalf("paged total: %v %+v", err, res)
	}

	// An update drops the old terms; a deletion drops all.
	put(t, s, ftWrite("Patient", "a", 2, `<p>Healed</p>`, name("Smith", "Alice")))
	expect(t, s, ftQuery(t, "Patient", "_text=metastases"))
	expect(t, s, ftQuery(t, "Patient", "_content=metastases"))
	expect(t, s, ftQuery(t, "Patient", "_text=healed"), "Patient/a")
	del := ftWrite("Patient", "b", 2, "", nil)
	del.Deleted, del.Method, del.Body = true, "DELETE", nil
	put(t, s, del)
	expect(t, s, ftQuery(t, "Patient", "_text=fracture"))
	expect(t, s, ftQuery(t, "", "_content=bone"), "Observation/o")

	// Inside a transaction the index follows the transaction's writes; a
	// rolled-back write leaves nothing behind.
	boom := errors.New("roll back")
	err = s.Tx(context.Background(), func(tx store.Tx) error {
		if _, err := tx.Put(ctx, ftWrite("Patient", "f", 1, "<p>Osteoporosis</p>", nil)); err != nil {
			return err
		}
		if got := ids(t, tx, ftQuery(t, "Patient", "_text=osteoporosis")); len(got) != 1 {
			t.Errorf("own write: %v", got)
		}
		if _, err := tx.Put(ctx, ftWrite("Patient", "a", 3, "<p>Osteoporosis too</p>", nil)); err != nil {
			return err
		}
		if got := ids(t, tx, ftQuery(t, "Patient", "_text=healed")); len(got) != 0 {
			t.Errorf("own update: %v", got)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("tx: %v", err)
	}
	expect(t, s, ftQuery(t, "Patient", "_text=osteoporosis"))
	expect(t, s, ftQuery(t, "Patient", "_text=healed"), "Patient/a")

	// A document at the size caps (one word repeated thousands of times,
	// PostgreSQL keeps 256 positions per lexeme) is written and found.
	big := strings.Repeat("echo ", 3000) + strings.Repeat("x", 500) + " " + strings.Repeat("回声", 3000)
	put(t, s, ftWrite("Patient", "big", 1, "<p>"+big+"</p>", nil))
	expect(t, s, ftQuery(t, "Patient", "_text=echo 回声"), "Patient/big")
	expect(t, s, ftQuery(t, "Patient", `_text="echo echo"`), "Patient/big")

	// Awkward text round-trips on both engines: each is found by itself as
	// a phrase, and no query syntax of either engine leaks through.
	tricky := []string{`NEAR(a b)`, `a:b c^d`, `-x +y`, `'quoted' "dq"`, `back\slash`, `ﬁ ß Ǆ`, `東京タワー`,
		`ＡＢＣ１２３`, `Ελληνικά`, `Ωmega`, `100% & <b>bold</b>`, `x*y`, `AND OR NOT`, `u张 u`}
	for i, text := range tricky {
		id := fmt.Sprintf("tricky%d", i)
		put(t, s, ftWrite("Basic", id, 1, "<p>"+html.EscapeString(text)+"</p>", nil))
		esc := strings.NewReplacer(`\`, `\\`, ",", `\,`, `"`, " ").Replace(text)
		if got := ids(t, s, ftQuery(t, "Basic", "_text="+url.QueryEscape(`"`+esc+`"`))); !slices.Contains(got, "Basic/"+id) {
			t.Errorf("tricky text %d not found by its phrase: %v", i, got)
		}
	}

	// Modifiers are meaningless on full text: refused, never ignored.
	c := ftQuery(t, "Patient", "_text=bone").Clauses[0]
	c.Modifier = "missing"
	if _, err := s.Search(ctx, q("Patient", c)); !errors.Is(err, store.ErrInvalid) {
		t.Errorf(":missing on _text: %v, want ErrInvalid", err)
	}
}
