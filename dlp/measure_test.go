package dlp

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"phix/internal/testenv"
)

// note is one line of testdata/dlp/notes.jsonl.
type note struct {
	ID    string `json:"id"`
	Lang  string `json:"lang"`
	Text  string `json:"text"`
	Spans []struct {
		Start int  `json:"start"`
		End   int  `json:"end"`
		Type  Type `json:"type"`
	} `json:"spans"`
}

// measuredTypes are the kinds the labelled set scores.
var measuredTypes = []Type{Name, CNResidentID, Phone, USSSN, Email, MRN, Date, Address, IPAddress}

func loadNotes(t testing.TB, path string) []note {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		testenv.Missing(t, "%v", err)
	}
	defer f.Close()
	var out []note
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var n note
		if err := json.Unmarshal(sc.Bytes(), &n); err != nil {
			t.Fatalf("notes: %v", err)
		}
		out = append(out, n)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

type counts struct{ tp, fp, fn, labelled, found int }

// score counts by span: a found span is a true positive when it overlaps a
// labelled span of the same type; a labelled span is recalled when some
// found span of its type overlaps it.
func score(notes []note, sc *Scanner, verbose func(string, ...any)) map[Type]*counts {
	m := map[Type]*counts{}
	get := func(t Type) *counts {
		if m[t] == nil {
			m[t] = &counts{}
		}
		return m[t]
	}
	for _, n := range notes {
		fs := sc.ScanText(n.Text)
		rs := []rune(n.Text)
		for _, f := range fs {
			if !isMeasured(f.Type) {
				continue
			}
			c := get(f.Type)
			c.found++
			hit := false
			for _, l := range n.Spans {
				if l.Type == f.Type && f.Start < l.End && l.Start < f.End {
					hit = true
					break
				}
			}
			if hit {
				c.tp++
			} else {
				c.fp++
				if verbose != nil {
					verbose("FP %s %s %q", n.ID, f.Type, string(rs[f.Start:f.End]))
				}
			}
		}
		for _, l := range n.Spans {
			c := get(l.Type)
			c.labelled++
			hit := false
			for _, f := range fs {
				if l.Type == f.Type && f.Start < l.End && l.Start < f.End {
					hit = true
					break
				}
			}
			if !hit {
				c.fn++
				if verbose != nil {
					verbose("FN %s %s %q", n.ID, l.Type, string(rs[l.Start:l.End]))
				}
			}
		}
	}
	return m
}

func isMeasured(t Type) bool {
	for _, m := range measuredTypes {
		if m == t {
			return true
		}
	}
	return false
}

// table formats per-type and overall recall and precision.
func table(m map[Type]*counts) (string, float64, float64) {
	var b strings.Builder
	fmt.Fprintf(&b, "| type | labelled | found | recall | precision |\n|---|---:|---:|---:|---:|\n")
	var all counts
	for _, t := range measuredTypes {
		c := m[t]
		if c == nil {
			c = &counts{}
		}
		all.labelled += c.labelled
		all.found += c.found
		all.tp += c.tp
		all.fn += c.fn
		fmt.Fprintf(&b, "| %s | %d | %d | %.4f | %.4f |\n", t, c.labelled, c.found, ratio(c.labelled-c.fn, c.labelled), ratio(c.tp, c.found))
	}
	r, p := ratio(all.labelled-all.fn, all.labelled), ratio(all.tp, all.found)
	fmt.Fprintf(&b, "| **overall** | %d | %d | %.4f | %.4f |\n", all.labelled, all.found, r, p)
	return b.String(), r, p
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 1
	}
	return float64(a) / float64(b)
}

// TestMeasureNotes scores the engine on the shared labelled notes and holds
// it to the targets: recall ≥ 0.99 and precision ≥ 0.90 overall.
func TestMeasureNotes(t *testing.T) {
	notes := loadNotes(t, testenv.Shared(t, "testdata", "dlp", "notes.jsonl"))
	if len(notes) == 0 {
		t.Fatal("no notes")
	}
	m := score(notes, Default(), t.Logf)
	tab, r, p := table(m)
	t.Logf("%d notes\n%s", len(notes), tab)
	if r < 0.99 || p < 0.90 {
		t.Fatalf("overall recall %.4f (want ≥ 0.99), precision %.4f (want ≥ 0.90)", r, p)
	}
}
