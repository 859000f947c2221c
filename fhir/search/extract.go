package search

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"phix/fhir"
)

// MaxIndexedString caps the bytes of a string entry (Str and Exact), cut at a
// rune boundary: long narrative-like values (descriptions, markdown) would
// otherwise bloat the index. Prefix matching on the first MaxIndexedString
// bytes is unaffected.
const MaxIndexedString = 2048

// Extract returns the index entries of r for every parameter of its type that
// has extractable elements (string, token, date, number, quantity, reference
// and uri parameters; composite and special ones are deferred). It never
// panics on malformed content: values of the wrong shape are skipped, since
// validation is the resource model's job.
func Extract(r *fhir.Resource) []Entry {
	if r == nil || r.Object == nil {
		return nil
	}
	ti := load().types[r.Type]
	if ti == nil {
		return nil
	}
	x := extractor{out: make([]Entry, 0, 16), root: r.Object}
	for i := range ti.extract {
		pe := &ti.extract[i]
		x.param = pe.param
		if pe.spec != nil {
			x.composite(r.Object, pe.param, pe.spec, pe.bases)
			continue
		}
		if pe.engine {
			// An expression the engine refuses cannot come from the
			// registry (all compile, see the tests); a runtime limit on a
			// pathological resource leaves this parameter unindexed rather
			// than failing a write that validation accepted.
			_ = x.engineComposite(r.Object, pe.param)
			continue
		}
		for j := range pe.elements {
			x.elem = &pe.elements[j]
			x.walk(r.Object, x.elem.Steps)
		}
	}
	if r.Type == "Patient" {
		x.deceased(r.Object)
	}
	return x.out
}

// deceased hand-codes Patient-deceased, whose expression
// "Patient.deceased.exists() and Patient.deceased != false" is not a plain
// path: true when deceasedBoolean is true or deceasedDateTime is present,
// false otherwise (a living or unknown patient).
func (x *extractor) deceased(obj map[string]any) {
	p := Lookup("Patient", "deceased")
	if p == nil {
		return
	}
	dead := false
	if b, ok := obj["deceasedBoolean"].(bool); ok {
		dead = b
	} else if s, ok := obj["deceasedDateTime"].(string); ok && s != "" {
		dead = true
	}
	x.param, x.elem = p, nil
	x.add(Entry{Code: strconv.FormatBool(dead)})
}

// ExtractParam returns the entries of r for one parameter (nil when p does
// not apply to r's type or is not extractable).
func ExtractParam(r *fhir.Resource, p *Param) []Entry {
	if r == nil || r.Object == nil || p == nil || !extractable(p.Type) && p.Type != TypeComposite {
		return nil
	}
	x := extractor{param: p, root: r.Object}
	if p.Type == TypeComposite {
		spec := load().composites[p]
		if !slices.Contains(p.Base, r.Type) {
			return nil
		}
		if spec == nil {
			if err := x.engineComposite(r.Object, p); err != nil {
				return nil
			}
			return x.out
		}
		var bases []int
		for b, e := range p.Elements {
			if e.Resource == r.Type && spec.rel[b] != nil {
				bases = append(bases, b)
			}
		}
		x.composite(r.Object, p, spec, bases)
		return x.out
	}
	if r.Type == "Patient" && p.URL == deceasedURL {
		x.deceased(r.Object)
		return x.out
	}
	for i := range p.Elements {
		e := &p.Elements[i]
		if e.Resource != r.Type && e.Resource != "Resource" && !(e.Resource == "DomainResource" && !nonDomain[r.Type]) {
			continue
		}
		x.elem = e
		x.walk(r.Object, e.Steps)
	}
	return x.out
}

const deceasedURL = "http://hl7.org/fhir/SearchParameter/Patient-deceased"

type extractor struct {
	param *Param
	elem  *Element
	out   []Entry
	root  map[string]any // the resource: its contained resources type "#id" references
}

// containedType returns the type of the contained resource a "#id"
// reference names, or "" (what resolve() gives a where(resolve() is T)).
func (x *extractor) containedType(ref string) string {
	id, ok := strings.CutPrefix(ref, "#")
	if !ok || id == "" || x.root == nil {
		return ""
	}
	cs, _ := x.root["contained"].([]any)
	for _, c := range cs {
		if m, ok := c.(map[string]any); ok && str(m, "id") == id {
			return str(m, "resourceType")
		}
	}
	return ""
}

// walk follows steps from v and converts every value reached.
func (x *extractor) walk(v any, steps []Step) {
	if len(steps) == 0 {
		x.convert(v)
		return
	}
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	s := &steps[0]
	child, ok := m[s.Name]
	if !ok {
		return
	}
	if arr, isArr := child.([]any); isArr {
		if s.Item > 0 {
			if s.Item <= len(arr) && x.keep(s, arr[s.Item-1]) {
				x.walk(arr[s.Item-1], steps[1:])
			}
			return
		}
		for _, it := range arr {
			if x.keep(s, it) {
				x.walk(it, steps[1:])
			}
		}
		return
	}
	if s.Item > 1 || !x.keep(s, child) {
		return
	}
	x.walk(child, steps[1:])
}

// keep applies a step's where(child='value') filter.
func (x *extractor) keep(s *Step, v any) bool {
	if s.WhereChild == "" {
		return true
	}
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	str, _ := m[s.WhereChild].(string)
	return str == s.WhereValue
}

func (x *extractor) add(e Entry) {
	e.Param = x.param.Code
	e.Type = x.param.Type
	x.out = append(x.out, e)
}

// convert turns one element value into entries according to the parameter
// type and the element's datatype.
func (x *extractor) convert(v any) {
	switch x.param.Type {
	case TypeString:
		x.stringEntries(v)
	case TypeToken:
		x.tokenEntries(v)
	case TypeDate:
		x.dateEntries(v)
	case TypeNumber:
		if s, ok := numberText(v); ok {
			if n, lo, hi, ok := NumberRange(s); ok {
				x.add(Entry{Num: n, NumLo: lo, NumHi: hi})
			}
		}
	case TypeQuantity:
		x.quantityEntries(v)
	case TypeReference:
		x.referenceEntries(v)
	case TypeURI:
		if s, ok := v.(string); ok && s != "" {
			x.add(Entry{URL: s})
		}
	}
}

func (x *extractor) addString(v any) {
	s, ok := v.(string)
	if !ok || s == "" {
		return
	}
	s = capString(s)
	x.add(Entry{Str: NormalizeString(s), Exact: s})
}

// addStrings adds a string or every string of an array.
func (x *extractor) addStrings(v any) {
	if arr, ok := v.([]any); ok {
		for _, it := range arr {
			x.addString(it)
		}
		return
	}
	x.addString(v)
}

func capString(s string) string {
	if len(s) <= MaxIndexedString {
		return s
	}
	cut := MaxIndexedString
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

var (
	humanNameParts = []string{"family", "given", "prefix", "suffix", "text"}
	addressParts   = []string{"line", "city", "district", "state", "postalCode", "country", "text"}
)

func (x *extractor) stringEntries(v any) {
	switch x.elem.DataType {
	case "HumanName", "Address":
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		parts := humanNameParts
		if x.elem.DataType == "Address" {
			parts = addressParts
		}
		for _, k := range parts {
			if pv, ok := m[k]; ok {
				x.addStrings(pv)
			}
		}
	default:
		x.addString(v)
	}
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func (x *extractor) tokenEntries(v any) {
	switch x.elem.DataType {
	case "Coding":
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		x.coding(m)
	case "CodeableConcept":
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		// :text matches the concept's text or any coding's display: each
		// coding carries its display, and the text gets an entry of its own
		// (no system, no code) unless a display already says the same.
		codings, _ := m["coding"].([]any)
		start := len(x.out)
		for _, c := range codings {
			if cm, ok := c.(map[string]any); ok {
				x.coding(cm)
			}
		}
		if text := str(m, "text"); text != "" {
			norm := NormalizeString(capString(text))
			for _, e := range x.out[start:] {
				if e.Str == norm {
					return
				}
			}
			x.add(Entry{Str: norm})
		}
	case "Identifier":
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		value := str(m, "value")
		if value == "" {
			return
		}
		e := Entry{System: str(m, "system"), Code: value}
		t, _ := m["type"].(map[string]any)
		if tt := str(t, "text"); tt != "" {
			e.Str = NormalizeString(capString(tt))
		}
		// One entry per type coding, for :of-type; the plain entry when
		// there is none.
		typed := false
		if codings, ok := t["coding"].([]any); ok {
			for _, c := range codings {
				cm, ok := c.(map[string]any)
				if !ok || str(cm, "code") == "" {
					continue
				}
				te := e
				te.TypeSystem, te.TypeCode = str(cm, "system"), str(cm, "code")
				x.add(te)
				typed = true
			}
		}
		if !typed {
			x.add(e)
		}
	case "ContactPoint":
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		if value := str(m, "value"); value != "" {
			x.add(Entry{System: str(m, "system"), Code: value})
		}
	case "boolean":
		if b, ok := v.(bool); ok {
			x.add(Entry{Code: strconv.FormatBool(b)})
		}
	default: // code, id, string, uri, canonical...
		if s, ok := v.(string); ok && s != "" {
			x.add(Entry{Code: s})
		}
	}
}

// coding adds one Coding, its display normalised in Str for :text.
func (x *extractor) coding(m map[string]any) {
	code, system := str(m, "code"), str(m, "system")
	if code == "" && system == "" {
		return
	}
	e := Entry{System: system, Code: code}
	if d := str(m, "display"); d != "" {
		e.Str = NormalizeString(capString(d))
	}
	x.add(e)
}

func (x *extractor) dateEntries(v any) {
	switch x.elem.DataType {
	case "Period":
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		if lo, hi, ok := periodRange(m); ok {
			x.add(Entry{Lo: lo, Hi: hi})
		}
	case "Timing":
		// The spec: only the outer limits of a schedule matter, so a Timing
		// is one range from its earliest to its latest event or bound.
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		var lo, hi time.Time
		have := false
		widen := func(l, h time.Time) {
			if !have || l.Before(lo) {
				lo = l
			}
			if !have || h.After(hi) {
				hi = h
			}
			have = true
		}
		events, _ := m["event"].([]any)
		for _, ev := range events {
			if s, ok := ev.(string); ok {
				if l, h, ok := DateRange(s); ok {
					widen(l, h)
				}
			}
		}
		if rep, ok := m["repeat"].(map[string]any); ok {
			if bp, ok := rep["boundsPeriod"].(map[string]any); ok {
				if l, h, ok := periodRange(bp); ok {
					widen(l, h)
				}
			}
		}
		if have {
			x.add(Entry{Lo: lo, Hi: hi})
		}
	default:
		x.addDate(v)
	}
}

// periodRange is the range a Period covers; a missing start or end is open
// (MinTime, MaxTime). ok is false for an empty or unparsable Period.
func periodRange(m map[string]any) (lo, hi time.Time, ok bool) {
	lo, hi = MinTime, MaxTime
	start, end := str(m, "start"), str(m, "end")
	if start == "" && end == "" {
		return lo, hi, false
	}
	if start != "" {
		if lo, _, ok = DateRange(start); !ok {
			return lo, hi, false
		}
	}
	if end != "" {
		if _, hi, ok = DateRange(end); !ok {
			return lo, hi, false
		}
	}
	return lo, hi, lo.Before(hi)
}

func (x *extractor) addDate(v any) {
	s, ok := v.(string)
	if !ok {
		return
	}
	if lo, hi, ok := DateRange(s); ok {
		x.add(Entry{Lo: lo, Hi: hi})
	}
}

func numberText(v any) (string, bool) {
	switch n := v.(type) {
	case json.Number:
		return string(n), true
	case float64: // a tree decoded without UseNumber
		return strconv.FormatFloat(n, 'f', -1, 64), true
	}
	return "", false
}

// The bounds written for a Range without low or high.
const (
	openLow  = -1.7976931348623157e308
	openHigh = 1.7976931348623157e308
)

func (x *extractor) quantityEntries(v any) {
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	switch x.elem.DataType {
	case "Range":
		low, _ := m["low"].(map[string]any)
		high, _ := m["high"].(map[string]any)
		e := Entry{NumLo: openLow, NumHi: openHigh}
		var unit map[string]any
		if low != nil {
			if s, ok := numberText(low["value"]); ok {
				if n, _, _, ok := NumberRange(s); ok {
					e.NumLo = n
				}
			}
			unit = low
		}
		if high != nil {
			if s, ok := numberText(high["value"]); ok {
				if n, _, _, ok := NumberRange(s); ok {
					e.NumHi = n
				}
			}
			if unit == nil {
				unit = high
			}
		}
		if e.NumLo == openLow && e.NumHi == openHigh {
			return
		}
		switch {
		case e.NumLo == openLow:
			e.Num = e.NumHi
		case e.NumHi == openHigh:
			e.Num = e.NumLo
		default:
			e.Num = e.NumLo + (e.NumHi-e.NumLo)/2
		}
		if unit != nil {
			e.System, e.Code = str(unit, "system"), str(unit, "code")
		}
		x.add(e)
		if unit != nil {
			x.addCanonical(e, str(unit, "unit"))
		}
		return
	case "Money":
		s, ok := numberText(m["value"])
		if !ok {
			return
		}
		n, lo, hi, ok := NumberRange(s)
		if !ok {
			return
		}
		e := Entry{Num: n, NumLo: lo, NumHi: hi, Code: str(m, "currency")}
		if e.Code != "" {
			e.System = "urn:iso:std:iso:4217"
		}
		x.add(e)
		return
	}
	s, ok := numberText(m["value"])
	if !ok {
		return
	}
	n, lo, hi, ok := NumberRange(s)
	if !ok {
		return
	}
	code, unit := str(m, "code"), str(m, "unit")
	e := Entry{Num: n, NumLo: lo, NumHi: hi, System: str(m, "system"), Code: code}
	x.add(e)
	// "5||mg" matches the unit text as well as the code.
	if unit != "" && unit != code {
		x.add(Entry{Num: n, NumLo: lo, NumHi: hi, Code: unit})
	}
	x.addCanonical(e, unit)
}

// addCanonical adds the quantity e again in its canonical UCUM unit (5 mg as
// 0.005 g), so that a search in any convertible unit matches; see
// CanonicalUnit. Only UCUM (or system-less) codes are converted; a
// system-less quantity without a code is tried by its unit text.
func (x *extractor) addCanonical(e Entry, unit string) {
	code := e.Code
	switch {
	case e.System != "" && e.System != UCUMSystem:
		return
	case code == "" && e.System == "":
		code = unit
	}
	canon, n, lo, hi, ok := canonicalNums(code, e.Num, e.NumLo, e.NumHi)
	if !ok {
		return
	}
	x.add(Entry{Num: n, NumLo: lo, NumHi: hi, System: e.System, Code: canon})
}

func (x *extractor) referenceEntries(v any) {
	switch x.elem.DataType {
	case "canonical", "uri", "url":
		s, ok := v.(string)
		if !ok || s == "" {
			return
		}
		e := Entry{URL: s}
		if x.elem.DataType == "canonical" {
			if i := strings.LastIndexByte(s, '|'); i >= 0 {
				e.URL, e.RefVersion = s[:i], s[i+1:]
			}
		}
		t := refTypeOfURL(e.URL)
		if t == "" {
			t = x.containedType(e.URL)
		}
		// A relative "Type/id" is indexed like a relative Reference.
		if rel, ok := ParseReference(e.URL); ok && rel.URL == "" {
			e.URL, e.RefType, e.RefID = "", rel.RefType, rel.RefID
			t = rel.RefType
		}
		if x.elem.Target != "" && t != x.elem.Target {
			return
		}
		x.add(e)
	case "Resource": // an inline resource (Bundle.entry[0].resource)
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		t, id := str(m, "resourceType"), str(m, "id")
		if t == "" || id == "" || x.elem.Target != "" && t != x.elem.Target {
			return
		}
		x.add(Entry{RefType: t, RefID: id})
	default:
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		var e Entry
		if ref := str(m, "reference"); ref != "" {
			var ok bool
			e, ok = ParseReference(ref)
			if !ok {
				return
			}
		}
		if ident, ok := m["identifier"].(map[string]any); ok {
			e.System, e.Code = str(ident, "system"), str(ident, "value")
		}
		if e.RefType == "" {
			e.RefType = str(m, "type")
		}
		if e.RefID == "" && e.URL == "" && e.Code == "" {
			return
		}
		if x.elem.Target != "" {
			t := e.RefType
			if t == "" {
				t = refTypeOfURL(e.URL)
			}
			if t == "" {
				t = x.containedType(e.URL)
			}
			if t != x.elem.Target {
				return
			}
		}
		x.add(e)
	}
}

// ParseReference splits a Reference.reference: "Type/id" and
// "Type/id/_history/n" give RefType, RefID (and RefVersion); an absolute URL
// or urn:uuid/urn:oid gives URL (and RefVersion for a versioned one); a
// contained "#id" gives URL "#id". ok is false for an empty or malformed value.
func ParseReference(ref string) (Entry, bool) {
	var e Entry
	if ref == "" || len(ref) > 4096 {
		return e, false
	}
	if ref[0] == '#' || strings.HasPrefix(ref, "urn:") || strings.Contains(ref, "://") {
		e.URL = ref
		if i := strings.Index(ref, "/_history/"); i >= 0 && strings.Contains(ref, "://") {
			e.URL, e.RefVersion = ref[:i], ref[i+len("/_history/"):]
		}
		return e, true
	}
	parts := strings.Split(ref, "/")
	switch {
	case len(parts) == 2:
	case len(parts) == 4 && parts[2] == "_history" && parts[3] != "":
		e.RefVersion = parts[3]
	default:
		return e, false
	}
	if !IsResourceType(parts[0]) || parts[1] == "" {
		return e, false
	}
	e.RefType, e.RefID = parts[0], parts[1]
	return e, true
}

// refTypeOfURL returns the resource type an absolute reference or canonical
// names ("http://x/fhir/Patient/1" -> "Patient"), or "".
func refTypeOfURL(u string) string {
	u = strings.TrimSuffix(u, "/")
	if i := strings.Index(u, "/_history/"); i >= 0 {
		u = u[:i]
	}
	i := strings.LastIndexByte(u, '/')
	if i <= 0 {
		return ""
	}
	j := strings.LastIndexByte(u[:i], '/')
	t := u[j+1 : i]
	if IsResourceType(t) {
		return t
	}
	return ""
}
