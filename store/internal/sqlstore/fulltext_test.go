package sqlstore

import (
	"testing"

	"phix/fhir/search"
	"phix/store"
)

func TestFullTextRendering(t *testing.T) {
	for _, tc := range []struct{ in, fts5, tsq string }{
		{"bone", `narrative : ("bone")`, `('bone')`},
		{"(bone OR liver) and metastases", `narrative : ((("bone" OR "liver") AND "metastases"))`, `((('bone') | ('liver')) & ('metastases'))`},
		{`"no cancer"`, `narrative : ("no cancer")`, `('no' <-> 'cancer')`},
		{"metast*", `narrative : ("metast" *)`, `('metast':*)`},
		{"张三丰", `narrative : ("张三 三丰")`, `('张三' <-> '三丰')`},
		{"张", `narrative : ("u张")`, `('u张')`},
	} {
		q, err := search.ParseFullText(tc.in)
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		if got := FTS5Match("narrative", q); got != tc.fts5 {
			t.Errorf("%q: FTS5 %s, want %s", tc.in, got, tc.fts5)
		}
		if got := TSQuery(q); got != tc.tsq {
			t.Errorf("%q: tsquery %s, want %s", tc.in, got, tc.tsq)
		}
	}
	if got := TSVector([]string{"a", "b", "a"}); got != `'a':1 'b':2 'a':3` {
		t.Errorf("tsvector %s", got)
	}
	if got := FTS5Doc([]string{"a", "张三"}); got != "a 张三" {
		t.Errorf("fts5 doc %s", got)
	}
}

func TestFullTextOfWrite(t *testing.T) {
	w := &store.Write{Body: []byte(`{"resourceType":"Patient","text":{"div":"<div>Bone</div>"},"name":[{"family":"Smith"}]}`)}
	d := FullText(w)
	if len(d.Narrative) != 1 || d.Narrative[0] != "bone" || len(d.Content) != 2 {
		t.Errorf("doc %+v", d)
	}
	for _, w := range []*store.Write{{Body: []byte("not json")}, {Body: nil}, {Deleted: true, Body: w.Body}, {Body: []byte(`[1,2]`)}} {
		if d := FullText(w); !d.Empty() {
			t.Errorf("%q: doc %+v, want empty", w.Body, d)
		}
	}
}
