package search_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"phix/fhir"
	"phix/fhir/fhirpath"
	"phix/fhir/search"
	"phix/internal/testenv"
)

// TestEngineCompilesEveryExpression: the FHIRPath engine compiles the
// expression of every R4 parameter and of every composite component.
func TestEngineCompilesEveryExpression(t *testing.T) {
	n, none := 0, 0
	for _, p := range search.AllParams() {
		if p.Expression == "" {
			none++
			continue
		}
		if _, err := fhirpath.Compile(p.Expression); err != nil {
			t.Errorf("%s: %v", p.URL, err)
		}
		for _, c := range p.Components {
			if _, err := fhirpath.Compile(c.Expression); err != nil {
				t.Errorf("%s component %s: %v", p.URL, c.Definition, err)
			}
		}
		n++
	}
	// _text, _content and _query have no expression.
	if n != 1375 || none != 3 {
		t.Errorf("%d expressions compiled, %d without, want 1375 and 3", n, none)
	}
	t.Logf("%d of %d parameter expressions compile", n, n+none)
}

// entryKeys renders entries as a sorted set of comparable strings. Sets, not
// lists: FHIRPath's union removes duplicates ("Observation.code |
// Observation.component.code" of equal concepts), the fast path writes them,
// and a duplicate index entry never changes a match. Composite entries are
// compared by group contents (one key per distinct group), since the group
// numbers are only labels.
func entryKeys(es []search.Entry) []string {
	groups := map[int][]string{}
	var out []string
	for _, e := range es {
		lo, hi := "", ""
		if !e.Lo.IsZero() {
			lo = e.Lo.UTC().Format("2006-01-02T15:04:05.999999999")
		}
		if !e.Hi.IsZero() {
			hi = e.Hi.UTC().Format("2006-01-02T15:04:05.999999999")
		}
		k := fmt.Sprintf("%s|%s|%q|%q|%q|%q|%s|%s|%g|%g|%g|%q|%q|%q|%q|%q|%q",
			e.Param, e.Type, e.Str, e.Exact, e.System, e.Code, lo, hi, e.Num, e.NumLo, e.NumHi,
			e.RefType, e.RefID, e.RefVersion, e.URL, e.TypeSystem, e.TypeCode)
		if e.Group > 0 {
			groups[e.Group] = append(groups[e.Group], k)
			continue
		}
		out = append(out, k)
	}
	for _, g := range groups {
		slices.Sort(g)
		out = append(out, "group{"+strings.Join(slices.Compact(g), " ; ")+"}")
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// corpus is every R4 example and every Synthea resource.
func corpus(t testing.TB) []*fhir.Resource {
	dir := testenv.Shared(t, "testdata", "fhir-test-cases", "examples")
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) == 0 {
		testenv.Missing(t, "no examples in %s", dir)
	}
	var rs []*fhir.Resource
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r := decode(t, b)
		rs = append(rs, r)
		// Bundles carry resources of many types: index those too.
		if entries, ok := r.Object["entry"].([]any); ok {
			for _, e := range entries {
				em, _ := e.(map[string]any)
				if m, ok := em["resource"].(map[string]any); ok {
					rs = append(rs, resourceOf(m))
				}
			}
		}
	}
	return append(rs, syntheaResources(t)...)
}

// TestExtractMatchesEngine is the proof that the fast path is the FHIRPath
// semantics: for every resource of the R4 examples and Synthea and every
// indexed parameter of its type, the fast extractor's entries equal those of
// evaluating the parameter's expression with the engine.
func TestExtractMatchesEngine(t *testing.T) {
	rs := corpus(t)
	if testing.Short() || raceEnabled {
		// Every 8th resource (all kinds still appear): the full corpus
		// takes over a minute under the race detector.
		var sample []*fhir.Resource
		for i := 0; i < len(rs); i += 8 {
			sample = append(sample, rs[i])
		}
		rs = sample
	}
	type diff struct {
		n       int
		example string
	}
	diffs := map[string]*diff{}
	checked, withValues := map[string]bool{}, map[string]bool{}
	pairs := 0
	for _, r := range rs {
		for _, p := range search.Params(r.Type) {
			if !search.Indexed(p) || search.IsFullText(p) {
				continue
			}
			checked[p.URL] = true
			fast := entryKeys(search.ExtractParam(r, p))
			eng, err := search.ExtractParamFHIRPath(r, p)
			if err != nil {
				t.Errorf("%s on %s/%s: %v", p.URL, r.Type, r.ID, err)
				continue
			}
			pairs++
			ek := entryKeys(eng)
			if len(ek) > 0 {
				withValues[p.URL] = true
			}
			if !slices.Equal(fast, ek) && !precisionOnly(fast, ek) {
				d := diffs[p.URL]
				if d == nil {
					d = &diff{example: fmt.Sprintf("%s/%s:\n fast   %s\n engine %s", r.Type, r.ID, strings.Join(fast, "\n        "), strings.Join(ek, "\n        "))}
					diffs[p.URL] = d
				}
				d.n++
			}
		}
	}
	urls := make([]string, 0, len(diffs))
	for u := range diffs {
		urls = append(urls, u)
	}
	sort.Strings(urls)
	for _, u := range urls {
		t.Errorf("%s: %d resources differ; first %s", u, diffs[u].n, diffs[u].example)
	}
	t.Logf("%d resources, %d (resource, parameter) pairs, %d parameters checked, %d with values in the corpus, %d differ",
		len(rs), pairs, len(checked), len(withValues), len(diffs))
}

// precisionOnly reports whether fast and engine differ only by numbers that
// are equal but written with different precision (1.0 g and 1.00 g): FHIRPath
// equality ignores trailing zeros, so a union ("value as Quantity | value as
// SampledData") keeps one of them, while search keeps each value's own
// precision range, as FHIR's implicit precision asks. Every engine key must
// be in fast, and every extra fast key must equal an engine key once the
// precision bounds are dropped.
func precisionOnly(fast, eng []string) bool {
	var strip func(k string) string
	strip = func(k string) string {
		if inner, ok := strings.CutPrefix(k, "group{"); ok {
			parts := strings.Split(strings.TrimSuffix(inner, "}"), " ; ")
			for i := range parts {
				parts[i] = strip(parts[i])
			}
			return "group{" + strings.Join(parts, " ; ") + "}"
		}
		// Fields: ...|num|lo|hi|... are fields 8, 9, 10 (0-based); drop 9, 10.
		f := strings.Split(k, "|")
		if len(f) < 11 {
			return k
		}
		return strings.Join(append(append([]string{}, f[:9]...), f[11:]...), "|")
	}
	base := map[string]bool{}
	for _, k := range eng {
		if !slices.Contains(fast, k) {
			return false
		}
		base[strip(k)] = true
	}
	for _, k := range fast {
		if !slices.Contains(eng, k) && !base[strip(k)] {
			return false
		}
	}
	return true
}

// leaf builds a sample value of a datatype for the synthetic instances;
// target is the reference type a where(resolve() is T) restriction keeps.
func leaf(p *search.Param, dt, target string) (any, bool) {
	ucum := func(v string) map[string]any {
		return map[string]any{"value": json.Number(v), "unit": "milligram", "system": "http://unitsofmeasure.org", "code": "mg"}
	}
	refType := target
	if refType == "" && len(p.Targets) > 0 {
		refType = p.Targets[0]
	}
	if refType == "" {
		refType = "Patient"
	}
	switch dt {
	case "string", "markdown":
		return "Hello Wörld", true
	case "code", "id":
		return "abc", true
	case "uri", "url", "canonical", "oid", "uuid":
		if p.Type == search.TypeReference {
			return []any{"http://example.org/fhir/" + refType + "/t1|2", "http://example.org/fhir/Basic/other"}, true
		}
		return "http://example.org/u", true
	case "boolean":
		return true, true
	case "date":
		return "2024-02-03", true
	case "dateTime", "instant":
		return "2024-02-03T04:05:06.5+08:00", true
	case "decimal":
		return json.Number("1.50"), true
	case "integer", "positiveInt", "unsignedInt":
		return json.Number("3"), true
	case "Period":
		return map[string]any{"start": "2024-01-01", "end": "2024-02-01T10:00:00Z"}, true
	case "Timing":
		return map[string]any{"event": []any{"2024-01-05", "2023-12-01"}, "repeat": map[string]any{"boundsPeriod": map[string]any{"start": "2023-06-01"}}}, true
	case "HumanName":
		return map[string]any{"family": "Fam", "given": []any{"Giv", "Two"}, "text": "Full Name", "prefix": []any{"Dr"}}, true
	case "Address":
		return map[string]any{"line": []any{"1 Main St"}, "city": "Town", "postalCode": "12345", "country": "CN", "text": "Addr"}, true
	case "CodeableConcept":
		return map[string]any{"coding": []any{map[string]any{"system": "http://s", "code": "c1", "display": "Disp"}}, "text": "Txt"}, true
	case "Coding":
		return map[string]any{"system": "http://s", "code": "c1", "display": "Disp"}, true
	case "Identifier":
		return map[string]any{"system": "http://s", "value": "v1", "type": map[string]any{"coding": []any{map[string]any{"system": "http://t", "code": "MR"}}, "text": "T"}}, true
	case "ContactPoint":
		return []any{map[string]any{"system": "phone", "value": "555"}, map[string]any{"system": "email", "value": "a@b.c"}}, true
	case "Quantity", "Age", "Duration", "Distance", "Count", "SimpleQuantity", "MoneyQuantity":
		return ucum("5.0"), true
	case "Money":
		return map[string]any{"value": json.Number("5"), "currency": "USD"}, true
	case "Range":
		return map[string]any{"low": ucum("1"), "high": ucum("2")}, true
	case "Reference":
		return []any{
			map[string]any{"reference": refType + "/t1"},
			map[string]any{"reference": "http://example.org/fhir/" + refType + "/t2/_history/3"},
			map[string]any{"reference": "Basic/other"},
			map[string]any{"reference": "#c1"},
		}, true
	case "Resource":
		return map[string]any{"resourceType": "Composition", "id": "c1"}, true
	}
	return nil, false
}

// synthetic builds a resource holding a sample value at element e, with a
// decoy item beside every where(child='value') filter, and a contained
// resource of e's target type.
func synthetic(p *search.Param, e search.Element) (*fhir.Resource, bool) {
	rt := e.Resource
	if rt == "Resource" || rt == "DomainResource" {
		rt = "Patient"
	}
	v, ok := leaf(p, e.DataType, e.Target)
	if !ok {
		return nil, false
	}
	target := e.Target
	if target == "" {
		target = "Patient"
	}
	obj := map[string]any{"resourceType": rt, "id": "s1",
		"contained": []any{map[string]any{"resourceType": target, "id": "c1"}}}
	// Build from the root, object by object.
	cur := obj
	for i, s := range e.Steps {
		if i == len(e.Steps)-1 {
			val := v
			switch {
			case s.WhereChild != "":
				if m, ok := v.(map[string]any); ok {
					match, decoy := maps.Clone(m), maps.Clone(m)
					match[s.WhereChild], decoy[s.WhereChild] = s.WhereValue, "zz-other"
					val = []any{decoy, match}
				} // a list (ContactPoint) carries its own decoy
			case s.Item > 0:
				if _, isList := v.([]any); !isList {
					val = []any{v}
				}
			}
			cur[s.Name] = val
			break
		}
		next := map[string]any{}
		if s.WhereChild != "" {
			next[s.WhereChild] = s.WhereValue
			decoy := map[string]any{s.WhereChild: "zz-other"}
			// The decoy holds the same value further down.
			dcur := decoy
			for j, ds := range e.Steps[i+1:] {
				if j == len(e.Steps[i+1:])-1 {
					dcur[ds.Name] = v
					break
				}
				n := map[string]any{}
				dcur[ds.Name] = n
				dcur = n
			}
			cur[s.Name] = []any{decoy, next}
		} else if s.Item > 0 {
			cur[s.Name] = []any{next, map[string]any{}}
		} else {
			cur[s.Name] = next
		}
		cur = next
	}
	return resourceOf(obj), true
}

// TestExtractMatchesEngineEveryParameter covers the parameters the corpus
// has no values for: for every Element of every indexed parameter, a
// synthetic resource with a sample value there (and decoys the parameter's
// filters must skip) gives the same entries on both paths, and at least one.
func TestExtractMatchesEngineEveryParameter(t *testing.T) {
	params, elements, skipped := 0, 0, map[string]int{}
	for _, p := range search.AllParams() {
		if !search.Indexed(p) || search.IsFullText(p) || p.Type == search.TypeComposite {
			continue
		}
		params++
		for _, e := range p.Elements {
			r, ok := synthetic(p, e)
			if !ok {
				skipped[e.DataType]++
				continue
			}
			elements++
			fast := entryKeys(search.ExtractParam(r, p))
			eng, err := search.ExtractParamFHIRPath(r, p)
			if err != nil {
				t.Errorf("%s: %v", p.URL, err)
				continue
			}
			ek := entryKeys(eng)
			if len(fast) == 0 {
				t.Errorf("%s at %v (%s): no entries", p.URL, e.Steps, e.DataType)
			}
			if !slices.Equal(fast, ek) && !precisionOnly(fast, ek) {
				t.Errorf("%s at %v (%s):\n fast   %s\n engine %s", p.URL, e.Steps, e.DataType, strings.Join(fast, "\n        "), strings.Join(ek, "\n        "))
			}
		}
	}
	// Patient-deceased has no plain path (hand-coded on the fast path).
	deceased := search.Lookup("Patient", "deceased")
	for _, extra := range []string{``, `,"deceasedBoolean":true`, `,"deceasedBoolean":false`, `,"deceasedDateTime":"2020-01-01"`} {
		r := decode(t, []byte(`{"resourceType":"Patient","id":"d"`+extra+`}`))
		fast := entryKeys(search.ExtractParam(r, deceased))
		eng, err := search.ExtractParamFHIRPath(r, deceased)
		if err != nil || !slices.Equal(fast, entryKeys(eng)) || len(fast) != 1 {
			t.Errorf("deceased %s: fast %v engine %v %v", extra, fast, entryKeys(eng), err)
		}
	}
	t.Logf("%d parameters, %d elements compared, skipped datatypes %v", params, elements, skipped)
}

// setPath puts v at steps under obj, creating or reusing the objects on the
// way (an array step reuses its first item; a where(child='value') step gets
// that child).
func setPath(obj map[string]any, steps []search.Step, v any) {
	cur := obj
	for i, s := range steps {
		if i == len(steps)-1 {
			if m, ok := v.(map[string]any); ok && s.WhereChild != "" {
				m = maps.Clone(m)
				m[s.WhereChild] = s.WhereValue
				v = m
			}
			cur[s.Name] = v
			return
		}
		var next map[string]any
		switch x := cur[s.Name].(type) {
		case map[string]any:
			next = x
		case []any:
			next, _ = x[0].(map[string]any)
		}
		if next == nil {
			next = map[string]any{}
			if s.Item > 0 {
				cur[s.Name] = []any{next}
			} else {
				cur[s.Name] = next
			}
		}
		if s.WhereChild != "" {
			next[s.WhereChild] = s.WhereValue
		}
		cur = next
	}
}

// TestExtractMatchesEngineComposites: for every composite and each of its
// base elements, a synthetic resource with a value for every component
// under that base gives the same groups on both paths.
func TestExtractMatchesEngineComposites(t *testing.T) {
	compared, skipped := 0, 0
	for _, p := range search.AllParams() {
		if p.Type != search.TypeComposite || !search.Indexed(p) {
			continue
		}
		for _, base := range p.Elements {
			rt := base.Resource
			obj := map[string]any{"resourceType": rt, "id": "s1"}
			ok := true
			for k, cp := range p.ComponentParams {
				var el *search.Element
				for i := range cp.Elements {
					e := &cp.Elements[i]
					if e.Resource != rt || len(e.Steps) <= len(base.Steps) {
						continue
					}
					same := true
					for j := range base.Steps {
						same = same && e.Steps[j].Name == base.Steps[j].Name
					}
					if same {
						el = e
						break
					}
				}
				if el == nil {
					if strings.HasPrefix(p.Components[k].Expression, "%resource") && len(cp.Elements) > 0 {
						el = &cp.Elements[0] // a path from the resource itself
					} else {
						ok = false
						break
					}
				}
				v, vok := leaf(cp, el.DataType, el.Target)
				if !vok {
					ok = false
					break
				}
				setPath(obj, el.Steps, v)
			}
			if !ok {
				skipped++
				continue
			}
			r := resourceOf(obj)
			fast := entryKeys(search.ExtractParam(r, p))
			eng, err := search.ExtractParamFHIRPath(r, p)
			if err != nil {
				t.Errorf("%s: %v", p.URL, err)
				continue
			}
			compared++
			ek := entryKeys(eng)
			if len(fast) == 0 {
				t.Errorf("%s at base %v: no entries", p.URL, base.Steps)
			}
			if !slices.Equal(fast, ek) && !precisionOnly(fast, ek) {
				t.Errorf("%s at base %v:\n fast   %s\n engine %s", p.URL, base.Steps, strings.Join(fast, "\n        "), strings.Join(ek, "\n        "))
			}
		}
	}
	t.Logf("%d composite bases compared, %d skipped", compared, skipped)
}
