package audit_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"phix/audit"
	"phix/audit/auditsqlite"
	"phix/audit/audittest"
	"phix/suite"
)

func FuzzParseEvent(f *testing.F) {
	p := audittest.Pseudonyms(f)
	for _, a := range []audit.Action{audit.ActionRead, audit.ActionSecurityAlert, audit.ActionConsent} {
		ev := audittest.SampleEvent(p, 1, a)
		b, _ := ev.Canonical()
		f.Add(b)
	}
	f.Add([]byte(`{"action":"read","outcome":"success","details":"x"}`))
	f.Add([]byte(`{"action":"read","outcome":"success"} {}`))
	f.Add([]byte(`{"action":"read","outcome":"success","who":{"user":"Jane Doe"}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := audit.ParseEvent(data)
		if err != nil {
			if !errors.Is(err, audit.ErrInvalidEvent) {
				t.Fatalf("error does not wrap ErrInvalidEvent: %v", err)
			}
			return
		}
		if err := ev.Validate(); err != nil {
			t.Fatalf("parsed event does not validate: %v", err)
		}
		c, err := ev.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		back, err := audit.ParseEvent(c)
		if err != nil {
			t.Fatalf("canonical form does not parse: %v", err)
		}
		c2, _ := back.Canonical()
		if !bytes.Equal(c, c2) {
			t.Fatal("canonical form is not stable")
		}
	})
}

func FuzzParseCheckpoint(f *testing.F) {
	s, _ := audit.NewSigner("fuzz.phix/audit", audittest.SigningKey(f, suite.Intl))
	note, _ := s.Sign(audit.Checkpoint{Origin: "fuzz.phix/audit", Size: 7, Root: tlog.RecordHash(nil)})
	f.Add(note)
	f.Add([]byte("o\n1\nAAAA\n\n\u2014 n AAAAAAAA\n"))
	f.Add([]byte("o\n01\n\n\n"))
	v, _ := audit.ParseVerifier(s.VerifierKey())
	f.Fuzz(func(t *testing.T, data []byte) {
		c, sigs, err := audit.ParseCheckpoint(data)
		if err != nil {
			return
		}
		if c.Size < 0 || len(sigs) == 0 {
			t.Fatalf("accepted a checkpoint without signatures or with a negative size")
		}
		if !bytes.HasPrefix(data, c.Text()) {
			t.Fatal("parsed text is not the note's prefix")
		}
		if got, err := audit.OpenCheckpoint(data, []*audit.Verifier{v}); err == nil && !bytes.Equal(data, note) {
			// Only the genuine note (or one with extra unknown signatures) may verify.
			if got.Size != 7 {
				t.Fatalf("forged checkpoint verified: size %d", got.Size)
			}
		}
	})
}

func FuzzParseVerifier(f *testing.F) {
	for _, id := range []string{"intl", "gm"} {
		s, _ := audit.NewSigner("fuzz", audittest.SigningKey(f, suiteID(id)))
		f.Add(s.VerifierKey())
	}
	f.Add("a+00000000+AQ==")
	f.Add("+++")
	f.Fuzz(func(t *testing.T, vkey string) {
		v, err := audit.ParseVerifier(vkey)
		if err == nil && (v.Key == nil || v.Name == "") {
			t.Fatal("verifier without key or name")
		}
	})
}

func suiteID(s string) suite.ID { return suite.ID(s) }

func FuzzAuditQueries(f *testing.F) {
	b, err := auditsqlite.Open(context.Background(), filepath.Join(f.TempDir(), "audit.db"))
	if err != nil {
		f.Fatal(err)
	}
	defer b.Close()
	p := audittest.Pseudonyms(f)
	l := audittest.OpenLog(f, b, func(o *audit.Options) { o.Pseudonyms = p })
	defer l.Close()
	for i := 0; i < 5; i++ {
		if _, err := l.Append(context.Background(), audittest.SampleEvent(p, i, audit.ActionRead)); err != nil {
			f.Fatal(err)
		}
	}
	fhir, api := l.AuditEventHandler(), audit.Handler(l)
	for _, q := range []string{"patient=Patient/1&date=ge2020-01&_count=2", "type=rest&subtype=read&outcome=0,4",
		"date=2024-02-30", "entity=ps1.x", "_cursor=3&agent=x", "after=1&limit=2", "index=1&size=3", "from=1&to=4"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		for _, tc := range []struct {
			h    http.Handler
			path string
		}{{fhir, "/fhir/r4/AuditEvent"}, {api, "/audit/events"}, {api, "/audit/proof/inclusion"}, {api, "/audit/proof/consistency"}} {
			req := httptest.NewRequest("GET", "http://x"+tc.path, nil)
			req.URL.RawQuery = q
			rec := httptest.NewRecorder()
			tc.h.ServeHTTP(rec, req)
			if rec.Code != 200 && rec.Code != 400 {
				t.Fatalf("%s?%q: status %d", tc.path, q, rec.Code)
			}
		}
	})
}
