package postgres

import (
	"github.com/jackc/pgx/v5"

	"phix/store"
	"phix/store/internal/sqlstore"
)

// ftRow is one resource's full-text documents as tsvector literals.
type ftRow struct{ narrative, body string }

// fullTextRow tokenizes a write's body (nil for a deletion or an empty
// document).
func fullTextRow(w *store.Write) *ftRow {
	doc := sqlstore.FullText(w)
	if doc.Empty() {
		return nil
	}
	return &ftRow{narrative: sqlstore.TSVector(doc.Narrative), body: sqlstore.TSVector(doc.Content)}
}

// queueFullText replaces, in the flush's batch (one transaction), the
// full-text rows of the buffered resources: the rows of those already in the
// database are deleted (an update or deletion drops the old terms), then the
// new documents are inserted.
func (t *tx) queueFullText(b *pgx.Batch) {
	var del, pks []int64
	var narr, body []string
	for _, st := range t.order {
		if st.inDB {
			del = append(del, st.pk)
		}
		if st.ft != nil {
			pks = append(pks, st.pk)
			narr, body = append(narr, st.ft.narrative), append(body, st.ft.body)
		}
	}
	if len(del) > 0 {
		b.Queue("DELETE FROM "+sqlstore.FullTextTable+" WHERE res_pk = ANY($1)", del)
	}
	if len(pks) > 0 {
		b.Queue("INSERT INTO "+sqlstore.FullTextTable+" (res_pk, narrative, body) SELECT u.pk, u.n::tsvector, u.b::tsvector FROM unnest($1::int8[], $2::text[], $3::text[]) AS u (pk, n, b)", pks, narr, body)
	}
}
