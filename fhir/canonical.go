package fhir

// Canonical writes the canonical form of seed 002 (002 PHI isolation,
// "HMAC-SHA3-384 Message Authentication", step 1), the input of the resource
// HMAC and of signatures:
//
//   - the top-level meta is removed except meta.security (meta is dropped
//     when it has no security labels);
//   - every object's keys are sorted by code point, recursively;
//   - compact separators (",", ":"), no whitespace;
//   - strings escaped as Python's json.dumps(ensure_ascii=True): \" \\ \n \r
//     \t \b \f, every other character outside 0x20-0x7e as lowercase \uXXXX
//     (UTF-16 surrogate pairs above U+FFFF);
//   - numbers written exactly as parsed (json.Number), since FHIR decimals
//     carry their precision ("1.50" is not "1.5"); Python would reformat floats.
//
// The seed leaves number formatting unspecified; docs/validation.md records
// this choice. r is not modified.
func Canonical(r *Resource) ([]byte, error) {
	if r == nil || r.Object == nil {
		return nil, ErrNilResource
	}
	obj := r.Object
	if meta, ok := obj["meta"]; ok {
		trimmed := make(map[string]any, len(obj))
		for k, v := range obj {
			if k != "meta" {
				trimmed[k] = v
			}
		}
		if mm, ok := meta.(map[string]any); ok {
			if sec, ok := mm["security"]; ok {
				trimmed["meta"] = map[string]any{"security": sec}
			}
		}
		obj = trimmed
	}
	e := encoder{buf: make([]byte, 0, 1024), canonical: true}
	if err := e.value(obj, 0); err != nil {
		return nil, err
	}
	return e.buf, nil
}
