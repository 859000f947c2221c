package search_test

import (
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"phix/fhir/search"
	"phix/internal/testenv"
)

func byParam(es []search.Entry, code string) []search.Entry {
	var out []search.Entry
	for _, e := range es {
		if e.Param == code {
			out = append(out, e)
		}
	}
	return out
}

func strs(es []search.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Str)
	}
	return out
}

func codes(es []search.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.System+"|"+e.Code)
	}
	return out
}

func refs(es []search.Entry) []string {
	var out []string
	for _, e := range es {
		switch {
		case e.URL != "":
			out = append(out, e.URL)
		default:
			out = append(out, e.RefType+"/"+e.RefID)
		}
	}
	return out
}

func TestExtractPatientExample(t *testing.T) {
	es := search.Extract(example(t, "patient-example.json"))
	for _, e := range es {
		if e.Type == "" || e.Param == "" {
			t.Fatalf("entry without param or type: %+v", e)
		}
	}
	family := byParam(es, "family")
	if got := strs(family); !slices.Equal(got, []string{"chalmers", "windsor"}) {
		t.Errorf("family = %v", got)
	}
	if family[0].Exact != "Chalmers" {
		t.Errorf("family exact = %q", family[0].Exact)
	}
	if got := strs(byParam(es, "given")); !slices.Equal(got, []string{"peter", "james", "jim", "peter", "james"}) {
		t.Errorf("given = %v", got)
	}
	if got := strs(byParam(es, "name")); !slices.Contains(got, "chalmers") || !slices.Contains(got, "jim") {
		t.Errorf("name = %v", got)
	}
	bd := byParam(es, "birthdate")
	if len(bd) != 1 || !bd[0].Lo.Equal(ts("1974-12-25T00:00:00Z")) || !bd[0].Hi.Equal(ts("1974-12-25T23:59:59.999999999Z")) {
		t.Errorf("birthdate = %+v", bd)
	}
	if got := codes(byParam(es, "gender")); !slices.Equal(got, []string{"|male"}) {
		t.Errorf("gender = %v", got)
	}
	if got := codes(byParam(es, "identifier")); !slices.Equal(got, []string{"urn:oid:1.2.36.146.595.217.0.1|12345"}) {
		t.Errorf("identifier = %v", got)
	}
	if got := codes(byParam(es, "active")); !slices.Equal(got, []string{"|true"}) {
		t.Errorf("active = %v", got)
	}
	if got := codes(byParam(es, "_id")); !slices.Equal(got, []string{"|example"}) {
		t.Errorf("_id = %v", got)
	}
	if got := codes(byParam(es, "phone")); len(got) != 3 || got[0] != "phone|(03) 5555 6473" {
		t.Errorf("phone = %v", got)
	}
	if got := byParam(es, "email"); len(got) != 0 {
		t.Errorf("email = %v", got)
	}
	if got := strs(byParam(es, "address-city")); !slices.Equal(got, []string{"pleasantville"}) {
		t.Errorf("address-city = %v", got)
	}
	if got := strs(byParam(es, "address")); !slices.Contains(got, "534 erewhon st") || !slices.Contains(got, "3999") {
		t.Errorf("address = %v", got)
	}
	if got := codes(byParam(es, "deceased")); !slices.Equal(got, []string{"|false"}) {
		t.Errorf("deceased = %v", got)
	}
	if got := byParam(es, "death-date"); len(got) != 0 {
		t.Errorf("death-date = %v", got)
	}
	if got := refs(byParam(es, "organization")); !slices.Equal(got, []string{"Organization/1"}) {
		t.Errorf("organization = %v", got)
	}
}

func TestExtractObservationExample(t *testing.T) {
	es := search.Extract(example(t, "observation-example.json"))
	code := byParam(es, "code")
	if len(code) != 4 || code[0].System != "http://loinc.org" || code[0].Code != "29463-7" || code[0].Str != "body weight" {
		t.Errorf("code = %+v", code)
	}
	vq := byParam(es, "value-quantity")
	// The code, the unit text and the canonical UCUM form (grams).
	if len(vq) != 3 || vq[0].Num != 185 || vq[0].NumLo != 184.5 || vq[0].NumHi != 185.5 ||
		vq[0].System != "http://unitsofmeasure.org" || vq[0].Code != "[lb_av]" || vq[1].Code != "lbs" ||
		vq[2].Code != "g" || vq[2].System != "http://unitsofmeasure.org" || math.Abs(vq[2].Num-185*453.59237) > 1e-6 {
		t.Errorf("value-quantity = %+v", vq)
	}
	if got := refs(byParam(es, "patient")); !slices.Equal(got, []string{"Patient/example"}) {
		t.Errorf("patient = %v", got)
	}
	if got := refs(byParam(es, "subject")); !slices.Equal(got, []string{"Patient/example"}) {
		t.Errorf("subject = %v", got)
	}
	if got := refs(byParam(es, "encounter")); !slices.Equal(got, []string{"Encounter/example"}) {
		t.Errorf("encounter = %v", got)
	}
	date := byParam(es, "date")
	if len(date) != 1 || !date[0].Lo.Equal(ts("2016-03-28T00:00:00Z")) {
		t.Errorf("date = %+v", date)
	}
	if got := codes(byParam(es, "category")); !slices.Equal(got, []string{"http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"}) {
		t.Errorf("category = %v", got)
	}
}

func TestExtractRiskAssessmentExample(t *testing.T) {
	es := search.Extract(example(t, "riskassessment-example.json"))
	prob := byParam(es, "probability")
	if len(prob) == 0 || prob[0].Num != 0.000168 || prob[0].NumLo >= prob[0].Num || prob[0].NumHi <= prob[0].Num {
		t.Errorf("probability = %+v", prob)
	}
}

// TestExtractAllExamples runs every R4 example through Extract: no panics,
// and a resource of a searchable type yields entries.
func TestExtractAllExamples(t *testing.T) {
	dir := testenv.Shared(t, "testdata", "fhir-test-cases", "examples")
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) == 0 {
		t.Fatal("no examples")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r := decode(t, b)
		es := search.Extract(r)
		if search.IsResourceType(r.Type) && r.ID != "" && len(es) == 0 {
			t.Errorf("%s: no entries", filepath.Base(f))
		}
		for _, e := range es {
			code := e.Param
			if e.Group > 0 {
				code, _, _ = strings.Cut(code, "$")
				if p := search.Lookup(r.Type, code); p == nil || p.Type != search.TypeComposite {
					t.Errorf("%s: composite entry for a non-composite param %s", filepath.Base(f), e.Param)
				}
			}
			if search.Lookup(r.Type, code) == nil {
				t.Errorf("%s: entry for unknown param %s", filepath.Base(f), e.Param)
			}
		}
	}
}

func TestExtractShapes(t *testing.T) {
	tests := []struct {
		name  string
		json  string
		param string
		check func(t *testing.T, es []search.Entry)
	}{
		{"period open end", `{"resourceType":"Encounter","id":"e","period":{"start":"2024-01-02T10:00:00+08:00"}}`, "date",
			func(t *testing.T, es []search.Entry) {
				if len(es) != 1 || !es[0].Lo.Equal(ts("2024-01-02T02:00:00Z")) || !es[0].Hi.Equal(search.MaxTime) {
					t.Errorf("%+v", es)
				}
			}},
		{"period open start", `{"resourceType":"Encounter","id":"e","period":{"end":"2024-01"}}`, "date",
			func(t *testing.T, es []search.Entry) {
				if len(es) != 1 || !es[0].Lo.Equal(search.MinTime) || !es[0].Hi.Equal(ts("2024-01-31T23:59:59.999999999Z")) {
					t.Errorf("%+v", es)
				}
			}},
		{"observation effectivePeriod", `{"resourceType":"Observation","id":"o","effectivePeriod":{"start":"2020","end":"2021"}}`, "date",
			func(t *testing.T, es []search.Entry) {
				if len(es) != 1 || !es[0].Lo.Equal(ts("2020-01-01T00:00:00Z")) || !es[0].Hi.Equal(ts("2021-12-31T23:59:59.999999999Z")) {
					t.Errorf("%+v", es)
				}
			}},
		{"timing outer limits", `{"resourceType":"CarePlan","id":"c","activity":[{"detail":{"scheduledTiming":{"event":["2024-05-03","2024-05-01T10:00:00Z"],"repeat":{"boundsPeriod":{"end":"2024-06"}}}}}]}`, "activity-date",
			func(t *testing.T, es []search.Entry) {
				if len(es) != 1 || !es[0].Lo.Equal(search.MinTime) || !es[0].Hi.Equal(ts("2024-06-30T23:59:59.999999999Z")) {
					t.Errorf("%+v", es)
				}
			}},
		{"timing events", `{"resourceType":"CarePlan","id":"c","activity":[{"detail":{"scheduledTiming":{"event":["2024-05-03","2024-05-01T10:00:00Z"]}}}]}`, "activity-date",
			func(t *testing.T, es []search.Entry) {
				if len(es) != 1 || !es[0].Lo.Equal(ts("2024-05-01T10:00:00Z")) || !es[0].Hi.Equal(ts("2024-05-03T23:59:59.999999999Z")) {
					t.Errorf("%+v", es)
				}
			}},
		{"period end before start", `{"resourceType":"Encounter","id":"e","period":{"start":"2024-02","end":"2024-01"}}`, "date",
			func(t *testing.T, es []search.Entry) {
				if len(es) != 0 {
					t.Errorf("%+v", es)
				}
			}},
		{"deceased absent", `{"resourceType":"Patient","id":"p"}`, "deceased",
			func(t *testing.T, es []search.Entry) {
				if got := codes(es); !slices.Equal(got, []string{"|false"}) {
					t.Errorf("%v", got)
				}
			}},
		{"deceased date", `{"resourceType":"Patient","id":"p","deceasedDateTime":"2020-01-01"}`, "deceased",
			func(t *testing.T, es []search.Entry) {
				if got := codes(es); !slices.Equal(got, []string{"|true"}) {
					t.Errorf("%v", got)
				}
			}},
		{"deceased boolean", `{"resourceType":"Patient","id":"p","deceasedBoolean":true}`, "deceased",
			func(t *testing.T, es []search.Entry) {
				if got := codes(es); !slices.Equal(got, []string{"|true"}) {
					t.Errorf("%v", got)
				}
			}},
		{"money", `{"resourceType":"Invoice","id":"i","totalNet":{"value":12.50,"currency":"USD"}}`, "totalnet",
			func(t *testing.T, es []search.Entry) {
				if len(es) != 1 || es[0].Num != 12.5 || es[0].Code != "USD" || es[0].System != "urn:iso:std:iso:4217" || !near(es[0].NumLo, 12.495) {
					t.Errorf("%+v", es)
				}
			}},
		{"bad date skipped", `{"resourceType":"Patient","id":"p","birthDate":"25/12/1974"}`, "birthdate",
			func(t *testing.T, es []search.Entry) {
				if len(es) != 0 {
					t.Errorf("%+v", es)
				}
			}},
		{"range", `{"resourceType":"Condition","id":"c","onsetRange":{"low":{"value":5,"code":"a","system":"http://unitsofmeasure.org"},"high":{"value":10,"code":"a"}}}`, "onset-age",
			func(t *testing.T, es []search.Entry) {
				if len(es) != 1 || es[0].NumLo != 5 || es[0].NumHi != 10 || es[0].Code != "a" {
					t.Errorf("%+v", es)
				}
			}},
		{"age", `{"resourceType":"Condition","id":"c","onsetAge":{"value":52,"unit":"yr","code":"a","system":"http://unitsofmeasure.org"}}`, "onset-age",
			func(t *testing.T, es []search.Entry) {
				if len(es) != 2 || es[0].Num != 52 || es[0].Code != "a" || es[1].Code != "yr" {
					t.Errorf("%+v", es)
				}
			}},
		{"references", `{"resourceType":"Observation","id":"o","subject":{"reference":"http://other.org/fhir/Patient/9/_history/2"},
			"performer":[{"reference":"Practitioner/p1/_history/3"},{"reference":"#c1"},{"identifier":{"system":"urn:npi","value":"123"},"type":"Practitioner"},{"reference":"urn:uuid:0b5e6a5c-8a6f-4a51-9d25-2d8b4c3e9a11"},{"reference":"not a ref"}]}`, "",
			func(t *testing.T, es []search.Entry) {
				sub := byParam(es, "subject")
				if len(sub) != 1 || sub[0].URL != "http://other.org/fhir/Patient/9" || sub[0].RefVersion != "2" {
					t.Errorf("subject %+v", sub)
				}
				if pat := byParam(es, "patient"); len(pat) != 1 {
					t.Errorf("patient (absolute URL to a Patient) %+v", pat)
				}
				perf := byParam(es, "performer")
				if len(perf) != 4 {
					t.Fatalf("performer %+v", perf)
				}
				if perf[0].RefType != "Practitioner" || perf[0].RefID != "p1" || perf[0].RefVersion != "3" {
					t.Errorf("versioned %+v", perf[0])
				}
				if perf[1].URL != "#c1" {
					t.Errorf("contained %+v", perf[1])
				}
				if perf[2].System != "urn:npi" || perf[2].Code != "123" || perf[2].RefType != "Practitioner" {
					t.Errorf("identifier %+v", perf[2])
				}
				if perf[3].URL == "" {
					t.Errorf("urn %+v", perf[3])
				}
			}},
		{"patient target filter", `{"resourceType":"Observation","id":"o","subject":{"reference":"Group/g1"}}`, "patient",
			func(t *testing.T, es []search.Entry) {
				if len(es) != 0 {
					t.Errorf("a Group subject is not a patient: %+v", es)
				}
			}},
		{"canonical with version", `{"resourceType":"QuestionnaireResponse","id":"q","questionnaire":"http://x.org/Questionnaire/q1|2.0"}`, "questionnaire",
			func(t *testing.T, es []search.Entry) {
				if len(es) != 1 || es[0].URL != "http://x.org/Questionnaire/q1" || es[0].RefVersion != "2.0" {
					t.Errorf("%+v", es)
				}
			}},
		{"relative canonical", `{"resourceType":"QuestionnaireResponse","id":"q","questionnaire":"Questionnaire/q1"}`, "questionnaire",
			func(t *testing.T, es []search.Entry) {
				if len(es) != 1 || es[0].RefType != "Questionnaire" || es[0].RefID != "q1" || es[0].URL != "" {
					t.Errorf("%+v", es)
				}
			}},
		{"email where filter", `{"resourceType":"Patient","id":"p","telecom":[{"system":"phone","value":"1"},{"system":"email","value":"a@b.c"}]}`, "email",
			func(t *testing.T, es []search.Entry) {
				if got := codes(es); !slices.Equal(got, []string{"email|a@b.c"}) {
					t.Errorf("%v", got)
				}
			}},
		{"codeable concept text and displays", `{"resourceType":"Condition","id":"c","code":{"coding":[{"system":"s","code":"1","display":"Migraine"},{"system":"t","code":"2","display":"Headache"}],"text":"HEADACHE"}}`, "code",
			func(t *testing.T, es []search.Entry) {
				if got := strs(es); !slices.Equal(got, []string{"migraine", "headache"}) {
					t.Errorf("text equal to a display adds no entry: %v", got)
				}
			}},
		{"codeable concept own text", `{"resourceType":"Condition","id":"c","code":{"coding":[{"system":"s","code":"1","display":"Migraine"}],"text":"Bad head"}}`, "code",
			func(t *testing.T, es []search.Entry) {
				if got := strs(es); !slices.Equal(got, []string{"migraine", "bad head"}) || es[1].Code != "" || es[1].System != "" {
					t.Errorf("%+v", es)
				}
			}},
		{"codeable concept text only", `{"resourceType":"Condition","id":"c","code":{"text":"Héadache"}}`, "code",
			func(t *testing.T, es []search.Entry) {
				if len(es) != 1 || es[0].Str != "headache" || es[0].Code != "" {
					t.Errorf("%+v", es)
				}
			}},
		{"meta", `{"resourceType":"Patient","id":"p","meta":{"lastUpdated":"2024-01-01T00:00:00.123Z","tag":[{"system":"s","code":"t"}],"profile":["http://p|1"],"security":[{"code":"R"}],"source":"urn:src"}}`, "",
			func(t *testing.T, es []search.Entry) {
				if lu := byParam(es, "_lastUpdated"); len(lu) != 1 || !lu[0].Lo.Equal(ts("2024-01-01T00:00:00.123Z")) {
					t.Errorf("_lastUpdated %+v", lu)
				}
				if got := codes(byParam(es, "_tag")); !slices.Equal(got, []string{"s|t"}) {
					t.Errorf("_tag %v", got)
				}
				if got := byParam(es, "_profile"); len(got) != 1 || got[0].URL != "http://p|1" {
					t.Errorf("_profile %+v", got)
				}
				if got := codes(byParam(es, "_security")); !slices.Equal(got, []string{"|R"}) {
					t.Errorf("_security %v", got)
				}
				if got := byParam(es, "_source"); len(got) != 1 || got[0].URL != "urn:src" {
					t.Errorf("_source %+v", got)
				}
			}},
		{"wrong shapes", `{"resourceType":"Patient","id":"p","name":"x","birthDate":5,"telecom":{"value":3},"gender":["male"],"identifier":[null,1,"x",{"value":{}}],"managingOrganization":[]}`, "",
			func(t *testing.T, es []search.Entry) {
				for _, e := range es {
					if e.Param != "_id" && e.Param != "gender" && e.Param != "deceased" {
						t.Errorf("entry from malformed content: %+v", e)
					}
				}
			}},
		{"bundle composition", `{"resourceType":"Bundle","id":"b","type":"document","entry":[{"resource":{"resourceType":"Composition","id":"c1"}},{"resource":{"resourceType":"Patient","id":"p1"}}]}`, "composition",
			func(t *testing.T, es []search.Entry) {
				if got := refs(es); !slices.Equal(got, []string{"Composition/c1"}) {
					t.Errorf("%v", got)
				}
			}},
		{"long string capped", `{"resourceType":"Patient","id":"p","name":[{"family":"` + longName() + `"}]}`, "family",
			func(t *testing.T, es []search.Entry) {
				if len(es) != 1 || len(es[0].Exact) > search.MaxIndexedString {
					t.Errorf("len %d", len(es[0].Exact))
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := decode(t, []byte(tt.json))
			es := search.Extract(r)
			if tt.param != "" {
				es = byParam(es, tt.param)
				one := search.ExtractParam(r, search.Lookup(r.Type, tt.param))
				if len(one) != len(es) {
					t.Errorf("ExtractParam gave %d entries, Extract %d", len(one), len(es))
				}
			}
			tt.check(t, es)
		})
	}
}

func longName() string {
	b := make([]byte, 0, 3*search.MaxIndexedString)
	for len(b) < 3*search.MaxIndexedString {
		b = append(b, "é"...)
	}
	return string(b)
}

// TestExtractSynthea indexes every resource of every Synthea bundle.
func TestExtractSynthea(t *testing.T) {
	rs := syntheaResources(t)
	perType := map[string]int{}
	entries := 0
	for _, r := range rs {
		es := search.Extract(r)
		entries += len(es)
		perType[r.Type]++
		has := func(code string) bool { return len(byParam(es, code)) > 0 }
		switch r.Type {
		case "Patient":
			for _, c := range []string{"family", "given", "birthdate", "gender", "identifier", "address-city", "_id"} {
				if !has(c) {
					t.Errorf("Patient/%s lacks %s", r.ID, c)
				}
			}
		case "Observation":
			for _, c := range []string{"code", "subject", "date", "status", "category"} {
				if !has(c) {
					t.Errorf("Observation/%s lacks %s", r.ID, c)
				}
			}
		case "Encounter":
			for _, c := range []string{"date", "class", "type"} {
				if !has(c) {
					t.Errorf("Encounter/%s lacks %s", r.ID, c)
				}
			}
		}
		for _, e := range es {
			if e.Type == search.TypeDate && (e.Lo.After(e.Hi) || e.Lo.IsZero() && e.Hi.IsZero()) {
				t.Errorf("%s/%s: bad date range for %s", r.Type, r.ID, e.Param)
			}
		}
	}
	if len(rs) < 1000 || entries < 5*len(rs) {
		t.Errorf("%d resources gave %d entries", len(rs), entries)
	}
	t.Logf("%d resources, %d entries (%.1f per resource); types %v", len(rs), entries, float64(entries)/float64(len(rs)), perType)
}

// TestExtractConcurrent runs Extract and Parse from several goroutines (run
// with -race): the registry and the case folders are shared.
func TestExtractConcurrent(t *testing.T) {
	r := example(t, "patient-example.json")
	want := len(search.Extract(r))
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if n := len(search.Extract(r)); n != want {
					t.Errorf("got %d entries, want %d", n, want)
					return
				}
				_ = search.NormalizeString("Zhāng Ｗｅｉ 张伟")
				if _, _, err := search.Parse("Patient", url.Values{"family": {"Chalmers"}}, search.ParseOptions{}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
