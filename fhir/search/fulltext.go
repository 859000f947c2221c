package search

import (
	"html"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Full-text search (_text, _content). The store keeps, per resource, two
// token streams produced here (FullTextOf): the narrative's and the whole
// resource's. Both engines index exactly these tokens (SQLite FTS5 with the
// ascii tokenizer, which splits on ASCII spaces only; PostgreSQL a tsvector
// built from them with positions), and a query is tokenized by the same
// function, so the two engines match the same resources.
//
// Tokens: NormalizeString (case and accent folding, as for string search),
// then runs of letters, digits and marks form words; CJK text (Han, Hiragana,
// Katakana, Hangul, Bopomofo), which has no spaces, is cut into overlapping
// bigrams ("张三丰" → "张三", "三丰"). A CJK run of one character is written
// as its unigram token ("u" + the character). The document stream also ends
// with the unigram token of every CJK character it contains, so a query of a
// single character finds any text containing it, while phrases of bigrams
// stay contiguous.

const (
	// MaxTokenBytes caps one token (cut at a rune boundary), in documents
	// and queries alike.
	MaxTokenBytes = 64
	// MaxFullTextTokens caps a document's token stream: PostgreSQL keeps
	// positions up to 16,383 only. Text past the cap is not searchable.
	MaxFullTextTokens = 16000
	// MaxFullTextTerms bounds the words and phrases of one query value, and
	// MaxFullTextDepth its parenthesis nesting.
	MaxFullTextTerms = 64
	MaxFullTextDepth = 16
)

// unigramMark prefixes the unigram token of a CJK character. Word tokens
// never mix CJK and other letters, so "u张" cannot be a word.
const unigramMark = "u"

// The full-text parameters' canonical URLs.
const (
	textURL    = "http://hl7.org/fhir/SearchParameter/DomainResource-text"
	contentURL = "http://hl7.org/fhir/SearchParameter/Resource-content"
)

// IsFullText reports whether p is _text or _content: searched through the
// store's full-text index instead of index entries.
func IsFullText(p *Param) bool {
	return p != nil && (p.URL == textURL || p.URL == contentURL)
}

// IsNarrativeText reports whether p is _text (the narrative) rather than
// _content (the whole resource).
func IsNarrativeText(p *Param) bool { return p != nil && p.URL == textURL }

// FullTextDoc is what the store indexes for one resource: the token streams
// of its narrative (text.div without markup) and of its whole content.
type FullTextDoc struct {
	Narrative []string
	Content   []string
}

// Empty reports whether the document has no token at all.
func (d FullTextDoc) Empty() bool { return len(d.Narrative) == 0 && len(d.Content) == 0 }

// FullTextOf tokenizes a resource (the decoded JSON object, exactly as the
// store receives it: with field encryption on, the sealed form, so sealed
// values are never indexed in clear).
func FullTextOf(obj map[string]any) FullTextDoc {
	if obj == nil {
		return FullTextDoc{}
	}
	var d FullTextDoc
	if t, ok := obj["text"].(map[string]any); ok {
		if div, ok := t["div"].(string); ok {
			d.Narrative = documentTokens(StripMarkup(div))
		}
	}
	w := contentWalker{keys: make([]string, 0, 64)}
	w.walk(obj, "")
	d.Content = documentTokens(w.b.String())
	return d
}

// contentSkip are keys whose string values are identifiers or machinery, not
// content: searching them as words only bloats the index.
var contentSkip = map[string]bool{
	"resourceType": true, "id": true, "reference": true, "system": true,
	"url": true, "data": true, "versionId": true, "lastUpdated": true,
	"fullUrl": true, "profile": true, "source": true,
}

// sealedExtension reports whether an extension carries phix machinery
// (sealed values, HMACs, signatures, encryption metadata): ciphertext and
// MACs are random text and never content.
func sealedExtension(m map[string]any) bool {
	u, _ := m["url"].(string)
	switch {
	case strings.HasPrefix(u, "urn:phix:"),
		u == "http://example.org/fhir/StructureDefinition/hmac-authentication",
		u == "http://example.org/fhir/StructureDefinition/ml-dsa-signature",
		u == "http://example.org/fhir/StructureDefinition/encryption-metadata":
		return true
	}
	return false
}

// contentWalker collects every string value of a resource (narrative
// without markup), one per line, in key order: the stream (and so what a
// phrase spanning two values matches) must not depend on map iteration. keys
// is a stack shared by the nested objects, so sorting allocates nothing.
type contentWalker struct {
	b    strings.Builder
	keys []string
}

func (w *contentWalker) walk(v any, key string) {
	switch x := v.(type) {
	case map[string]any:
		if sealedExtension(x) {
			return
		}
		start := len(w.keys)
		for k := range x {
			w.keys = append(w.keys, k)
		}
		slices.Sort(w.keys[start:])
		for i := start; i < start+len(x); i++ {
			w.walk(x[w.keys[i]], w.keys[i])
		}
		w.keys = w.keys[:start]
	case []any:
		for _, c := range x {
			w.walk(c, key)
		}
	case string:
		if contentSkip[key] || x == "" {
			return
		}
		if key == "div" {
			x = StripMarkup(x)
		}
		w.b.WriteString(x)
		w.b.WriteByte('\n')
	}
}

// StripMarkup returns the text of an XHTML fragment: tags become spaces and
// character references are decoded.
func StripMarkup(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for len(s) > 0 {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			b.WriteString(html.UnescapeString(s))
			break
		}
		b.WriteString(html.UnescapeString(s[:i]))
		b.WriteByte(' ')
		j := strings.IndexByte(s[i:], '>')
		if j < 0 {
			break
		}
		s = s[i+j+1:]
	}
	return b.String()
}

// ftCJK reports whether r is written without spaces between words: the
// scripts NormalizeString keeps as they are, plus the prolonged sound mark
// and iteration marks (script Common) that occur inside such words.
func ftCJK(r rune) bool {
	switch r {
	case 'ー', '々', '〆', '〇', 'ゝ', 'ゞ', 'ヽ', 'ヾ':
		return true
	}
	return isCJK(r)
}

func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsNumber(r) || unicode.IsMark(r)
}

func capToken(t string) string {
	if len(t) <= MaxTokenBytes {
		return t
	}
	cut := MaxTokenBytes
	for cut > 0 && !utf8.RuneStart(t[cut]) {
		cut--
	}
	return t[:cut]
}

// tokenize appends the tokens of s (already normalised) to out; emit is
// called with each CJK character, for the unigram tail.
func tokenize(s string, out []string, max int, cjk func(string)) []string {
	i := 0
	for i < len(s) && len(out) < max {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case ftCJK(r):
			start := i
			var chars []int // byte offsets of the run's characters
			for i < len(s) {
				r, n := utf8.DecodeRuneInString(s[i:])
				if !ftCJK(r) {
					break
				}
				chars = append(chars, i)
				i += n
			}
			chars = append(chars, i)
			if len(chars) == 2 {
				out = append(out, unigramMark+s[start:i])
				continue
			}
			for k := 0; k+2 < len(chars) && len(out) < max; k++ {
				out = append(out, s[chars[k]:chars[k+2]])
			}
			if cjk != nil {
				for k := 0; k+1 < len(chars); k++ {
					cjk(s[chars[k]:chars[k+1]])
				}
			}
		case isWordRune(r):
			start := i
			for i < len(s) {
				r, n := utf8.DecodeRuneInString(s[i:])
				if !isWordRune(r) || ftCJK(r) {
					break
				}
				i += n
			}
			out = append(out, capToken(s[start:i]))
		default:
			i += n
		}
	}
	return out
}

// documentTokens is the indexed stream of a text: its tokens, then the
// unigram token of each distinct CJK character of its longer runs.
func documentTokens(text string) []string {
	if text == "" {
		return nil
	}
	norm := NormalizeString(text)
	var uni []string
	seen := map[string]bool{}
	out := tokenize(norm, nil, MaxFullTextTokens, func(c string) {
		if !seen[c] {
			seen[c] = true
			uni = append(uni, unigramMark+c)
		}
	})
	for _, u := range uni {
		if len(out) >= MaxFullTextTokens {
			break
		}
		out = append(out, u)
	}
	return out
}

// FullTextTokens returns the tokens a query word or phrase is matched by, in
// order (the document stream without its unigram tail).
func FullTextTokens(s string) []string {
	return tokenize(NormalizeString(s), nil, maxQueryTokens, nil)
}

// maxQueryTokens bounds the tokens of one query phrase; a longer phrase is
// refused rather than cut (a cut phrase would match more than asked).
const maxQueryTokens = 256

// FTOp is the kind of a FullTextQuery node.
type FTOp int

// The node kinds.
const (
	FTPhrase FTOp = iota // Tokens in sequence (one word is a phrase of its tokens)
	FTAnd                // every Arg
	FTOr                 // any Arg
)

// FullTextQuery is a parsed _text/_content value.
type FullTextQuery struct {
	Op     FTOp
	Tokens []string // FTPhrase: the tokens, in order
	// Prefix (FTPhrase) makes the last token a prefix ("metast*").
	Prefix bool
	Args   []*FullTextQuery // FTAnd, FTOr
}

// ParseFullText parses a full-text search value:
//
//	words separated by spaces must all occur (AND; the word "AND" may be
//	written), "OR" between terms gives alternatives, parentheses group,
//	"double quotes" make a phrase, and a trailing * on a word matches it as a
//	prefix. AND and OR are operators in any case; quote them to search for
//	the words. Punctuation separates words ("o'brien" is the phrase "o brien").
//
// Errors never quote the value.
func ParseFullText(s string) (*FullTextQuery, error) {
	p := &ftParser{src: s}
	p.lex()
	if p.err != nil {
		return nil, p.err
	}
	if len(p.toks) == 0 {
		return nil, errFT("no searchable word")
	}
	q := p.or(0)
	if p.err != nil {
		return nil, p.err
	}
	if p.pos < len(p.toks) {
		return nil, errFT("unbalanced ')'")
	}
	if q == nil {
		return nil, errFT("no searchable word")
	}
	if p.terms > MaxFullTextTerms {
		return nil, errFT("too many words")
	}
	return q, nil
}

type ftErr string

func (e ftErr) Error() string { return string(e) }

func errFT(msg string) error { return ftErr("full-text query: " + msg) }

type ftTokKind int

const (
	ftWord ftTokKind = iota
	ftPhrase
	ftOpen
	ftClose
	ftAndOp
	ftOrOp
)

type ftTok struct {
	kind ftTokKind
	text string
}

type ftParser struct {
	src   string
	toks  []ftTok
	pos   int
	terms int
	err   error
}

func (p *ftParser) lex() {
	s := p.src
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		switch {
		case unicode.IsSpace(r):
			s = s[n:]
		case r == '(':
			p.toks = append(p.toks, ftTok{kind: ftOpen})
			s = s[1:]
		case r == ')':
			p.toks = append(p.toks, ftTok{kind: ftClose})
			s = s[1:]
		case r == '"':
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				p.err = errFT("unterminated quote")
				return
			}
			p.toks = append(p.toks, ftTok{kind: ftPhrase, text: s[1 : 1+end]})
			s = s[end+2:]
		default:
			end := strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || r == '(' || r == ')' || r == '"' })
			if end < 0 {
				end = len(s)
			}
			w := s[:end]
			s = s[end:]
			switch {
			case strings.EqualFold(w, "and"):
				p.toks = append(p.toks, ftTok{kind: ftAndOp})
			case strings.EqualFold(w, "or"):
				p.toks = append(p.toks, ftTok{kind: ftOrOp})
			default:
				p.toks = append(p.toks, ftTok{kind: ftWord, text: w})
			}
		}
		if len(p.toks) > 4*MaxFullTextTerms {
			p.err = errFT("too many words")
			return
		}
	}
}

func (p *ftParser) peek() (ftTok, bool) {
	if p.pos < len(p.toks) {
		return p.toks[p.pos], true
	}
	return ftTok{}, false
}

// or := and { OR and }
func (p *ftParser) or(depth int) *FullTextQuery {
	var args []*FullTextQuery
	if a := p.and(depth); a != nil {
		args = append(args, a)
	}
	for p.err == nil {
		t, ok := p.peek()
		if !ok || t.kind != ftOrOp {
			break
		}
		p.pos++
		a := p.and(depth)
		if p.err != nil {
			return nil
		}
		if a == nil {
			p.err = errFT("OR needs a term on both sides")
			return nil
		}
		if len(args) == 0 {
			p.err = errFT("OR needs a term on both sides")
			return nil
		}
		args = append(args, a)
	}
	return combine(FTOr, args)
}

// and := primary { [AND] primary }
func (p *ftParser) and(depth int) *FullTextQuery {
	var args []*FullTextQuery
	pendingAnd := false
	for p.err == nil {
		t, ok := p.peek()
		if !ok || t.kind == ftClose || t.kind == ftOrOp {
			break
		}
		if t.kind == ftAndOp {
			if len(args) == 0 || pendingAnd {
				p.err = errFT("AND needs a term on both sides")
				return nil
			}
			p.pos++
			pendingAnd = true
			continue
		}
		a := p.primary(depth)
		if p.err != nil {
			return nil
		}
		pendingAnd = false
		if a != nil {
			args = append(args, a)
		}
	}
	if pendingAnd {
		p.err = errFT("AND needs a term on both sides")
		return nil
	}
	return combine(FTAnd, args)
}

func (p *ftParser) primary(depth int) *FullTextQuery {
	t := p.toks[p.pos]
	p.pos++
	switch t.kind {
	case ftOpen:
		if depth >= MaxFullTextDepth {
			p.err = errFT("parentheses nested too deep")
			return nil
		}
		q := p.or(depth + 1)
		if p.err != nil {
			return nil
		}
		if c, ok := p.peek(); !ok || c.kind != ftClose {
			p.err = errFT("unbalanced '('")
			return nil
		}
		p.pos++
		return q
	case ftWord, ftPhrase:
		text, prefix := t.text, false
		if t.kind == ftWord && strings.HasSuffix(text, "*") {
			text, prefix = strings.TrimRight(text, "*"), true
		}
		toks := FullTextTokens(text)
		if len(toks) == 0 {
			return nil // punctuation only: no constraint
		}
		if len(toks) >= maxQueryTokens {
			p.err = errFT("too many words in one phrase")
			return nil
		}
		p.terms++
		if p.terms > MaxFullTextTerms {
			p.err = errFT("too many words")
			return nil
		}
		// A prefix on a CJK token is not meaningful (bigrams): exact match.
		if prefix {
			last := toks[len(toks)-1]
			r, _ := utf8.DecodeRuneInString(last)
			if ftCJK(r) || strings.HasPrefix(last, unigramMark) && len(last) > 1 && ftCJK(firstRune(last[1:])) {
				prefix = false
			}
		}
		return &FullTextQuery{Op: FTPhrase, Tokens: toks, Prefix: prefix}
	}
	p.err = errFT("unexpected ')'")
	return nil
}

func firstRune(s string) rune {
	r, _ := utf8.DecodeRuneInString(s)
	return r
}

// combine builds an op node, flattening single arguments and same-op children.
func combine(op FTOp, args []*FullTextQuery) *FullTextQuery {
	switch len(args) {
	case 0:
		return nil
	case 1:
		return args[0]
	}
	var flat []*FullTextQuery
	for _, a := range args {
		if a.Op == op {
			flat = append(flat, a.Args...)
		} else {
			flat = append(flat, a)
		}
	}
	return &FullTextQuery{Op: op, Args: flat}
}
