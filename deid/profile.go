package deid

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"phix/fhir"
	"phix/fhir/fhirpath"
)

// Profile is a de-identification configuration: ordered rules plus
// profile-wide settings. See docs/deid.md for the file format.
type Profile struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Source names the regulation or standard the profile implements.
	Source string `json:"source,omitempty"`
	// IDs is "pseudonymize" (resource ids, references and urn:uuid full
	// URLs replaced by keyed pseudonyms, consistently) or "keep".
	IDs string `json:"ids,omitempty"`
	// DateShift bounds the per-patient offset of the dateShift method, in
	// days (inclusive). Zero values mean -365..365 (0 excluded).
	DateShift DateShiftRange `json:"dateShift,omitempty"`
	// Default applies a method to every node of the listed PHI-bearing
	// types that no rule matched. It has the lowest precedence.
	Default *DefaultRule `json:"default,omitempty"`
	// Risk enables the k-anonymity check over every batch (Bundle, NDJSON).
	Risk *RiskConfig `json:"risk,omitempty"`
	// Rules are applied in order; the first rule that selects a node (or
	// one of its ancestors) decides that node.
	Rules []Rule `json:"rules"`
	// Tag is the display of the meta.tag MASKED added to every output
	// resource; empty uses "De-identified per <name>".
	Tag string `json:"tag,omitempty"`

	lines []int // line of each rule in the source file
}

// DateShiftRange is the inclusive range of the per-patient day offset.
type DateShiftRange struct {
	MinDays int `json:"minDays"`
	MaxDays int `json:"maxDays"`
}

// DefaultRule is the profile-level default for unmatched PHI-bearing types.
type DefaultRule struct {
	Method string   `json:"method"`
	Types  []string `json:"types"`
}

// Rule selects nodes with a FHIRPath expression (Path) or by FHIR type
// (Type: every node of that type, anywhere, extensions included) and applies
// Method with its parameters.
type Rule struct {
	Path    string `json:"path,omitempty"`
	Type    string `json:"type,omitempty"`
	Method  string `json:"method"`
	Comment string `json:"comment,omitempty"`

	// cryptoHash: "hex" (default) or "base64url".
	Encoding string `json:"encoding,omitempty"`
	// encrypt: "aead" (default; AES-GCM / SM4-GCM), "ff1" (digits kept in
	// place, other characters unchanged) or "cn-resident-id" (FF1 over the
	// 17 body digits of a GB 11643 number, check digit recomputed).
	Mode string `json:"mode,omitempty"`
	// generalize: "year", "month", "ageBand", "zip3", "city" or "cnRegion".
	To string `json:"to,omitempty"`
	// generalize ageBand: band width (default 5) and top code (default 90:
	// ages at or above it become the top code, Safe Harbor's "90 or older").
	Band    int `json:"band,omitempty"`
	TopCode int `json:"topCode,omitempty"`
	// substitute: a fixed Value, or Pseudonym for a keyed pseudonym.
	Value     *string `json:"value,omitempty"`
	Pseudonym bool    `json:"pseudonym,omitempty"`
	// perturb: noise within ±Range (absolute) or ±Relative×value, rounded to
	// Decimals places (default: the input's).
	Range    float64 `json:"range,omitempty"`
	Relative float64 `json:"relative,omitempty"`
	Decimals *int    `json:"decimals,omitempty"`
	// redact with Scan: only the DLP findings in the text are replaced.
	Scan bool `json:"scan,omitempty"`
}

// Methods.
const (
	MethodKeep       = "keep"
	MethodRedact     = "redact"
	MethodCryptoHash = "cryptoHash"
	MethodEncrypt    = "encrypt"
	MethodDateShift  = "dateShift"
	MethodGeneralize = "generalize"
	MethodSubstitute = "substitute"
	MethodPerturb    = "perturb"
	MethodSuppress   = "suppress"
)

var methods = map[string]bool{
	MethodKeep: true, MethodRedact: true, MethodCryptoHash: true, MethodEncrypt: true,
	MethodDateShift: true, MethodGeneralize: true, MethodSubstitute: true,
	MethodPerturb: true, MethodSuppress: true,
}

//go:embed profiles/*.json
var builtin embed.FS

// BuiltinProfiles lists the embedded profile names.
func BuiltinProfiles() []string {
	ents, _ := builtin.ReadDir("profiles")
	var names []string
	for _, e := range ents {
		names = append(names, strings.TrimSuffix(e.Name(), ".json"))
	}
	sort.Strings(names)
	return names
}

// LoadProfile returns a built-in profile by name (safe-harbor,
// limited-data-set, expert, china) or, when name is not one, reads the file
// at that path.
func LoadProfile(name string) (*Profile, error) {
	if data, err := builtin.ReadFile("profiles/" + name + ".json"); err == nil && !strings.ContainsAny(name, "/\\.") {
		return ParseProfile(data)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, &Error{Code: CodeRuleInvalid, Rule: -1, Msg: "profile is neither built in nor a readable file", err: err}
	}
	return ParseProfile(data)
}

const maxProfileBytes = 4 << 20

// ParseProfile reads a JSON profile and checks every rule: FHIRPath syntax
// (with the position inside the expression), methods and parameters. Errors
// name the rule's index and line.
func ParseProfile(data []byte) (*Profile, error) {
	if len(data) > maxProfileBytes {
		return nil, ruleErr(-1, 0, "profile larger than 4 MiB")
	}
	var p Profile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, jsonErr(data, err)
	}
	if dec.More() {
		return nil, ruleErr(-1, 0, "trailing data after the profile object")
	}
	p.lines = ruleLines(data)
	if err := p.check(); err != nil {
		return nil, err
	}
	return &p, nil
}

// jsonErr turns a decoding error into a positioned, value-free error.
func jsonErr(data []byte, err error) error {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	msg := "invalid JSON"
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
		msg = "wrong JSON type for " + te.Field
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		msg = "unexpected end of profile"
	default:
		if s := err.Error(); strings.Contains(s, "unknown field") {
			// "json: unknown field \"x\"": the field name is configuration, not PHI.
			msg = strings.TrimPrefix(s, "json: ")
		}
	}
	e := ruleErr(-1, 0, msg)
	if off >= 0 {
		e.Line = lineAt(data, int(off))
		e.Rule = ruleAt(data, int(off))
	}
	return e
}

func lineAt(data []byte, off int) int {
	if off > len(data) {
		off = len(data)
	}
	return bytes.Count(data[:off], []byte{'\n'}) + 1
}

// ruleLines finds the line where each element of the top-level "rules" array
// starts, by walking the token stream.
func ruleLines(data []byte) []int {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil
		}
		if k != "rules" {
			var skip json.RawMessage
			if dec.Decode(&skip) != nil {
				return nil
			}
			continue
		}
		if t, err := dec.Token(); err != nil || t != json.Delim('[') {
			return nil
		}
		var lines []int
		for dec.More() {
			off := int(dec.InputOffset())
			for off < len(data) && (data[off] == ' ' || data[off] == '\t' || data[off] == '\n' || data[off] == '\r' || data[off] == ',') {
				off++
			}
			lines = append(lines, lineAt(data, off))
			var skip json.RawMessage
			if dec.Decode(&skip) != nil {
				return lines
			}
		}
		return lines
	}
	return nil
}

// ruleAt is the index of the rule containing byte offset off, or -1.
func ruleAt(data []byte, off int) int {
	lines := ruleLines(data[:min(len(data), maxProfileBytes)])
	l := lineAt(data, off)
	idx := -1
	for i, rl := range lines {
		if rl <= l {
			idx = i
		}
	}
	return idx
}

func (p *Profile) line(i int) int {
	if i < len(p.lines) {
		return p.lines[i]
	}
	return 0
}

func (p *Profile) check() error {
	if p.Name == "" {
		return ruleErr(-1, 0, "profile has no name")
	}
	switch p.IDs {
	case "", "keep", "pseudonymize":
	default:
		return &Error{Code: CodeRuleInvalid, Rule: -1, Where: "ids", Msg: "must be keep or pseudonymize"}
	}
	if p.DateShift.MinDays > p.DateShift.MaxDays || p.DateShift.MaxDays-p.DateShift.MinDays > 36500 {
		return &Error{Code: CodeRuleInvalid, Rule: -1, Where: "dateShift", Msg: "minDays must not exceed maxDays (span at most 100 years)"}
	}
	if d := p.Default; d != nil {
		if !methods[d.Method] || d.Method == MethodSuppress {
			return &Error{Code: CodeRuleInvalid, Rule: -1, Where: "default.method", Msg: "unknown or unusable method"}
		}
		for _, t := range d.Types {
			if !knownType(t) {
				return &Error{Code: CodeRuleInvalid, Rule: -1, Where: "default.types", Msg: "unknown FHIR type"}
			}
		}
	}
	if p.Risk != nil {
		if err := p.Risk.check(); err != nil {
			return err
		}
	}
	for i := range p.Rules {
		if err := p.Rules[i].check(); err != nil {
			err.Rule, err.Line = i, p.line(i)
			return err
		}
	}
	return nil
}

func knownType(t string) bool {
	if p, c, ok := strings.Cut(t, "."); ok {
		if !knownType(p) || c == "" {
			return false
		}
		if _, _, ok := fhir.LookupElement(p, c); ok {
			return true
		}
		info, _, ok := fhir.LookupElement(p, c+"String")
		return ok && info.Choice
	}
	if fhir.IsPrimitiveType(t) || fhir.IsResourceType(t) {
		return true
	}
	_, _, ok := fhir.LookupElement(t, "extension")
	return ok
}

func (r *Rule) check() *Error {
	bad := func(where, msg string) *Error { return &Error{Code: CodeRuleInvalid, Where: where, Msg: msg} }
	if (r.Path == "") == (r.Type == "") {
		return bad("path", "exactly one of path and type is required")
	}
	if r.Path != "" {
		if _, err := fhirpath.Compile(r.Path); err != nil {
			if fe, ok := fhirpath.AsError(err); ok {
				return bad("path", fmt.Sprintf("FHIRPath %s at %d:%d: %s", fe.Code, fe.Pos.Line, fe.Pos.Column, fe.Msg))
			}
			return bad("path", "FHIRPath does not compile")
		}
	}
	if r.Type != "" && !knownType(r.Type) {
		return bad("type", "unknown FHIR type")
	}
	if !methods[r.Method] {
		return bad("method", "unknown method (keep, redact, cryptoHash, encrypt, dateShift, generalize, substitute, perturb, suppress)")
	}
	paramsOf := map[string]bool{}
	if r.Encoding != "" {
		paramsOf["encoding"] = true
	}
	if r.Mode != "" {
		paramsOf["mode"] = true
	}
	if r.To != "" {
		paramsOf["to"] = true
	}
	if r.Band != 0 || r.TopCode != 0 {
		paramsOf["band"] = true
	}
	if r.Value != nil || r.Pseudonym {
		paramsOf["value"] = true
	}
	if r.Range != 0 || r.Relative != 0 || r.Decimals != nil {
		paramsOf["range"] = true
	}
	if r.Scan {
		paramsOf["scan"] = true
	}
	allowed := map[string][]string{
		MethodCryptoHash: {"encoding"},
		MethodEncrypt:    {"mode"},
		MethodGeneralize: {"to", "band"}, // topCode also serves to: year
		MethodSubstitute: {"value"},
		MethodPerturb:    {"range"},
		MethodRedact:     {"scan"},
	}[r.Method]
	for p := range paramsOf {
		ok := false
		for _, a := range allowed {
			ok = ok || a == p
		}
		if !ok {
			return bad(p, "parameter not valid for method "+r.Method)
		}
	}
	switch r.Method {
	case MethodCryptoHash:
		if r.Encoding != "" && r.Encoding != "hex" && r.Encoding != "base64url" {
			return bad("encoding", "must be hex or base64url")
		}
	case MethodEncrypt:
		if r.Mode != "" && r.Mode != "aead" && r.Mode != "ff1" && r.Mode != "cn-resident-id" {
			return bad("mode", "must be aead, ff1 or cn-resident-id")
		}
	case MethodGeneralize:
		switch r.To {
		case "year", "month", "zip3", "city", "cnRegion":
		case "ageBand":
			if r.Band < 0 || r.Band > 100 || r.TopCode < 0 || r.TopCode > 200 {
				return bad("band", "band must be 1..100 and topCode 0..200")
			}
		case "":
			return bad("to", "generalize needs to: year, month, ageBand, zip3 or cnRegion")
		default:
			return bad("to", "must be year, month, ageBand, zip3 or cnRegion")
		}
	case MethodSubstitute:
		if (r.Value != nil) == r.Pseudonym {
			return bad("value", "substitute needs exactly one of value and pseudonym")
		}
	case MethodPerturb:
		if r.Range < 0 || r.Relative < 0 || (r.Range == 0) == (r.Relative == 0) || r.Relative > 1 {
			return bad("range", "perturb needs exactly one of range (> 0) and relative (0 < r <= 1)")
		}
		if r.Decimals != nil && (*r.Decimals < 0 || *r.Decimals > 18) {
			return bad("decimals", "must be 0..18")
		}
	case MethodSuppress:
		if r.Path == "" {
			return bad("path", "suppress needs a FHIRPath path")
		}
	}
	return nil
}
