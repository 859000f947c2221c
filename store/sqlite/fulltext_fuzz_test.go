package sqlite_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"phix/fhir/search"
	"phix/store"
	"phix/store/sqlite"
)

// FuzzFullText writes arbitrary text as a narrative and searches for it:
// every query ParseFullText accepts must render to a valid FTS5 expression
// (never a database error), and the text itself, searched as a phrase, must
// find the resource that holds it whenever it has a searchable word.
func FuzzFullText(f *testing.F) {
	for _, s := range []string{"bone metastases", `"no cancer"`, "(a OR b) and c", "张三丰", "u张", "NEAR(a b)", "a:b", "a^b", "-a", "'", `\`, "*", "ﬁ ß Ǆ", "東京タワー", "\U0010FFFF"} {
		f.Add(s)
	}
	s, err := sqlite.Open(filepath.Join(f.TempDir(), "fuzz.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	ctx := context.Background()
	n := 0
	f.Fuzz(func(t *testing.T, text string) {
		n++
		id := fmt.Sprintf("t%d", n)
		obj := map[string]any{"resourceType": "Basic", "id": id, "text": map[string]any{"status": "generated", "div": "<div>" + text + "</div>"}}
		body, err := json.Marshal(obj)
		if err != nil {
			t.Skip()
		}
		w := &store.Write{Type: "Basic", ID: id, Version: 1, Method: "POST", Body: body, LastUpdated: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
		if err := s.Tx(ctx, func(tx store.Tx) error { _, err := tx.Put(ctx, w); return err }); err != nil {
			t.Fatalf("put: %v", err)
		}
		// The text as a query: whatever parses must run.
		if q, err := parseText(text); err == nil {
			if _, err := s.Search(ctx, q); err != nil {
				t.Fatalf("search %q: %v", text, err)
			}
		}
		// The text, quoted, is a phrase of exactly its tokens: it must find
		// this resource (quotes separate words anyway, so dropping them
		// changes no token).
		plain := strings.ReplaceAll(search.StripMarkup("<div>"+text+"</div>"), `"`, " ")
		if n := len(search.FullTextTokens(plain)); n == 0 || n > search.MaxFullTextTerms {
			return
		}
		// FHIR value escaping: a comma would split the value (OR).
		esc := strings.NewReplacer(`\`, `\\`, ",", `\,`).Replace(plain)
		q, err := parseText(`"` + esc + `"`)
		if err != nil {
			t.Fatalf("phrase: %v", err)
		}
		q.Clauses = append(q.Clauses, search.Clause{Param: search.Lookup("Basic", "_id"), Values: []search.Value{{Raw: id, Code: id}}})
		res, err := s.Search(ctx, q)
		if err != nil || res.Total != 1 {
			t.Fatalf("phrase of the text: %v, total %d", err, res.Total)
		}
	})
}

func parseText(v string) (*search.Query, error) {
	q, _, err := search.Parse("Basic", url.Values{"_text": {v}}, search.ParseOptions{Strict: true})
	if err != nil {
		return nil, err
	}
	if len(q.Clauses) == 0 {
		return nil, fmt.Errorf("no clause")
	}
	q.Total = search.TotalAccurate
	return q, nil
}
