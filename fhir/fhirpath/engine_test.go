package fhirpath

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

const testObservation = `{"resourceType":"Observation","id":"o1","status":"final",
 "code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},
 "subject":{"reference":"#p1"},
 "contained":[{"resourceType":"Patient","id":"p1","name":[{"family":"Secret"}]}],
 "effectiveDateTime":"2024-03-01T10:30:00+08:00",
 "valueQuantity":{"value":185,"unit":"lbs","system":"http://unitsofmeasure.org","code":"[lb_av]"}}`

const testPatientExt = `{"resourceType":"Patient","id":"p2",
 "name":[{"given":["Ann",null,"Bea"],"_given":[null,{"extension":[{"url":"http://x/absent","valueCode":"masked"}]},{"id":"g3"}]}],
 "birthDate":"1980-05","_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthTime","valueDateTime":"1980-05-02T10:00:00Z"}]}}`

func eval(t *testing.T, ec *EvalContext, res, expr string) Collection {
	t.Helper()
	e, err := Compile(expr)
	if err != nil {
		t.Fatalf("compile %q: %v", expr, err)
	}
	var in Collection
	if res != "" {
		in = Collection{NewResourceItem(mustJSON(t, res))}
	}
	out, err := e.Evaluate(ec, in)
	if err != nil {
		t.Fatalf("evaluate %q: %v", expr, err)
	}
	return out
}

func strs(t *testing.T, c Collection) string {
	t.Helper()
	var parts []string
	for _, it := range c {
		parts = append(parts, render(it, ""))
	}
	return strings.Join(parts, ",")
}

func TestEvaluate(t *testing.T) {
	cases := []struct {
		res, expr, want string
	}{
		// choice elements are typed from the model
		{testObservation, "Observation.value.unit", "lbs"},
		{testObservation, "Observation.value is Quantity", "true"},
		{testObservation, "Observation.value.ofType(Quantity).value", "185"},
		{testObservation, "Observation.effective > @2024-03-01T02:00:00Z", "true"},
		{testObservation, "Observation.effective.is(dateTime)", "true"},
		{testObservation, "Observation.value > 80 'kg'", "true"},
		{testObservation, "Observation.value < 83 'kg'", "false"},
		{testObservation, "83.9 'kg' ~ Observation.value", "true"},
		{"", "4040 'mg' ~ 4 'g'", "true"},
		{"", "4.00 'g' ~ 4040 'mg'", "false"},
		{testObservation, "Observation.value ~ 83.9 'kg'", "true"},
		{testObservation, "Observation.subject.resolve().name.family", "Secret"},
		{testObservation, "Observation.subject.resolve() is Patient", "true"},
		{testObservation, "%resource.id", "o1"},
		{testObservation, "descendants().ofType(Coding).code", "29463-7"},
		{testObservation, "children().count()", "7"},
		// primitive extensions and values without a value
		{testPatientExt, "Patient.name.given.count()", "3"},
		{testPatientExt, "Patient.name.given.select($this.hasValue())", "true,false,true"},
		{testPatientExt, "Patient.name.given[1].extension('http://x/absent').value", "masked"},
		{testPatientExt, "Patient.name.given.last().id", "g3"},
		{testPatientExt, "Patient.birthDate.extension('http://hl7.org/fhir/StructureDefinition/patient-birthTime').exists()", "true"},
		{testPatientExt, "Patient.birthDate < @1980-05-20", ""},
		{testPatientExt, "Patient.birthDate < @1980-06-01", "true"},
		{testPatientExt, "Patient.birthDate < @1980-06", "true"},
		{testPatientExt, "Patient.name.given.join('|')", "Ann|Bea"},
		// exact decimals
		{"", "0.1 + 0.2 = 0.3", "true"},
		{"", "(0.1 + 0.2).toString()", "0.3"},
		{"", "1.10 * 3", "3.30"},
		{"", "10 / 4", "2.5"},
		{"", "7 mod 3", "1"},
		{"", "-7 div 2", "-3"},
		{"", "9223372036854775807 + 0", "9223372036854775807"},
		// quantities and UCUM
		{"", "1 'kg' = 1000 'g'", "true"},
		{"", "120 'mm[Hg]' > 15 'kPa'", "true"},
		{"", "1 '[in_i]' = 2.54 'cm'", "true"},
		{"", "(1 'h' + 30 'min').toString()", "1.5 'h'"},
		{"", "1 'mg/dL'.toQuantity('g/L')", "0.01 'g/L'"},
		{"", "5 'mg' = 5 'mL'", ""},
		{"", "1 year = 12 months", "true"},
		{"", "1 year = 1 'a'", ""},
		// dates
		{"", "@2024-01-31 + 1 month", "@2024-02-29"},
		{"", "@2024-03-01T00:30:00+01:00 = @2024-02-29T23:30:00Z", "true"},
		{"", "@2024 = @2024-01", ""},
		{"", "@2024 ~ @2024-01", "false"},
		{"", "today() = @2026-01-15", "true"},
		{"", "now().toString()", "2026-01-15T10:20:30.123+08:00"},
		{"", "timeOfDay() > @T10:00", "true"},
		// collections and logic
		{"", "(1 | 2 | 2 | 3).count()", "3"},
		{"", "{} and false", "false"},
		{"", "(true implies {})", ""},
		{"", "('a' | 'b').select($this + $index.toString())", "a0,b1"},
		{"", "(3 | 1 | 2).sort()", "1,2,3"},
		{"", "(1 | 2 | 3).aggregate($total + $this, 0)", "6"},
		{"", "'abc'.matches('^a.c$')", "true"},
		{"", "'a1b22'.replaceMatches('([0-9]+)', '<$1>')", "a<1>b<22>"},
		{"", "%ext-foo", "http://hl7.org/fhir/StructureDefinition/foo"},
		{"", "%who", "ok"},
	}
	ec := &EvalContext{Now: fixedClock, Vars: map[string]Collection{"who": {sysItem("ok")}}}
	for _, tc := range cases {
		t.Run(tc.expr, func(t *testing.T) {
			if got := strs(t, eval(t, ec, tc.res, tc.expr)); got != tc.want {
				t.Errorf("%s = %q, want %q", tc.expr, got, tc.want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	cases := []struct {
		expr string
		kind ErrorKind
		code string
		line int
		col  int
	}{
		{"Patient.name.", KindSyntax, CodeSyntax, 1, 14},
		{"Patient.name\n  .where(use = )", KindSyntax, CodeSyntax, 2, 16},
		{"'unterminated", KindSyntax, CodeSyntax, 1, 1},
		{"1 + /* open", KindSyntax, CodeSyntax, 1, 5},
		{"name.frobnicate()", KindSemantic, CodeUnknownFunc, 1, 6},
		{"name.where()", KindSemantic, CodeArity, 1, 6},
		{"name.ofType(NoSuchType)", KindSemantic, CodeUnknownType, 1, 13},
		{"@2024-13-01", KindSyntax, CodeSyntax, 1, 1},
		{"$that", KindSyntax, CodeSyntax, 1, 1},
	}
	for _, tc := range cases {
		_, err := Compile(tc.expr)
		fe, ok := AsError(err)
		if !ok {
			t.Errorf("%q: error %v is not *Error", tc.expr, err)
			continue
		}
		if fe.Kind != tc.kind || fe.Code != tc.code || fe.Pos.Line != tc.line || fe.Pos.Column != tc.col {
			t.Errorf("%q: got %s %s at %s, want %s %s at %d:%d", tc.expr, fe.Kind, fe.Code, fe.Pos, tc.kind, tc.code, tc.line, tc.col)
		}
	}
}

func TestRuntimeErrors(t *testing.T) {
	p := mustJSON(t, benchPatient)
	cases := []struct {
		expr   string
		strict bool
		code   string
	}{
		{"Patient.name.family + 1", false, CodeSingleton},
		{"Patient.gender + 1", false, CodeType},
		{"Patient.name.single()", false, CodeSingleton},
		{"Patient.nmae", true, CodeUnknownElem},
		{"Encounter.status", true, CodeUnknownElem},
		{"%undefined", false, CodeUnknownVar},
		{"Patient.gender < 3", false, CodeType},
	}
	for _, tc := range cases {
		_, err := MustCompile(tc.expr).EvaluateResource(&EvalContext{Strict: tc.strict}, p)
		fe, ok := AsError(err)
		if !ok || fe.Code != tc.code {
			t.Errorf("%q: got %v, want code %s", tc.expr, err, tc.code)
			continue
		}
		for _, phi := range []string{"Chalmers", "Peter", "male", "1974"} {
			if strings.Contains(err.Error(), phi) {
				t.Errorf("%q: error %q leaks resource content", tc.expr, err)
			}
		}
	}
	// Lenient mode: unknown elements are simply empty.
	out, err := MustCompile("Patient.nmae").EvaluateResource(nil, p)
	if err != nil || len(out) != 0 {
		t.Errorf("lenient unknown element: %v, %v", out, err)
	}
}

func TestErrorsNeverEchoLiterals(t *testing.T) {
	for _, expr := range []string{
		"name.where(family = 'Zhang Wei' and )",
		"'Zhang Wei' + 1",
		"'Zhang Wei'.frob()",
		"'Zhang Wei' 'x'",
	} {
		e, err := Compile(expr)
		if err == nil {
			_, err = e.Evaluate(nil, nil)
		}
		if err == nil {
			t.Errorf("%q: expected an error", expr)
			continue
		}
		if strings.Contains(err.Error(), "Zhang") {
			t.Errorf("%q: error %q echoes a literal", expr, err)
		}
	}
}

func TestLimits(t *testing.T) {
	p := mustJSON(t, benchPatient)
	cases := []struct {
		expr   string
		limits Limits
		code   string
	}{
		{"(1 | 2).repeat($this + 1)", Limits{}, ""},
		{"Patient.descendants().select(%resource.descendants())", Limits{MaxSteps: 200}, CodeStepLimit},
		{"Patient.name.given.select(%resource.name.given).select(%resource.name.given)", Limits{MaxCollection: 20}, CodeSizeLimit},
		{"'ab'.repeat($this + $this)", Limits{}, CodeSizeLimit},
	}
	for _, tc := range cases {
		_, err := MustCompile(tc.expr).EvaluateResource(&EvalContext{Limits: tc.limits}, p)
		fe, ok := AsError(err)
		if !ok || fe.Kind != KindLimit || (tc.code != "" && fe.Code != tc.code) {
			t.Errorf("%q: got %v, want a limit error %s", tc.expr, err, tc.code)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := MustCompile("(1|2|3).repeat($this + 1)").Evaluate(&EvalContext{Ctx: ctx}, nil)
	if fe, ok := AsError(err); !ok || fe.Code != CodeCanceled && fe.Code != CodeDepthLimit && fe.Code != CodeStepLimit {
		t.Errorf("canceled evaluation: %v", err)
	}
}

type fakeTerminology map[string]bool

func (f fakeTerminology) MemberOf(_ context.Context, system, code, vs string) (bool, error) {
	return f[system+"|"+code+"|"+vs], nil
}

func TestResolveAndTerminology(t *testing.T) {
	bundle := `{"resourceType":"Bundle","type":"collection","entry":[
	 {"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient","id":"a","gender":"female"}},
	 {"fullUrl":"http://h/fhir/Observation/o","resource":{"resourceType":"Observation","id":"o","status":"final",
	   "code":{"coding":[{"system":"http://loinc.org","code":"1-8"}]},"subject":{"reference":"urn:uuid:1"},
	   "performer":[{"reference":"Practitioner/x"},{"reference":"Patient/a"}]}}]}`
	var asked []string
	ec := &EvalContext{
		Resolver: ResolverFunc(func(_ context.Context, ref string) (map[string]any, error) {
			asked = append(asked, ref)
			if ref == "Practitioner/x" {
				return map[string]any{"resourceType": "Practitioner", "id": "x"}, nil
			}
			return nil, nil
		}),
		Terminology: fakeTerminology{"http://loinc.org|1-8|http://vs/labs": true},
	}
	got := strs(t, eval(t, ec, bundle, "Bundle.entry.resource.ofType(Observation).subject.resolve().gender"))
	if got != "female" {
		t.Errorf("resolve by fullUrl: %q", got)
	}
	got = strs(t, eval(t, ec, bundle, "Bundle.entry.resource.ofType(Observation).performer.resolve().id"))
	if got != "x,a" || len(asked) != 1 {
		t.Errorf("resolve via callback and by type/id: %q (asked %v)", got, asked)
	}
	got = strs(t, eval(t, ec, bundle, "Bundle.entry.resource.ofType(Observation).code.memberOf('http://vs/labs')"))
	if got != "true" {
		t.Errorf("memberOf: %q", got)
	}
	if got := strs(t, eval(t, nil, bundle, "Bundle.entry.resource.ofType(Observation).code.memberOf('http://vs/labs')")); got != "" {
		t.Errorf("memberOf without terminology: %q", got)
	}
}

func TestHelpersAndCache(t *testing.T) {
	p := Collection{NewResourceItem(mustJSON(t, benchPatient))}
	e := MustCompile("Patient.name.where(use = 'official').given")
	ss, err := e.EvaluateStrings(nil, p)
	if err != nil || strings.Join(ss, " ") != "Peter James" {
		t.Errorf("EvaluateStrings: %v %v", ss, err)
	}
	b, known, err := MustCompile("Patient.active and Patient.gender = 'male'").EvaluateBool(nil, p)
	if err != nil || !known || !b {
		t.Errorf("EvaluateBool: %v %v %v", b, known, err)
	}
	_, _, err = MustCompile("Patient.name").EvaluateBool(nil, p)
	if err == nil {
		t.Error("EvaluateBool on a collection must fail")
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				x, err := Cached("Patient.name.given.first()")
				if err != nil {
					t.Error(err)
					return
				}
				if out, err := x.Evaluate(nil, p); err != nil || len(out) != 1 {
					t.Errorf("concurrent evaluate: %v %v", out, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if _, err := Cached("name.("); err == nil {
		t.Error("Cached must return compile errors")
	}
	var traced []string
	ec := &EvalContext{Trace: func(name string, c Collection) { traced = append(traced, name) }}
	if _, err := MustCompile("Patient.name.trace('n').given").Evaluate(ec, p); err != nil || len(traced) != 1 {
		t.Errorf("trace: %v %v", traced, err)
	}
}

func TestClockReadOnce(t *testing.T) {
	calls := 0
	ec := &EvalContext{Now: func() time.Time { calls++; return fixedClock() }}
	out := eval(t, ec, "", "now() = now() and today() = today()")
	if strs(t, out) != "true" || calls != 1 {
		t.Errorf("now() must be stable within one evaluation: %v, %d calls", strs(t, out), calls)
	}
}
