package sqlite

import (
	"context"

	"phix/store"
	"phix/store/internal/sqlstore"
)

const (
	sqlDeleteFullText = `DELETE FROM ` + sqlstore.FullTextTable + ` WHERE rowid = ?1`
	sqlInsertFullText = `INSERT INTO ` + sqlstore.FullTextTable + ` (rowid, narrative, body) VALUES (?1, ?2, ?3)`
)

// writeFullText replaces the resource's full-text row (rowid = pk) with the
// tokens of this version, in the Put's transaction: a deletion or an update
// removes the old terms, and a failure breaks the transaction like any other
// index write.
func (t *tx) writeFullText(ctx context.Context, q querier, pk int64, existed bool, w *store.Write) error {
	if existed {
		if _, err := q.exec(ctx, sqlDeleteFullText, pk); err != nil {
			return sqlstore.DBError("put: clear full-text index", err)
		}
	}
	doc := sqlstore.FullText(w)
	if doc.Empty() {
		return nil
	}
	if _, err := q.exec(ctx, sqlInsertFullText, pk, sqlstore.FTS5Doc(doc.Narrative), sqlstore.FTS5Doc(doc.Content)); err != nil {
		return sqlstore.DBError("put: insert full-text index", err)
	}
	return nil
}
