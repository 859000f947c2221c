// Package fhirxml converts FHIR R4 XML resources to FHIR JSON objects
// (map[string]any, numbers as json.Number), the form the rest of phix
// works on. The element tables of package fhir say which elements repeat,
// which are primitives (and of which JSON kind) and where choice types and
// inline resources are. It covers what FHIR XML has: primitives with value,
// id and extensions (the JSON "_name" siblings, aligned in arrays), complex
// and backbone elements, choice elements by their concrete names, resources
// inside resources, and the XHTML narrative (serialized back to a string).
//
// It exists so tests can use the official test cases that ship only as
// XML; the server itself speaks JSON only.
package fhirxml

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"strings"

	"phix/fhir"
)

// Namespaces.
const (
	FHIRNamespace  = "http://hl7.org/fhir"
	XHTMLNamespace = "http://www.w3.org/1999/xhtml"
)

// maxDepth bounds element nesting.
const maxDepth = 128

// Parse converts a document whose root element is a FHIR resource.
func Parse(data []byte) (map[string]any, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := d.Token()
		if err != nil {
			if err == io.EOF {
				return nil, errors.New("fhirxml: no root element")
			}
			return nil, err
		}
		if se, ok := tok.(xml.StartElement); ok {
			return DecodeResource(d, se)
		}
	}
}

// DecodeResource converts the resource whose start tag d just returned,
// consuming it up to its end tag.
func DecodeResource(d *xml.Decoder, start xml.StartElement) (map[string]any, error) {
	return decodeResource(d, start, 0)
}

func decodeResource(d *xml.Decoder, start xml.StartElement, depth int) (map[string]any, error) {
	rt := start.Name.Local
	if start.Name.Space != FHIRNamespace {
		return nil, errors.New("fhirxml: a resource element must be in the FHIR namespace")
	}
	if !fhir.IsResourceType(rt) {
		return nil, errors.New("fhirxml: " + rt + " is not an R4 resource type")
	}
	obj := map[string]any{"resourceType": rt}
	if err := readChildren(d, obj, rt, depth+1); err != nil {
		return nil, err
	}
	return obj, nil
}

// acc collects the values of one element name within an object.
type acc struct {
	repeat bool
	vals   []any
	exts   []any // map[string]any or nil, aligned with vals
}

// readChildren reads child elements up to the parent's end tag into obj,
// whose definition path is defPath.
func readChildren(d *xml.Decoder, obj map[string]any, defPath string, depth int) error {
	if depth > maxDepth {
		return errors.New("fhirxml: elements nested too deeply")
	}
	accs := map[string]*acc{}
	var order []string
	for {
		tok, err := d.Token()
		if err != nil {
			return unexpected(err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			for _, name := range order {
				a := accs[name]
				store(obj, name, a)
			}
			return nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return errors.New("fhirxml: text content is not allowed in FHIR elements (" + defPath + ")")
			}
		case xml.StartElement:
			name := t.Name.Local
			info, concrete, ok := fhir.LookupElement(defPath, name)
			if !ok {
				return errors.New("fhirxml: " + defPath + " has no element " + name)
			}
			if concrete == "" {
				return errors.New("fhirxml: " + defPath + "." + name + " has no single type")
			}
			if ns := pick(concrete == "xhtml", XHTMLNamespace, FHIRNamespace); t.Name.Space != ns {
				return errors.New("fhirxml: element " + name + " must be in the namespace " + ns)
			}
			v, ext, err := decodeElement(d, t, concrete, depth)
			if err != nil {
				return err
			}
			a := accs[name]
			if a == nil {
				a = &acc{repeat: info.Max != 1}
				accs[name] = a
				order = append(order, name)
			} else if !a.repeat {
				return errors.New("fhirxml: " + defPath + "." + name + " does not repeat")
			}
			var e any
			if ext != nil {
				e = ext
			}
			a.vals = append(a.vals, v)
			a.exts = append(a.exts, e)
		}
	}
}

func unexpected(err error) error {
	if err == io.EOF {
		return errors.New("fhirxml: unexpected end of document")
	}
	return err
}

// store writes an element's collected values into obj in FHIR JSON form.
func store(obj map[string]any, name string, a *acc) {
	hasExt, hasVal := false, false
	for i := range a.vals {
		if a.exts[i] != nil {
			hasExt = true
		}
		if a.vals[i] != nil {
			hasVal = true
		}
	}
	if !a.repeat {
		if hasVal {
			obj[name] = a.vals[0]
		}
		if hasExt {
			obj["_"+name] = a.exts[0]
		}
		return
	}
	if hasVal || hasExt {
		obj[name] = a.vals
	}
	if hasExt {
		obj["_"+name] = a.exts
	}
}

// decodeElement converts one element of type typ (a type name or a backbone
// path). Primitives return their JSON value and their id/extension object.
func decodeElement(d *xml.Decoder, se xml.StartElement, typ string, depth int) (any, map[string]any, error) {
	switch {
	case typ == "xhtml":
		var b strings.Builder
		if err := writeXHTML(&b, d, se, 0); err != nil {
			return nil, nil, err
		}
		return b.String(), nil, nil
	case fhir.IsPrimitiveType(typ):
		return decodePrimitive(d, se, typ, depth)
	case typ == "Resource" || typ == "DomainResource" || fhir.IsResourceType(typ):
		var res map[string]any
		for {
			tok, err := d.Token()
			if err != nil {
				return nil, nil, unexpected(err)
			}
			switch t := tok.(type) {
			case xml.StartElement:
				if res != nil {
					return nil, nil, errors.New("fhirxml: a resource element holds one resource")
				}
				if res, err = decodeResource(d, t, depth+1); err != nil {
					return nil, nil, err
				}
			case xml.EndElement:
				if res == nil {
					return nil, nil, errors.New("fhirxml: empty resource element")
				}
				return res, nil, nil
			case xml.CharData:
				if len(bytes.TrimSpace(t)) > 0 {
					return nil, nil, errors.New("fhirxml: text content is not allowed in FHIR elements")
				}
			}
		}
	}
	obj := map[string]any{}
	for _, a := range se.Attr {
		switch {
		case a.Name.Space == "xmlns" || a.Name.Local == "xmlns":
		case a.Name.Local == "id" || (a.Name.Local == "url" && typ == "Extension"):
			obj[a.Name.Local] = a.Value
		default:
			return nil, nil, errors.New("fhirxml: unexpected attribute " + a.Name.Local + " on a " + typ)
		}
	}
	if err := readChildren(d, obj, typ, depth+1); err != nil {
		return nil, nil, err
	}
	return obj, nil, nil
}

func decodePrimitive(d *xml.Decoder, se xml.StartElement, typ string, depth int) (any, map[string]any, error) {
	var value any
	var ext map[string]any
	for _, a := range se.Attr {
		switch {
		case a.Name.Space == "xmlns" || a.Name.Local == "xmlns":
		case a.Name.Local == "value":
			v, err := primitiveJSON(typ, a.Value)
			if err != nil {
				return nil, nil, err
			}
			value = v
		case a.Name.Local == "id":
			if ext == nil {
				ext = map[string]any{}
			}
			ext["id"] = a.Value
		default:
			return nil, nil, errors.New("fhirxml: unexpected attribute " + a.Name.Local + " on a " + typ)
		}
	}
	// Children of a primitive: its extensions, as an Element.
	kids := map[string]any{}
	if err := readChildren(d, kids, "Element", depth+1); err != nil {
		return nil, nil, err
	}
	if len(kids) > 0 {
		if ext == nil {
			ext = map[string]any{}
		}
		for k, v := range kids {
			ext[k] = v
		}
	}
	if value == nil && ext == nil {
		return nil, nil, errors.New("fhirxml: a " + typ + " element has neither a value nor extensions")
	}
	return value, ext, nil
}

// primitiveJSON gives a primitive's JSON form: booleans and numbers are JSON
// booleans and numbers, everything else a string.
func primitiveJSON(typ, s string) (any, error) {
	switch typ {
	case "boolean":
		switch s {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, errors.New("fhirxml: a boolean is true or false")
	case "integer", "positiveInt", "unsignedInt", "decimal":
		var n json.Number
		if err := json.Unmarshal([]byte(s), &n); err != nil || strings.ContainsAny(s, " \t\n") {
			return nil, errors.New("fhirxml: a " + typ + " must be a number")
		}
		return n, nil
	}
	return s, nil
}

// writeXHTML serializes the element d just started, and its content, in a
// canonical form: attributes in document order, text escaped minimally,
// empty elements self-closed.
func writeXHTML(b *strings.Builder, d *xml.Decoder, se xml.StartElement, depth int) error {
	if depth > maxDepth {
		return errors.New("fhirxml: XHTML nested too deeply")
	}
	b.WriteByte('<')
	b.WriteString(se.Name.Local)
	for _, a := range se.Attr {
		b.WriteByte(' ')
		switch a.Name.Space {
		case "xmlns":
			b.WriteString("xmlns:" + a.Name.Local)
		case "http://www.w3.org/XML/1998/namespace", "xml":
			b.WriteString("xml:" + a.Name.Local)
		default:
			b.WriteString(a.Name.Local)
		}
		b.WriteString(`="`)
		b.WriteString(escape(a.Value, true))
		b.WriteByte('"')
	}
	var content strings.Builder
	for {
		tok, err := d.Token()
		if err != nil {
			return unexpected(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if err := writeXHTML(&content, d, t, depth+1); err != nil {
				return err
			}
		case xml.CharData:
			content.WriteString(escape(string(t), false))
		case xml.EndElement:
			if content.Len() == 0 {
				b.WriteString("/>")
				return nil
			}
			b.WriteByte('>')
			b.WriteString(content.String())
			b.WriteString("</" + se.Name.Local + ">")
			return nil
		}
	}
}

func escape(s string, attr bool) string {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
	if attr {
		r = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")
	}
	return r.Replace(s)
}

// CanonicalXHTML re-serializes an XHTML fragment (a narrative div) the way
// the converter does, so two serializations of the same tree compare equal.
func CanonicalXHTML(s string) (string, error) {
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		tok, err := d.Token()
		if err != nil {
			return "", unexpected(err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			var b strings.Builder
			if err := writeXHTML(&b, d, se, 0); err != nil {
				return "", err
			}
			return b.String(), nil
		}
	}
}

func pick(c bool, a, b string) string {
	if c {
		return a
	}
	return b
}
