package search_test

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	"phix/fhir/search"
)

func TestFullTextTokens(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"Bone metastases", []string{"bone", "metastases"}},
		{"O'Brien-Smith, M.D.", []string{"o", "brien", "smith", "m", "d"}},
		{"Renée MÜLLER Straße", []string{"renee", "muller", "strasse"}},
		{"Ｚｈａｎｇ 2.5mg", []string{"zhang", "2", "5mg"}},
		{"张三丰", []string{"张三", "三丰"}},
		{"张", []string{"u张"}},
		{"患者张三，诊断：肺癌", []string{"患者", "者张", "张三", "诊断", "肺癌"}},
		{"李4号", []string{"u李", "4", "u号"}},
		{"東京タワー", []string{"東京", "京タ", "タワ", "ワー"}},
		{"서울 병원", []string{"서울", "병원"}},
		{"...!!", nil},
	} {
		if got := search.FullTextTokens(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("FullTextTokens(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	long := strings.Repeat("a", 200)
	if got := search.FullTextTokens(long); len(got) != 1 || len(got[0]) != search.MaxTokenBytes {
		t.Errorf("long token: %d tokens, %d bytes", len(got), len(got[0]))
	}
}

func TestFullTextOf(t *testing.T) {
	obj := map[string]any{
		"resourceType": "Patient", "id": "shouldnotappear",
		"text":                 map[string]any{"status": "generated", "div": `<div xmlns="http://www.w3.org/1999/xhtml"><p>Fever&amp;<b>cough</b>&#x54;&lt;</p>张三</div>`},
		"name":                 []any{map[string]any{"family": "Smith", "given": []any{"Ann"}}},
		"managingOrganization": map[string]any{"reference": "Organization/refid", "display": "General Hospital"},
		"identifier":           []any{map[string]any{"system": "http://sys.example", "value": "MRN7"}},
		"extension": []any{
			map[string]any{"url": "urn:phix:fhir:StructureDefinition:encrypted-value", "valueString": "ciphertext"},
			map[string]any{"url": "http://example.org/fhir/StructureDefinition/hmac-authentication", "extension": []any{map[string]any{"url": "hmac", "valueString": "macvalue"}}},
			map[string]any{"url": "http://hl7.org/race", "valueString": "Asian"},
		},
	}
	d := search.FullTextOf(obj)
	if want := []string{"fever", "cough", "t", "张三", "u张", "u三"}; !slices.Equal(d.Narrative, want) {
		t.Errorf("narrative %q, want %q", d.Narrative, want)
	}
	for _, w := range []string{"smith", "ann", "general", "hospital", "mrn7", "asian", "fever", "张三", "u三"} {
		if !slices.Contains(d.Content, w) {
			t.Errorf("content lacks %q: %q", w, d.Content)
		}
	}
	for _, w := range []string{"shouldnotappear", "refid", "organization", "sys", "ciphertext", "macvalue", "patient", "xmlns", "div", "p", "b"} {
		if slices.Contains(d.Content, w) {
			t.Errorf("content has %q: %q", w, d.Content)
		}
	}
	if d := search.FullTextOf(map[string]any{"resourceType": "Basic"}); !d.Empty() {
		t.Errorf("empty resource: %+v", d)
	}
	// The document is capped.
	big := strings.Repeat("word ", search.MaxFullTextTokens+100)
	if d := search.FullTextOf(map[string]any{"text": map[string]any{"div": big}}); len(d.Narrative) != search.MaxFullTextTokens {
		t.Errorf("cap: %d tokens", len(d.Narrative))
	}
}

// ftString renders a query for comparison.
func ftString(q *search.FullTextQuery) string {
	switch q.Op {
	case search.FTPhrase:
		s := "[" + strings.Join(q.Tokens, " ") + "]"
		if q.Prefix {
			s += "*"
		}
		return s
	}
	op := " & "
	if q.Op == search.FTOr {
		op = " | "
	}
	parts := make([]string, len(q.Args))
	for i, a := range q.Args {
		parts[i] = ftString(a)
	}
	return "(" + strings.Join(parts, op) + ")"
}

func TestParseFullText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"cancer", "[cancer]"},
		{"bone metastases", "([bone] & [metastases])"},
		{"bone AND metastases", "([bone] & [metastases])"},
		{"(bone OR liver) and metastases", "(([bone] | [liver]) & [metastases])"},
		{"a or b or c", "([a] | [b] | [c])"},
		{"a b or c d", "(([a] & [b]) | ([c] & [d]))"},
		{`"no cancer" fracture`, "([no cancer] & [fracture])"},
		{`"and"`, "[and]"},
		{"metast*", "[metast]*"},
		{"O'Brien", "[o brien]"},
		{"张三丰", "[张三 三丰]"},
		{"张*", "[u张]"},
		{"bone - cancer", "([bone] & [cancer])"},
		{"((x))", "[x]"},
	} {
		q, err := search.ParseFullText(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got := ftString(q); got != tc.want {
			t.Errorf("%q: %s, want %s", tc.in, got, tc.want)
		}
	}
	for _, in := range []string{
		"", "   ", "!!!", `"unterminated`, "(bone", "bone)", "OR bone", "bone OR", "AND x", "x AND", "x AND AND y",
		"x OR OR y", "()", strings.Repeat("(", 40) + "x" + strings.Repeat(")", 40),
		strings.Repeat("w ", search.MaxFullTextTerms+1),
		`"` + strings.Repeat("长", 300) + `"`,
	} {
		if q, err := search.ParseFullText(in); err == nil {
			t.Errorf("%q: parsed as %s, want an error", in, ftString(q))
		} else if strings.Contains(err.Error(), "unterminated") && strings.Contains(err.Error(), in) && in != "" {
			t.Errorf("error quotes the value: %v", err)
		}
	}
}

func TestParseFullTextClause(t *testing.T) {
	q, warns, err := search.Parse("Condition", url.Values{"_text": {"bone,liver"}, "_content": {"metastases"}}, search.ParseOptions{Strict: true})
	if err != nil || len(warns) != 0 || len(q.Clauses) != 2 {
		t.Fatalf("%v %v %+v", err, warns, q)
	}
	c := q.Clauses[0]
	if !search.IsNarrativeText(c.Param) {
		c = q.Clauses[1]
	}
	if !search.IsFullText(c.Param) || len(c.Values) != 2 || c.Values[1].Text == nil || ftString(c.Values[1].Text) != "[liver]" {
		t.Errorf("clause %+v", c)
	}
	if !search.IsNarrativeText(q.Clauses[0].Param) && !search.IsNarrativeText(q.Clauses[1].Param) {
		t.Error("no _text clause")
	}
	// System level: _content applies to every type.
	if _, _, err := search.Parse("", url.Values{"_content": {"x"}}, search.ParseOptions{Strict: true}); err != nil {
		t.Errorf("system level: %v", err)
	}
	for _, tc := range []struct{ query, code string }{
		{"_text:missing=true", search.CodeInvalidModifier},
		{"_content:exact=x", search.CodeInvalidModifier},
		{"_text=(x", search.CodeInvalidValue},
		{"_text=" + url.QueryEscape(strings.Repeat("w ", 70)), search.CodeTooMany},
	} {
		vals, _ := url.ParseQuery(tc.query)
		_, _, err := search.Parse("Patient", vals, search.ParseOptions{})
		var se *search.Error
		if !errors.As(err, &se) || se.Code != tc.code {
			t.Errorf("%s: %v, want %s", tc.query, err, tc.code)
		}
	}
	// Bundle is not a DomainResource: _text does not apply.
	if _, _, err := search.Parse("Bundle", url.Values{"_text": {"x"}}, search.ParseOptions{Strict: true}); err == nil {
		t.Error("Bundle?_text accepted")
	}
}

func FuzzParseFullText(f *testing.F) {
	for _, s := range []string{"cancer", "(bone OR liver) and metastases", `"no cancer" x*`, "张三丰 北京", "((a", `"`, "a OR", "OR", "*", "u张*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := search.ParseFullText(s)
		if err != nil {
			if q != nil {
				t.Fatal("query and error")
			}
			return
		}
		var walk func(q *search.FullTextQuery, depth int)
		terms := 0
		walk = func(q *search.FullTextQuery, depth int) {
			if depth > search.MaxFullTextDepth+2 {
				t.Fatalf("depth %d", depth)
			}
			switch q.Op {
			case search.FTPhrase:
				terms++
				if len(q.Tokens) == 0 {
					t.Fatal("empty phrase")
				}
				for _, tok := range q.Tokens {
					if tok == "" || len(tok) > search.MaxTokenBytes || strings.ContainsAny(tok, " \"'\\()*:&|!<>") {
						t.Fatalf("bad token %q", tok)
					}
				}
			default:
				if len(q.Args) < 2 {
					t.Fatalf("op with %d args", len(q.Args))
				}
				for _, a := range q.Args {
					walk(a, depth+1)
				}
			}
		}
		walk(q, 0)
		if terms > search.MaxFullTextTerms {
			t.Fatalf("%d terms", terms)
		}
	})
}
