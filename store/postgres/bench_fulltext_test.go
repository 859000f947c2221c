package postgres

import (
	"context"
	"testing"

	"phix/store/storetest"
)

// BenchmarkSearchFullText: _text searches over 20,000 Patients with
// narratives (storetest.LoadFullText), p50/p95 per query kind; "family" is
// the same run's peer without full text. VACUUM flushes the GIN pending
// lists, as after any bulk load (docs/search.md).
//
//	go test -run '^$' -bench SearchFullText -benchtime 200x ./store/postgres/
func BenchmarkSearchFullText(b *testing.B) {
	s := openBench(b)
	storetest.LoadFullText(b, s, benchRows)
	if _, err := s.pool.Exec(context.Background(), "VACUUM ANALYZE"); err != nil {
		b.Fatal(err)
	}
	for _, kind := range []string{"rare", "common", "chinese", "family-text", "family"} {
		b.Run(kind, func(b *testing.B) { storetest.BenchFullText(b, s, benchRows, kind) })
	}
}
