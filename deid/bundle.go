package deid

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strconv"
	"strings"

	"phix/fhir"
)

// Bundle de-identifies every entry with one patient context across the
// bundle: entries are tied to their patient through fullUrl-resolved
// references, ids, references and urn:uuid fullUrls are pseudonymised with
// the same function, and suppressed entries are dropped. When the profile
// has a risk check, the batch's risk is assessed and PHI-6009 returned
// (with no output) below k.
func (e *Engine) Bundle(ctx context.Context, b *fhir.Resource) (*fhir.Resource, error) {
	if b == nil || b.Object == nil || b.Type != "Bundle" {
		return nil, failed("Bundle", "not a Bundle")
	}
	entries := arr(b.Object["entry"])
	// fullUrl (and Type/id) → patient id for every Patient entry.
	resolve := map[string]string{}
	patients := map[string]map[string]any{}
	for _, en := range entries {
		m, _ := en.(map[string]any)
		res, _ := m["resource"].(map[string]any)
		if rt, _ := res["resourceType"].(string); rt == "Patient" {
			id, _ := res["id"].(string)
			patients[id] = res
			resolve["Patient/"+id] = id
			if fu, _ := m["fullUrl"].(string); fu != "" {
				resolve[fu] = id
			}
		}
	}
	ctxs := map[string]*patientCtx{}
	var out []any
	var batch []riskInput
	for n, en := range entries {
		m, ok := en.(map[string]any)
		if !ok {
			return nil, failed("Bundle.entry["+strconv.Itoa(n)+"]", "entry is not an object")
		}
		res, _ := m["resource"].(map[string]any)
		if res == nil {
			continue // entries without a resource (e.g. DELETE requests) carry only URLs
		}
		pid := patientOf(res, resolve)
		pc := ctxs[pid]
		if pc == nil {
			pc = e.patient(pid, patients[pid])
			ctxs[pid] = pc
		}
		r, err := e.resource(ctx, res, pc, 0)
		if err != nil {
			if de, ok := AsError(err); ok {
				de.Where = "Bundle.entry[" + strconv.Itoa(n) + "] " + de.Where
			}
			return nil, err
		}
		if r == nil {
			continue
		}
		ne := map[string]any{"resource": r}
		if fu, _ := m["fullUrl"].(string); fu != "" {
			if e.profile.IDs == "pseudonymize" {
				if nu, ok := e.rewriteRef(fu); ok {
					ne["fullUrl"] = nu
				}
			} else {
				ne["fullUrl"] = fu
			}
		}
		if req, _ := m["request"].(map[string]any); req != nil {
			nr := map[string]any{}
			if meth, ok := req["method"].(string); ok {
				nr["method"] = meth
			}
			if u, _ := req["url"].(string); u != "" {
				if e.profile.IDs != "pseudonymize" || fhir.IsResourceType(u) {
					nr["url"] = u
				} else if nu, ok := e.rewriteRef(u); ok {
					nr["url"] = nu
				} else {
					nr["url"] = r["resourceType"]
				}
			}
			ne["request"] = nr
		}
		out = append(out, ne)
		if e.risk != nil {
			batch = append(batch, riskInput{patient: pid, obj: r})
		}
	}
	nb := map[string]any{"resourceType": "Bundle"}
	if t, ok := b.Object["type"]; ok {
		nb["type"] = t
	}
	if id, _ := b.Object["id"].(string); id != "" {
		if e.profile.IDs == "pseudonymize" {
			nb["id"] = e.ps.ID(id)
		} else {
			nb["id"] = id
		}
	}
	if len(out) > 0 {
		nb["entry"] = out
	}
	if e.risk != nil {
		if _, err := e.assessBatch(batch); err != nil {
			return nil, err
		}
	}
	e.tag(nb)
	return toResource(nb), nil
}

// MaxNDJSONLine bounds one NDJSON line.
const MaxNDJSONLine = 64 << 20

// NDJSON de-identifies newline-delimited resources (Bundles allowed) from r
// to w. Each resource is tied to its patient by its own id or its
// subject/patient reference. With a risk-gated profile the whole output is
// held until the batch passes, so a blocked batch writes nothing.
func (e *Engine) NDJSON(ctx context.Context, r io.Reader, w io.Writer) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), MaxNDJSONLine)
	var held bytes.Buffer
	dst := w
	if e.risk != nil {
		dst = &held
	}
	bw := bufio.NewWriter(dst)
	var batch []riskInput
	line := 0
	for sc.Scan() {
		line++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		res, err := fhir.Parse(raw, fhir.ParseOptions{})
		if err != nil {
			return &Error{Code: CodeDeidFailed, Rule: -1, Where: "line " + strconv.Itoa(line), Msg: "not a FHIR resource", err: err}
		}
		out, err := e.Resource(ctx, res)
		if err != nil {
			if de, ok := AsError(err); ok {
				de.Where = "line " + strconv.Itoa(line) + " " + de.Where
			}
			return err
		}
		if out == nil {
			continue
		}
		if e.risk != nil {
			if out.Type == "Bundle" {
				for _, en := range arr(out.Object["entry"]) {
					m, _ := en.(map[string]any)
					if o, _ := m["resource"].(map[string]any); o != nil {
						batch = append(batch, riskInput{patient: patientOf(o, nil), obj: o})
					}
				}
			} else {
				batch = append(batch, riskInput{patient: patientOf(out.Object, nil), obj: out.Object})
			}
		}
		data, err := fhir.Marshal(out)
		if err != nil {
			return failed(out.Type, "output does not serialise")
		}
		bw.Write(data)
		bw.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		msg := "read failed"
		if strings.Contains(err.Error(), "too long") {
			msg = "line longer than the limit"
		}
		return &Error{Code: CodeDeidFailed, Rule: -1, Where: "line " + strconv.Itoa(line+1), Msg: msg}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if e.risk != nil {
		// The patient references were pseudonymised; group by what the
		// output carries, which is consistent across the batch.
		if _, err := e.assessBatch(batch); err != nil {
			return err
		}
		_, err := w.Write(held.Bytes())
		return err
	}
	return nil
}

var _ = json.Number("")
