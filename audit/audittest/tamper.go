package audittest

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"phix/audit"
)

// tamperLog writes 30 events with checkpoints at 10, 20 and 30, and returns
// the backend, the bodies and the checkpoint notes.
func tamperLog(t *testing.T, h Harness) (audit.Backend, [][]byte, [][]byte, []*audit.Verifier) {
	ctx := context.Background()
	b := h.Open(t)
	p := Pseudonyms(t)
	l := OpenLog(t, b, func(o *audit.Options) { o.CheckpointInterval = 1 << 40 })
	var notes [][]byte
	for i := 0; i < 30; i++ {
		if _, err := l.Append(ctx, SampleEvent(p, i, audit.ActionCreate)); err != nil {
			t.Fatal(err)
		}
		if (i+1)%10 == 0 {
			cp, err := l.Sync(ctx)
			if err != nil {
				t.Fatal(err)
			}
			notes = append(notes, cp.Note)
		}
	}
	v, _ := audit.ParseVerifier(l.Signer().VerifierKey())
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	recs, err := b.Events(ctx, -1, 100)
	if err != nil || len(recs) != 30 {
		t.Fatalf("events: %d %v", len(recs), err)
	}
	bodies := make([][]byte, len(recs))
	for i, r := range recs {
		bodies[i] = r.Body
	}
	return b, bodies, notes, []*audit.Verifier{v}
}

func changed(body []byte) []byte {
	return bytes.Replace(body, []byte(`"outcome":"success"`), []byte(`"outcome":"major-failure"`), 1)
}

func testTamper(t *testing.T, f Factory) {
	var h Harness // each case gets a fresh database; the closures use the current one
	ctx := context.Background()
	cases := []struct {
		name   string
		tamper func(t *testing.T, b audit.Backend, bodies [][]byte, notes [][]byte) []byte // returns a trusted note or nil
		kind   audit.FailureKind
		index  int64
	}{
		{"changed event", func(t *testing.T, _ audit.Backend, bodies, _ [][]byte) []byte {
			h.Exec(t, fmt.Sprintf("UPDATE audit_events SET body = %s WHERE idx = 13", h.Bytes(changed(bodies[13]))))
			return nil
		}, audit.FailLeafMismatch, 13},
		{"deleted event", func(t *testing.T, _ audit.Backend, _, _ [][]byte) []byte {
			h.Exec(t, "DELETE FROM audit_events WHERE idx = 13")
			return nil
		}, audit.FailMissing, 13},
		{"reordered events", func(t *testing.T, _ audit.Backend, bodies, _ [][]byte) []byte {
			h.Exec(t, fmt.Sprintf("UPDATE audit_events SET body = %s WHERE idx = 13", h.Bytes(bodies[17])))
			h.Exec(t, fmt.Sprintf("UPDATE audit_events SET body = %s WHERE idx = 17", h.Bytes(bodies[13])))
			return nil
		}, audit.FailReordered, 13},
		{"truncated", func(t *testing.T, _ audit.Backend, _, _ [][]byte) []byte {
			h.Exec(t, "DELETE FROM audit_events WHERE idx >= 25")
			h.Exec(t, fmt.Sprintf("DELETE FROM audit_hashes WHERE id >= %d", tlog.StoredHashCount(25)))
			return nil
		}, audit.FailTruncated, 25},
		{"truncated with checkpoints removed", func(t *testing.T, _ audit.Backend, _, notes [][]byte) []byte {
			h.Exec(t, "DELETE FROM audit_events WHERE idx >= 25")
			h.Exec(t, fmt.Sprintf("DELETE FROM audit_hashes WHERE id >= %d", tlog.StoredHashCount(25)))
			h.Exec(t, "DELETE FROM audit_checkpoints WHERE size > 25")
			return notes[2]
		}, audit.FailTrusted, 25},
		{"rewritten history", func(t *testing.T, b audit.Backend, bodies, _ [][]byte) []byte {
			rewrite(t, h, b, bodies, 13)
			return nil
		}, audit.FailRewritten, 10},
		{"rewritten history, checkpoints replaced", func(t *testing.T, b audit.Backend, bodies, notes [][]byte) []byte {
			rewrite(t, h, b, bodies, 13)
			h.Exec(t, "DELETE FROM audit_checkpoints")
			return notes[1]
		}, audit.FailTrusted, 0},
		{"forged checkpoint", func(t *testing.T, _ audit.Backend, _, notes [][]byte) []byte {
			forged := bytes.Replace(notes[1], []byte("\n20\n"), []byte("\n19\n"), 1)
			h.Exec(t, fmt.Sprintf("UPDATE audit_checkpoints SET note = %s WHERE size = 20", h.Bytes(forged)))
			return nil
		}, audit.FailBadSignature, 20},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h = f(t)
			b, bodies, notes, vs := tamperLog(t, h)
			trusted := tc.tamper(t, b, bodies, notes)
			_, err := audit.Verify(ctx, b, audit.VerifyOptions{Verifiers: vs, Trusted: trusted})
			wantFailure(t, err, tc.kind, tc.index)
		})
	}
}

// rewrite changes event i and recomputes every stored hash from the bodies,
// as an attacker with database access would.
func rewrite(t *testing.T, h Harness, b audit.Backend, bodies [][]byte, i int) {
	ctx := context.Background()
	bodies = append([][]byte(nil), bodies...)
	bodies[i] = changed(bodies[i])
	h.Exec(t, fmt.Sprintf("UPDATE audit_events SET body = %s WHERE idx = %d", h.Bytes(bodies[i]), i))
	var all []tlog.Hash
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for k, x := range idx {
			out[k] = all[x]
		}
		return out, nil
	})
	for n, body := range bodies {
		hs, err := tlog.StoredHashes(int64(n), body, r)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, hs...)
	}
	old, err := b.HashRange(ctx, 0, int64(len(all)))
	if err != nil || len(old) != len(all) {
		t.Fatalf("hash range: %v", err)
	}
	for id := range all {
		if old[id] != all[id] {
			h.Exec(t, fmt.Sprintf("UPDATE audit_hashes SET hash = %s WHERE id = %d", h.Bytes(all[id][:]), id))
		}
	}
}
