package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"phix/fhirserver"
	"phix/store/sqlite"
)

// TestVerifyIntegrity stores resources through a protected server, then
// runs `phix fhir verify-integrity`: clean first, then exit 1 naming the
// row a test edited with SQL (type/id/version, no PHI).
func TestVerifyIntegrity(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "fhir.db")
	st, err := sqlite.Open(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := fhirserver.NewToken()
	auth, _ := fhirserver.NewStaticTokens(tok)
	node, err := fhirserver.OpenNode(ctx, fhirserver.NodeOptions{Dir: dir, Hospital: "hospital", Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := fhirserver.New(fhirserver.Config{Store: st, Auth: auth, Protector: node.Protector})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 2)
	for i, fam := range []string{"Integrity", "Sound"} {
		req := httptest.NewRequest("POST", fhirserver.BasePath+"/Patient",
			strings.NewReader(`{"resourceType":"Patient","gender":"female","name":[{"family":"`+fam+`"}]}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/fhir+json")
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		if w.Code != http.StatusCreated {
			t.Fatalf("create: %d %s", w.Code, w.Body)
		}
		loc := w.Header().Get("Location")
		ids[i] = strings.Split(loc[strings.Index(loc, "/Patient/")+len("/Patient/"):], "/")[0]
	}
	st.Close()
	node.Close()

	run := func() (string, error) {
		var out, errOut bytes.Buffer
		old := verifyOut
		verifyOut.stdout, verifyOut.stderr = &out, &errOut
		defer func() { verifyOut = old }()
		err := runFHIR(ctx, []string{"verify-integrity", "--db", dbPath})
		return out.String(), err
	}
	if out, err := run(); err != nil || out != "" {
		t.Fatalf("clean store: %q %v", out, err)
	}
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	res, err := db.Exec(`UPDATE resource_versions SET body = CAST(replace(CAST(body AS TEXT), '"gender":"female"', '"gender":"male"') AS BLOB) WHERE id = ?`, ids[0])
	if n, _ := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("tamper: %v %d", err, n)
	}
	db.Close()
	out, err := run()
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("tampered store: exit %v", err)
	}
	if !strings.HasPrefix(out, "Patient/"+ids[0]+"/_history/1: PHI-6005") || strings.Count(out, "\n") != 1 {
		t.Fatalf("report %q", out)
	}
	if strings.Contains(out, "Integrity") || strings.Contains(out, ids[1]) {
		t.Fatalf("report names PHI or a sound resource: %q", out)
	}
	if err := runFHIR(ctx, []string{"verify-integrity"}); err == nil {
		t.Fatal("no --db accepted")
	}
}
