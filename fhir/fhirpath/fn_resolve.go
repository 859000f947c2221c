package fhirpath

import (
	"context"
	"strings"
)

// resolveImpl implements resolve(): contained resources ("#id") of
// %resource, entries of a %rootResource (or %resource) Bundle by fullUrl or
// type/id, then the caller's Resolver.
func resolveImpl(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
	var out Collection
	for _, it := range in {
		var ref string
		switch v := it.v.(type) {
		case map[string]any:
			ref, _ = v["reference"].(string)
		case string:
			ref = v
		}
		if ref == "" {
			continue
		}
		if err := st.step(f, 1); err != nil {
			return nil, err
		}
		if r := st.resolveLocal(ref); r != nil {
			out = append(out, NewResourceItem(r))
			continue
		}
		if st.ec.Resolver == nil || strings.HasPrefix(ref, "#") {
			continue
		}
		ctx := st.ctx
		if ctx == nil {
			ctx = context.Background()
		}
		r, err := st.ec.Resolver.Resolve(ctx, ref)
		if err != nil {
			return nil, st.errAt(f, KindExecution, CodeResolve, "resolve() failed")
		}
		if r != nil {
			out = append(out, NewResourceItem(r))
		}
	}
	return out, nil
}

func (st *state) roots() []map[string]any {
	var rs []map[string]any
	for _, c := range []Collection{st.ec.Resource, st.ec.RootResource, st.input} {
		for _, it := range c {
			if m, ok := it.v.(map[string]any); ok {
				rs = append(rs, m)
			}
		}
	}
	return rs
}

func (st *state) resolveLocal(ref string) map[string]any {
	roots := st.roots()
	if id, ok := strings.CutPrefix(ref, "#"); ok {
		for _, r := range roots {
			if id == "" {
				return r // "#" refers to the containing resource
			}
			list, _ := r["contained"].([]any)
			for _, c := range list {
				if cm, ok := c.(map[string]any); ok && cm["id"] == id {
					return cm
				}
			}
		}
		return nil
	}
	typ, id := splitRef(ref)
	for _, r := range roots {
		if r["resourceType"] != "Bundle" {
			continue
		}
		entries, _ := r["entry"].([]any)
		for _, e := range entries {
			em, _ := e.(map[string]any)
			res, _ := em["resource"].(map[string]any)
			if res == nil {
				continue
			}
			if fu, _ := em["fullUrl"].(string); fu != "" && fu == ref {
				return res
			}
			if typ != "" && res["resourceType"] == typ && res["id"] == id {
				return res
			}
		}
	}
	return nil
}

// splitRef returns the type and id of a relative or absolute RESTful
// reference ("Patient/1", "http://x/fhir/Patient/1/_history/2").
func splitRef(ref string) (string, string) {
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	parts := strings.Split(ref, "/")
	if len(parts) < 2 {
		return "", ""
	}
	t, id := parts[len(parts)-2], parts[len(parts)-1]
	if t == "" || id == "" || t[0] < 'A' || t[0] > 'Z' {
		return "", ""
	}
	return t, id
}

// memberOfImpl implements memberOf() through the Terminology callback.
// Without one it yields empty (unknown), which where() treats as false.
func memberOfImpl(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
	vs, ok, err := st.argString(f, 0, sc)
	if err != nil || !ok {
		return nil, err
	}
	it, ok, err := st.singleton(f, in)
	if err != nil || !ok {
		return nil, err
	}
	if st.ec.Terminology == nil {
		return nil, nil
	}
	type coding struct{ system, code string }
	var codes []coding
	switch v := it.v.(type) {
	case string:
		codes = append(codes, coding{"", v})
	case map[string]any:
		if c, ok := v["code"].(string); ok {
			s, _ := v["system"].(string)
			codes = append(codes, coding{s, c})
		}
		list, _ := v["coding"].([]any)
		for _, e := range list {
			if cm, ok := e.(map[string]any); ok {
				s, _ := cm["system"].(string)
				c, _ := cm["code"].(string)
				if c != "" {
					codes = append(codes, coding{s, c})
				}
			}
		}
	}
	ctx := st.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	for _, c := range codes {
		ok, err := st.ec.Terminology.MemberOf(ctx, c.system, c.code, vs)
		if err != nil {
			return nil, st.errAt(f, KindExecution, CodeTerminology, "memberOf() terminology lookup failed")
		}
		if ok {
			return boolColl(true), nil
		}
	}
	return boolColl(false), nil
}
