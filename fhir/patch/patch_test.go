package patch

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

const testPatient = `{
  "resourceType": "Patient", "id": "p1",
  "meta": {"versionId": "3"},
  "identifier": [
    {"use": "official", "system": "urn:sys", "value": "A1"},
    {"use": "usual", "system": "urn:sys", "value": "B2"}
  ],
  "active": true,
  "name": [{"use": "official", "family": "Zhang", "given": ["Wei", "Li"], "_given": [null, {"extension": [{"url": "urn:x", "valueString": "x"}]}]}],
  "birthDate": "1970-01-02",
  "multipleBirthInteger": 2,
  "contact": [{"gender": "male", "name": {"text": "a name"}}]
}`

func obj(t testing.TB, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("bad test JSON: %v", err)
	}
	return m
}

func canon(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestJSONPatch(t *testing.T) {
	tests := []struct {
		name, patch string
		want        map[string]any // checked members of the result
		code        Code
		op          int
	}{
		{name: "replace family", patch: `[{"op":"replace","path":"/name/0/family","value":"Li"}]`,
			want: map[string]any{"name": []any{map[string]any{"use": "official", "family": "Li", "given": []any{"Wei", "Li"},
				"_given": []any{nil, map[string]any{"extension": []any{map[string]any{"url": "urn:x", "valueString": "x"}}}}}}}},
		{name: "append with -", patch: `[{"op":"add","path":"/identifier/-","value":{"value":"C3"}}]`,
			want: map[string]any{"identifier": []any{
				map[string]any{"use": "official", "system": "urn:sys", "value": "A1"},
				map[string]any{"use": "usual", "system": "urn:sys", "value": "B2"},
				map[string]any{"value": "C3"}}}},
		{name: "escaped key", patch: `[{"op":"add","path":"/a~1b~0c","value":1},{"op":"test","path":"/a~1b~0c","value":1.0}]`,
			want: map[string]any{"a/b~c": json.Number("1")}},
		{name: "copy and remove", patch: `[{"op":"copy","from":"/birthDate","path":"/deceasedDateTime"},{"op":"remove","path":"/birthDate"}]`,
			want: map[string]any{"deceasedDateTime": "1970-01-02", "birthDate": nil}},
		{name: "test fails", patch: `[{"op":"remove","path":"/active"},{"op":"test","path":"/birthDate","value":"1970-01-03"}]`, code: CodeTestFailed, op: 1},
		{name: "test string vs number", patch: `[{"op":"test","path":"/multipleBirthInteger","value":"2"}]`, code: CodeTestFailed},
		{name: "missing parent", patch: `[{"op":"add","path":"/x/y","value":1}]`, code: CodePathNotFound},
		{name: "remove missing", patch: `[{"op":"remove","path":"/deceasedBoolean"}]`, code: CodePathNotFound},
		{name: "index past end", patch: `[{"op":"add","path":"/identifier/3","value":{}}]`, code: CodeIndex},
		{name: "leading zero index", patch: `[{"op":"replace","path":"/identifier/01","value":{}}]`, code: CodeIndex},
		{name: "bad escape", patch: `[{"op":"remove","path":"/a~2"}]`, code: CodeInvalidPath},
		{name: "pointer without slash", patch: `[{"op":"remove","path":"name"}]`, code: CodeInvalidPath},
		{name: "unknown op", patch: `[{"op":"merge","path":"/a"}]`, code: CodeInvalid},
		{name: "missing value", patch: `[{"op":"add","path":"/a"}]`, code: CodeInvalid},
		{name: "missing from", patch: `[{"op":"move","path":"/a"}]`, code: CodeInvalid},
		{name: "move into child", patch: `[{"op":"move","from":"/name","path":"/name/0"}]`, code: CodeInvalidPath},
		{name: "not an array", patch: `{"op":"add","path":"/a","value":1}`, code: CodeInvalid, op: -1},
		{name: "trailing data", patch: `[] []`, code: CodeInvalid, op: -1},
		{name: "null", patch: `null`, code: CodeInvalid, op: -1},
		{name: "change id", patch: `[{"op":"replace","path":"/id","value":"p2"}]`, code: CodeImmutable, op: -1},
		{name: "remove resourceType", patch: `[{"op":"remove","path":"/resourceType"}]`, code: CodeImmutable, op: -1},
		{name: "replace root", patch: `[{"op":"replace","path":"","value":[]}]`, code: CodeInvalid, op: -1},
		{name: "id unchanged by remove and add", patch: `[{"op":"remove","path":"/id"},{"op":"add","path":"/id","value":"p1"}]`,
			want: map[string]any{"id": "p1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := obj(t, testPatient)
			before := canon(t, in)
			p, err := ParseJSONPatch([]byte(tc.patch))
			var out map[string]any
			if err == nil {
				out, err = p.ApplyTo(in)
			}
			if after := canon(t, in); after != before {
				t.Fatalf("the input was modified")
			}
			if tc.code != "" {
				e, ok := AsError(err)
				if !ok {
					t.Fatalf("error = %v, want code %s", err, tc.code)
				}
				if e.Code != tc.code || e.Op != tc.op {
					t.Fatalf("error = %v (code %s op %d), want code %s op %d", err, e.Code, e.Op, tc.code, tc.op)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			for k, want := range tc.want {
				got, ok := out[k]
				if want == nil {
					if ok {
						t.Errorf("%s still present", k)
					}
					continue
				}
				if !jsonEqual(got, want) {
					t.Errorf("%s = %s, want %s", k, canon(t, got), canon(t, want))
				}
			}
		})
	}
}

func TestJSONEqualNumbers(t *testing.T) {
	if !jsonEqual(json.Number("1.50"), json.Number("1.5")) || !jsonEqual(json.Number("1e2"), json.Number("100")) {
		t.Error("numerically equal numbers differ")
	}
	if jsonEqual(json.Number("1"), "1") || jsonEqual(json.Number("1e999999999"), json.Number("1e999999998")) {
		t.Error("unequal values are equal")
	}
}

// params builds a FHIRPath Patch from operations given as part lists.
func params(ops ...string) string {
	var b strings.Builder
	b.WriteString(`{"resourceType":"Parameters","parameter":[`)
	for i, op := range ops {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"name":"operation","part":[` + op + `]}`)
	}
	b.WriteString(`]}`)
	return b.String()
}

func TestFHIRPathPatch(t *testing.T) {
	tests := []struct {
		name  string
		patch string
		check func(t *testing.T, out map[string]any)
		code  Code
		op    int
		pos   int // expected FHIRPath column when > 0
	}{
		{name: "replace primitive keeps nothing stale",
			patch: params(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.name[0].given[1]"},{"name":"value","valueString":"Ming"}`),
			check: func(t *testing.T, out map[string]any) {
				n := out["name"].([]any)[0].(map[string]any)
				if canon(t, n["given"]) != `["Wei","Ming"]` {
					t.Errorf("given = %s", canon(t, n["given"]))
				}
				if _, ok := n["_given"]; ok {
					t.Errorf("_given kept after replacing the only extended item: %s", canon(t, n["_given"]))
				}
			}},
		{name: "delete array primitive realigns extensions",
			patch: params(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.name.given.first()"}`),
			check: func(t *testing.T, out map[string]any) {
				n := out["name"].([]any)[0].(map[string]any)
				if canon(t, n["given"]) != `["Li"]` || canon(t, n["_given"]) != `[{"extension":[{"url":"urn:x","valueString":"x"}]}]` {
					t.Errorf("given = %s _given = %s", canon(t, n["given"]), canon(t, n["_given"]))
				}
			}},
		{name: "delete nothing is fine",
			patch: params(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.deceased"}`),
			check: func(t *testing.T, out map[string]any) {
				if canon(t, out) != canon(t, obj(t, testPatient)) {
					t.Error("resource changed")
				}
			}},
		{name: "add choice element",
			patch: params(`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"deceased"},{"name":"value","valueBoolean":false}`),
			check: func(t *testing.T, out map[string]any) {
				if out["deceasedBoolean"] != false {
					t.Errorf("deceasedBoolean = %v", out["deceasedBoolean"])
				}
			}},
		{name: "replace choice changes type",
			patch: params(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.multipleBirth"},{"name":"value","valueBoolean":true}`),
			check: func(t *testing.T, out map[string]any) {
				if _, ok := out["multipleBirthInteger"]; ok || out["multipleBirthBoolean"] != true {
					t.Errorf("multipleBirth = %v / %v", out["multipleBirthInteger"], out["multipleBirthBoolean"])
				}
			}},
		{name: "insert and move",
			patch: params(
				`{"name":"type","valueCode":"insert"},{"name":"path","valueString":"Patient.identifier"},{"name":"index","valueInteger":0},{"name":"value","valueIdentifier":{"value":"Z0"}}`,
				`{"name":"type","valueCode":"move"},{"name":"path","valueString":"Patient.identifier"},{"name":"source","valueInteger":0},{"name":"destination","valueInteger":2}`),
			check: func(t *testing.T, out map[string]any) {
				var vals []string
				for _, x := range out["identifier"].([]any) {
					vals = append(vals, x.(map[string]any)["value"].(string))
				}
				if strings.Join(vals, ",") != "A1,B2,Z0" {
					t.Errorf("identifiers = %v", vals)
				}
			}},
		{name: "anonymous value with repeating parts",
			patch: params(`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"contact"},{"name":"value","part":[{"name":"telecom","valueContactPoint":{"system":"phone","value":"1"}},{"name":"gender","valueCode":"female"}]}`),
			check: func(t *testing.T, out map[string]any) {
				c := out["contact"].([]any)
				if len(c) != 2 || canon(t, c[1]) != `{"gender":"female","telecom":[{"system":"phone","value":"1"}]}` {
					t.Errorf("contact = %s", canon(t, c))
				}
			}},
		{name: "add an extension to a primitive in a list",
			patch: params(`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient.name.given[0]"},{"name":"name","valueString":"extension"},{"name":"value","valueExtension":{"url":"urn:y","valueCode":"z"}}`),
			check: func(t *testing.T, out map[string]any) {
				n := out["name"].([]any)[0].(map[string]any)
				if canon(t, n["_given"]) != `[{"extension":[{"url":"urn:y","valueCode":"z"}]},{"extension":[{"url":"urn:x","valueString":"x"}]}]` {
					t.Errorf("_given = %s", canon(t, n["_given"]))
				}
			}},
		{name: "add and delete an extension on a single primitive",
			patch: params(`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient.birthDate"},{"name":"name","valueString":"extension"},{"name":"value","valueExtension":{"url":"urn:y","valueCode":"z"}}`,
				`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient.active"},{"name":"name","valueString":"extension"},{"name":"value","valueExtension":{"url":"urn:y","valueCode":"z"}}`,
				`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.active.extension"}`),
			check: func(t *testing.T, out map[string]any) {
				if canon(t, out["_birthDate"]) != `{"extension":[{"url":"urn:y","valueCode":"z"}]}` || out["birthDate"] != "1970-01-02" {
					t.Errorf("birthDate %v _birthDate %s", out["birthDate"], canon(t, out["_birthDate"]))
				}
				if _, ok := out["_active"]; ok || out["active"] != true {
					t.Errorf("active %v _active %v", out["active"], out["_active"])
				}
			}},
		{name: "move keeps primitive extensions aligned",
			patch: params(`{"name":"type","valueCode":"move"},{"name":"path","valueString":"Patient.name.given"},{"name":"source","valueInteger":1},{"name":"destination","valueInteger":0}`),
			check: func(t *testing.T, out map[string]any) {
				n := out["name"].([]any)[0].(map[string]any)
				if canon(t, n["given"]) != `["Li","Wei"]` || canon(t, n["_given"]) != `[{"extension":[{"url":"urn:x","valueString":"x"}]},null]` {
					t.Errorf("given = %s _given = %s", canon(t, n["given"]), canon(t, n["_given"]))
				}
			}},
		{name: "insert keeps primitive extensions aligned",
			patch: params(`{"name":"type","valueCode":"insert"},{"name":"path","valueString":"Patient.name.given"},{"name":"index","valueInteger":0},{"name":"value","valueString":"Da"}`),
			check: func(t *testing.T, out map[string]any) {
				n := out["name"].([]any)[0].(map[string]any)
				if canon(t, n["given"]) != `["Da","Wei","Li"]` || canon(t, n["_given"]) != `[null,null,{"extension":[{"url":"urn:x","valueString":"x"}]}]` {
					t.Errorf("given = %s _given = %s", canon(t, n["given"]), canon(t, n["_given"]))
				}
			}},
		{name: "deleting the only extension of an extension-only primitive removes the item",
			patch: params(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.name.given[1].extension"}`,
				`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.name.given[0]"}`),
			check: func(t *testing.T, out map[string]any) {
				n := out["name"].([]any)[0].(map[string]any)
				if canon(t, n["given"]) != `["Li"]` {
					t.Errorf("given = %s", canon(t, n["given"]))
				}
				if _, ok := n["_given"]; ok {
					t.Errorf("_given = %s", canon(t, n["_given"]))
				}
			}},
		{name: "syntax error has position",
			patch: params(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.name.where(use = )"}`),
			code:  CodeInvalidPath, op: 0, pos: 26},
		{name: "second operation's path is invalid",
			patch: params(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.active"}`,
				`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.nosuchfunc()"}`),
			code: CodeInvalidPath, op: 1, pos: 9},
		{name: "replace needs one element",
			patch: params(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.identifier.value"},{"name":"value","valueString":"x"}`),
			code:  CodeNotSingle, op: 0},
		{name: "replace of nothing",
			patch: params(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.gender"},{"name":"value","valueCode":"male"}`),
			code:  CodePathNotFound, op: 0},
		{name: "add existing singleton",
			patch: params(`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"birthDate"},{"name":"value","valueDate":"1980-01-01"}`),
			code:  CodeElementExists},
		{name: "add unknown element",
			patch: params(`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"shoeSize"},{"name":"value","valueInteger":9}`),
			code:  CodeUnknownElement},
		{name: "wrong datatype",
			patch: params(`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"maritalStatus"},{"name":"value","valueHumanName":{"text":"x"}}`),
			code:  CodeInvalidValue},
		{name: "insert past end",
			patch: params(`{"name":"type","valueCode":"insert"},{"name":"path","valueString":"Patient.identifier"},{"name":"index","valueInteger":3},{"name":"value","valueIdentifier":{"value":"Z"}}`),
			code:  CodeIndex},
		{name: "move across lists",
			patch: params(`{"name":"type","valueCode":"move"},{"name":"path","valueString":"Patient.name.given | Patient.identifier"},{"name":"source","valueInteger":0},{"name":"destination","valueInteger":1}`),
			code:  CodeNotSingle},
		{name: "delete the resource", patch: params(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient"}`), code: CodeInvalidPath},
		{name: "path to a computed value", patch: params(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.name.count()"}`), code: CodeInvalidPath},
		{name: "change id", patch: params(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.id"},{"name":"value","valueId":"p2"}`), code: CodeImmutable, op: -1},
		{name: "delete id", patch: params(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"id"}`), code: CodeImmutable, op: -1},
		{name: "missing part", patch: params(`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"}`), code: CodeInvalid},
		{name: "extra part", patch: params(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.active"},{"name":"index","valueInteger":1}`), code: CodeInvalid},
		{name: "bad type", patch: params(`{"name":"type","valueCode":"upsert"},{"name":"path","valueString":"Patient"}`), code: CodeInvalid},
		{name: "not Parameters", patch: `{"resourceType":"Patient"}`, code: CodeInvalid, op: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := obj(t, testPatient)
			before := canon(t, in)
			p, err := ParseFHIRPathPatchJSON([]byte(tc.patch))
			var out map[string]any
			if err == nil {
				out, err = p.ApplyTo(in)
			}
			if canon(t, in) != before {
				t.Fatal("the input was modified")
			}
			if tc.code != "" {
				e, ok := AsError(err)
				if !ok {
					t.Fatalf("error = %v, want code %s", err, tc.code)
				}
				if e.Code != tc.code || (tc.op != 0 || e.Op != 0) && e.Op != tc.op {
					t.Fatalf("error = %v, want code %s op %d", err, tc.code, tc.op)
				}
				if tc.pos > 0 && (e.Pos == nil || e.Pos.Column != tc.pos) {
					t.Fatalf("position = %+v, want column %d", e.Pos, tc.pos)
				}
				if strings.Contains(err.Error(), "Zhang") || strings.Contains(err.Error(), "A1") {
					t.Fatalf("error text carries resource content: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			tc.check(t, out)
		})
	}
}

func TestErrorText(t *testing.T) {
	p, err := ParseFHIRPathPatchJSON([]byte(params(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.name.where(family = 'Zhang'"}`)))
	if err == nil {
		t.Fatalf("parsed %v", p)
	}
	if strings.Contains(err.Error(), "Zhang") {
		t.Errorf("error text echoes a literal: %v", err)
	}
	if !bytes.Contains([]byte(err.Error()), []byte("operation 0")) {
		t.Errorf("error text lacks the operation: %v", err)
	}
}

func TestExtensionOnlyPrimitive(t *testing.T) {
	in := obj(t, `{"resourceType":"Patient","name":[{"given":[null,"B"],"_given":[{"extension":[{"url":"urn:x","valueCode":"unknown"}]},null]}]}`)
	p, err := ParseFHIRPathPatchJSON([]byte(params(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.name.given.extension"}`)))
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.ApplyTo(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := canon(t, out["name"]); got != `[{"given":["B"]}]` {
		t.Errorf("name = %s", got)
	}
}
