// Package kmstest is the contract test suite every kms.Store implementation
// passes.
package kmstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"phix/kms"
)

// Run runs the contract against stores made by open; each subtest gets a
// fresh, empty store.
func Run(t *testing.T, open func(t *testing.T) kms.Store) {
	tests := []struct {
		name string
		f    func(t *testing.T, st kms.Store)
	}{
		{"Meta", testMeta},
		{"KEKs", testKEKs},
		{"DataKeys", testDataKeys},
		{"Rotation", testRotation},
		{"Custodians", testCustodians},
		{"Nonces", testNonces},
		{"Ops", testOps},
		{"Reseal", testReseal},
		{"Import", testImport},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := open(t)
			t.Cleanup(func() { _ = st.Close() })
			tc.f(t, st)
		})
	}
}

func wantCode(t *testing.T, err error, c kms.Code) {
	t.Helper()
	if kms.CodeOf(err) != c {
		t.Fatalf("error %v, want code %s", err, c)
	}
}

func testMeta(t *testing.T, st kms.Store) {
	ctx := context.Background()
	_, err := st.Meta(ctx, "x")
	wantCode(t, err, kms.CodeNotFound)
	if err := st.PutMeta(ctx, "x", []byte{1, 2, 0, 3}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, st.PutMeta(ctx, "x", []byte{9}), kms.CodeExists)
	v, err := st.Meta(ctx, "x")
	if err != nil || !bytes.Equal(v, []byte{1, 2, 0, 3}) {
		t.Fatalf("Meta = %v, %v", v, err)
	}
}

func newKEK(id string) (kms.KEK, kms.KEKVersion) {
	now := time.Unix(1700000000, 123).UTC()
	k := kms.KEK{ID: id, Hospital: "h", Purpose: kms.PurposeData, Suite: "intl", Backend: "local", Current: 1, MinDecryption: 1, Created: now}
	return k, kms.KEKVersion{KEK: id, Version: 1, Handle: []byte("handle-1"), Created: now}
}

func testKEKs(t *testing.T, st kms.Store) {
	ctx := context.Background()
	k, v := newKEK("h/data")
	if err := st.CreateKEK(ctx, k, v); err != nil {
		t.Fatal(err)
	}
	wantCode(t, st.CreateKEK(ctx, k, v), kms.CodeExists)
	got, err := st.KEK(ctx, "h/data")
	if err != nil || got.ID != k.ID || got.Purpose != k.Purpose || got.Current != 1 || !got.Created.Equal(k.Created) {
		t.Fatalf("KEK = %+v, %v", got, err)
	}
	_, err = st.KEK(ctx, "h/none")
	wantCode(t, err, kms.CodeNotFound)

	v2 := kms.KEKVersion{KEK: "h/data", Version: 2, Handle: []byte("handle-2"), Secret: []byte("s"), Public: []byte("p"), Created: time.Now()}
	if err := st.AddKEKVersion(ctx, v2); err != nil {
		t.Fatal(err)
	}
	wantCode(t, st.AddKEKVersion(ctx, v2), kms.CodeConflict)
	v4 := v2
	v4.Version = 4
	wantCode(t, st.AddKEKVersion(ctx, v4), kms.CodeConflict)
	if got, _ := st.KEK(ctx, "h/data"); got.Current != 2 {
		t.Fatalf("current = %d, want 2", got.Current)
	}
	vs, err := st.KEKVersions(ctx, "h/data")
	if err != nil || len(vs) != 2 || vs[0].Version != 1 || vs[1].Version != 2 || string(vs[1].Public) != "p" {
		t.Fatalf("versions = %+v, %v", vs, err)
	}
	if err := st.SetMinDecryption(ctx, "h/data", 2); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.KEK(ctx, "h/data"); got.MinDecryption != 2 {
		t.Fatalf("min decryption = %d", got.MinDecryption)
	}
	wantCode(t, st.SetMinDecryption(ctx, "h/none", 2), kms.CodeNotFound)

	if err := st.DestroyKEKVersion(ctx, "h/data", 1, time.Now()); err != nil {
		t.Fatal(err)
	}
	wantCode(t, st.DestroyKEKVersion(ctx, "h/data", 9, time.Now()), kms.CodeNotFound)
	d, err := st.KEKVersion(ctx, "h/data", 1)
	if err != nil || d.Destroyed.IsZero() || len(d.Handle) != 0 || len(d.Secret) != 0 {
		t.Fatalf("destroyed version = %+v, %v", d, err)
	}
	_, err = st.KEKVersion(ctx, "h/data", 3)
	wantCode(t, err, kms.CodeNotFound)

	kk, vv, err := st.KEKAndVersion(ctx, "h/data", 0)
	if err != nil || kk.ID != "h/data" || kk.Current != 2 || vv.Version != 2 || string(vv.Handle) != "handle-2" || string(vv.Public) != "p" || vv.Created.IsZero() {
		t.Fatalf("KEKAndVersion(current) = %+v, %+v, %v", kk, vv, err)
	}
	kk, vv, err = st.KEKAndVersion(ctx, "h/data", 1)
	if err != nil || vv.Version != 1 || vv.Destroyed.IsZero() || len(vv.Handle) != 0 || kk.MinDecryption != 2 {
		t.Fatalf("KEKAndVersion(1) = %+v, %+v, %v", kk, vv, err)
	}
	kk, _, err = st.KEKAndVersion(ctx, "h/data", 9)
	wantCode(t, err, kms.CodeNotFound)
	if kk.ID != "h/data" {
		t.Fatal("KEKAndVersion with a missing version must still return the KEK")
	}
	kk, _, err = st.KEKAndVersion(ctx, "h/none", 1)
	wantCode(t, err, kms.CodeNotFound)
	if kk.ID != "" {
		t.Fatal("KEKAndVersion of a missing KEK returned one")
	}

	k2, v1 := newKEK("a/data")
	if err := st.CreateKEK(ctx, k2, v1); err != nil {
		t.Fatal(err)
	}
	ks, err := st.KEKs(ctx)
	if err != nil || len(ks) != 2 || ks[0].ID != "a/data" {
		t.Fatalf("KEKs = %+v, %v", ks, err)
	}
}

func testDataKeys(t *testing.T, st kms.Store) {
	ctx := context.Background()
	k, v := newKEK("h/data")
	if err := st.CreateKEK(ctx, k, v); err != nil {
		t.Fatal(err)
	}
	for i := range 25 {
		dk := kms.DataKey{ID: fmt.Sprintf("h/patient/p%02d", i), KEK: "h/data", KEKVersion: 1 + i%2, Wrapped: []byte{byte(i), 0, 1}, Created: time.Now()}
		if err := st.PutDataKey(ctx, dk); err != nil {
			t.Fatal(err)
		}
	}
	wantCode(t, st.PutDataKey(ctx, kms.DataKey{ID: "h/patient/p00", KEK: "h/data", KEKVersion: 1, Wrapped: []byte{1}}), kms.CodeExists)
	n, err := st.CountDataKeysBelow(ctx, "h/data", 2)
	if err != nil || n != 13 {
		t.Fatalf("count below 2 = %d, %v; want 13", n, err)
	}
	var seen []string
	after := ""
	for {
		page, err := st.DataKeysBelow(ctx, "h/data", 2, after, 5)
		if err != nil {
			t.Fatal(err)
		}
		for _, dk := range page {
			if dk.KEKVersion != 1 {
				t.Fatalf("%s at version %d listed below 2", dk.ID, dk.KEKVersion)
			}
			seen = append(seen, dk.ID)
			after = dk.ID
		}
		if len(page) < 5 {
			break
		}
	}
	if len(seen) != 13 || seen[0] != "h/patient/p00" || seen[12] != "h/patient/p24" {
		t.Fatalf("paged ids = %v", seen)
	}
	dk, err := st.DataKey(ctx, "h/patient/p00")
	if err != nil || !bytes.Equal(dk.Wrapped, []byte{0, 0, 1}) {
		t.Fatalf("DataKey = %+v, %v", dk, err)
	}
	dk.Wrapped, dk.KEKVersion = []byte("new"), 3
	if err := st.RewrapDataKey(ctx, dk, 1); err != nil {
		t.Fatal(err)
	}
	wantCode(t, st.RewrapDataKey(ctx, dk, 1), kms.CodeConflict)
	if got, _ := st.DataKey(ctx, "h/patient/p00"); got.KEKVersion != 3 || string(got.Wrapped) != "new" {
		t.Fatalf("after rewrap: %+v", got)
	}
	if err := st.DeleteDataKey(ctx, "h/patient/p00"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, st.DeleteDataKey(ctx, "h/patient/p00"), kms.CodeNotFound)
	_, err = st.DataKey(ctx, "h/patient/p00")
	wantCode(t, err, kms.CodeNotFound)
}

func testRotation(t *testing.T, st kms.Store) {
	ctx := context.Background()
	_, err := st.Rotation(ctx, "h/data")
	wantCode(t, err, kms.CodeNotFound)
	r := kms.Rotation{KEK: "h/data", ToVersion: 2, Total: 10, Started: time.Now(), Updated: time.Now()}
	if err := st.PutRotation(ctx, r); err != nil {
		t.Fatal(err)
	}
	r.Done, r.Cursor, r.Finished = 10, "h/patient/x", true
	if err := st.PutRotation(ctx, r); err != nil {
		t.Fatal(err)
	}
	got, err := st.Rotation(ctx, "h/data")
	if err != nil || got.Done != 10 || got.Cursor != "h/patient/x" || !got.Finished || got.ToVersion != 2 {
		t.Fatalf("Rotation = %+v, %v", got, err)
	}
}

func testCustodians(t *testing.T, st kms.Store) {
	ctx := context.Background()
	c := kms.Custodian{ID: "alice", Suite: "intl", Public: []byte{1, 2, 3}, Created: time.Now()}
	if err := st.PutCustodian(ctx, c); err != nil {
		t.Fatal(err)
	}
	wantCode(t, st.PutCustodian(ctx, c), kms.CodeExists)
	if err := st.PutCustodian(ctx, kms.Custodian{ID: "bob", Suite: "gm", Public: []byte{4}}); err != nil {
		t.Fatal(err)
	}
	got, err := st.Custodian(ctx, "alice")
	if err != nil || !bytes.Equal(got.Public, c.Public) || got.Suite != "intl" {
		t.Fatalf("Custodian = %+v, %v", got, err)
	}
	_, err = st.Custodian(ctx, "carol")
	wantCode(t, err, kms.CodeNotFound)
	all, err := st.Custodians(ctx)
	if err != nil || len(all) != 2 || all[0].ID != "alice" || all[1].ID != "bob" {
		t.Fatalf("Custodians = %+v, %v", all, err)
	}
}

func testNonces(t *testing.T, st kms.Store) {
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	if err := st.UseNonces(ctx, []kms.Nonce{{Value: "n1", Expires: exp}}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, st.UseNonces(ctx, []kms.Nonce{{Value: "n1", Expires: exp}}), kms.CodeExists)
	// All or nothing: n2 is not spent when n1 in the same set was.
	wantCode(t, st.UseNonces(ctx, []kms.Nonce{{Value: "n2", Expires: exp}, {Value: "n1", Expires: exp}}), kms.CodeExists)
	if err := st.UseNonces(ctx, []kms.Nonce{{Value: "n2", Expires: exp}, {Value: "n3", Expires: exp}}); err != nil {
		t.Fatalf("n2 was spent by a failed set: %v", err)
	}
	// Long-expired nonces are forgotten.
	old := time.Now().Add(-48 * time.Hour)
	if err := st.UseNonces(ctx, []kms.Nonce{{Value: "old", Expires: old}}); err != nil {
		t.Fatal(err)
	}
	if err := st.UseNonces(ctx, []kms.Nonce{{Value: "old", Expires: old}}); err != nil {
		t.Fatalf("expired nonce not purged: %v", err)
	}
}

func testOps(t *testing.T, st kms.Store) {
	ctx := context.Background()
	for i := range 5 {
		op := kms.Op{Time: time.Now(), Actor: "tester", Action: "create", Key: "h/data", Version: i, Outcome: "ok"}
		if i == 3 {
			op.Approvers = []string{"alice", "bob"}
		}
		if err := st.AppendOp(ctx, op); err != nil {
			t.Fatal(err)
		}
	}
	ops, err := st.Ops(ctx, 0, 3)
	if err != nil || len(ops) != 3 {
		t.Fatalf("Ops = %+v, %v", ops, err)
	}
	rest, err := st.Ops(ctx, ops[2].Seq, 10)
	if err != nil || len(rest) != 2 || rest[0].Version != 3 || len(rest[0].Approvers) != 2 || rest[0].Approvers[1] != "bob" {
		t.Fatalf("rest = %+v, %v", rest, err)
	}
	if !(ops[0].Seq < ops[1].Seq && ops[1].Seq < ops[2].Seq && ops[2].Seq < rest[0].Seq) {
		t.Fatal("sequence numbers not increasing")
	}
	if errors.Is(err, kms.ErrNotFound) {
		t.Fatal("unexpected")
	}
}

func testReseal(t *testing.T, st kms.Store) {
	ctx := context.Background()
	if err := st.PutMeta(ctx, "p", []byte("old")); err != nil {
		t.Fatal(err)
	}
	k, v := newKEK("h/data")
	if err := st.CreateKEK(ctx, k, v); err != nil {
		t.Fatal(err)
	}
	change := []kms.HandleChange{{KEK: "h/data", Version: 1, Old: []byte("handle-1"), New: []byte("sealed-anew")}}
	// A stale setting or handle changes nothing.
	wantCode(t, st.Reseal(ctx, "p", []byte("stale"), []byte("new"), change), kms.CodeConflict)
	bad := []kms.HandleChange{change[0], {KEK: "h/data", Version: 1, Old: []byte("stale"), New: []byte("x")}}
	wantCode(t, st.Reseal(ctx, "p", []byte("old"), []byte("new"), bad), kms.CodeConflict)
	if m, _ := st.Meta(ctx, "p"); string(m) != "old" {
		t.Fatalf("setting changed by a failed reseal: %q", m)
	}
	if got, _ := st.KEKVersion(ctx, "h/data", 1); string(got.Handle) != "handle-1" {
		t.Fatalf("handle changed by a failed reseal: %q", got.Handle)
	}
	wantCode(t, st.Reseal(ctx, "p", []byte("old"), []byte("new"), nil), kms.CodeConflict) // a version left out
	if err := st.Reseal(ctx, "p", []byte("old"), []byte("new"), change); err != nil {
		t.Fatal(err)
	}
	if m, _ := st.Meta(ctx, "p"); string(m) != "new" {
		t.Fatalf("setting = %q", m)
	}
	if got, _ := st.KEKVersion(ctx, "h/data", 1); string(got.Handle) != "sealed-anew" {
		t.Fatalf("handle = %q", got.Handle)
	}
}

func testImport(t *testing.T, st kms.Store) {
	ctx := context.Background()
	k, _ := newKEK("h/data")
	v3 := kms.KEKVersion{KEK: "h/data", Version: 3, Handle: []byte("h3"), Created: time.Now()}
	if err := st.ImportKEKVersion(ctx, k, v3); err != nil {
		t.Fatal(err)
	}
	wantCode(t, st.ImportKEKVersion(ctx, k, v3), kms.CodeExists)
	v2 := kms.KEKVersion{KEK: "h/data", Version: 2, Handle: []byte("h2"), Created: time.Now()}
	if err := st.ImportKEKVersion(ctx, k, v2); err != nil {
		t.Fatal(err)
	}
	got, err := st.KEK(ctx, "h/data")
	if err != nil || got.Current != 3 || got.MinDecryption != 1 {
		t.Fatalf("after imports: %+v, %v", got, err)
	}
	other := k
	other.Suite = "gm"
	wantCode(t, st.ImportKEKVersion(ctx, other, kms.KEKVersion{KEK: "h/data", Version: 4, Handle: []byte("x")}), kms.CodeConflict)
	if vs, _ := st.KEKVersions(ctx, "h/data"); len(vs) != 2 || vs[0].Version != 2 || string(vs[1].Handle) != "h3" {
		t.Fatalf("versions %+v", vs)
	}
}
