package dlp

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// FHIR JSON: every string value is scanned (extensions included); the
// narrative text.div is scanned with its XHTML tags stripped and offsets
// mapped back to the div string. Elements whose whole value is PHI by
// definition (HumanName parts, telecom values, address parts, birthDate,
// identifier values) are reported whole. Findings carry a FHIRPath-like
// Location (Patient.address[0].line[0]) and offsets within that string.

// maxJSONDepth bounds nesting; deeper documents are refused.
const maxJSONDepth = 200

// ScanJSON scans a FHIR resource (or Bundle) in JSON with the default scanner.
func ScanJSON(data []byte) ([]Finding, error) { return defaultScanner.ScanJSON(data) }

// ScanJSON scans a FHIR resource (or Bundle) in JSON. Invalid JSON is an
// *Error with CodeInvalidJSON and no findings.
func (sc *Scanner) ScanJSON(data []byte) ([]Finding, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	// Each open container: for arrays the index of the current element, for
	// objects the current property and whether a key comes next.
	type node struct {
		array   bool
		idx     int
		cur     string
		wantKey bool
	}
	var (
		nodes []node
		strs  []jsonString
		root  string
		done  bool
	)
	// valueDone moves the innermost container past one value.
	valueDone := func() {
		if len(nodes) == 0 {
			done = true
			return
		}
		top := &nodes[len(nodes)-1]
		if top.array {
			top.idx++
		} else {
			top.wantKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if len(nodes) > 0 || !done {
				return nil, errorf(CodeInvalidJSON, "unexpected end of input")
			}
			break
		}
		if err != nil {
			return nil, errorf(CodeInvalidJSON, "%s", jsonErrMsg(err))
		}
		if done {
			return nil, errorf(CodeInvalidJSON, "trailing data after the document")
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if len(nodes) >= maxJSONDepth {
					return nil, errorf(CodeTooDeep, "nesting deeper than %d", maxJSONDepth)
				}
				nodes = append(nodes, node{array: t == '[', wantKey: t == '{'})
			default:
				nodes = nodes[:len(nodes)-1]
				valueDone()
			}
			continue
		case string:
			if len(nodes) > 0 && !nodes[len(nodes)-1].array && nodes[len(nodes)-1].wantKey {
				nodes[len(nodes)-1].cur = t
				nodes[len(nodes)-1].wantKey = false
				continue
			}
			if len(nodes) == 1 && nodes[0].cur == "resourceType" {
				root = t
			}
			var b strings.Builder
			var names []string
			for _, n := range nodes {
				if n.array {
					b.WriteString("[" + strconv.Itoa(n.idx) + "]")
				} else {
					b.WriteString("." + n.cur)
					names = append(names, n.cur)
				}
			}
			if len(names) > 0 {
				strs = append(strs, jsonString{path: b.String(), names: names, value: t})
			}
		}
		valueDone()
	}
	if root == "" {
		root = "Resource"
	}
	var out []Finding
	for _, js := range strs {
		loc := root + js.path
		for _, f := range sc.scanFHIRString(js.names, js.value) {
			f.Location = loc
			out = append(out, f)
		}
	}
	return out, nil
}

// jsonString is one string value with its path (without the root type) and
// the property names from the root down.
type jsonString struct {
	path  string
	names []string
	value string
}

func jsonErrMsg(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return "syntax error at byte " + strconv.FormatInt(se.Offset, 10)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of input"
	}
	return "malformed JSON"
}

// scanFHIRString classifies or scans one string value; names are the
// property names from the root to the value.
func (sc *Scanner) scanFHIRString(names []string, v string) []Finding {
	if v == "" {
		return nil
	}
	last := names[len(names)-1]
	parent := ""
	if len(names) >= 2 {
		parent = names[len(names)-2]
	}
	whole := func(t Type, det string) []Finding {
		return []Finding{{Type: t, Start: 0, End: utf8.RuneCountInString(v), Score: 0.95, Detector: det}}
	}
	switch {
	case last == "resourceType" || last == "id" || last == "fullUrl":
		// Logical ids and types say nothing about the patient.
		return nil
	case slices.Contains(names, "meta"):
		// Server metadata (versionId, lastUpdated, tags), not about the patient.
		return nil
	case last == "system" || last == "url" || last == "profile" || last == "version" || last == "code" ||
		last == "reference" || (parent == "coding" && last == "display"):
		// Canonicals, literal references and terminology: codes and their
		// displays come from the code system, not from the patient.
		return nil
	case last == "div" && parent == "text":
		return sc.scanDiv(v)
	case parent == "name" && (last == "family" || last == "given" || last == "text"):
		return whole(Name, "fhir-humanname")
	case parent == "telecom" && last == "value":
		switch {
		case strings.Contains(v, "@"):
			return whole(Email, "fhir-telecom")
		case strings.Contains(v, "://"):
			return whole(URL, "fhir-telecom")
		}
		return whole(Phone, "fhir-telecom")
	case parent == "address" && (last == "line" || last == "city" || last == "district" || last == "postalCode" || last == "text"):
		return whole(Address, "fhir-address")
	case last == "birthDate" || last == "deceasedDateTime":
		return whole(Date, "fhir-date")
	case parent == "identifier" && last == "value":
		switch {
		case ValidCNResidentID(v):
			return whole(CNResidentID, "fhir-identifier")
		}
		return whole(Identifier, "fhir-identifier")
	}
	return sc.ScanText(v)
}

// scanDiv scans narrative XHTML and maps offsets back to the div string.
func (sc *Scanner) scanDiv(div string) []Finding {
	text, orig := stripXHTML(div)
	fs := sc.ScanText(text)
	for i := range fs {
		if fs[i].End <= fs[i].Start || fs[i].End > len(orig) {
			continue
		}
		fs[i].Start, fs[i].End = orig[fs[i].Start].start, orig[fs[i].End-1].end
	}
	return fs
}
