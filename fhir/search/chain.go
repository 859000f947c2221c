package search

import "strings"

// chained parses a chained parameter (subject:Patient.name,
// patient.organization.name) or a _has (_has:Observation:patient:code),
// nested in any order up to the configured depths.
func (p *parser) chained(key, value string) error {
	types := []string{p.q.Type}
	if p.q.Type == "" {
		types = p.q.Types
	}
	if len(types) == 0 {
		return p.skip(key, CodeUnsupported, "chained parameters need a resource type")
	}
	links, prm, modifier, err := p.chain(types, key, 0, 0)
	if err != nil {
		if err.Code == CodeUnknownParam || err.Code == CodeUnsupported {
			return p.skip(key, err.Code, err.Msg)
		}
		err.Param = safeName(key)
		return err
	}
	return p.clause(key, prm, modifier, value, links)
}

// chain resolves key against the resource types reachable so far. It returns
// the links, the terminal parameter and its modifier. Errors carry no Param:
// the caller sets the whole key.
func (p *parser) chain(types []string, key string, forward, has int) ([]Link, *Param, string, *Error) {
	if strings.HasPrefix(key, "_has:") {
		has++
		if has > p.opts.MaxHasDepth {
			return nil, nil, "", &Error{Code: CodeTooMany, Msg: "_has nested too deeply"}
		}
		parts := strings.SplitN(key, ":", 4)
		if len(parts) != 4 || parts[3] == "" {
			return nil, nil, "", &Error{Code: CodeInvalidValue, Msg: "expected _has:Type:reference:parameter"}
		}
		src := parts[1]
		if !IsResourceType(src) {
			return nil, nil, "", &Error{Code: CodeUnknownType, Msg: "unknown resource type in _has"}
		}
		rp := p.find(src, parts[2])
		if rp == nil {
			return nil, nil, "", &Error{Code: CodeUnknownParam, Msg: "unknown reference parameter in _has"}
		}
		if rp.Type != TypeReference {
			return nil, nil, "", &Error{Code: CodeInvalidValue, Msg: "_has needs a reference parameter"}
		}
		if len(rp.Targets) > 0 && !anyIn(types, rp.Targets) {
			return nil, nil, "", &Error{Code: CodeInvalidValue, Msg: "the _has reference cannot point at the searched type"}
		}
		links, prm, mod, err := p.chain([]string{src}, parts[3], forward, has)
		if err != nil {
			return nil, nil, "", err
		}
		return append([]Link{{Reverse: true, Param: rp, Types: []string{src}}}, links...), prm, mod, nil
	}
	head, rest, dotted := strings.Cut(key, ".")
	name, mod, _ := strings.Cut(head, ":")
	if !dotted {
		prm, _ := p.lookupIn(types, name)
		if prm == nil {
			return nil, nil, "", &Error{Code: CodeUnknownParam, Msg: "unknown search parameter at the end of the chain"}
		}
		return nil, prm, mod, nil
	}
	forward++
	if forward > p.opts.MaxChainDepth {
		return nil, nil, "", &Error{Code: CodeTooMany, Msg: "chain too long"}
	}
	rp, _ := p.lookupIn(types, name)
	if rp == nil {
		return nil, nil, "", &Error{Code: CodeUnknownParam, Msg: "unknown search parameter in the chain"}
	}
	if rp.Type != TypeReference {
		return nil, nil, "", &Error{Code: CodeInvalidValue, Msg: "only reference parameters can be chained"}
	}
	targets := rp.Targets
	if mod != "" {
		if !IsResourceType(mod) || len(rp.Targets) > 0 && !contains(rp.Targets, mod) {
			return nil, nil, "", &Error{Code: CodeInvalidModifier, Msg: "chain type is not a target of the parameter"}
		}
		targets = []string{mod}
	}
	if len(targets) == 0 {
		return nil, nil, "", &Error{Code: CodeInvalidModifier, Msg: "the parameter has no declared target: give one as :Type"}
	}
	// Keep the targets that define the next parameter (with one type).
	next := targets
	if !strings.HasPrefix(rest, "_has:") {
		nextName := rest
		if i := strings.IndexAny(nextName, ":."); i >= 0 {
			nextName = nextName[:i]
		}
		_, next = p.lookupIn(targets, nextName)
		if len(next) == 0 {
			return nil, nil, "", &Error{Code: CodeUnknownParam, Msg: "no target of the chain defines the next parameter"}
		}
	}
	links, prm, m, err := p.chain(next, rest, forward, has)
	if err != nil {
		return nil, nil, "", err
	}
	return append([]Link{{Param: rp, Types: next}}, links...), prm, m, nil
}

// lookupIn finds name on the first of types defining it and returns it with
// the types that define a parameter of that name and type.
func (p *parser) lookupIn(types []string, name string) (*Param, []string) {
	var first *Param
	var in []string
	for _, t := range types {
		prm := p.find(t, name)
		if prm == nil || first != nil && prm.Type != first.Type {
			continue
		}
		if first == nil {
			first = prm
		}
		in = append(in, t)
	}
	return first, in
}

func anyIn(xs, set []string) bool {
	for _, x := range xs {
		if contains(set, x) {
			return true
		}
	}
	return false
}
