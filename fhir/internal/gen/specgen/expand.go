package specgen

import (
	"strings"
)

type concept struct {
	Code    string    `json:"code"`
	Concept []concept `json:"concept"`
}

type include struct {
	System   string    `json:"system"`
	Version  string    `json:"version"`
	Concept  []concept `json:"concept"`
	Filter   []any     `json:"filter"`
	ValueSet []string  `json:"valueSet"`
}

type vsOrCS struct {
	ResourceType string    `json:"resourceType"`
	URL          string    `json:"url"`
	Content      string    `json:"content"`
	Concept      []concept `json:"concept"`
	Compose      *struct {
		Include []include `json:"include"`
		Exclude []include `json:"exclude"`
	} `json:"compose"`
}

// expander expands ValueSets from the CodeSystems and ValueSets of one bundle.
type expander struct {
	vs map[string]*vsOrCS
	cs map[string]*vsOrCS
}

func newExpander(path string) (*expander, error) {
	rs, err := readBundle[vsOrCS](path)
	if err != nil {
		return nil, err
	}
	ex := &expander{vs: map[string]*vsOrCS{}, cs: map[string]*vsOrCS{}}
	for i := range rs {
		r := &rs[i]
		switch r.ResourceType {
		case "ValueSet":
			ex.vs[r.URL] = r
		case "CodeSystem":
			ex.cs[r.URL] = r
		}
	}
	return ex, nil
}

func addConcepts(dst map[string]bool, cs []concept) {
	for _, c := range cs {
		dst[c.Code] = true
		addConcepts(dst, c.Concept)
	}
}

// expand returns the codes of the ValueSet url, or false when it cannot be
// expanded completely from local content (filters, external code systems).
func (ex *expander) expand(url string, depth int) (map[string]bool, bool) {
	url, _, _ = strings.Cut(url, "|")
	v := ex.vs[url]
	if v == nil || v.Compose == nil || depth > 8 {
		return nil, false
	}
	codes := map[string]bool{}
	for _, inc := range v.Compose.Include {
		set, ok := ex.include(inc, depth)
		if !ok {
			return nil, false
		}
		for c := range set {
			codes[c] = true
		}
	}
	for _, exc := range v.Compose.Exclude {
		set, ok := ex.include(exc, depth)
		if !ok {
			return nil, false
		}
		for c := range set {
			delete(codes, c)
		}
	}
	return codes, len(codes) > 0
}

func (ex *expander) include(inc include, depth int) (map[string]bool, bool) {
	if len(inc.Filter) > 0 {
		return nil, false
	}
	var set map[string]bool
	if inc.System != "" {
		set = map[string]bool{}
		if len(inc.Concept) > 0 {
			for _, c := range inc.Concept {
				set[c.Code] = true
			}
		} else {
			cs := ex.cs[inc.System]
			if cs == nil || cs.Content != "complete" {
				return nil, false
			}
			addConcepts(set, cs.Concept)
		}
	}
	// Included value sets intersect with each other and with the system part.
	for _, u := range inc.ValueSet {
		other, ok := ex.expand(u, depth+1)
		if !ok {
			return nil, false
		}
		if set == nil {
			set = other
			continue
		}
		for c := range set {
			if !other[c] {
				delete(set, c)
			}
		}
	}
	return set, set != nil
}
