package phi

import (
	"context"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"phix/errcode"
	"phix/fhir"
	"phix/suite"
)

// sign adds the hmac-authentication extension: HMAC over fhir.Canonical of
// the sealed resource with the extension present minus its "hmac" entry, so
// algorithm, key-id and timestamp are covered too.
func (p *Protector) sign(ctx context.Context, r *fhir.Resource, patientID string) error {
	key, kek, ver, err := p.hmacKey(ctx, 0, patientID, r.Type, r.ID)
	if err != nil {
		return err
	}
	ext := map[string]any{"url": ExtHMAC, "extension": []any{
		subExt("algorithm", p.mac),
		subExt("key-id", kek+"#"+strconv.Itoa(ver)),
		map[string]any{"url": "timestamp", "valueInstant": p.cfg.Now().UTC().Format("2006-01-02T15:04:05.000Z")},
	}}
	appendExt(r.Object, ext)
	tag, err := p.mac1(key, r)
	if err != nil {
		return err
	}
	ext["extension"] = append(ext["extension"].([]any), subExt("hmac", base64.RawURLEncoding.EncodeToString(tag)))
	return nil
}

func (p *Protector) mac1(key []byte, r *fhir.Resource) ([]byte, error) {
	c, err := fhir.Canonical(r)
	if err != nil {
		return nil, err
	}
	h := p.cfg.Suite.NewMAC(key)
	h.Write(c)
	return h.Sum(nil), nil
}

// protection is what the two root extensions of a stored resource say.
type protection struct {
	patientID string
	hmac      []byte
	version   int
	hmacExt   map[string]any
	hmacIdx   int // index of the "hmac" entry in hmacExt.extension
}

func (p *Protector) readProtection(r *fhir.Resource) (*protection, error) {
	bad := func(what string) error {
		return errcode.New(errcode.HMACVerificationFailed, "%s/%s: %s", r.Type, safeID(r.ID), what)
	}
	exts, _ := r.Object["extension"].([]any)
	var pr protection
	var meta, mac map[string]any
	for _, e := range exts {
		m, _ := e.(map[string]any)
		switch m["url"] {
		case ExtMetadata:
			if meta != nil {
				return nil, bad("two encryption-metadata extensions")
			}
			meta = m
		case ExtHMAC:
			if mac != nil {
				return nil, bad("two hmac-authentication extensions")
			}
			mac = m
		}
	}
	if meta == nil || mac == nil {
		return nil, bad("protection extensions missing")
	}
	if kid, _ := subValue(meta, "key-id"); strings.HasPrefix(kid, p.cfg.Hospital+"/patient/") {
		pr.patientID = strings.TrimPrefix(kid, p.cfg.Hospital+"/patient/")
	}
	if pr.patientID == "" {
		return nil, bad("no data key id")
	}
	if alg, _ := subValue(mac, "algorithm"); alg != p.mac {
		return nil, bad("unexpected MAC algorithm")
	}
	kid, _ := subValue(mac, "key-id")
	i := strings.LastIndexByte(kid, '#')
	v, err := strconv.Atoi(kid[i+1:])
	if i < 0 || err != nil || v < 1 {
		return nil, bad("malformed hmac key id")
	}
	pr.version = v
	l, _ := mac["extension"].([]any)
	pr.hmacIdx = -1
	for j, e := range l {
		if m, _ := e.(map[string]any); m["url"] == "hmac" {
			s, _ := m["valueString"].(string)
			if pr.hmac, err = base64.RawURLEncoding.DecodeString(s); err != nil || pr.hmacIdx >= 0 {
				return nil, bad("malformed hmac")
			}
			pr.hmacIdx = j
		}
	}
	if pr.hmacIdx < 0 {
		return nil, bad("no hmac")
	}
	pr.hmacExt = mac
	return &pr, nil
}

func subBinary(ext map[string]any, url string) string {
	l, _ := ext["extension"].([]any)
	for _, e := range l {
		if m, _ := e.(map[string]any); m["url"] == url {
			s, _ := m["valueBase64Binary"].(string)
			return s
		}
	}
	return ""
}

func subValue(ext map[string]any, url string) (string, bool) {
	l, _ := ext["extension"].([]any)
	for _, e := range l {
		if m, _ := e.(map[string]any); m["url"] == url {
			s, ok := m["valueString"].(string)
			return s, ok
		}
	}
	return "", false
}

// safeID keeps an id printable in an error: FHIR ids are [A-Za-z0-9.-]{1,64}
// and not PHI, anything else is replaced.
func safeID(id string) string {
	if len(id) > 64 {
		return "(invalid id)"
	}
	for _, c := range id {
		if !(c == '-' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return "(invalid id)"
		}
	}
	return id
}

// Verify checks the stored resource's HMAC in constant time. A mismatch, or
// missing or malformed protection extensions, is PHI-6005. It returns the
// patient id the resource is sealed for.
func (p *Protector) Verify(ctx context.Context, stored *fhir.Resource) (string, error) {
	if stored == nil || stored.Object == nil {
		return "", errcode.New(errcode.HMACVerificationFailed, "no resource")
	}
	pr, err := p.readProtection(stored)
	if err != nil {
		return "", err
	}
	key, _, _, err := p.hmacKey(ctx, pr.version, pr.patientID, stored.Type, stored.ID)
	if err != nil {
		return "", errcode.Wrap(errcode.HMACVerificationFailed, err, "%s/%s: hmac key unavailable", stored.Type, safeID(stored.ID))
	}
	// Compute over a shallow copy whose hmac extension lacks the "hmac" entry.
	l := pr.hmacExt["extension"].([]any)
	trimmed := append(append([]any{}, l[:pr.hmacIdx]...), l[pr.hmacIdx+1:]...)
	macCopy := map[string]any{}
	for k, v := range pr.hmacExt {
		macCopy[k] = v
	}
	macCopy["extension"] = trimmed
	rootExts := stored.Object["extension"].([]any)
	newExts := make([]any, len(rootExts))
	for i, e := range rootExts {
		if m, _ := e.(map[string]any); m != nil && m["url"] == ExtHMAC {
			newExts[i] = macCopy
		} else {
			newExts[i] = e
		}
	}
	obj := make(map[string]any, len(stored.Object))
	for k, v := range stored.Object {
		obj[k] = v
	}
	obj["extension"] = newExts
	tag, err := p.mac1(key, &fhir.Resource{Type: stored.Type, ID: stored.ID, Object: obj})
	if err != nil {
		return "", errcode.Wrap(errcode.HMACVerificationFailed, err, "%s/%s: not canonicalisable", stored.Type, safeID(stored.ID))
	}
	if !suite.Equal(tag, pr.hmac) {
		return "", errcode.New(errcode.HMACVerificationFailed, "%s/%s: hmac mismatch", stored.Type, safeID(stored.ID))
	}
	return pr.patientID, nil
}

// Open verifies the stored resource (PHI-6005 on failure) and returns the
// plaintext resource as it was given to Seal. If the patient's data key was
// erased the error wraps ErrKeyDestroyed. stored is not modified.
func (p *Protector) Open(ctx context.Context, stored *fhir.Resource) (*fhir.Resource, error) {
	pid, err := p.Verify(ctx, stored)
	if err != nil {
		return nil, err
	}
	key, err := p.fieldKey(ctx, pid, false)
	if err != nil {
		return nil, err
	}
	a, err := p.cfg.Suite.NewAEAD(key)
	if err != nil {
		return nil, err
	}
	obj, err := deepCopy(stored.Object)
	if err != nil {
		return nil, err
	}
	return p.openInPlace(stored.Type, stored.ID, obj, a)
}

// OpenJSON parses a stored resource as the store returns it and opens it,
// decrypting in place (no copy): the read path's fast form of Open.
func (p *Protector) OpenJSON(ctx context.Context, raw []byte) (*fhir.Resource, error) {
	r, err := fhir.Parse(raw, fhir.ParseOptions{})
	if err != nil {
		return nil, errcode.Wrap(errcode.HMACVerificationFailed, err, "stored resource does not parse")
	}
	pid, err := p.Verify(ctx, r)
	if err != nil {
		return nil, err
	}
	key, err := p.fieldKey(ctx, pid, false)
	if err != nil {
		return nil, err
	}
	a, err := p.cfg.Suite.NewAEAD(key)
	if err != nil {
		return nil, err
	}
	return p.openInPlace(r.Type, r.ID, r.Object, a)
}

func (p *Protector) openInPlace(typ, id string, obj map[string]any, a cipher.AEAD) (*fhir.Resource, error) {
	// Drop the protection extensions (they are the last root extensions).
	exts, _ := obj["extension"].([]any)
	kept := exts[:0]
	for _, e := range exts {
		if m, _ := e.(map[string]any); m != nil && (m["url"] == ExtHMAC || m["url"] == ExtMetadata) {
			continue
		}
		kept = append(kept, e)
	}
	setExts(obj, kept)
	o := &opener{typ: typ, id: id, aead: a, s: p.cfg.Suite}
	if err := o.walk(obj, typ); err != nil {
		return nil, errcode.Wrap(errcode.HMACVerificationFailed, err, "%s/%s: sealed value does not open", typ, safeID(id))
	}
	return &fhir.Resource{Type: typ, ID: id, Object: obj}, nil
}

func setExts(obj map[string]any, l []any) {
	if len(l) == 0 {
		delete(obj, "extension")
	} else {
		obj["extension"] = l
	}
}

type opener struct {
	typ, id string
	aead    cipher.AEAD
	s       suite.Suite
}

var errOpen = errors.New("sealed value does not authenticate")

func (o *opener) openKey(b64, loc, key string) (*payload, error) {
	b, err := decodeCT(o.s, b64)
	if err != nil {
		return nil, err
	}
	plain, err := o.aead.Open(nil, b[3:3+nonceSize], b[3+nonceSize:], aad(o.typ, o.id, loc, key))
	if err != nil {
		return nil, errOpen
	}
	var pl payload
	if err := json.Unmarshal(plain, &pl); err != nil || pl.K != key {
		return nil, errOpen
	}
	return &pl, nil
}

// walk restores obj's own sealed elements, then descends. The location of
// each object is computed as Seal computed it.
func (o *opener) walk(obj map[string]any, loc string) error {
	// Primitive form: _k holds only the encrypted-value extension.
	for _, k := range sortedKeys(obj) {
		if !strings.HasPrefix(k, "_") {
			continue
		}
		m, _ := obj[k].(map[string]any)
		l, _ := m["extension"].([]any)
		if len(l) != 1 {
			continue
		}
		e, _ := l[0].(map[string]any)
		if e["url"] != ExtEncrypted {
			continue
		}
		ct, _ := e["valueBase64Binary"].(string)
		name := k[1:]
		pl, err := o.openKey(ct, loc, name)
		if err != nil {
			return err
		}
		if err := restore(obj, name, pl); err != nil {
			return err
		}
	}
	// Object form: encrypted-value entries in obj.extension. The key is in
	// the payload, so each is tried against its own claimed key.
	exts, _ := obj["extension"].([]any)
	var kept []any
	for _, e := range exts {
		m, _ := e.(map[string]any)
		if m == nil || m["url"] != ExtEncrypted {
			kept = append(kept, e)
			continue
		}
		name, _ := subValue(m, "element")
		ct := subBinary(m, "value")
		pl, err := o.openKey(ct, loc, name)
		if err != nil {
			return err
		}
		if _, clash := obj[name]; clash && !(name == "div" && obj[name] == narrativePlaceholder) {
			return errOpen
		}
		if err := restore(obj, name, pl); err != nil {
			return err
		}
	}
	if len(exts) > 0 {
		setExts(obj, kept)
	}
	for _, k := range sortedKeys(obj) {
		switch x := obj[k].(type) {
		case map[string]any:
			if err := o.walk(x, loc+"."+k); err != nil {
				return err
			}
		case []any:
			for i, e := range x {
				if m, ok := e.(map[string]any); ok {
					if err := o.walk(m, loc+"."+k+"["+strconv.Itoa(i)+"]"); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

func restore(obj map[string]any, name string, pl *payload) error {
	var v any
	d := json.NewDecoder(strings.NewReader(string(pl.V)))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return errOpen
	}
	obj[name] = v
	delete(obj, "_"+name)
	if len(pl.X) > 0 && string(pl.X) != "null" {
		var x any
		d := json.NewDecoder(strings.NewReader(string(pl.X)))
		d.UseNumber()
		if err := d.Decode(&x); err != nil {
			return errOpen
		}
		obj["_"+name] = x
	}
	return nil
}
