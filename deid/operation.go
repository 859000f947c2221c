package deid

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"

	"phix/fhir"
)

// Levels are the values of the $de-identify "level" parameter (seed 002),
// each the name of a built-in profile.
var Levels = []string{"safe-harbor", "limited-data-set", "expert", "china"}

// Operation serves FHIR $de-identify (seed 002: POST
// /fhir/r4/Patient/{id}/$de-identify with a Parameters body). It holds the
// keys and options and one engine per distinct request configuration. It is
// safe for concurrent use.
type Operation struct {
	keys Keys
	opts Options

	mu      sync.Mutex
	engines map[opConfig]*Engine
}

// opConfig is a parsed request: the level and its overrides.
type opConfig struct {
	level string
	k, l  int // 0: the profile's own
}

// NewOperation prepares $de-identify with the sender's keys. Engines are
// built on first use of each level.
func NewOperation(keys Keys, opts Options) (*Operation, error) {
	if keys == nil {
		return nil, failed("keys", "no keys")
	}
	return &Operation{keys: keys, opts: opts, engines: map[opConfig]*Engine{}}, nil
}

func paramErr(where, msg string) *Error {
	return &Error{Code: CodeParamInvalid, Rule: -1, Where: where, Msg: msg}
}

// HandleOperation runs $de-identify. params is the request's Parameters
// resource:
//
//   - level (valueCode or valueString, required, once): safe-harbor,
//     limited-data-set, expert or china;
//   - k, l (valueInteger/valuePositiveInt, optional, once): raise the
//     profile's k-anonymity / l-diversity threshold. Only profiles with a
//     risk check (expert) accept them, and a value below the profile's own
//     is refused: a request can make de-identification stricter, never
//     weaker.
//
// targets are what the operation runs on: one resource (Patient/{id}) gives
// the de-identified resource; one Bundle gives a Bundle; several resources
// (a patient compartment) give a collection Bundle, de-identified with one
// patient context. Every output resource carries the MASKED meta.tag.
//
// Errors: DEID-PARAM-INVALID for a bad request (the server answers 400),
// PHI-6009 when a risk-gated level finds the batch below k (a single
// patient is always below k: expert determination needs a cohort), PHI-6008
// when a resource cannot be de-identified. No error holds resource content.
func (o *Operation) HandleOperation(ctx context.Context, params *fhir.Resource, targets ...*fhir.Resource) (*fhir.Resource, error) {
	cfg, err := parseOpParams(params)
	if err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		return nil, paramErr("target", "nothing to de-identify")
	}
	for i, t := range targets {
		if t == nil || t.Object == nil {
			return nil, paramErr("target["+strconv.Itoa(i)+"]", "missing resource")
		}
	}
	e, err := o.engine(cfg)
	if err != nil {
		return nil, err
	}
	if len(targets) == 1 {
		t := targets[0]
		if t.Type == "Bundle" {
			return e.Bundle(ctx, t)
		}
		if e.risk == nil {
			out, err := e.Resource(ctx, t)
			if err == nil && out == nil {
				return nil, failed(t.Type, "the profile suppresses this resource")
			}
			return out, err
		}
		// A risk-gated level assesses even one resource (and refuses it).
		b, err := e.Bundle(ctx, collection(targets))
		if err != nil {
			return nil, err
		}
		return firstEntry(b), nil
	}
	return e.Bundle(ctx, collection(targets))
}

func collection(rs []*fhir.Resource) *fhir.Resource {
	entries := make([]any, len(rs))
	for i, r := range rs {
		entries[i] = map[string]any{"resource": r.Object}
	}
	return &fhir.Resource{Type: "Bundle", Object: map[string]any{
		"resourceType": "Bundle", "type": "collection", "entry": entries,
	}}
}

func firstEntry(b *fhir.Resource) *fhir.Resource {
	for _, en := range arr(b.Object["entry"]) {
		if m, ok := en.(map[string]any)["resource"].(map[string]any); ok {
			return toResource(m)
		}
	}
	return nil
}

func (o *Operation) engine(cfg opConfig) (*Engine, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if e, ok := o.engines[cfg]; ok {
		return e, nil
	}
	p, err := LoadProfile(cfg.level)
	if err != nil {
		return nil, err
	}
	if cfg.k != 0 || cfg.l != 0 {
		if p.Risk == nil {
			return nil, paramErr("k", "this level has no risk check to configure")
		}
		if cfg.k != 0 {
			if cfg.k < p.Risk.K {
				return nil, paramErr("k", "below the level's own k")
			}
			p.Risk.K = cfg.k
		}
		if cfg.l != 0 {
			if cfg.l < p.Risk.L {
				return nil, paramErr("l", "below the level's own l")
			}
			p.Risk.L = cfg.l
		}
	}
	e, err := New(p, o.keys, o.opts)
	if err != nil {
		return nil, err
	}
	if len(o.engines) < 64 {
		o.engines[cfg] = e
	}
	return e, nil
}

const maxOverride = 1000

// parseOpParams reads the Parameters request strictly: unknown names,
// repeats and wrong value types are refused.
func parseOpParams(params *fhir.Resource) (opConfig, error) {
	var cfg opConfig
	if params == nil || params.Object == nil {
		return cfg, paramErr("Parameters", "no request body")
	}
	if rt, _ := params.Object["resourceType"].(string); rt != "Parameters" {
		return cfg, paramErr("resourceType", "the request body must be a Parameters resource")
	}
	seen := map[string]bool{}
	list, ok := params.Object["parameter"].([]any)
	if !ok && params.Object["parameter"] != nil {
		return cfg, paramErr("Parameters.parameter", "must be an array")
	}
	for i, raw := range list {
		where := "Parameters.parameter[" + strconv.Itoa(i) + "]"
		p, ok := raw.(map[string]any)
		if !ok {
			return cfg, paramErr(where, "not an object")
		}
		name, _ := p["name"].(string)
		switch name {
		case "level", "k", "l":
		default:
			return cfg, paramErr(where, "unknown parameter (expected level, k or l)")
		}
		if seen[name] {
			return cfg, paramErr(where, "parameter "+name+" repeated")
		}
		seen[name] = true
		switch name {
		case "level":
			v, ok := p["valueCode"].(string)
			if !ok {
				v, ok = p["valueString"].(string)
			}
			if !ok || !isLevel(v) {
				return cfg, paramErr(where, "level must be a code: safe-harbor, limited-data-set, expert or china")
			}
			cfg.level = v
		case "k", "l":
			n, ok := intParam(p)
			if !ok || n < 1 || n > maxOverride {
				return cfg, paramErr(where, name+" must be an integer from 1 to 1000")
			}
			if name == "k" {
				cfg.k = n
			} else {
				cfg.l = n
			}
		}
	}
	if cfg.level == "" {
		return cfg, paramErr("level", "the level parameter is required")
	}
	return cfg, nil
}

func intParam(p map[string]any) (int, bool) {
	for _, k := range []string{"valueInteger", "valuePositiveInt", "valueUnsignedInt"} {
		switch v := p[k].(type) {
		case json.Number:
			n, err := strconv.Atoi(string(v))
			return n, err == nil
		case float64:
			return int(v), v == float64(int(v))
		}
	}
	return 0, false
}

func isLevel(s string) bool {
	for _, l := range Levels {
		if s == l {
			return true
		}
	}
	return false
}
