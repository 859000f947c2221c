package search_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"phix/fhir/search"
)

func near(a, b float64) bool { return a-b < 1e-12 && b-a < 1e-12 }

func mustQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatalf("ParseQuery(%q): %v", raw, err)
	}
	return v
}

// one returns the only clause's only value.
func one(t *testing.T, q *search.Query) (search.Clause, search.Value) {
	t.Helper()
	if len(q.Clauses) != 1 || len(q.Clauses[0].Values) != 1 {
		t.Fatalf("want one clause with one value, got %+v", q.Clauses)
	}
	return q.Clauses[0], q.Clauses[0].Values[0]
}

func TestParseValues(t *testing.T) {
	tests := []struct {
		name  string
		typ   string
		query string
		check func(t *testing.T, q *search.Query)
	}{
		{"string", "Patient", "family=Zh%C4%81ng", func(t *testing.T, q *search.Query) {
			c, v := one(t, q)
			if c.Param.Code != "family" || v.Str != "zhang" || v.Raw != "Zhāng" || c.Modifier != "" {
				t.Errorf("%+v %+v", c, v)
			}
		}},
		{"string exact", "Patient", "family:exact=Chalmers", func(t *testing.T, q *search.Query) {
			c, v := one(t, q)
			if c.Modifier != "exact" || v.Raw != "Chalmers" {
				t.Errorf("%+v", v)
			}
		}},
		{"string contains", "Patient", "name:contains=alm", func(t *testing.T, q *search.Query) {
			if c, v := one(t, q); c.Modifier != "contains" || v.Str != "alm" {
				t.Errorf("%+v", v)
			}
		}},
		{"comma is OR", "Patient", "family=a,b,c", func(t *testing.T, q *search.Query) {
			if len(q.Clauses) != 1 || len(q.Clauses[0].Values) != 3 || q.Clauses[0].Values[2].Str != "c" {
				t.Errorf("%+v", q.Clauses)
			}
		}},
		{"repeat is AND", "Patient", "given=a&given=b", func(t *testing.T, q *search.Query) {
			if len(q.Clauses) != 2 || q.Clauses[1].Values[0].Str != "b" {
				t.Errorf("%+v", q.Clauses)
			}
		}},
		{"escapes", "Patient", `family=a\,b,c\\,d\|e\$f`, func(t *testing.T, q *search.Query) {
			vs := q.Clauses[0].Values
			if len(vs) != 3 || vs[0].Raw != "a,b" || vs[1].Raw != `c\` || vs[2].Raw != "d|e$f" {
				t.Errorf("%+v", vs)
			}
		}},
		{"token system|code", "Observation", "code=http://loinc.org|29463-7", func(t *testing.T, q *search.Query) {
			_, v := one(t, q)
			if !v.HasSystem || v.System != "http://loinc.org" || v.Code != "29463-7" {
				t.Errorf("%+v", v)
			}
		}},
		{"token |code", "Observation", "code=|abc", func(t *testing.T, q *search.Query) {
			if _, v := one(t, q); !v.HasSystem || v.System != "" || v.Code != "abc" {
				t.Errorf("%+v", v)
			}
		}},
		{"token system|", "Observation", "code=http://loinc.org|", func(t *testing.T, q *search.Query) {
			if _, v := one(t, q); !v.HasSystem || v.System != "http://loinc.org" || v.Code != "" {
				t.Errorf("%+v", v)
			}
		}},
		{"token code", "Patient", "gender=male", func(t *testing.T, q *search.Query) {
			if _, v := one(t, q); v.HasSystem || v.Code != "male" {
				t.Errorf("%+v", v)
			}
		}},
		{"token escaped bar", "Patient", `identifier=a\|b`, func(t *testing.T, q *search.Query) {
			if _, v := one(t, q); v.HasSystem || v.Code != "a|b" {
				t.Errorf("%+v", v)
			}
		}},
		{"token not", "Patient", "gender:not=male", func(t *testing.T, q *search.Query) {
			if c, v := one(t, q); c.Modifier != "not" || v.Code != "male" {
				t.Errorf("%+v", v)
			}
		}},
		{"token text", "Observation", "code:text=B%C3%B6dy", func(t *testing.T, q *search.Query) {
			if c, v := one(t, q); c.Modifier != "text" || v.Str != "body" {
				t.Errorf("%+v", v)
			}
		}},
		{"missing", "Patient", "birthdate:missing=true", func(t *testing.T, q *search.Query) {
			if c, v := one(t, q); c.Modifier != "missing" || !v.Missing {
				t.Errorf("%+v", v)
			}
		}},
		{"missing false", "Patient", "email:missing=false", func(t *testing.T, q *search.Query) {
			if _, v := one(t, q); v.Missing {
				t.Errorf("%+v", v)
			}
		}},
		{"_id", "Patient", "_id=abc,def", func(t *testing.T, q *search.Query) {
			if len(q.Clauses) != 1 || q.Clauses[0].Param.Code != "_id" || q.Clauses[0].Values[1].Code != "def" {
				t.Errorf("%+v", q.Clauses)
			}
		}},
		{"_lastUpdated", "Patient", "_lastUpdated=gt2024-01-01T10:00:00Z", func(t *testing.T, q *search.Query) {
			if c, v := one(t, q); c.Param.Code != "_lastUpdated" || v.Prefix != search.PrefixGt || !v.Lo.Equal(ts("2024-01-01T10:00:00Z")) {
				t.Errorf("%+v", v)
			}
		}},
		{"date year", "Patient", "birthdate=1974", func(t *testing.T, q *search.Query) {
			_, v := one(t, q)
			if v.Prefix != "" || !v.Lo.Equal(ts("1974-01-01T00:00:00Z")) || !v.Hi.Equal(ts("1974-12-31T23:59:59.999999999Z")) {
				t.Errorf("%+v", v)
			}
		}},
		{"date month", "Patient", "birthdate=le1974-12", func(t *testing.T, q *search.Query) {
			if _, v := one(t, q); v.Prefix != search.PrefixLe || !v.Hi.Equal(ts("1974-12-31T23:59:59.999999999Z")) {
				t.Errorf("%+v", v)
			}
		}},
		{"date minute with zone", "Encounter", "date=ge2024-03-01T10:00%2B08:00", func(t *testing.T, q *search.Query) {
			if _, v := one(t, q); v.Prefix != search.PrefixGe || !v.Lo.Equal(ts("2024-03-01T02:00:00Z")) || !v.Hi.Equal(ts("2024-03-01T02:00:59.999999999Z")) {
				t.Errorf("%+v", v)
			}
		}},
		{"date second no zone is UTC", "Encounter", "date=2024-03-01T10:00:05", func(t *testing.T, q *search.Query) {
			if _, v := one(t, q); !v.Lo.Equal(ts("2024-03-01T10:00:05Z")) {
				t.Errorf("%+v", v)
			}
		}},
		{"every prefix", "Patient", "birthdate=eq2000,ne2000,gt2000,lt2000,ge2000,le2000,sa2000,eb2000,ap2000", func(t *testing.T, q *search.Query) {
			want := []search.Prefix{"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"}
			for i, v := range q.Clauses[0].Values {
				if v.Prefix != want[i] {
					t.Errorf("value %d prefix %q", i, v.Prefix)
				}
			}
		}},
		{"number", "RiskAssessment", "probability=gt0.8", func(t *testing.T, q *search.Query) {
			if _, v := one(t, q); v.Prefix != search.PrefixGt || v.Num != 0.8 || !near(v.NumLo, 0.75) || !near(v.NumHi, 0.85) {
				t.Errorf("%+v", v)
			}
		}},
		{"number precision", "RiskAssessment", "probability=100", func(t *testing.T, q *search.Query) {
			if _, v := one(t, q); v.NumLo != 99.5 || v.NumHi != 100.5 {
				t.Errorf("%+v", v)
			}
		}},
		{"number exponent", "RiskAssessment", "probability=1e2", func(t *testing.T, q *search.Query) {
			if _, v := one(t, q); v.Num != 100 || v.NumLo != 50 || v.NumHi != 150 {
				t.Errorf("%+v", v)
			}
		}},
		{"negative number", "RiskAssessment", "probability=-1.5", func(t *testing.T, q *search.Query) {
			if _, v := one(t, q); v.Prefix != "" || v.Num != -1.5 {
				t.Errorf("%+v", v)
			}
		}},
		{"quantity full", "Observation", "value-quantity=le5.4|http://unitsofmeasure.org|mg", func(t *testing.T, q *search.Query) {
			_, v := one(t, q)
			// UCUM units are searched in canonical form: 5.4 mg is 0.0054 g.
			if v.Prefix != search.PrefixLe || v.Num != 0.0054 || v.System != "http://unitsofmeasure.org" || v.Code != "g" || !v.HasSystem {
				t.Errorf("%+v", v)
			}
		}},
		{"quantity no system", "Observation", "value-quantity=5.4||mg", func(t *testing.T, q *search.Query) {
			if _, v := one(t, q); v.HasSystem || v.System != "" || v.Code != "g" || v.Num != 0.0054 {
				t.Errorf("%+v", v)
			}
		}},
		{"quantity other system", "Observation", "value-quantity=5.4|http://snomed.info/sct|mg", func(t *testing.T, q *search.Query) {
			if _, v := one(t, q); v.Code != "mg" || v.Num != 5.4 {
				t.Errorf("%+v", v)
			}
		}},
		{"quantity unknown unit", "Observation", "value-quantity=5.4||mm[Hg]", func(t *testing.T, q *search.Query) {
			if _, v := one(t, q); v.Code != "mm[Hg]" || v.Num != 5.4 {
				t.Errorf("%+v", v)
			}
		}},
		{"quantity number only", "Observation", "value-quantity=ap185", func(t *testing.T, q *search.Query) {
			if _, v := one(t, q); v.Prefix != search.PrefixAp || v.Code != "" || v.Num != 185 {
				t.Errorf("%+v", v)
			}
		}},
		{"reference Type/id", "Observation", "subject=Patient/123", func(t *testing.T, q *search.Query) {
			if _, v := one(t, q); v.RefType != "Patient" || v.RefID != "123" {
				t.Errorf("%+v", v)
			}
		}},
		{"reference id", "Observation", "patient=123", func(t *testing.T, q *search.Query) {
			if _, v := one(t, q); v.RefType != "" || v.RefID != "123" {
				t.Errorf("%+v", v)
			}
		}},
		{"reference history", "Observation", "subject=Patient/123/_history/4", func(t *testing.T, q *search.Query) {
			if _, v := one(t, q); v.RefType != "Patient" || v.RefID != "123" || v.RefVersion != "4" {
				t.Errorf("%+v", v)
			}
		}},
		{"reference absolute", "Observation", "subject=http://other.org/fhir/Patient/123", func(t *testing.T, q *search.Query) {
			if _, v := one(t, q); v.URL != "http://other.org/fhir/Patient/123" || v.RefID != "" {
				t.Errorf("%+v", v)
			}
		}},
		{"reference type modifier", "Observation", "subject:Patient=123", func(t *testing.T, q *search.Query) {
			if c, v := one(t, q); c.Modifier != "Patient" || v.RefType != "Patient" || v.RefID != "123" {
				t.Errorf("%+v %+v", c, v)
			}
		}},
		{"reference identifier", "Observation", "subject:identifier=urn:mrn|42", func(t *testing.T, q *search.Query) {
			if c, v := one(t, q); c.Modifier != "identifier" || v.System != "urn:mrn" || v.Code != "42" || !v.HasSystem {
				t.Errorf("%+v", v)
			}
		}},
		{"canonical reference with version", "QuestionnaireResponse", "questionnaire=http://x.org/Questionnaire/q|2.0", func(t *testing.T, q *search.Query) {
			if _, v := one(t, q); v.URL != "http://x.org/Questionnaire/q" || v.RefVersion != "2.0" {
				t.Errorf("%+v", v)
			}
		}},
		{"uri below", "ValueSet", "url:below=http://acme.org/fhir/", func(t *testing.T, q *search.Query) {
			if c, v := one(t, q); c.Modifier != "below" || v.URL != "http://acme.org/fhir/" {
				t.Errorf("%+v", v)
			}
		}},
		{"uri above", "ValueSet", "url:above=http://acme.org/fhir/ValueSet/x", func(t *testing.T, q *search.Query) {
			if c, _ := one(t, q); c.Modifier != "above" {
				t.Errorf("%+v", c)
			}
		}},
		{"empty value ignored", "Patient", "family=", func(t *testing.T, q *search.Query) {
			if len(q.Clauses) != 0 {
				t.Errorf("%+v", q.Clauses)
			}
		}},
		{"system level _id", "", "_id=1", func(t *testing.T, q *search.Query) {
			if c, _ := one(t, q); c.Param.Code != "_id" {
				t.Errorf("%+v", c)
			}
		}},
		{"system level _type", "", "_type=Patient,Practitioner&family=x", func(t *testing.T, q *search.Query) {
			if len(q.Types) != 2 || q.Types[1] != "Practitioner" {
				t.Errorf("types %v", q.Types)
			}
			if c, _ := one(t, q); c.Param.Code != "family" {
				t.Errorf("%+v", c)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, warns, err := search.Parse(tt.typ, mustQuery(t, tt.query), search.ParseOptions{Strict: true})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(warns) != 0 {
				t.Errorf("warnings %v", warns)
			}
			if q.Type != tt.typ {
				t.Errorf("type %q", q.Type)
			}
			tt.check(t, q)
		})
	}
}

func TestParseResultParams(t *testing.T) {
	q, warns, err := search.Parse("Observation", mustQuery(t,
		"_count=20&_offset=40&_sort=-date,code,_id,-_lastUpdated&_total=accurate&_summary=data&_elements=id,status,code"+
			"&_include=Observation:subject:Patient&_include:iterate=Patient:general-practitioner&_revinclude=Provenance:target&_include=*"+
			"&_format=json&_pretty=true"), search.ParseOptions{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings %v", warns)
	}
	if q.Count != 20 || q.Offset != 40 || q.Total != search.TotalAccurate || q.Summary != "data" || strings.Join(q.Elements, ",") != "id,status,code" {
		t.Errorf("%+v", q)
	}
	if len(q.Sort) != 4 || q.Sort[0].Param.Code != "date" || !q.Sort[0].Descending || q.Sort[1].Descending || q.Sort[2].Param.Code != "_id" || !q.Sort[3].Descending {
		t.Errorf("sort %+v", q.Sort)
	}
	if len(q.Include) != 3 {
		t.Fatalf("include %+v", q.Include)
	}
	want := []search.Include{{Source: "*", Param: "*"}, {Source: "Observation", Param: "subject", Target: "Patient"}, {Source: "Patient", Param: "general-practitioner", Iterate: true}}
	for _, w := range want {
		found := false
		for _, in := range q.Include {
			found = found || in == w
		}
		if !found {
			t.Errorf("include %+v missing from %+v", w, q.Include)
		}
	}
	if len(q.RevInclude) != 1 || q.RevInclude[0] != (search.Include{Source: "Provenance", Param: "target"}) {
		t.Errorf("revinclude %+v", q.RevInclude)
	}
	if len(q.Clauses) != 0 {
		t.Errorf("clauses %+v", q.Clauses)
	}

	// Defaults and clamping.
	q, warns, err = search.Parse("Patient", nil, search.ParseOptions{DefaultCount: 50})
	if err != nil || q.Count != 50 || len(warns) != 0 {
		t.Errorf("default count: %+v %v %v", q, warns, err)
	}
	q, _, err = search.Parse("Patient", nil, search.ParseOptions{DefaultCount: 50, MaxCount: 10})
	if err != nil || q.Count != 10 {
		t.Errorf("default count above the maximum: %+v %v", q, err)
	}
	q, warns, err = search.Parse("Patient", mustQuery(t, "_count=5000"), search.ParseOptions{MaxCount: 100, Strict: true})
	if err != nil || q.Count != 100 || len(warns) != 1 || warns[0].Code != search.CodeCountClamped {
		t.Errorf("clamp: %+v %v %v", q, warns, err)
	}
}

func TestParseLenientAndStrict(t *testing.T) {
	tests := []struct {
		query string
		code  string
	}{
		{"nosuch=1", search.CodeUnknownParam},
		{"subject.nosuch=peter", search.CodeUnknownParam},
		{"subject:Patient.nosuch=peter", search.CodeUnknownParam},
		{"_has:Observation:nosuch:code=1234", search.CodeUnknownParam},
		{"_has:Observation:has-member:nosuch=1234", search.CodeUnknownParam},
		{"_query=cancer", search.CodeUnsupported},
		{"_sort=_text", search.CodeUnknownParam},
		{"_sort=nosuch", search.CodeUnknownParam},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			q, warns, err := search.Parse("Observation", mustQuery(t, tt.query+"&status=final"), search.ParseOptions{})
			if err != nil {
				t.Fatalf("lenient: %v", err)
			}
			if len(warns) != 1 || warns[0].Code != tt.code || len(q.Clauses) != 1 {
				t.Errorf("lenient: warnings %v clauses %d", warns, len(q.Clauses))
			}
			_, _, err = search.Parse("Observation", mustQuery(t, tt.query), search.ParseOptions{Strict: true})
			var se *search.Error
			if !errors.As(err, &se) || se.Code != tt.code {
				t.Errorf("strict: %v", err)
			}
		})
	}
}

// TestParseErrors: bad values are errors in both modes, and the error never
// quotes the value.
func TestParseErrors(t *testing.T) {
	const secret = "Chalmers1974"
	tests := []struct {
		typ   string
		query string
		code  string
	}{
		{"Patient", "birthdate=" + secret, search.CodeInvalidValue},
		{"Patient", "birthdate=gt" + secret, search.CodeInvalidValue},
		{"Patient", "birthdate=1974-13-01", search.CodeInvalidValue},
		{"RiskAssessment", "probability=" + secret, search.CodeInvalidValue},
		{"Observation", "value-quantity=" + secret + "|x|y", search.CodeInvalidValue},
		{"Observation", "value-quantity=5|" + secret, search.CodeInvalidValue},
		{"Observation", "code=a|b|" + secret, search.CodeInvalidValue},
		{"Observation", "code=|", search.CodeInvalidValue},
		{"Patient", `family=` + secret + `\x`, search.CodeInvalidValue},
		{"Patient", `family=` + secret + `\`, search.CodeInvalidValue},
		{"Observation", "subject=Patient/" + secret + "!", search.CodeInvalidValue},
		{"Observation", "subject=NoType/" + secret, search.CodeInvalidValue},
		{"Observation", "patient=Practitioner/" + secret, search.CodeInvalidValue},
		{"Observation", "subject:Patient=Group/" + secret, search.CodeInvalidValue},
		{"Patient", "gender:missing=" + secret, search.CodeInvalidValue},
		{"Patient", "family:text=" + secret, search.CodeInvalidModifier},
		{"Patient", "birthdate:exact=1974", search.CodeInvalidModifier},
		{"Patient", "gender:in=http://vs", search.CodeInvalidModifier},
		{"Observation", "subject:Medication=1", search.CodeInvalidModifier},
		{"Patient", "_count=" + secret, search.CodeInvalidValue},
		{"Patient", "_count=-1", search.CodeInvalidValue},
		{"Patient", "_offset=-1", search.CodeInvalidValue},
		{"Patient", "_total=" + secret, search.CodeInvalidValue},
		{"Patient", "_summary=" + secret, search.CodeInvalidValue},
		{"Patient", "_elements=a%20b", search.CodeInvalidValue},
		{"Patient", "_include=" + secret, search.CodeInvalidValue},
		{"Patient", "_include=Patient:family", search.CodeInvalidValue},
		{"Patient", "_include=Nope:x", search.CodeInvalidValue},
		{"Observation", "_include=Observation:subject:Medication", search.CodeInvalidValue},
		{"Patient", "_include:deep=Patient:link", search.CodeInvalidModifier},
		{"Patient", "_type=Patient", search.CodeInvalidValue},
		{"", "_type=Nope", search.CodeUnknownType},
		{"Nope", "", search.CodeUnknownType},
		{"Patient", "family=" + strings.Repeat("a,", 200), search.CodeTooMany},
		{"Patient", "family=" + strings.Repeat("a", 5000), search.CodeTooMany},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			for _, strict := range []bool{false, true} {
				_, _, err := search.Parse(tt.typ, mustQuery(t, tt.query), search.ParseOptions{Strict: strict})
				var se *search.Error
				if !errors.As(err, &se) || se.Code != tt.code {
					t.Fatalf("strict=%v: got %v, want code %s", strict, err, tt.code)
				}
				if strings.Contains(err.Error(), secret) || strings.Contains(se.Msg, secret) {
					t.Errorf("error echoes the value: %v", err)
				}
			}
		})
	}
}

func TestParseLimits(t *testing.T) {
	var parts []string
	for i := 0; i < 70; i++ {
		parts = append(parts, "family=a")
	}
	_, _, err := search.Parse("Patient", mustQuery(t, strings.Join(parts, "&")), search.ParseOptions{})
	var se *search.Error
	if !errors.As(err, &se) || se.Code != search.CodeTooMany {
		t.Errorf("70 clauses: %v", err)
	}
	_, _, err = search.Parse("Patient", mustQuery(t, "family=a,b,c"), search.ParseOptions{MaxValues: 2})
	if !errors.As(err, &se) || se.Code != search.CodeTooMany {
		t.Errorf("3 values over a limit of 2: %v", err)
	}
	// A long unknown name is bounded in the warning.
	_, warns, err := search.Parse("Patient", url.Values{strings.Repeat("x", 500): {"1"}}, search.ParseOptions{})
	if err != nil || len(warns) != 1 || len(warns[0].Param) > 64 {
		t.Errorf("%v %v", warns, err)
	}
}

// TestErrorNamesNoPHI: a parameter name is the client's text and can hold
// PHI; errors and warnings keep only its search-vocabulary parts.
func TestErrorNamesNoPHI(t *testing.T) {
	for _, c := range []struct{ key, want string }{
		{"Smith343", "?"},
		{"family:Smith343", "family:?"},
		{"family:bogus", "family:?"},
		{"subject:Smith343.family", "subject:?.family"},
		{"subject:Patient.Smith343", "subject:Patient.?"},
		{"_has:Observation:Smith343:code", "_has:Observation:?:code"},
		{"_has:Smith343:subject:code", "_has:?:subject:code"},
	} {
		_, _, err := search.Parse("Observation", url.Values{c.key: {"x"}}, search.ParseOptions{Strict: true})
		var se *search.Error
		if !errors.As(err, &se) {
			// Patient-level keys.
			_, _, err = search.Parse("Patient", url.Values{c.key: {"x"}}, search.ParseOptions{Strict: true})
		}
		if !errors.As(err, &se) {
			t.Fatalf("%s: no error", c.want)
		}
		if se.Param != c.want || strings.Contains(err.Error(), "Smith343") {
			t.Errorf("key %s: param %q, want %q", c.want, se.Param, c.want)
		}
	}
	_, warns, err := search.Parse("Patient", url.Values{"Smith343": {"x"}}, search.ParseOptions{})
	if err != nil || len(warns) != 1 || strings.Contains(warns[0].String(), "Smith343") {
		t.Fatalf("lenient: %v %v", warns, err)
	}
}
