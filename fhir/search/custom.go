package search

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"phix/fhir"
	"phix/fhir/fhirpath"
)

// Custom is a runtime registry of search parameters defined by
// SearchParameter resources, layered over the built-in R4 registry: Parse
// (through ParseOptions.Custom) finds a custom parameter where the built-in
// registry has none, and Extract adds its entries. A custom parameter is
// either pending (registered: new writes index it, but a search on it is
// refused with CodeIndexing until the reindex of the existing resources
// completes) or ready. Custom is safe for concurrent use.
type Custom struct {
	mu    sync.RWMutex
	byURL map[string]*customParam
	// byType maps resource type and code to the parameter.
	byType map[string]map[string]*customParam
}

type customParam struct {
	p     *Param
	expr  *fhirpath.Expression
	ready bool
	key   string // the caller's identity of the definition (a fingerprint)
}

// NewCustom returns an empty registry.
func NewCustom() *Custom {
	return &Custom{byURL: map[string]*customParam{}, byType: map[string]map[string]*customParam{}}
}

// CodeIndexing is the parse error for a custom parameter whose reindex has
// not completed: searching on it would silently miss resources written
// before it was defined.
const CodeIndexing = "parameter-indexing"

// Custom parameter definition limits.
const (
	maxCustomExpression = 4096
	maxCustomBases      = 64
)

// DefinitionError reports an invalid SearchParameter resource. Field names
// the element (a path such as "expression"); Pos, for an expression that
// does not compile, is where the problem is. The message never quotes the
// definition's values.
type DefinitionError struct {
	Field string
	Msg   string
	Pos   *fhirpath.Position
}

func (e *DefinitionError) Error() string {
	if e.Pos != nil {
		return fmt.Sprintf("SearchParameter.%s: %s (at line %d, column %d)", e.Field, e.Msg, e.Pos.Line, e.Pos.Column)
	}
	return fmt.Sprintf("SearchParameter.%s: %s", e.Field, e.Msg)
}

func defErr(field, msg string) error { return &DefinitionError{Field: field, Msg: msg} }

// Definition is a validated SearchParameter resource.
type Definition struct {
	Param  *Param
	Status string // draft, active, retired or unknown
	expr   *fhirpath.Expression
}

// Active reports whether the definition should be searchable.
func (d *Definition) Active() bool { return d.Status == "active" }

// ParseDefinition validates a SearchParameter resource (as a JSON object)
// and returns the parameter it defines. Supported types are string, token,
// date, number, quantity, reference and uri; every base must be a concrete
// resource type; the expression must compile; the code must not be one the
// built-in registry already defines on a base.
func ParseDefinition(obj map[string]any) (*Definition, error) {
	if rt, _ := obj["resourceType"].(string); rt != "SearchParameter" {
		return nil, defErr("resourceType", "not a SearchParameter")
	}
	str := func(k string) string { s, _ := obj[k].(string); return s }
	d := &Definition{Param: &Param{}, Status: str("status")}
	p := d.Param
	switch d.Status {
	case "draft", "active", "retired", "unknown":
	default:
		return nil, defErr("status", "must be draft, active, retired or unknown")
	}
	p.URL = str("url")
	if p.URL == "" || len(p.URL) > 1024 || strings.ContainsAny(p.URL, " \t\r\n|") {
		return nil, defErr("url", "a canonical URL without spaces or '|' is required")
	}
	p.Code = str("code")
	if !validCode(p.Code) {
		return nil, defErr("code", "must be 1 to 64 letters, digits, '-' or '_', starting with a letter")
	}
	p.Type = Type(str("type"))
	if !extractable(p.Type) {
		return nil, defErr("type", "must be string, token, date, number, quantity, reference or uri (composite and special are not supported for custom parameters)")
	}
	bases, ok := obj["base"].([]any)
	if !ok || len(bases) == 0 || len(bases) > maxCustomBases {
		return nil, defErr("base", "one to 64 resource types are required")
	}
	for _, b := range bases {
		s, _ := b.(string)
		if !IsResourceType(s) {
			return nil, defErr("base", "every base must be a concrete resource type")
		}
		if slices.Contains(p.Base, s) {
			continue
		}
		if core := Lookup(s, p.Code); core != nil {
			return nil, defErr("code", "the code is already a built-in parameter of a base type")
		}
		p.Base = append(p.Base, s)
	}
	sort.Strings(p.Base)
	if ts, ok := obj["target"].([]any); ok {
		if p.Type != TypeReference {
			return nil, defErr("target", "only reference parameters have targets")
		}
		for _, t := range ts {
			s, _ := t.(string)
			if !IsResourceType(s) {
				return nil, defErr("target", "every target must be a concrete resource type")
			}
			p.Targets = append(p.Targets, s)
		}
	}
	p.Expression = str("expression")
	if p.Expression == "" {
		return nil, defErr("expression", "a FHIRPath expression is required")
	}
	if len(p.Expression) > maxCustomExpression {
		return nil, defErr("expression", "longer than 4096 bytes")
	}
	x, err := fhirpath.Compile(p.Expression)
	if err != nil {
		if fe, ok := fhirpath.AsError(err); ok {
			pos := fe.Pos
			return nil, &DefinitionError{Field: "expression", Msg: "does not compile: " + fe.Msg, Pos: &pos}
		}
		return nil, defErr("expression", "does not compile")
	}
	d.expr = x
	return d, nil
}

func validCode(s string) bool {
	if s == "" || len(s) > 64 || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Conflict reports whether registering d would clash with another custom
// parameter (another URL with the same code on a shared base).
func (c *Custom) Conflict(d *Definition) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, b := range d.Param.Base {
		if cp := c.byType[b][d.Param.Code]; cp != nil && cp.p.URL != d.Param.URL {
			return true
		}
	}
	return false
}

// Register adds (or replaces, by URL) the definition's parameter. key is
// the caller's identity of the definition (SetReady names it); ready says
// whether its index is complete. It fails when another URL holds the code on a base.
func (c *Custom) Register(d *Definition, key string, ready bool) error {
	if d.expr == nil {
		return defErr("expression", "definition was not parsed")
	}
	if c.Conflict(d) {
		return defErr("code", "another custom SearchParameter defines this code on a base type")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(d.Param.URL)
	cp := &customParam{p: d.Param, expr: d.expr, ready: ready, key: key}
	c.byURL[d.Param.URL] = cp
	for _, b := range d.Param.Base {
		m := c.byType[b]
		if m == nil {
			m = map[string]*customParam{}
			c.byType[b] = m
		}
		m[d.Param.Code] = cp
	}
	return nil
}

// Remove unregisters the parameter with this URL and returns it (nil when
// none was registered).
func (c *Custom) Remove(url string) *Param {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.removeLocked(url)
}

func (c *Custom) removeLocked(url string) *Param {
	cp := c.byURL[url]
	if cp == nil {
		return nil
	}
	delete(c.byURL, url)
	for _, b := range cp.p.Base {
		if c.byType[b][cp.p.Code] == cp {
			delete(c.byType[b], cp.p.Code)
		}
	}
	return cp.p
}

// SetReady marks the parameter with this URL searchable when it is still
// the definition registered with key (a different one needs its own
// reindex).
func (c *Custom) SetReady(url, key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp := c.byURL[url]
	if cp == nil || cp.key != key {
		return false
	}
	cp.ready = true
	return true
}

// ByURL returns the registered parameter, its key and whether it is ready;
// nil when none.
func (c *Custom) ByURL(url string) (p *Param, key string, ready bool) {
	if c == nil {
		return nil, "", false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	cp := c.byURL[url]
	if cp == nil {
		return nil, "", false
	}
	return cp.p, cp.key, cp.ready
}

// Lookup returns the custom parameter code of resourceType, or nil.
func (c *Custom) Lookup(resourceType, code string) *Param {
	if c == nil {
		return nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if cp := c.byType[resourceType][code]; cp != nil {
		return cp.p
	}
	return nil
}

// Pending reports whether p is a custom parameter still being indexed.
func (c *Custom) Pending(p *Param) bool {
	if c == nil || p == nil {
		return false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	cp := c.byURL[p.URL]
	return cp != nil && cp.p == p && !cp.ready
}

// Params returns the registered parameters sorted by URL.
func (c *Custom) Params() []*Param {
	if c == nil {
		return nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]*Param, 0, len(c.byURL))
	for _, cp := range c.byURL {
		out = append(out, cp.p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].URL < out[j].URL })
	return out
}

// Extract returns r's entries for every custom parameter of its type.
func (c *Custom) Extract(r *fhir.Resource) []Entry {
	if c == nil || r == nil || r.Object == nil {
		return nil
	}
	c.mu.RLock()
	var cps []*customParam
	for _, cp := range c.byType[r.Type] {
		cps = append(cps, cp)
	}
	c.mu.RUnlock()
	var out []Entry
	for _, cp := range cps {
		out = append(out, extractExpr(r, cp.p, cp.expr)...)
	}
	return out
}

// ExtractCustom returns r's entries for the custom parameter with this URL
// (nil when it is not registered or does not apply to r's type).
func (c *Custom) ExtractCustom(r *fhir.Resource, url string) []Entry {
	if c == nil || r == nil || r.Object == nil {
		return nil
	}
	c.mu.RLock()
	cp := c.byURL[url]
	c.mu.RUnlock()
	if cp == nil || !slices.Contains(cp.p.Base, r.Type) {
		return nil
	}
	return extractExpr(r, cp.p, cp.expr)
}

// customLimits bound the evaluation of a custom expression at write time:
// a pathological definition must not stall writes.
var customLimits = fhirpath.Limits{MaxSteps: 200_000, MaxCollection: 10_000, MaxDepth: 32}

// refTypeResolver answers resolve() with a stub of the referenced type and
// id (no store access: an index entry must depend on the resource alone),
// which is what "where(resolve() is Patient)" needs.
type refTypeResolver struct{}

func (refTypeResolver) Resolve(_ context.Context, ref string) (map[string]any, error) {
	e, ok := ParseReference(ref)
	if ok && e.RefType == "" && strings.Contains(e.URL, "://") {
		e.RefType = refTypeOfURL(e.URL)
	}
	if !ok || e.RefType == "" || !IsResourceType(e.RefType) {
		return nil, nil
	}
	return map[string]any{"resourceType": e.RefType, "id": e.RefID}, nil
}

// extractExpr evaluates p's expression over r and converts every item it
// yields by its FHIR datatype, as the built-in extraction does. An
// evaluation error (a limit, a type mismatch on this resource) yields no
// entries: indexing never fails a write.
func extractExpr(r *fhir.Resource, p *Param, expr *fhirpath.Expression) []Entry {
	ec := &fhirpath.EvalContext{Limits: customLimits, Resolver: refTypeResolver{}}
	items, err := expr.EvaluateResource(ec, r.Object)
	if err != nil {
		return nil
	}
	x := extractor{param: p}
	for _, it := range items {
		dt := it.FHIRType()
		raw := it.Raw()
		if dt == "" { // a System value computed by the expression
			switch v := it.Value().(type) {
			case string:
				dt, raw = "string", v
			case bool:
				dt, raw = "boolean", v
			case int64:
				dt, raw = "integer", json.Number(fmt.Sprint(v))
			case fmt.Stringer:
				dt, raw = "string", v.String()
				switch p.Type {
				case TypeNumber:
					dt, raw = "decimal", json.Number(v.String())
				case TypeDate:
					dt = "dateTime"
				}
			default:
				continue
			}
		}
		if raw == nil {
			continue
		}
		x.elem = &Element{Resource: r.Type, DataType: dt}
		x.convert(raw)
	}
	return x.out
}
