package fhirserver

import (
	"strings"

	"phix/fhir"
)

// shaping is a parsed _summary/_elements: which top-level elements of a
// returned resource survive.
type shaping struct {
	summary  string   // "", "true", "text", "data", "false"
	elements []string // _elements names, without a "Type." prefix
}

func parseShaping(summary string, elements []string) (shaping, error) {
	var sh shaping
	switch summary {
	case "", "false", "true", "text", "data", "count":
		sh.summary = summary
	default:
		return sh, errorf(CodeInvalidSearch, "_summary must be one of true, text, data, count, false")
	}
	for _, e := range elements {
		for _, name := range strings.Split(e, ",") {
			name = strings.TrimSpace(name)
			if i := strings.IndexByte(name, '.'); i >= 0 {
				name = name[i+1:]
			}
			if name != "" {
				sh.elements = append(sh.elements, name)
			}
		}
	}
	return sh, nil
}

// active reports whether the shaping changes resources (count is handled by
// the search itself).
func (sh shaping) active() bool {
	return sh.summary == "true" || sh.summary == "text" || sh.summary == "data" || len(sh.elements) > 0
}

// apply returns body reduced per the shaping and tagged SUBSETTED.
func (sh shaping) apply(body []byte) ([]byte, error) {
	res, err := fhir.Parse(body, fhir.ParseOptions{MaxDepth: 1 << 10})
	if err != nil {
		return nil, errorf(CodeInternal, "internal error")
	}
	keep := func(string) bool { return true }
	switch {
	case sh.summary == "true":
		keep = elementSet(summaryElements[res.Type])
	case sh.summary == "text":
		m := elementSet(append([]string{"text"}, mandatoryElements[res.Type]...))
		keep = m
	case sh.summary == "data":
		keep = func(k string) bool { return k != "text" }
	case len(sh.elements) > 0:
		keep = elementSet(sh.elements)
	}
	for k := range res.Object {
		if k == "resourceType" || k == "id" || k == "meta" {
			continue
		}
		if !keep(k) {
			delete(res.Object, k)
		}
	}
	addSubsetted(res)
	out, err := fhir.Marshal(res)
	if err != nil {
		return nil, errorf(CodeInternal, "internal error")
	}
	return out, nil
}

// elementSet matches top-level JSON keys against element names, where a
// choice name "value[x]" matches valueQuantity, valueString, ... and a
// primitive's "_name" companion follows its element.
func elementSet(names []string) func(string) bool {
	exact := map[string]bool{}
	var choices []string
	for _, n := range names {
		if c, ok := strings.CutSuffix(n, "[x]"); ok {
			choices = append(choices, c)
		} else {
			exact[n] = true
		}
	}
	return func(k string) bool {
		k = strings.TrimPrefix(k, "_")
		if exact[k] {
			return true
		}
		for _, c := range choices {
			if len(k) > len(c) && strings.HasPrefix(k, c) && k[len(c)] >= 'A' && k[len(c)] <= 'Z' {
				return true
			}
		}
		return false
	}
}

// addSubsetted tags a resource as incomplete, as R4 requires of _summary and
// _elements results.
func addSubsetted(res *fhir.Resource) {
	meta, _ := res.Object["meta"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		res.Object["meta"] = meta
	}
	tags, _ := meta["tag"].([]any)
	meta["tag"] = append(tags, map[string]any{
		"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
		"code":   "SUBSETTED",
	})
}
