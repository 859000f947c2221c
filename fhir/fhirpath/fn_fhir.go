package fhirpath

import (
	"strings"
)

func registerUtility() {
	reg("not", 0, 0, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		b, known, err := st.boolOf(f, in)
		if err != nil || !known {
			return nil, err
		}
		return boolColl(!b), nil
	})
	reg("trace", 1, 2, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		name, _, err := st.argString(f, 0, sc)
		if err != nil {
			return nil, err
		}
		if st.ec.Trace == nil {
			return in, nil
		}
		out := in
		if len(f.args) > 1 {
			var proj Collection
			err := st.each(f, 1, in, sc, func(i int, res Collection) (bool, error) {
				proj = append(proj, res...)
				return false, nil
			})
			if err != nil {
				return nil, err
			}
			out = proj
		}
		st.ec.Trace(name, out)
		return in, nil
	})
	reg("now", 0, 0, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		return one(dateTimeFromTime(st.clock(), kindDateTime)), nil
	})
	reg("today", 0, 0, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		return one(dateTimeFromTime(st.clock(), kindDate)), nil
	})
	reg("timeOfDay", 0, 0, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		return one(dateTimeFromTime(st.clock(), kindTime)), nil
	})
	reg("children", 0, 0, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		var out Collection
		for _, it := range in {
			out = st.children(it, out)
		}
		return out, st.step(f, len(out))
	})
	reg("descendants", 0, 0, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		var out Collection
		level := in
		for depth := 0; len(level) > 0; depth++ {
			if depth > st.maxDepth {
				return nil, st.errAt(f, KindLimit, CodeDepthLimit, "descendants() deeper than %d", st.maxDepth)
			}
			var next Collection
			for _, it := range level {
				next = st.children(it, next)
			}
			if err := st.step(f, len(next)); err != nil {
				return nil, err
			}
			out = append(out, next...)
			if err := st.checkSize(f, out); err != nil {
				return nil, err
			}
			level = next
		}
		return out, nil
	})
	reg("type", 0, 0, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		out := make(Collection, 0, len(in))
		for _, it := range in {
			ns, name := "System", sysTypeName(it.v)
			if it.typ != "" {
				ns, name = "FHIR", it.typ
			}
			out = append(out, Item{v: map[string]any{"namespace": ns, "name": name}})
		}
		return out, nil
	})
}

// children returns all child nodes of it, in key order.
func (st *state) children(it Item, out Collection) Collection {
	m, ok := it.v.(map[string]any)
	if !ok {
		if it.ext != nil {
			// FHIR counts a primitive's id and extensions as its children.
			if id, ok := it.ext["id"]; ok {
				out = appendJSON(out, it.ext, &keyID, id, nil, "string", "string")
			}
			out = appendJSON(out, it.ext, &keyExtension, it.ext["extension"], nil, "Extension", "Extension")
		}
		return out
	}
	keys := sortedKeys(m)
	for ki, k := range keys {
		if k == "resourceType" {
			continue
		}
		name := k
		if strings.HasPrefix(k, "_") {
			name = k[1:]
			if _, has := m[name]; has {
				continue // handled with its value
			}
		}
		ci := lookupChild(it.path, name)
		typ, path := ci.typ, ci.path
		if !ci.ok {
			typ, path = "", ""
		}
		var raw any
		if name == k {
			raw = m[k]
		}
		key := &keys[ki]
		if name != k {
			key = strPtr(name)
		}
		out = appendJSON(out, m, key, raw, m["_"+name], typ, path)
	}
	return out
}

func registerFHIR() {
	reg("extension", 1, 1, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		url, ok, err := st.argString(f, 0, sc)
		if err != nil || !ok {
			return nil, err
		}
		var out Collection
		for _, it := range in {
			owner, _ := it.v.(map[string]any)
			if owner == nil {
				owner = it.ext
			}
			list, _ := owner["extension"].([]any)
			for i, e := range list {
				em, ok := e.(map[string]any)
				if ok && em["url"] == url {
					out = append(out, Item{v: em, typ: "Extension", path: "Extension", par: owner, key: &keyExtension, idx: i})
				}
			}
		}
		return out, nil
	})
	reg("hasValue", 0, 0, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		if len(in) != 1 || in[0].typ == "" {
			return boolColl(false), nil
		}
		switch in[0].v.(type) {
		case nil, map[string]any, []any:
			return boolColl(false), nil
		}
		return boolColl(true), nil
	})
	reg("getValue", 0, 0, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		if len(in) != 1 || in[0].typ == "" || in[0].isComplex() {
			return nil, nil
		}
		v, ok := in[0].sys()
		if !ok {
			return nil, nil
		}
		return one(v), nil
	})
	reg("resolve", 0, 0, resolveImpl)
	reg("memberOf", 1, 1, memberOfImpl)
	reg("conformsTo", 1, 1, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		url, ok, err := st.argString(f, 0, sc)
		if err != nil || !ok {
			return nil, err
		}
		it, ok, err := st.singleton(f, in)
		if err != nil || !ok {
			return nil, err
		}
		const base = "http://hl7.org/fhir/StructureDefinition/"
		if strings.HasPrefix(url, base) && fhirKnown(url[len(base):]) {
			return boolColl(it.typ != "" && isSubtype(it.typ, url[len(base):])), nil
		}
		if st.ec.ConformsTo == nil {
			return nil, st.errAt(f, KindExecution, CodeUnsupported, "conformsTo() cannot check this profile: no profile validator configured")
		}
		r, err := st.ec.ConformsTo(it, url)
		if err != nil {
			return nil, st.errAt(f, KindExecution, CodeUnsupported, "conformsTo() failed")
		}
		return boolColl(r), nil
	})
	reg("htmlChecks", 0, 0, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		it, ok, err := st.singleton(f, in)
		if err != nil || !ok {
			return boolColl(false), err
		}
		s, _ := it.v.(string)
		return boolColl(htmlSafe(s)), nil
	})
	reg("comparable", 1, 1, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		a, ok, err := st.singleton(f, in)
		if err != nil || !ok {
			return nil, err
		}
		b, ok, err := st.argItem(f, 0, sc)
		if err != nil || !ok {
			return nil, err
		}
		av, _ := a.sys()
		bv, _ := b.sys()
		aq, ok1 := av.(Quantity)
		bq, ok2 := bv.(Quantity)
		if !ok1 || !ok2 {
			return nil, st.errAt(f, KindExecution, CodeType, "comparable() needs Quantities")
		}
		_, ad, k1 := aq.canonical()
		_, bd, k2 := bq.canonical()
		return boolColl(k1 && k2 && ad == bd), nil
	})
}

// htmlSafe is the R4 xhtml rule (txt-1/txt-2 of Narrative): no active
// content. It rejects script, embedded objects, event handler attributes
// and javascript: URLs.
func htmlSafe(s string) bool {
	l := strings.ToLower(s)
	for _, bad := range []string{"<script", "<object", "<embed", "<iframe", "<form", "<applet", "<meta", "<link", "<style", "javascript:", "vbscript:"} {
		if strings.Contains(l, bad) {
			return false
		}
	}
	for i := 0; i+3 < len(l); i++ {
		if (l[i] == ' ' || l[i] == '\t' || l[i] == '\n') && l[i+1] == 'o' && l[i+2] == 'n' {
			j := i + 3
			for j < len(l) && l[j] >= 'a' && l[j] <= 'z' {
				j++
			}
			for j < len(l) && l[j] == ' ' {
				j++
			}
			if j > i+3 && j < len(l) && l[j] == '=' {
				return false
			}
		}
	}
	return strings.Contains(l, "<div")
}
