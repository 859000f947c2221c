package fhirxml

import (
	"encoding/json"
	"testing"
)

func TestParse(t *testing.T) {
	src := `<?xml version="1.0"?>
<Patient xmlns="http://hl7.org/fhir">
  <id value="p1"/>
  <!-- a comment -->
  <text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p>A &amp; B<br/></p></div></text>
  <active value="true"/>
  <name id="n1">
    <family value="du Marché">
      <extension url="http://hl7.org/fhir/StructureDefinition/humanname-own-prefix"><valueString value="VV"/></extension>
    </family>
    <given value="A"/>
    <given id="g2"><extension url="urn:x"><valueBoolean value="false"/></extension></given>
  </name>
  <multipleBirthInteger value="2"/>
  <contained><Organization xmlns="http://hl7.org/fhir"><id value="o"/></Organization></contained>
  <contact><gender value="male"/></contact>
</Patient>`
	got, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(got)
	const exp = `{"active":true,"contact":[{"gender":"male"}],"contained":[{"id":"o","resourceType":"Organization"}],"id":"p1","multipleBirthInteger":2,` +
		`"name":[{"_family":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/humanname-own-prefix","valueString":"VV"}]},"_given":[null,{"extension":[{"url":"urn:x","valueBoolean":false}],"id":"g2"}],"family":"du Marché","given":["A",null],"id":"n1"}],` +
		`"resourceType":"Patient","text":{"div":"\u003cdiv xmlns=\"http://www.w3.org/1999/xhtml\"\u003e\u003cp\u003eA \u0026amp; B\u003cbr/\u003e\u003c/p\u003e\u003c/div\u003e","status":"generated"}}`
	if string(b) != exp {
		t.Errorf("got  %s\nwant %s", b, exp)
	}
	if c, err := CanonicalXHTML(`<div xmlns="http://www.w3.org/1999/xhtml" xml:lang="en"><p title="a&quot;b">x</p></div>`); err != nil || c != `<div xmlns="http://www.w3.org/1999/xhtml" xml:lang="en"><p title="a&quot;b">x</p></div>` {
		t.Errorf("canonical div with attributes = %q, %v", c, err)
	}
	c, err := CanonicalXHTML(`<div xmlns="http://www.w3.org/1999/xhtml"><p>A &amp; B<br></br></p></div>`)
	if err != nil || c != got["text"].(map[string]any)["div"] {
		t.Errorf("canonical div = %q, %v", c, err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, src := range []string{
		``,
		`<Patient/>`,
		`<Nope xmlns="http://hl7.org/fhir"/>`,
		`<Patient xmlns="http://hl7.org/fhir"><shoeSize value="9"/></Patient>`,
		`<Patient xmlns="http://hl7.org/fhir"><gender value="male"/><gender value="female"/></Patient>`,
		`<Patient xmlns="http://hl7.org/fhir"><active value="yes"/></Patient>`,
		`<Patient xmlns="http://hl7.org/fhir"><multipleBirthInteger value="two"/></Patient>`,
		`<Patient xmlns="http://hl7.org/fhir"><active/></Patient>`,
		`<Patient xmlns="http://hl7.org/fhir">text</Patient>`,
		`<Patient xmlns="http://hl7.org/fhir"><name>`,
		`<Patient xmlns="http://hl7.org/fhir"><deceased value="true"/></Patient>`,
	} {
		if m, err := Parse([]byte(src)); err == nil {
			t.Errorf("%s: parsed as %v", src, m)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(`<Patient xmlns="http://hl7.org/fhir"><name><given value="A"/><given id="x"/></name></Patient>`)
	f.Add(`<Bundle xmlns="http://hl7.org/fhir"><entry><resource><Patient><id value="1"/></Patient></resource></entry></Bundle>`)
	f.Add(`<Patient xmlns="http://hl7.org/fhir"><text><div xmlns="http://www.w3.org/1999/xhtml">x<b>y</b></div></text></Patient>`)
	f.Fuzz(func(t *testing.T, src string) {
		m, err := Parse([]byte(src))
		if err != nil {
			return
		}
		if _, err := json.Marshal(m); err != nil {
			t.Fatalf("result does not marshal: %v", err)
		}
		if _, ok := m["resourceType"].(string); !ok {
			t.Fatal("no resourceType")
		}
	})
}
