package phi

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"phix/errcode"
	"phix/fhir"
	"phix/fhir/search"
	"phix/phi/policy"
	"phix/suite"
)

// Ciphertext layout (base64 in valueBase64Binary):
//
//	'P' | format 1 | suite wire byte | nonce (12) | AEAD(payload)
//
// payload is JSON {"k": key, "v": value, "x": primitive extension or null};
// the AAD is "phix-phi-v1" 0 type 0 id 0 location 0 key, so a ciphertext opens
// only in the element it was made for.
// narrativePlaceholder replaces a sealed Narrative.div.
const narrativePlaceholder = `<div xmlns="http://www.w3.org/1999/xhtml">Encrypted</div>`

const (
	ctMagic   = 'P'
	ctFormat  = 1
	nonceSize = 12
)

type payload struct {
	K string          `json:"k"`
	V json.RawMessage `json:"v"`
	X json.RawMessage `json:"x,omitempty"`
}

func aad(typ, id, loc, key string) []byte {
	return []byte("phix-phi-v1\x00" + typ + "\x00" + id + "\x00" + loc + "\x00" + key)
}

// sealer carries one Seal call's state.
type sealer struct {
	typ, id string
	pol     *policy.Policy
	aead    cipher.AEAD
	wire    byte
	fields  map[string]bool
	err     error
}

// Seal returns the stored form of r for patientID: PHI sealed in place,
// the encryption-metadata and hmac-authentication extensions added, and the
// search entries to index (clear entries from the sealed form plus blind
// tokens for the encrypted search parameters). r is not modified; r.ID must be
// set. Client-supplied protection extensions are refused.
func (p *Protector) Seal(ctx context.Context, r *fhir.Resource, patientID string) (*fhir.Resource, []search.Entry, error) {
	if r == nil || r.Object == nil {
		return nil, nil, phiErr(errcode.FHIRValidationFailed, "no resource")
	}
	if r.ID == "" || patientID == "" {
		return nil, nil, phiErr(errcode.FHIRValidationFailed, "resource id and patient id are required to seal")
	}
	if strings.ContainsAny(patientID, "/\x00") {
		return nil, nil, phiErr(errcode.FHIRValidationFailed, "malformed patient id")
	}
	if _, _, ok := fhir.LookupElement(r.Type, "extension"); !ok || !fhir.IsResourceType(r.Type) {
		// Bundle, Binary, Parameters carry no extensions to hold the
		// protection metadata.
		return nil, nil, phiErr(errcode.ResourceTypeNotAllowed, "%s cannot be stored with PHI protection", safeType(r.Type))
	}
	if path := findForged(r.Object, r.Type); path != "" {
		return nil, nil, phiErr(errcode.FHIRValidationFailed, "client-supplied protection extension at %s", path)
	}
	obj, err := deepCopy(r.Object)
	if err != nil {
		return nil, nil, phiErr(errcode.FHIRValidationFailed, "resource does not copy")
	}
	key, err := p.fieldKey(ctx, patientID, true)
	if err != nil {
		return nil, nil, err
	}
	a, err := p.cfg.Suite.NewAEAD(key)
	if err != nil {
		return nil, nil, err
	}
	s := &sealer{typ: r.Type, id: r.ID, pol: p.cfg.Policy, aead: a, wire: p.cfg.Suite.Wire(), fields: map[string]bool{}}
	s.walk(obj, r.Type, r.Type, false)
	if s.err != nil {
		return nil, nil, s.err
	}
	if path := checkSealed(p.cfg.Floor, obj, r.Type, r.Type, false); path != "" {
		return nil, nil, phiErr(errcode.PHIEncryptionRequired, "element %s is PHI and is not encrypted", path)
	}
	stored := &fhir.Resource{Type: r.Type, ID: r.ID, Object: obj}
	fields := make([]string, 0, len(s.fields))
	for f := range s.fields {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	meta := []any{subExt("algorithm", p.alg)}
	if len(fields) > 0 {
		meta = append(meta, subExt("encrypted-fields", strings.Join(fields, ",")))
	}
	meta = append(meta, subExt("key-id", dataKeyRef(p.cfg.Hospital, patientID)))
	appendExt(obj, map[string]any{"url": ExtMetadata, "extension": meta})
	entries, err := p.entries(ctx, r, stored)
	if err != nil {
		return nil, nil, err
	}
	if err := p.sign(ctx, stored, patientID); err != nil {
		return nil, nil, err
	}
	return stored, entries, nil
}

func safeType(t string) string {
	if fhir.IsResourceType(t) {
		return t
	}
	return "(unknown type)"
}

func dataKeyRef(hospital, patientID string) string { return hospital + "/patient/" + patientID }

func subExt(url, v string) map[string]any { return map[string]any{"url": url, "valueString": v} }

func appendExt(obj map[string]any, ext map[string]any) {
	l, _ := obj["extension"].([]any)
	obj["extension"] = append(l, ext)
}

// walk seals the PHI children of obj (typePath: its datatype or element
// path; loc: its location "Patient.name[0]"). Children are walked first so
// their own sealed elements sit inside what is sealed around them.
func (s *sealer) walk(obj map[string]any, typePath, loc string, isExt bool) {
	keys := sortedKeys(obj)
	var seal []string
	for _, k := range keys {
		if s.err != nil {
			return
		}
		if strings.HasPrefix(k, "_") || k == "resourceType" {
			continue
		}
		if isExt && strings.HasPrefix(k, "value") {
			if u, _ := obj["url"].(string); s.pol.Extension(u) {
				seal = append(seal, k)
				continue
			}
		}
		if _, ok := s.pol.Lookup(typePath, k); ok {
			seal = append(seal, k)
			continue
		}
		s.descend(obj[k], typePath, k, loc+"."+k)
	}
	for _, k := range keys {
		if strings.HasPrefix(k, "_") {
			if px, ok := obj[k].(map[string]any); ok {
				s.walk(px, "Element", loc+"."+k, false)
			}
		}
	}
	for _, k := range seal {
		mode, _ := s.pol.Lookup(typePath, k)
		s.sealKey(obj, typePath, loc, k, mode, isExt)
	}
}

func (s *sealer) descend(v any, parentType, name, loc string) {
	ct := childType(parentType, name, v)
	switch x := v.(type) {
	case map[string]any:
		s.walk(x, typeOfObject(ct, x), loc, name == "extension" || name == "modifierExtension")
	case []any:
		for i, e := range x {
			if m, ok := e.(map[string]any); ok {
				s.walk(m, typeOfObject(ct, m), loc+"["+strconv.Itoa(i)+"]", name == "extension" || name == "modifierExtension")
			}
		}
	}
}

func childType(parentType, name string, v any) string {
	_, ct, ok := fhir.LookupElement(parentType, name)
	if !ok {
		return ""
	}
	if ct == "BackboneElement" || ct == "Element" {
		return parentType + "." + name
	}
	return ct
}

func typeOfObject(ct string, m map[string]any) string {
	if ct == "Resource" || ct == "DomainResource" {
		if rt, ok := m["resourceType"].(string); ok {
			return rt
		}
	}
	return ct
}

func (s *sealer) sealKey(obj map[string]any, typePath, loc, k string, mode policy.Mode, isExt bool) {
	v := obj[k]
	vb, err := json.Marshal(v)
	if err != nil {
		s.err = err
		return
	}
	pl := payload{K: k, V: vb}
	if x, ok := obj["_"+k]; ok {
		if pl.X, err = json.Marshal(x); err != nil {
			s.err = err
			return
		}
	}
	plain, _ := json.Marshal(pl)
	ct := s.encrypt(plain, aad(s.typ, s.id, loc, k))
	ext := map[string]any{"url": ExtEncrypted, "valueBase64Binary": ct}
	s.fields[stripIndexes(loc+"."+k)] = true
	_, primitive := v.(string)
	if _, ok := v.(json.Number); ok {
		primitive = true
	}
	if _, ok := v.(bool); ok {
		primitive = true
	}
	year := ""
	if str, ok := v.(string); ok && mode == policy.SealKeepYear && len(str) >= 4 {
		year = str[:4]
	}
	delete(obj, "_"+k)
	if typePath == "Narrative" && k == "div" {
		// xhtml carries no extensions: seal in the Narrative's own
		// extensions and leave a placeholder, since div is required.
		primitive = false
	}
	if primitive && !isExt {
		delete(obj, k)
		if year != "" {
			obj[k] = year
		}
		obj["_"+k] = map[string]any{"extension": []any{ext}}
		return
	}
	delete(obj, k)
	if typePath == "Narrative" && k == "div" {
		obj["div"] = narrativePlaceholder
	}
	appendExt(obj, map[string]any{"url": ExtEncrypted, "extension": []any{
		subExt("element", k),
		map[string]any{"url": "value", "valueBase64Binary": ct},
	}})
}

func (s *sealer) encrypt(plain, ad []byte) string {
	out := make([]byte, 3+nonceSize, 3+nonceSize+len(plain)+s.aead.Overhead())
	out[0], out[1], out[2] = ctMagic, ctFormat, s.wire
	if _, err := rand.Read(out[3 : 3+nonceSize]); err != nil {
		s.err = err
		return ""
	}
	out = s.aead.Seal(out, out[3:3+nonceSize], plain, ad)
	return base64.StdEncoding.EncodeToString(out)
}

func stripIndexes(p string) string {
	var b strings.Builder
	depth := 0
	for _, c := range p {
		switch {
		case c == '[':
			depth++
		case c == ']':
			depth--
		case depth == 0:
			b.WriteRune(c)
		}
	}
	return b.String()
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// checkSealed returns the location of the first element floor calls PHI that
// is still in clear in obj, or "".
func checkSealed(floor *policy.Policy, obj map[string]any, typePath, loc string, isExt bool) string {
	for _, k := range sortedKeys(obj) {
		if strings.HasPrefix(k, "_") || k == "resourceType" {
			continue
		}
		v := obj[k]
		if isExt && strings.HasPrefix(k, "value") {
			if u, _ := obj["url"].(string); floor.Extension(u) {
				return loc + "." + k
			}
		}
		if mode, ok := floor.Lookup(typePath, k); ok {
			if typePath == "Narrative" && k == "div" && v == narrativePlaceholder {
				continue
			}
			if str, isStr := v.(string); mode == policy.SealKeepYear && isStr && len(str) == 4 && hasSealedPrimitive(obj["_"+k]) {
				continue
			}
			return loc + "." + k
		}
		ct := childType(typePath, k, v)
		ext := k == "extension" || k == "modifierExtension"
		switch x := v.(type) {
		case map[string]any:
			if p := checkSealed(floor, x, typeOfObject(ct, x), loc+"."+k, ext); p != "" {
				return p
			}
		case []any:
			for i, e := range x {
				if m, ok := e.(map[string]any); ok {
					if p := checkSealed(floor, m, typeOfObject(ct, m), loc+"."+k+"["+strconv.Itoa(i)+"]", ext); p != "" {
						return p
					}
				}
			}
		}
	}
	return ""
}

func hasSealedPrimitive(v any) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	l, _ := m["extension"].([]any)
	for _, e := range l {
		if em, ok := e.(map[string]any); ok && em["url"] == ExtEncrypted {
			return true
		}
	}
	return false
}

// findForged returns the location of a protection extension in client input.
func findForged(v any, loc string) string {
	switch x := v.(type) {
	case map[string]any:
		if u, ok := x["url"].(string); ok && (u == ExtHMAC || u == ExtMetadata || u == ExtEncrypted) {
			return stripIndexes(loc)
		}
		for _, k := range sortedKeys(x) {
			if p := findForged(x[k], loc+"."+k); p != "" {
				return p
			}
		}
	case []any:
		for i, e := range x {
			if p := findForged(e, loc+"["+strconv.Itoa(i)+"]"); p != "" {
				return p
			}
		}
	}
	return ""
}

func deepCopy(m map[string]any) (map[string]any, error) {
	c, ok := copyValue(m).(map[string]any)
	if !ok {
		return nil, errors.New("not an object")
	}
	return c, nil
}

func copyValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		c := make(map[string]any, len(x))
		for k, e := range x {
			c[k] = copyValue(e)
		}
		return c
	case []any:
		c := make([]any, len(x))
		for i, e := range x {
			c[i] = copyValue(e)
		}
		return c
	}
	return v
}

// decodeCT parses a ciphertext and checks its suite against s.
func decodeCT(s suite.Suite, b64 string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(b) < 3+nonceSize+16 || b[0] != ctMagic || b[1] != ctFormat {
		return nil, fmt.Errorf("malformed sealed value")
	}
	if b[2] != s.Wire() {
		return nil, fmt.Errorf("sealed value of another suite")
	}
	return b, nil
}
