package fhirpath

import (
	"context"
	"testing"
	"time"
)

var fuzzSeeds = []string{
	"Patient.name.where(use='official').family",
	"name.given.select($this.length() > 3).allTrue()",
	"(1 | 2 | 3).aggregate($total + $this, 0)",
	"@2024-01-31T10:00:00+08:00 + 1 month - 3 days",
	"4.0 'g' / 2.0 'm' = 2 'g/m'",
	"iif(birthDate < today(), 'past', {})",
	"descendants().ofType(string).matches('^[A-Z]')",
	"%resource.repeat(children()).count()",
	"`name`.given[0].substring(1, 2).upper()",
	"'\\u0041\\t' & %`vs-x` | {} ~ 1.50",
	"-(3.5).round(1) mod 2 div 1",
	"name.sort(-family, given.first()).take(2).exclude(name.last())",
	"extension('http://x').value.as(FHIR.Quantity).toString()",
	"1 > 2 is Boolean implies true xor false or 'a' in ('a' | 'b') and 1 contains 1",
}

// FuzzParse: the parser never panics, and every error is an *Error whose
// position lies within the expression.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Add("Patient.name.")
	f.Add("/* unterminated")
	f.Add("@2015-02-04T14:34:28+10:00")
	f.Fuzz(func(t *testing.T, src string) {
		_, err := Compile(src)
		if err == nil {
			return
		}
		fe, ok := AsError(err)
		if !ok {
			t.Fatalf("error %v is not *Error", err)
		}
		if fe.Pos.Line < 1 || fe.Pos.Column < 1 || fe.Pos.Offset < 0 || fe.Pos.Offset > len(src) {
			t.Fatalf("bad position %+v for input of %d bytes", fe.Pos, len(src))
		}
		if fe.Kind != KindSyntax && fe.Kind != KindSemantic {
			t.Fatalf("compile error of kind %s", fe.Kind)
		}
	})
}

// FuzzEvaluate: random expressions over a fixed resource never panic and
// stop within the limits.
func FuzzEvaluate(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	p := mustJSON(f, benchPatient)
	in := Collection{NewResourceItem(p)}
	f.Fuzz(func(t *testing.T, src string) {
		e, err := Compile(src)
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ec := &EvalContext{Ctx: ctx, Now: fixedClock, Limits: Limits{MaxSteps: 50000, MaxCollection: 2000, MaxDepth: 16}}
		_, err = e.Evaluate(ec, in)
		if err != nil {
			if _, ok := AsError(err); !ok {
				t.Fatalf("error %v is not *Error", err)
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("evaluation ran past its deadline")
		}
	})
}
