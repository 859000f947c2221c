package gateway

import (
	"encoding/json"
	"testing"

	"phix/gateway/coord"
)

// FuzzParsePeers: any input is refused cleanly or gives peers with keys.
func FuzzParsePeers(f *testing.F) {
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"id":"h","suite":"intl","signing_key":"AA==","wrap_key":"AA=="}]`))
	f.Add([]byte(`{"id":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		peers, err := ParsePeers(b)
		if err != nil {
			return
		}
		for id, p := range peers {
			if p.Verify == nil || p.Wrap == nil || p.ID != id {
				t.Fatalf("peer %q without keys", id)
			}
		}
	})
}

// FuzzParseInnerManifest: the receiver's parser of the sealed manifest
// never accepts a file name with a separator or a malformed hash (version
// 1), nor a hash in a version 2 manifest.
func FuzzParseInnerManifest(f *testing.F) {
	good, _ := json.Marshal(innerManifest{V: 1, Sender: "a", Receiver: "b", Files: []innerFile{{Sealed: "f001.seal", Name: "x.pdf",
		Kind: "pdf", Size: 3, HashAlg: "sha256", Hash: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"}}})
	f.Add(good)
	f.Add([]byte(`{"v":1,"files":[{"sealed":"../x","name":"a"}]}`))
	f.Add([]byte(`{"v":2}`))
	v2, _ := json.Marshal(innerManifest{V: 2, Sender: "a", Receiver: "b", Files: []innerFile{{Sealed: "f001.seal", Name: "x.pdf", Kind: "pdf", Size: 3}}})
	f.Add(v2)
	f.Add([]byte(`{"v":2,"files":[{"sealed":"f001.seal","name":"a","hash":"00"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseInnerManifest(b)
		if err != nil {
			return
		}
		for _, fl := range m.Files {
			if fl.Name == "" || fl.Name == ".." || (m.V == 1 && len(fl.Hash) != 64) || (m.V == 2 && fl.Hash != "") {
				t.Fatalf("accepted file %+v", fl)
			}
		}
	})
}

// FuzzParseNodeConfig: bad YAML is an error, never a panic.
func FuzzParseNodeConfig(f *testing.F) {
	f.Add([]byte("hospital: a\ndata: d\nfhir: {listen: x}\ngateway: {listen: y, coordinator: z}\n"))
	f.Add([]byte("gateway: {policy: {purposes: {TREAT: {dlp: 'default=allow'}}}}"))
	f.Add([]byte("- [a"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseNodeConfig(b, "/base")
	})
}

// FuzzParseProblem: any coordinator answer becomes a Problem with a code.
func FuzzParseProblem(f *testing.F) {
	f.Add(403, []byte(`{"code":"TRF-1301","reasons":["consent-expired"]}`))
	f.Add(500, []byte(`<html>`))
	f.Fuzz(func(t *testing.T, status int, b []byte) {
		p := coord.ParseProblem(status, b)
		if p.Code == "" || p.Status != status {
			t.Fatalf("problem %+v", p)
		}
	})
}
