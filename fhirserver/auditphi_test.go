package fhirserver

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"phix/internal/testenv"
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
	phi := testenv.SyntheaPHI(t, bundle)
	return phi.Words, phi.Values
}

// findPHI returns the needles found (never printed: they are PHI).
func findPHI(data [][]byte, words, subs []string) []string {
	var hits []string
	for _, d := range data {
		s := string(d)
		for _, w := range words {
			if len(w) >= 3 && testenv.ContainsWord(s, w) {
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
