package fhirpath

import (
	"reflect"
	"sort"
)

type funcImpl func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error)

type funcDef struct {
	minArgs, maxArgs int // maxArgs -1: unbounded
	typeArg          bool
	impl             funcImpl
}

var funcs map[string]*funcDef

func lookupFunc(name string) (*funcDef, bool) {
	d, ok := funcs[name]
	return d, ok
}

func reg(name string, minA, maxA int, impl funcImpl) {
	funcs[name] = &funcDef{minArgs: minA, maxArgs: maxA, impl: impl}
}

func init() {
	funcs = map[string]*funcDef{}
	registerExistence()
	registerFiltering()
	registerConversion()
	registerStrings()
	registerMath()
	registerUtility()
	registerFHIR()
	for _, n := range []string{"is", "as", "ofType"} {
		funcs[n].typeArg = true
	}
}

func (st *state) call(f *funcNode, in Collection, sc *scope) (Collection, error) {
	st.depth++
	defer func() { st.depth-- }()
	if st.depth > st.maxDepth*4 {
		return nil, st.errAt(f, KindLimit, CodeDepthLimit, "function calls nested deeper than %d", st.maxDepth*4)
	}
	out, err := f.def.impl(st, f, in, sc)
	if err != nil {
		return nil, err
	}
	if err := st.checkSize(f, out); err != nil {
		return nil, err
	}
	return out, nil
}

// arg evaluates argument i in the caller's scope.
func (st *state) arg(f *funcNode, i int, sc *scope) (Collection, error) {
	return st.eval(f.args[i], sc)
}

// argItem evaluates argument i and applies the singleton rule.
func (st *state) argItem(f *funcNode, i int, sc *scope) (Item, bool, error) {
	c, err := st.arg(f, i, sc)
	if err != nil {
		return Item{}, false, err
	}
	return st.singleton(f.args[i], c)
}

func (st *state) argInt(f *funcNode, i int, sc *scope) (int64, bool, error) {
	it, ok, err := st.argItem(f, i, sc)
	if err != nil || !ok {
		return 0, false, err
	}
	v, _ := it.sys()
	n, isInt := v.(int64)
	if !isInt {
		return 0, false, st.errAt(f.args[i], KindExecution, CodeArgument, "argument %d of %s() must be an Integer", i+1, f.name)
	}
	return n, true, nil
}

func (st *state) argString(f *funcNode, i int, sc *scope) (string, bool, error) {
	it, ok, err := st.argItem(f, i, sc)
	if err != nil || !ok {
		return "", false, err
	}
	v, _ := it.sys()
	s, isStr := v.(string)
	if !isStr {
		return "", false, st.errAt(f.args[i], KindExecution, CodeArgument, "argument %d of %s() must be a String", i+1, f.name)
	}
	return s, true, nil
}

// each evaluates argument ai once per input item with $this and $index set.
func (st *state) each(f *funcNode, ai int, in Collection, sc *scope, fn func(i int, res Collection) (bool, error)) error {
	inner := st.pushScope()
	defer st.popScope()
	*inner = scope{hasIndex: true, total: sc.total, hasTotal: sc.hasTotal}
	for i := range in {
		inner.this = in[i : i+1 : i+1]
		inner.index = i
		res, err := st.eval(f.args[ai], inner)
		if err != nil {
			return err
		}
		stop, err := fn(i, res)
		if err != nil || stop {
			return err
		}
	}
	return nil
}

func registerExistence() {
	reg("empty", 0, 0, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		return boolColl(len(in) == 0), nil
	})
	reg("exists", 0, 1, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		if len(f.args) == 0 {
			return boolColl(len(in) > 0), nil
		}
		found := false
		err := st.each(f, 0, in, sc, func(i int, res Collection) (bool, error) {
			b, known, err := st.boolOf(f.args[0], res)
			if err != nil {
				return true, err
			}
			found = known && b
			return found, nil
		})
		return boolColl(found), err
	})
	reg("all", 1, 1, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		all := true
		err := st.each(f, 0, in, sc, func(i int, res Collection) (bool, error) {
			b, known, err := st.boolOf(f.args[0], res)
			if err != nil {
				return true, err
			}
			if !known || !b {
				all = false
				return true, nil
			}
			return false, nil
		})
		return boolColl(all), err
	})
	boolAgg := func(want bool, any bool) funcImpl {
		return func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
			for _, it := range in {
				v, _ := it.sys()
				b, ok := v.(bool)
				if !ok {
					return nil, st.errAt(f, KindExecution, CodeType, "%s() needs Boolean items", f.name)
				}
				if any && b == want {
					return boolColl(true), nil
				}
				if !any && b != want {
					return boolColl(false), nil
				}
			}
			return boolColl(!any), nil
		}
	}
	reg("allTrue", 0, 0, boolAgg(true, false))
	reg("allFalse", 0, 0, boolAgg(false, false))
	reg("anyTrue", 0, 0, boolAgg(true, true))
	reg("anyFalse", 0, 0, boolAgg(false, true))
	subset := func(super bool) funcImpl {
		return func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
			other, err := st.arg(f, 0, sc)
			if err != nil {
				return nil, err
			}
			a, b := in, other
			if super {
				a, b = other, in
			}
			if err := st.step(f, len(a)*len(b)); err != nil {
				return nil, err
			}
			for _, x := range a {
				if !containsItem(b, x) {
					return boolColl(false), nil
				}
			}
			return boolColl(true), nil
		}
	}
	reg("subsetOf", 1, 1, subset(false))
	reg("supersetOf", 1, 1, subset(true))
	reg("count", 0, 0, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		return Collection{sysItem(int64(len(in)))}, nil
	})
	reg("distinct", 0, 0, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		return st.distinct(f, in)
	})
	reg("isDistinct", 0, 0, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		d, err := st.distinct(f, in)
		if err != nil {
			return nil, err
		}
		return boolColl(len(d) == len(in)), nil
	})
}

func containsItem(c Collection, x Item) bool {
	for _, y := range c {
		if eq, known := itemsEqual(x, y); known && eq {
			return true
		}
	}
	return false
}

// sameNode reports whether two items are the same node of a resource (for
// repeat(), which must not merge distinct but equal elements).
func sameNode(a, b Item) bool {
	am, ok1 := a.v.(map[string]any)
	bm, ok2 := b.v.(map[string]any)
	if ok1 && ok2 {
		return reflect.ValueOf(am).UnsafePointer() == reflect.ValueOf(bm).UnsafePointer()
	}
	if ok1 || ok2 {
		return false
	}
	eq, known := itemsEqual(a, b)
	return known && eq && a.typ == b.typ
}

func registerFiltering() {
	reg("where", 1, 1, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		out := st.allocN(len(in))
		err := st.each(f, 0, in, sc, func(i int, res Collection) (bool, error) {
			b, known, err := st.boolOf(f.args[0], res)
			if err != nil {
				return true, err
			}
			if known && b {
				out = append(out, in[i])
			}
			return false, nil
		})
		if len(out) == 0 {
			return nil, err
		}
		return out[:len(out):len(out)], err
	})
	reg("select", 1, 1, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		var out Collection
		err := st.each(f, 0, in, sc, func(i int, res Collection) (bool, error) {
			out = append(out, res...)
			return false, st.checkSize(f, out)
		})
		return out, err
	})
	reg("repeat", 1, 1, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		var out Collection
		frontier := in
		for round := 0; len(frontier) > 0; round++ {
			if round >= st.maxDepth*4 {
				return nil, st.errAt(f, KindLimit, CodeDepthLimit, "repeat() went deeper than %d rounds", st.maxDepth*4)
			}
			var next Collection
			err := st.each(f, 0, frontier, sc, func(i int, res Collection) (bool, error) {
				for _, r := range res {
					if err := st.step(f, len(out)); err != nil {
						return true, err
					}
					dup := false
					for _, o := range out {
						if sameNode(o, r) {
							dup = true
							break
						}
					}
					if !dup {
						out = append(out, r)
						next = append(next, r)
					}
				}
				return false, st.checkSize(f, out)
			})
			if err != nil {
				return nil, err
			}
			frontier = next
		}
		return out, nil
	})
	reg("ofType", 1, 1, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		var out Collection
		for _, it := range in {
			if typeMatches(it, f.typeArg, true) {
				out = append(out, it)
			}
		}
		return out, nil
	})
	reg("is", 1, 1, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		it, ok, err := st.singleton(f, in)
		if err != nil || !ok {
			return nil, err
		}
		return boolColl(typeMatches(it, f.typeArg, false)), nil
	})
	// as() filters like ofType(): R4's own invariants (dom-3:
	// descendants().as(canonical)) apply it to collections. The "as"
	// operator keeps the singleton rule.
	reg("as", 1, 1, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		var out Collection
		for _, it := range in {
			if typeMatches(it, f.typeArg, true) {
				out = append(out, it)
			}
		}
		return out, nil
	})
	reg("single", 0, 0, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		if len(in) > 1 {
			return nil, st.errAt(f, KindExecution, CodeSingleton, "single() found %d items", len(in))
		}
		return in, nil
	})
	reg("first", 0, 0, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		if len(in) == 0 {
			return nil, nil
		}
		return in[:1:1], nil
	})
	reg("last", 0, 0, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		if len(in) == 0 {
			return nil, nil
		}
		return in[len(in)-1:], nil
	})
	reg("tail", 0, 0, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		if len(in) < 2 {
			return nil, nil
		}
		return in[1:], nil
	})
	reg("skip", 1, 1, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		n, ok, err := st.argInt(f, 0, sc)
		if err != nil || !ok {
			return nil, err
		}
		if n <= 0 {
			return in, nil
		}
		if n >= int64(len(in)) {
			return nil, nil
		}
		return in[n:], nil
	})
	reg("take", 1, 1, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		n, ok, err := st.argInt(f, 0, sc)
		if err != nil || !ok || n <= 0 {
			return nil, err
		}
		if n >= int64(len(in)) {
			return in, nil
		}
		return in[:n:n], nil
	})
	reg("intersect", 1, 1, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		other, err := st.arg(f, 0, sc)
		if err != nil {
			return nil, err
		}
		if err := st.step(f, len(in)*len(other)); err != nil {
			return nil, err
		}
		var out Collection
		for _, it := range in {
			if containsItem(other, it) && !containsItem(out, it) {
				out = append(out, it)
			}
		}
		return out, nil
	})
	reg("exclude", 1, 1, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		other, err := st.arg(f, 0, sc)
		if err != nil {
			return nil, err
		}
		if err := st.step(f, len(in)*len(other)); err != nil {
			return nil, err
		}
		var out Collection
		for _, it := range in {
			if !containsItem(other, it) {
				out = append(out, it)
			}
		}
		return out, nil
	})
	reg("union", 1, 1, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		other, err := st.arg(f, 0, sc)
		if err != nil {
			return nil, err
		}
		all := make(Collection, 0, len(in)+len(other))
		all = append(append(all, in...), other...)
		return st.distinct(f, all)
	})
	reg("combine", 1, 1, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		other, err := st.arg(f, 0, sc)
		if err != nil {
			return nil, err
		}
		all := make(Collection, 0, len(in)+len(other))
		return append(append(all, in...), other...), nil
	})
	reg("aggregate", 1, 2, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		var total Collection
		if len(f.args) > 1 {
			init, err := st.arg(f, 1, sc)
			if err != nil {
				return nil, err
			}
			total = init
		}
		inner := &scope{hasIndex: true, hasTotal: true}
		for i := range in {
			inner.this = in[i : i+1 : i+1]
			inner.index = i
			inner.total = total
			res, err := st.eval(f.args[0], inner)
			if err != nil {
				return nil, err
			}
			total = res
		}
		return total, nil
	})
	reg("sort", 0, -1, sortImpl)
}

func sortImpl(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
	type keyed struct {
		it   Item
		keys []Collection
	}
	rows := make([]keyed, len(in))
	desc := make([]bool, len(f.args))
	exprs := make([]node, len(f.args))
	for k, a := range f.args {
		exprs[k] = a
		if u, ok := a.(*unaryNode); ok && u.op == "-" {
			desc[k] = true
			exprs[k] = u.operand
		}
	}
	inner := &scope{hasIndex: true}
	for i, it := range in {
		rows[i].it = it
		inner.this = in[i : i+1 : i+1]
		inner.index = i
		for _, e := range exprs {
			c, err := st.eval(e, inner)
			if err != nil {
				return nil, err
			}
			rows[i].keys = append(rows[i].keys, c)
		}
	}
	if err := st.step(f, len(in)*8); err != nil {
		return nil, err
	}
	var sortErr error
	cmp := func(a, b Collection) int {
		if len(a) == 0 || len(b) == 0 {
			return len(a) - len(b) // empty first
		}
		c, _, ok := compareItems(a[0], b[0])
		if !ok && sortErr == nil {
			sortErr = st.errAt(f, KindExecution, CodeType, "sort() keys are not comparable")
		}
		return c
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if len(exprs) == 0 {
			return cmp(Collection{rows[i].it}, Collection{rows[j].it}) < 0
		}
		for k := range exprs {
			a, b := rows[i].keys[k], rows[j].keys[k]
			c := cmp(a, b)
			if desc[k] && len(a) > 0 && len(b) > 0 {
				c = -c
			}
			if c != 0 {
				return c < 0
			}
		}
		return false
	})
	if sortErr != nil {
		return nil, sortErr
	}
	out := make(Collection, len(rows))
	for i := range rows {
		out[i] = rows[i].it
	}
	return out, nil
}
