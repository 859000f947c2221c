package deid

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"phix/fhir"
)

// structural primitive types are left as they are by the value-changing
// methods (cryptoHash, encrypt, substitute): they carry codes, systems and
// URLs of the record's shape, not the person's data.
var structural = map[string]bool{
	"code": true, "uri": true, "url": true, "canonical": true, "boolean": true,
	"id": true, "oid": true, "uuid": true,
}

func isText(typ string) bool { return typ == "string" || typ == "markdown" }

func isDate(typ string) bool { return typ == "date" || typ == "dateTime" || typ == "instant" }

func isNumber(typ string) bool {
	return typ == "decimal" || typ == "integer" || typ == "unsignedInt" || typ == "positiveInt" || typ == "integer64"
}

// applyRule applies c to the unclaimed leaves of node i's subtree.
func (e *Engine) applyRule(ctx context.Context, t *tree, c *compiled, i int, pc *patientCtx) error {
	if c.Method == MethodGeneralize && t.nodes[i].typ == "Address" && (c.To == "zip3" || c.To == "city" || c.To == "cnRegion") {
		e.generalizeAddress(t, c, i)
		return nil
	}
	end := t.nodes[i].end
	if c.Method == MethodRedact && !c.Scan && !t.nodes[i].leaf && !anyClaimed(t, i) {
		// The whole element goes, not its leaves one by one (which would
		// leave required children as data-absent stubs).
		t.set(i, removed)
		for j := i; j < end; j++ {
			t.claim[j] = true
		}
		return nil
	}
	for j := i; j < end; j++ {
		if !t.nodes[j].leaf || t.claim[j] {
			continue
		}
		v := t.get(j)
		if v == removed {
			continue
		}
		done, err := e.applyLeaf(ctx, t, c, j, j == i, v, pc)
		if err != nil {
			return err
		}
		if done {
			t.claim[j] = true
		}
	}
	return nil
}

func (e *Engine) fail(t *tree, c *compiled, j int, msg string) error {
	return &Error{Code: CodeDeidFailed, Rule: c.idx, Line: e.profile.line(c.idx), Where: t.rtype + " " + t.nodes[j].typ, Msg: msg}
}

// applyLeaf applies the method to one primitive; it reports whether the rule
// decided that leaf (claimed it).
func (e *Engine) applyLeaf(ctx context.Context, t *tree, c *compiled, j int, direct bool, v any, pc *patientCtx) (bool, error) {
	n := &t.nodes[j]
	typ := n.typ
	s, isStr := v.(string)
	switch c.Method {
	case MethodKeep:
		return true, nil
	case MethodRedact:
		if c.Scan {
			switch {
			case (isText(typ) || typ == "xhtml") && isStr:
				t.set(j, e.scanText(ctx, s, typ == "xhtml", pc))
				return true, nil
			case structural[typ]:
				// Codes, URLs and systems give free text its shape.
				return true, nil
			}
		}
		t.set(j, removed)
		return true, nil
	case MethodCryptoHash, MethodEncrypt, MethodSubstitute:
		if structural[typ] {
			return true, nil
		}
		if c.Method == MethodSubstitute && c.Value != nil && !isText(typ) && isStr {
			t.set(j, *c.Value)
			return true, nil
		}
		if !isText(typ) || !isStr {
			t.set(j, removed)
			return true, nil
		}
		out, err := e.transformText(t, c, j, s)
		if err != nil {
			return false, err
		}
		t.set(j, out)
		return true, nil
	case MethodDateShift:
		if !isDate(typ) || !isStr {
			return false, nil
		}
		out, ok := shiftDate(s, pc.shiftDays(e.ps))
		if !ok {
			return false, e.fail(t, c, j, "malformed date")
		}
		t.set(j, out)
		return true, nil
	case MethodGeneralize:
		return e.generalize(t, c, j, direct, v, pc)
	case MethodPerturb:
		if !isNumber(typ) {
			return false, nil
		}
		out, err := e.perturb(t, c, j, v)
		if err != nil {
			return false, err
		}
		t.set(j, out)
		return true, nil
	}
	return false, e.fail(t, c, j, "method cannot apply here")
}

func (e *Engine) transformText(t *tree, c *compiled, j int, s string) (string, error) {
	switch c.Method {
	case MethodCryptoHash:
		out := e.ps.Hash(s, c.Encoding)
		e.record(out, s)
		return out, nil
	case MethodSubstitute:
		if c.Value != nil {
			return *c.Value, nil
		}
		out := e.ps.Pseudonym(t.nodes[j].def+"."+t.nodes[j].key, s)
		e.record(out, s)
		return out, nil
	}
	switch c.Mode {
	case "ff1":
		out, err := e.ff1Digits(s)
		if err != nil {
			// Too few digits to encipher: fall back to a keyed hash so the
			// value never passes through.
			out = e.ps.Hash(s, "hex")
		}
		e.record(out, s)
		return out, nil
	case "cn-resident-id":
		if !ValidResidentID(s) {
			out := e.ps.Hash(s, "hex")
			e.record(out, s)
			return out, nil
		}
		out, err := residentIDFF1(e.ff1, strings.ToUpper(s), nil, true)
		if err != nil {
			return "", e.fail(t, c, j, "resident ID encryption failed")
		}
		e.record(out, s)
		return out, nil
	}
	nonce := make([]byte, e.aead.NonceSize(), e.aead.NonceSize()+len(s)+e.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", e.fail(t, c, j, "no randomness")
	}
	ct := e.aead.Seal(nonce, nonce, []byte(s), []byte("phix deid encrypt v1"))
	return "enc:" + string(e.ps.suite) + ":" + base64.RawURLEncoding.EncodeToString(ct), nil
}

// ff1Digits enciphers the digits of s in place, leaving other characters.
func (e *Engine) ff1Digits(s string) (string, error) {
	var digits []byte
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			digits = append(digits, s[i]-'0')
		}
	}
	y, err := e.ff1.Encrypt(digits, nil)
	if err != nil {
		return "", err
	}
	b := []byte(s)
	k := 0
	for i := range b {
		if b[i] >= '0' && b[i] <= '9' {
			b[i] = '0' + y[k]
			k++
		}
	}
	return string(b), nil
}

func (e *Engine) record(pseudonym, original string) {
	if e.opts.Reid != nil {
		e.opts.Reid.add(pseudonym, original)
	}
}

// restrictedZIP3 are the 3-digit ZIP prefixes with populations under
// 20,000 (Census 2000), which Safe Harbor replaces with 000.
var restrictedZIP3 = map[string]bool{
	"036": true, "059": true, "063": true, "102": true, "203": true, "556": true,
	"692": true, "790": true, "821": true, "823": true, "830": true, "831": true,
	"878": true, "879": true, "884": true, "890": true, "893": true,
}

// ZIP3 generalises a US ZIP code to its first three digits, 000 for the
// restricted prefixes; ok is false when zip does not start with 3 digits.
func ZIP3(zip string) (string, bool) {
	if len(zip) < 3 {
		return "", false
	}
	for i := 0; i < 3; i++ {
		if zip[i] < '0' || zip[i] > '9' {
			return "", false
		}
	}
	z := zip[:3]
	if restrictedZIP3[z] {
		return "000", true
	}
	return z, true
}

func (e *Engine) generalize(t *tree, c *compiled, j int, direct bool, v any, pc *patientCtx) (bool, error) {
	n := &t.nodes[j]
	s, isStr := v.(string)
	switch c.To {
	case "year", "month":
		if !isDate(n.typ) || !isStr {
			return false, nil
		}
		out, ok := truncateDate(s, c.To == "month", n.typ == "instant")
		if !ok {
			return false, e.fail(t, c, j, "malformed date")
		}
		if c.TopCode > 0 && n.key == "birthDate" {
			out = e.topCodeBirth(out, c.TopCode)
		}
		t.set(j, out)
		return true, nil
	case "ageBand":
		if !isNumber(n.typ) {
			return false, nil
		}
		f, err := numberOf(v)
		if err != nil {
			return false, e.fail(t, c, j, "malformed number")
		}
		band, top := c.Band, c.TopCode
		if band == 0 {
			band = 5
		}
		if top == 0 {
			top = 90
		}
		a := math.Floor(f/float64(band)) * float64(band)
		if f >= float64(top) {
			a = float64(top)
		}
		t.set(j, json.Number(strconv.FormatFloat(a, 'f', -1, 64)))
		return true, nil
	case "zip3", "city", "cnRegion":
		if c.To == "zip3" && isStr && (n.key == "postalCode" || direct) {
			if z, ok := ZIP3(s); ok {
				t.set(j, z)
			} else {
				t.set(j, removed)
			}
			return true, nil
		}
		if direct && isStr {
			t.set(j, removed)
			return true, nil
		}
		return false, nil
	}
	return false, e.fail(t, c, j, "unknown generalization")
}

// topCodeBirth moves a birth year of someone 90 or older to the year that
// makes them exactly topCode (Safe Harbor: "90 or older" as one category).
func (e *Engine) topCodeBirth(date string, top int) string {
	if len(date) < 4 {
		return date
	}
	y, err := strconv.Atoi(date[:4])
	if err != nil {
		return date
	}
	now := e.now().Year()
	if now-y >= top {
		return strconv.Itoa(now-top) + date[4:]
	}
	return date
}

func numberOf(v any) (float64, error) {
	switch x := v.(type) {
	case json.Number:
		return x.Float64()
	case float64:
		return x, nil
	case string:
		return strconv.ParseFloat(x, 64)
	}
	return 0, strconv.ErrSyntax
}

func (e *Engine) perturb(t *tree, c *compiled, j int, v any) (json.Number, error) {
	f, err := numberOf(v)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return "", e.fail(t, c, j, "malformed number")
	}
	raw, _ := v.(json.Number)
	dec := 0
	if i := strings.IndexByte(string(raw), '.'); i >= 0 && !strings.ContainsAny(string(raw), "eE") {
		dec = len(raw) - i - 1
	}
	if c.Decimals != nil {
		dec = *c.Decimals
	}
	width := c.Range
	if c.Relative > 0 {
		width = math.Abs(f) * c.Relative
	}
	id, _ := t.root["id"].(string)
	seed := t.rtype + "/" + id + "|" + t.path(j) + "|" + string(raw)
	out := f + (2*e.ps.unit(seed)-1)*width
	typ := t.nodes[j].typ
	if typ != "decimal" {
		dec = 0
		out = math.Round(out)
		if typ == "positiveInt" && out < 1 {
			out = 1
		}
		if typ == "unsignedInt" && out < 0 {
			out = 0
		}
	}
	p := math.Pow(10, float64(dec))
	out = math.Round(out*p) / p
	return json.Number(strconv.FormatFloat(out, 'f', dec, 64)), nil
}

// pseudonymizeIDs replaces the resource id and every reference with keyed
// pseudonyms (the same function serves Bundle fullUrls), and claims them.
func (e *Engine) pseudonymizeIDs(t *tree) {
	for j := range t.nodes {
		n := &t.nodes[j]
		if !n.leaf || (n.key != "id" && n.key != "reference") {
			continue // only these two cases below change anything
		}
		s, ok := t.get(j).(string)
		if !ok {
			continue
		}
		switch {
		case n.key == "id" && samePtr(n.parent, t.root):
			out := e.ps.ID(s)
			e.record(out, s)
			t.set(j, out)
		case n.key == "reference" && n.def == "Reference":
			if out, ok := e.rewriteRef(s); ok {
				t.set(j, out)
			} else {
				t.set(j, removed)
			}
		default:
			continue
		}
		t.claim[j] = true
	}
}

// rewriteRef pseudonymizes the id part of a reference, keeping its form.
func (e *Engine) rewriteRef(s string) (string, bool) {
	switch {
	case strings.HasPrefix(s, "#"):
		return s, true
	case strings.HasPrefix(s, "urn:uuid:"):
		out := "urn:uuid:" + e.ps.ID(s[len("urn:uuid:"):])
		e.record(out, s)
		return out, true
	}
	if q := strings.IndexByte(s, '?'); q > 0 {
		typ := s[:q]
		if fhir.IsResourceType(typ) {
			return typ + "/" + e.ps.ID(s), true
		}
		return "", false
	}
	parts := strings.Split(s, "/")
	if len(parts) >= 4 && parts[len(parts)-2] == "_history" {
		parts = parts[:len(parts)-2]
	}
	if len(parts) >= 2 && fhir.IsResourceType(parts[len(parts)-2]) {
		parts[len(parts)-1] = e.ps.ID(parts[len(parts)-1])
		out := strings.Join(parts, "/")
		e.record(out, s)
		return out, true
	}
	return "", false
}

const darURL = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"

func darExt() map[string]any {
	return map[string]any{"extension": []any{map[string]any{"url": darURL, "valueCode": "masked"}}}
}

// cleanup deletes removed values, compacts arrays (keeping primitive arrays
// aligned with their "_" siblings), drops empty objects and arrays, and puts
// a data-absent-reason extension where a required element was removed. It
// reports whether obj is now empty.
func cleanup(obj map[string]any, def string) bool {
	var gone []string
	for k, v := range obj {
		if k == "" || k[0] == '_' {
			continue
		}
		switch v.(type) {
		case map[string]any, []any:
		default:
			if v != removed {
				continue // leaves need no definition lookup
			}
		}
		childDef := "Element"
		if _, conc, ok := fhir.LookupElement(def, k); ok && conc != "" {
			childDef = conc
		}
		switch x := v.(type) {
		case removedT:
			delete(obj, k)
			gone = append(gone, k)
		case map[string]any:
			if _, isRes := x["resourceType"]; isRes {
				continue
			}
			if cleanup(x, childDef) {
				delete(obj, k)
				gone = append(gone, k)
			}
		case []any:
			ext, _ := obj["_"+k].([]any)
			if len(ext) != len(x) {
				ext = nil
			}
			// Compacted in place: x and ext are the engine's own copies and
			// nothing else holds them once rules have run.
			n := 0
			anyVal, anyExt := false, false
			for i, el := range x {
				var ev any
				if ext != nil {
					ev = ext[i]
					if m, ok := ev.(map[string]any); ok && cleanup(m, "Element") {
						ev = nil
					}
				}
				if m, ok := el.(map[string]any); ok {
					if _, isRes := m["resourceType"]; !isRes && cleanup(m, childDef) {
						el = removed
					}
				}
				if el == removed {
					el = nil
				}
				if el == nil && ev == nil {
					continue
				}
				anyVal = anyVal || el != nil
				anyExt = anyExt || ev != nil
				x[n] = el
				if ext != nil {
					ext[n] = ev
				}
				n++
			}
			if anyVal {
				obj[k] = x[:n:n]
			} else {
				delete(obj, k)
				if !anyExt {
					gone = append(gone, k)
				}
			}
			if ext != nil {
				if anyExt {
					obj["_"+k] = ext[:n:n]
				} else {
					delete(obj, "_"+k)
				}
			}
		}
	}
	for k, v := range obj {
		if k == "" || k[0] != '_' {
			continue
		}
		switch x := v.(type) {
		case removedT:
			delete(obj, k)
		case map[string]any:
			if cleanup(x, "Element") {
				delete(obj, k)
			}
		case []any:
			if _, has := obj[k[1:]]; !has {
				// A "_" array without its value array: drop empty entries only
				// when all are empty.
				empty := true
				for _, el := range x {
					if m, ok := el.(map[string]any); ok && !cleanup(m, "Element") {
						empty = false
					}
				}
				if empty {
					delete(obj, k)
				}
			}
		}
	}
	if def == "Extension" {
		if _, ok := obj["url"]; !ok {
			// An extension without its url means nothing: drop it whole.
			clear(obj)
			return true
		}
	}
	for _, k := range gone {
		info, conc, ok := fhir.LookupElement(def, k)
		if !ok || info.Min == 0 {
			continue
		}
		if _, has := obj["_"+k]; has {
			continue
		}
		if fhir.IsPrimitiveType(conc) {
			if info.Max == 1 {
				obj["_"+k] = darExt()
			} else {
				obj[k] = []any{nil}
				obj["_"+k] = []any{darExt()}
			}
			continue
		}
		if info.Max == 1 {
			obj[k] = darExt()
		} else {
			obj[k] = []any{darExt()}
		}
	}
	return len(obj) == 0
}

// addressKeep lists, per generalisation level, the Address elements kept.
var addressKeep = map[string]map[string]bool{
	"zip3":     {"state": true, "country": true, "use": true, "type": true, "period": true},
	"city":     {"city": true, "district": true, "state": true, "postalCode": true, "country": true, "use": true, "type": true, "period": true},
	"cnRegion": {"state": true, "city": true, "district": true, "country": true, "use": true, "type": true, "period": true},
}

// generalizeAddress reduces an Address to the level's elements: everything
// else (street lines, text, extensions such as geolocation) is removed and
// claimed; the period is left for the date rules.
func (e *Engine) generalizeAddress(t *tree, c *compiled, i int) {
	keep := addressKeep[c.To]
	for j := i + 1; j < t.nodes[i].end; j = t.nodes[j].end {
		n := &t.nodes[j]
		switch {
		case n.key == "period":
			continue
		case n.key == "postalCode" && c.To == "zip3":
			if s, ok := t.get(j).(string); ok && !t.claim[j] {
				if z, ok := ZIP3(s); ok {
					t.set(j, z)
				} else {
					t.set(j, removed)
				}
			}
		case keep[n.key] || keep[strings.TrimPrefix(n.key, "_")]:
		default:
			if !t.claim[j] {
				t.set(j, removed)
			}
		}
		for k := j; k < n.end; k++ {
			t.claim[k] = true
		}
	}
}

func anyClaimed(t *tree, i int) bool {
	for j := i; j < t.nodes[i].end; j++ {
		if t.claim[j] {
			return true
		}
	}
	return false
}
