package dlp

import (
	"bufio"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

// parseMarked turns "text {{TYPE:value}} text" into a note with spans.
func parseMarked(t *testing.T, id, line string) note {
	t.Helper()
	n := note{ID: id}
	var b strings.Builder
	for {
		k := strings.Index(line, "{{")
		if k < 0 {
			b.WriteString(line)
			break
		}
		b.WriteString(line[:k])
		e := strings.Index(line[k:], "}}")
		typ, val, ok := strings.Cut(line[k+2:k+e], ":")
		if e < 0 || !ok {
			t.Fatalf("%s: bad mark", id)
		}
		start := utf8.RuneCountInString(b.String())
		b.WriteString(val)
		n.Spans = append(n.Spans, struct {
			Start int  `json:"start"`
			End   int  `json:"end"`
			Type  Type `json:"type"`
		}{start, start + utf8.RuneCountInString(val), Type(typ)})
		line = line[k+e+2:]
	}
	n.Text = b.String()
	return n
}

// TestHeldOut scores the engine on handwritten notes with phrasings, formats
// and decoys the shared set does not have, so the targets are not met by
// memorising that set.
func TestHeldOut(t *testing.T) {
	f, err := os.Open("testdata/heldout.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var notes []note
	sc := bufio.NewScanner(f)
	for i := 1; sc.Scan(); i++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		notes = append(notes, parseMarked(t, "held-"+itoa(i), line))
	}
	m := score(notes, Default(), t.Logf)
	tab, r, p := table(m)
	t.Logf("%d held-out notes\n%s", len(notes), tab)
	if r < 0.95 || p < 0.90 {
		t.Fatalf("held-out recall %.4f, precision %.4f", r, p)
	}
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}
