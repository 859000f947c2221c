package sqlstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"phix/fhir/search"
	"phix/store"
)

// Full-text index (_text, _content): table idx_fulltext holds, per resource
// pk, two token documents produced by search.FullTextOf from the body the
// store is given: "narrative" (text.div) and "body" (every string value).
// SQLite keeps them in an FTS5 table (ascii tokenizer over space-separated
// tokens, rowid = pk); PostgreSQL in tsvector columns with GIN indexes. Both
// are written in the same transaction as the version they describe.

// FullTextTable is the full-text index table (an FTS5 virtual table on
// SQLite, a plain table with tsvector columns on PostgreSQL).
const FullTextTable = "idx_fulltext"

// FullText returns the full-text document of a write: the one the writer
// gave (blind tokens, with field protection), else the tokens of Body;
// empty for a deletion, or for a body that is not a JSON object (the store does not validate
// bodies; such a resource is simply not found by full-text search).
func FullText(w *store.Write) search.FullTextDoc {
	if w.Deleted {
		return search.FullTextDoc{}
	}
	if w.FullText != nil {
		return *w.FullText
	}
	if len(w.Body) == 0 {
		return search.FullTextDoc{}
	}
	var obj map[string]any
	d := json.NewDecoder(bytes.NewReader(w.Body))
	d.UseNumber()
	if err := d.Decode(&obj); err != nil {
		return search.FullTextDoc{}
	}
	return search.FullTextOf(obj)
}

// FTS5Doc is the text SQLite's FTS5 column receives: the tokens separated by
// spaces (the ascii tokenizer splits at ASCII non-alphanumerics only, and
// tokens hold letters, digits and non-ASCII characters, so it gives back
// exactly these tokens; its ASCII case folding is a no-op on normalised
// text).
func FTS5Doc(tokens []string) string { return strings.Join(tokens, " ") }

// TSVector is the tsvector literal PostgreSQL receives: every token quoted,
// with its 1-based position, so phrases (<->) match as in FTS5. Cast with
// ::tsvector, which parses without normalising.
func TSVector(tokens []string) string {
	var b strings.Builder
	for i, t := range tokens {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteByte('\'')
		b.WriteString(t) // tokens contain no quote or backslash
		b.WriteString("':")
		b.WriteString(strconv.Itoa(min(i+1, 16383)))
	}
	return b.String()
}

// fullTextColumn is the document a full-text clause searches.
func fullTextColumn(p *search.Param) string {
	if search.IsNarrativeText(p) {
		return "narrative"
	}
	return "body"
}

// fullTextQuery joins a clause's values (ORed) into one query node.
func fullTextQuery(c *search.Clause) (*search.FullTextQuery, error) {
	if len(c.Values) == 0 {
		return nil, fmt.Errorf("%w: search clause %s has no values", store.ErrInvalid, c.Param.Code)
	}
	if c.Modifier != "" {
		return nil, fmt.Errorf("%w: modifier :%s on full-text parameter %s", store.ErrInvalid, c.Modifier, c.Param.Code)
	}
	var args []*search.FullTextQuery
	for i := range c.Values {
		q := c.Values[i].Text
		if q == nil {
			var err error
			if q, err = search.ParseFullText(c.Values[i].Raw); err != nil {
				return nil, fmt.Errorf("%w: %s: %v", store.ErrInvalid, c.Param.Code, err)
			}
		}
		args = append(args, q)
	}
	if len(args) == 1 {
		return args[0], nil
	}
	return &search.FullTextQuery{Op: search.FTOr, Args: args}, nil
}

// FTS5Match renders q as an FTS5 MATCH expression restricted to column col.
func FTS5Match(col string, q *search.FullTextQuery) string {
	var b strings.Builder
	b.WriteString(col)
	b.WriteString(" : (")
	fts5Expr(&b, q)
	b.WriteByte(')')
	return b.String()
}

func fts5Expr(b *strings.Builder, q *search.FullTextQuery) {
	ftExpr(b, q, " AND ", " OR ", func(b *strings.Builder, q *search.FullTextQuery) {
		b.WriteByte('"')
		b.WriteString(strings.Join(q.Tokens, " ")) // no '"' in tokens
		b.WriteByte('"')
		if q.Prefix {
			b.WriteString(" *")
		}
	})
}

// TSQuery renders q as a tsquery literal (cast with ::tsquery).
func TSQuery(q *search.FullTextQuery) string {
	var b strings.Builder
	ftExpr(&b, q, " & ", " | ", func(b *strings.Builder, q *search.FullTextQuery) {
		b.WriteByte('(')
		for i, t := range q.Tokens {
			if i > 0 {
				b.WriteString(" <-> ")
			}
			b.WriteByte('\'')
			b.WriteString(t)
			b.WriteByte('\'')
			if q.Prefix && i == len(q.Tokens)-1 {
				b.WriteString(":*")
			}
		}
		b.WriteByte(')')
	})
	return b.String()
}

// ftExpr renders q's AND/OR tree with the engine's operators, each phrase
// with phrase; both engines share the structure and differ in syntax only.
func ftExpr(b *strings.Builder, q *search.FullTextQuery, and, or string, phrase func(*strings.Builder, *search.FullTextQuery)) {
	if q.Op == search.FTPhrase {
		phrase(b, q)
		return
	}
	op := and
	if q.Op == search.FTOr {
		op = or
	}
	b.WriteByte('(')
	for i, a := range q.Args {
		if i > 0 {
			b.WriteString(op)
		}
		ftExpr(b, a, and, or, phrase)
	}
	b.WriteByte(')')
}

// fullTextSet writes a subquery giving the pks of the resources whose
// document matches the clause.
func (b *builder) fullTextSet(c *search.Clause, as string) error {
	q, err := fullTextQuery(c)
	if err != nil {
		return err
	}
	col := fullTextColumn(c.Param)
	switch b.d.(type) {
	case SQLite:
		b.w("SELECT rowid", as, " FROM ", FullTextTable, " WHERE ", FullTextTable, " MATCH ", b.arg(FTS5Match(col, q)))
	case Postgres:
		b.w("SELECT res_pk", as, " FROM ", FullTextTable, " WHERE ", col, " @@ ", b.arg(TSQuery(q)), "::tsquery")
	default:
		return fmt.Errorf("%w: full-text search on this engine", store.ErrUnsupported)
	}
	return nil
}

// fullTextClause writes the condition of a full-text clause on resources
// alias ra: a probe of that resource's own document (FTS5 seeks the match to
// the rowid; materialising every match of a common word would cost in
// proportion to the database).
func (b *builder) fullTextClause(c *search.Clause, ra string) error {
	q, err := fullTextQuery(c)
	if err != nil {
		return err
	}
	col := fullTextColumn(c.Param)
	switch b.d.(type) {
	case SQLite:
		b.w("EXISTS (SELECT 1 FROM ", FullTextTable, " WHERE ", FullTextTable, " MATCH ", b.arg(FTS5Match(col, q)), " AND rowid = ", ra, ".pk)")
	case Postgres:
		b.w("EXISTS (SELECT 1 FROM ", FullTextTable, " f WHERE f.res_pk = ", ra, ".pk AND f.", col, " @@ ", b.arg(TSQuery(q)), "::tsquery)")
	default:
		return fmt.Errorf("%w: full-text search on this engine", store.ErrUnsupported)
	}
	return nil
}
