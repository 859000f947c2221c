package invariant

// exprDom3 is dom-3 as R4 writes it. Through the engine it walks the whole
// resource four times (descendants()) for every contained resource, which
// made it 60% of checking time on Synthea (ExplanationOfBenefit has two
// contained resources); natively it costs one pass that the walk makes
// anyway. TestNativeEquivalence proves it equal to the engine's result.
const exprDom3 = "contained.where((('#'+id in (%resource.descendants().reference | %resource.descendants().as(canonical) | %resource.descendants().as(uri) | %resource.descendants().as(url))) or descendants().where(reference = '#').exists() or descendants().where(as(canonical) = '#').exists() or descendants().where(as(canonical) = '#').exists()).not()).trace('unmatched', id).empty()"

// dom3Frame collects, while a resource with contained resources is walked,
// what dom-3 asks about its descendants: every string under a "reference"
// key and every canonical, uri and url value (refs), and for each contained
// resource whether one of its descendants is a "#" reference or canonical
// (self: it refers to its container).
type dom3Frame struct {
	refs map[string]struct{}
	self []bool
	cur  int // index of the contained resource being walked, -1 outside
}

// seePrimitive records a primitive value for every open frame.
func (w *walker) seePrimitive(name, typ string, v any) {
	if len(w.dom3) == 0 {
		return
	}
	s, ok := v.(string)
	if !ok {
		return
	}
	isRef := name == "reference"
	if !isRef && typ != "canonical" && typ != "uri" && typ != "url" {
		return
	}
	for _, f := range w.dom3 {
		f.refs[s] = struct{}{}
		if s == "#" && (isRef || typ == "canonical") && f.cur >= 0 {
			f.self[f.cur] = true
		}
	}
}

// dom3Holds decides dom-3 for the resource whose frame f was.
func dom3Holds(obj map[string]any, f *dom3Frame) bool {
	list, _ := obj["contained"].([]any)
	for i, c := range list {
		m, ok := c.(map[string]any)
		if !ok {
			continue
		}
		id, ok := m["id"].(string)
		if !ok {
			continue // '#'+id is empty: the where() criterion is empty
		}
		if _, ref := f.refs["#"+id]; !ref && !f.self[i] {
			return false
		}
	}
	return true
}
