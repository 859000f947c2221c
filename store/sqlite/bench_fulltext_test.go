package sqlite

import (
	"testing"

	"phix/store/storetest"
)

// BenchmarkSearchFullText: _text searches over 20,000 Patients with
// narratives (storetest.LoadFullText), p50/p95 per query kind; "family" is
// the same run's peer without full text.
//
//	go test -run '^$' -bench SearchFullText -benchtime 200x ./store/sqlite/
func BenchmarkSearchFullText(b *testing.B) {
	s := openBench(b)
	storetest.LoadFullText(b, s, benchRows)
	if _, err := s.w.Exec("ANALYZE"); err != nil {
		b.Fatal(err)
	}
	for _, kind := range []string{"rare", "common", "chinese", "family-text", "family"} {
		b.Run(kind, func(b *testing.B) { storetest.BenchFullText(b, s, benchRows, kind) })
	}
}
