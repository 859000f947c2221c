package fhir

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
)

//go:embed spec_r4.json.gz
var specGz []byte

// specTables is the decoded form of spec_r4.json.gz (written by
// internal/gen/specgen, whose outTables documents the shape).
type specTables struct {
	Types       []specType
	ValueSets   map[string][]string
	Unexpanded  []string
	Constraints []*Constraint
}

type specType struct {
	Name, Kind, Base, Regex string
	Abstract                bool
	Elements                []specElem
}

type specElem struct {
	path, types, binding, contentRef string
	min, max                         int
}

// decodeTables reads the tables with the package's own parser, several
// times faster than encoding/json into structs.
func decodeTables(raw []byte) (*specTables, error) {
	obj, err := ParseObject(raw, ParseOptions{MaxDepth: 8})
	if err != nil {
		return nil, err
	}
	bad := errors.New("malformed tables")
	st := &specTables{ValueSets: map[string][]string{}}
	types, _ := obj["types"].([]any)
	for _, ti := range types {
		tm, ok := ti.(map[string]any)
		if !ok {
			return nil, bad
		}
		var t specType
		t.Name, _ = tm["n"].(string)
		t.Kind, _ = tm["k"].(string)
		t.Base, _ = tm["b"].(string)
		t.Regex, _ = tm["rx"].(string)
		t.Abstract, _ = tm["a"].(bool)
		if t.Name == "" || t.Kind == "" {
			return nil, bad
		}
		rows, _ := tm["e"].([]any)
		for _, ri := range rows {
			row, ok := ri.([]any)
			if !ok || len(row) != 6 {
				return nil, bad
			}
			var e specElem
			e.path, _ = row[0].(string)
			e.types, _ = row[1].(string)
			mn, _ := row[2].(json.Number)
			mx, _ := row[3].(json.Number)
			e.binding, _ = row[4].(string)
			e.contentRef, _ = row[5].(string)
			var err1, err2 error
			e.min, err1 = strconv.Atoi(string(mn))
			e.max, err2 = strconv.Atoi(string(mx))
			if e.path == "" || err1 != nil || err2 != nil {
				return nil, bad
			}
			t.Elements = append(t.Elements, e)
		}
		st.Types = append(st.Types, t)
	}
	vs, _ := obj["valueSets"].(map[string]any)
	for u, ci := range vs {
		codes, _ := ci.([]any)
		list := make([]string, 0, len(codes))
		for _, c := range codes {
			if s, ok := c.(string); ok {
				list = append(list, s)
			}
		}
		st.ValueSets[u] = list
	}
	un, _ := obj["unexpanded"].([]any)
	for _, u := range un {
		if s, ok := u.(string); ok {
			st.Unexpanded = append(st.Unexpanded, s)
		}
	}
	cons, _ := obj["constraints"].([]any)
	for _, ci := range cons {
		cm, ok := ci.(map[string]any)
		if !ok {
			return nil, bad
		}
		c := &Constraint{}
		c.Key, _ = cm["k"].(string)
		c.Severity, _ = cm["s"].(string)
		c.Human, _ = cm["h"].(string)
		c.Expression, _ = cm["x"].(string)
		c.Source, _ = cm["src"].(string)
		paths, _ := cm["p"].([]any)
		for _, pi := range paths {
			if p, ok := pi.(string); ok {
				c.Paths = append(c.Paths, p)
			}
		}
		if c.Key == "" || c.Expression == "" || len(c.Paths) == 0 {
			return nil, bad
		}
		st.Constraints = append(st.Constraints, c)
	}
	if len(st.Types) == 0 {
		return nil, bad
	}
	return st, nil
}

// Kinds of type.
const (
	kindPrimitive = 'p'
	kindComplex   = 'c'
	kindResource  = 'r'
)

// typeDef is one resource type or datatype.
type typeDef struct {
	name     string
	kind     byte
	base     string
	abstract bool
	regex    string
	prim     primKind // primitives only
	elems    []*elemDef
	root     *node
}

// elemDef is one element with what validation needs resolved.
type elemDef struct {
	ElementInfo
	name   string // last path segment, "[x]" removed
	many   bool
	vtypes []vtype // one per entry of Types
	node   *node   // inline structure (backbone) or contentReference target
	codes  map[string]struct{}
	profs  []string // validation type names while loading
}

// vtype is one allowed type of an element.
type vtype struct {
	code   string   // type code as in ElementInfo.Types
	suffix string   // choice suffix, e.g. "Quantity"
	t      *typeDef // validation target (SimpleQuantity for Quantity|SimpleQuantity); nil for BackboneElement/Element inline
}

// node is an object shape: a type's root or an inline structure.
type node struct {
	path     string
	elems    []*elemDef
	children map[string]childRef // JSON property name -> element
	required []int               // indexes into elems with min > 0
	resource bool                // a resource root: resourceType allowed
}

type childRef struct {
	idx int // index into node.elems
	ti  int // chosen type for a choice property, -1 otherwise
}

type model struct {
	types      map[string]*typeDef
	nodes      map[string]*node
	resources  []string
	names      map[string]struct{} // every JSON property name the spec defines
	valueSets  map[string]map[string]struct{}
	unexpanded []string
	cons       []*Constraint
	consOn     map[string][]*Constraint // definition path -> constraints
}

var (
	modelOnce sync.Once
	theModel  *model
	modelErr  error
)

// spec returns the tables, loading them on first use. A failure here means
// the embedded file is corrupt: a build defect, hence the panic.
func spec() *model {
	modelOnce.Do(func() { theModel, modelErr = loadModel(specGz) })
	if modelErr != nil {
		panic("fhir: embedded specification tables: " + modelErr.Error())
	}
	return theModel
}

func loadModel(gz []byte) (*model, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	st, err := decodeTables(raw)
	if err != nil {
		return nil, err
	}
	m := &model{
		types:      make(map[string]*typeDef, len(st.Types)),
		nodes:      map[string]*node{},
		valueSets:  make(map[string]map[string]struct{}, len(st.ValueSets)),
		unexpanded: st.Unexpanded,
		cons:       st.Constraints,
		consOn:     map[string][]*Constraint{},
	}
	for _, c := range st.Constraints {
		for _, p := range c.Paths {
			m.consOn[p] = append(m.consOn[p], c)
		}
	}
	for u, codes := range st.ValueSets {
		set := make(map[string]struct{}, len(codes))
		for _, c := range codes {
			set[c] = struct{}{}
		}
		m.valueSets[u] = set
	}
	for _, s := range st.Types {
		t := &typeDef{name: s.Name, kind: s.Kind[0], base: s.Base, abstract: s.Abstract, regex: s.Regex}
		if t.kind == kindPrimitive {
			t.prim = primKindOf(s.Name)
		}
		if t.kind == kindResource && !t.abstract {
			m.resources = append(m.resources, t.name)
		}
		for _, row := range s.Elements {
			e := &elemDef{}
			e.Path, e.Min, e.Max, e.Binding, e.ContentReference = row.path, row.min, row.max, row.binding, row.contentRef
			types := row.types
			e.many = e.Max != 1 && e.Max != 0
			last := e.Path[strings.LastIndexByte(e.Path, '.')+1:]
			e.name, e.Choice = strings.CutSuffix(last, "[x]")
			// Resource.id is of type id (the R4 snapshot says System.String).
			if t.kind == kindResource && e.Path == t.name+".id" {
				types = "id"
			}
			for _, ty := range strings.Split(types, ",") {
				if ty == "" {
					continue
				}
				code, prof, _ := strings.Cut(ty, "|")
				if prof == "" {
					prof = code
				}
				e.Types = append(e.Types, code)
				e.profs = append(e.profs, prof)
				e.vtypes = append(e.vtypes, vtype{code: code, suffix: upperFirst(code)})
			}
			t.elems = append(t.elems, e)
		}
		m.types[t.name] = t
	}
	sort.Strings(m.resources)
	m.names = map[string]struct{}{"resourceType": {}}
	// Resolve type references, inline structures and bindings.
	for _, st := range st.Types {
		t := m.types[st.Name]
		t.root = &node{path: t.name, resource: t.kind == kindResource}
		m.nodes[t.name] = t.root
		for _, e := range t.elems {
			if e.ContentReference == "" && len(e.Types) == 1 && (e.Types[0] == "BackboneElement" || e.Types[0] == "Element") {
				m.nodes[e.Path] = &node{path: e.Path}
			}
		}
	}
	for _, st := range st.Types {
		t := m.types[st.Name]
		for _, e := range t.elems {
			for j, prof := range e.profs {
				if vt, ok := m.types[prof]; ok {
					e.vtypes[j].t = vt
				} else if n := m.nodes[e.Path]; n == nil {
					return nil, fmt.Errorf("%s: unknown type", e.Path)
				}
			}
			e.profs = nil
			if e.ContentReference != "" {
				e.node = m.nodes[strings.TrimPrefix(e.ContentReference, "#")]
				if e.node == nil {
					return nil, fmt.Errorf("%s: unresolved contentReference", e.Path)
				}
			} else if n := m.nodes[e.Path]; n != nil {
				e.node = n
			}
			if e.Binding != "" {
				for _, ty := range e.Types {
					if ty == "code" {
						e.codes = m.valueSets[e.Binding]
					}
				}
			}
			parent := m.nodes[e.Path[:strings.LastIndexByte(e.Path, '.')]]
			if parent == nil {
				return nil, fmt.Errorf("%s: no parent", e.Path)
			}
			parent.add(e)
		}
	}
	for _, n := range m.nodes {
		m.addNames(n)
	}
	return m, nil
}

func (m *model) addNames(n *node) {
	for k := range n.children {
		m.names[k] = struct{}{}
	}
}

func (n *node) add(e *elemDef) {
	if n.children == nil {
		n.children = map[string]childRef{}
	}
	idx := len(n.elems)
	n.elems = append(n.elems, e)
	if e.Min > 0 {
		n.required = append(n.required, idx)
	}
	if e.Choice {
		for i, vt := range e.vtypes {
			n.children[e.name+vt.suffix] = childRef{idx: idx, ti: i}
		}
		return
	}
	n.children[e.name] = childRef{idx: idx, ti: -1}
}

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// IsResourceType reports whether name is a concrete R4 resource type.
func IsResourceType(name string) bool {
	t := spec().types[name]
	return t != nil && t.kind == kindResource && !t.abstract
}

// ResourceTypes returns all 146 concrete R4 resource types, sorted.
func ResourceTypes() []string {
	return append([]string(nil), spec().resources...)
}

// IsPrimitiveType reports whether name is an R4 primitive datatype.
func IsPrimitiveType(name string) bool {
	t := spec().types[name]
	return t != nil && t.kind == kindPrimitive
}

// BaseType returns the type name specialises ("Age" -> "Quantity",
// "Patient" -> "DomainResource"), "" at the root or for unknown names.
// Constraint profiles report the type they constrain ("SimpleQuantity" -> "Quantity").
func BaseType(name string) string {
	if t := spec().types[name]; t != nil {
		return t.base
	}
	return ""
}

// LookupElement resolves a child element of a type or of a backbone path:
// LookupElement("Patient", "name"), LookupElement("HumanName", "family"),
// LookupElement("Observation", "valueQuantity") (choice resolved to
// Observation.value[x] with concrete type "Quantity"),
// LookupElement("Bundle.entry", "resource"). parentPath may also walk through
// elements ("Patient.contact.name"). concreteType is the element's type when
// it has exactly one (or the choice made); for inline structures and
// contentReferences it is the path of the structure ("Bundle.entry",
// "Questionnaire.item"), which can be passed back as parentPath; it is ""
// when the element allows several types. info is shared: do not modify it.
func LookupElement(parentPath, name string) (info *ElementInfo, concreteType string, ok bool) {
	n := resolveNode(parentPath)
	if n == nil {
		return nil, "", false
	}
	c, ok := n.children[name]
	if !ok {
		// A choice element by its declared name: "value[x]" or "value".
		for _, e := range n.elems {
			if e.Choice && (name == e.name || name == e.name+"[x]") {
				return &e.ElementInfo, "", true
			}
		}
		return nil, "", false
	}
	e := n.elems[c.idx]
	return &e.ElementInfo, concreteOf(e, c.ti), true
}

func concreteOf(e *elemDef, ti int) string {
	switch {
	case ti >= 0:
		return e.vtypes[ti].code
	case e.node != nil:
		return e.node.path
	case len(e.vtypes) == 1:
		return e.vtypes[0].code
	}
	return ""
}

// resolveNode finds the object shape at a type name or element path.
func resolveNode(path string) *node {
	m := spec()
	if n := m.nodes[path]; n != nil {
		return n
	}
	head, rest, found := strings.Cut(path, ".")
	t := m.types[head]
	if t == nil || !found {
		return nil
	}
	n := t.root
	for rest != "" {
		var seg string
		seg, rest, _ = strings.Cut(rest, ".")
		c, ok := n.children[seg]
		if !ok {
			return nil
		}
		e := n.elems[c.idx]
		switch {
		case e.node != nil:
			n = e.node
		case c.ti >= 0 && e.vtypes[c.ti].t != nil:
			n = e.vtypes[c.ti].t.root
		case len(e.vtypes) == 1 && e.vtypes[0].t != nil:
			n = e.vtypes[0].t.root
		default:
			return nil
		}
	}
	return n
}
