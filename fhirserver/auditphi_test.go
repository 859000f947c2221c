package fhirserver

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
)

func urlQuery(s string) string { return url.QueryEscape(s) }

func readFileIfExists(p string) ([]byte, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// doAs sends a GET with another token, to a path from the server root.
func (e *env) doAs(tok, method, path string) *resp {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return &resp{status: res.StatusCode, header: res.Header, body: b}
}

// syntheaPHI returns the Patients' names and cities (matched as words) and
// identifier values, phones and address lines (matched as substrings).
func syntheaPHI(t testing.TB, bundle []byte) (words, subs []string) {
	t.Helper()
	var b struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(bundle, &b); err != nil {
		t.Fatal(err)
	}
	for _, e := range b.Entry {
		var rt struct {
			ResourceType string `json:"resourceType"`
		}
		if json.Unmarshal(e.Resource, &rt) != nil || rt.ResourceType != "Patient" {
			continue
		}
		var r struct {
			Name []struct {
				Family string   `json:"family"`
				Given  []string `json:"given"`
			} `json:"name"`
			Identifier []struct {
				Value string `json:"value"`
			} `json:"identifier"`
			Telecom []struct {
				Value string `json:"value"`
			} `json:"telecom"`
			Address []struct {
				Line []string `json:"line"`
				City string   `json:"city"`
			} `json:"address"`
		}
		if err := json.Unmarshal(e.Resource, &r); err != nil {
			t.Fatal(err)
		}
		for _, n := range r.Name {
			words = append(words, n.Family)
			words = append(words, n.Given...)
		}
		for _, i := range r.Identifier {
			subs = append(subs, i.Value)
		}
		for _, c := range r.Telecom {
			subs = append(subs, c.Value)
		}
		for _, a := range r.Address {
			subs = append(subs, a.Line...)
			words = append(words, a.City)
		}
	}
	return words, subs
}

func isWordChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// containsWordIn reports whether w occurs in s delimited by non-word bytes.
func containsWordIn(s, w string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], w)
		if j < 0 {
			return false
		}
		j += i
		end := j + len(w)
		if (j == 0 || !isWordChar(s[j-1])) && (end == len(s) || !isWordChar(s[end])) {
			return true
		}
		i = j + 1
	}
}

// findPHI returns the needles found (never printed: they are PHI).
func findPHI(data [][]byte, words, subs []string) []string {
	var hits []string
	for _, d := range data {
		s := string(d)
		for _, w := range words {
			if len(w) >= 3 && containsWordIn(s, w) {
				hits = append(hits, w)
			}
		}
		for _, v := range subs {
			if len(v) >= 6 && strings.Contains(s, v) {
				hits = append(hits, v)
			}
		}
	}
	return hits
}
