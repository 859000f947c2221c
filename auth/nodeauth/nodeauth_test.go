package nodeauth_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"phix/audit"
	"phix/auth/nodeauth"
	"phix/fhirserver"
	"phix/internal/testenv"
	"phix/store/sqlite"
)

// node is a FHIR server wired by nodeauth as phix node wires it, on
// 127.0.0.1:0, with a gateway-like client that holds no standing grant and
// a seeding client that does.
type node struct {
	base   string
	na     *nodeauth.Auth
	gw     *nodeauth.ServiceClient
	seeder *nodeauth.ServiceClient
	audit  *audit.Log
	db     *sql.DB
	root   string
}

func startNode(t *testing.T) *node { t.Helper(); return startNodeDB(t, "") }

// startNodeDB is startNode over the auth store dsn ("" a SQLite file).
func startNodeDB(t *testing.T, dsn string) *node {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	root := "http://" + ln.Addr().String()
	base := root + fhirserver.BasePath
	if dsn == "" {
		dsn = filepath.Join(dir, "auth.db")
	}
	db, err := nodeauth.OpenDB(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	bearer, err := nodeauth.NewBearerAuth(root+nodeauth.AuthPath, base, nil, db)
	if err != nil {
		t.Fatal(err)
	}
	n, err := fhirserver.OpenNode(ctx, fhirserver.NodeOptions{Dir: dir, Hospital: "hospital-a", Auth: bearer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	st, err := sqlite.Open(filepath.Join(dir, "fhir.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	t.Cleanup(func() { db.Close() })
	na, err := nodeauth.Open(ctx, nodeauth.Config{DB: db, Keys: n.Keys, Hospital: "hospital-a", Issuer: root + nodeauth.AuthPath, Audience: base,
		PolicyDir: filepath.Join(dir, "policy"), Audit: n.Audit, Pseudonyms: n.Pseudonyms})
	if err != nil {
		t.Fatal(err)
	}
	spec := nodeauth.ServiceClientSpec{Scope: "system/*.cruds", Roles: []string{"clinician"}, Purpose: "TREAT"}
	spec.ID = "hospital-a-gateway"
	gw, err := na.RegisterServiceClient(ctx, "hospital-a", spec)
	if err != nil {
		t.Fatal(err)
	}
	spec.ID = "hospital-a-admin"
	seeder, err := na.RegisterServiceClient(ctx, "hospital-a", spec)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := fhirserver.New(fhirserver.Config{Store: st, Auth: bearer, BaseURL: base, Audit: n.Audit, AuditPseudonyms: n.Pseudonyms,
		DeidKeys: n.DeidKeys, Protector: n.Protector, Eraser: n.Eraser, Signing: n.Signing,
		Enforcement: na.Enforcement(n.Signing, nodeauth.Or(na.Grants.Check, nodeauth.ClientGrants(seeder.ID)))})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	na.Mount(mux, fhirserver.BasePath, bearer)
	mux.Handle("/", srv)
	go fhirserver.Serve(ctx, ln, mux)
	return &node{base: base, na: na, gw: gw, seeder: seeder, audit: n.Audit, db: db, root: root}
}

func (n *node) do(t *testing.T, c *nodeauth.ServiceClient, method, path, body string) int {
	t.Helper()
	tok, err := c.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(method, n.base+"/"+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// TestTransferGrants: a machine client without a standing grant reads a
// patient's record only while a transfer grant for that patient is open,
// never another patient's; closing or expiry ends it; opening and closing
// are audited with pseudonyms only.
func TestTransferGrants(t *testing.T) {
	n := startNode(t)
	ctx := context.Background()
	for _, p := range []string{"p1", "p2"} {
		if st := n.do(t, n.seeder, "PUT", "Patient/"+p, `{"resourceType":"Patient","id":"`+p+`","name":[{"family":"Demo"}]}`); st/100 != 2 {
			t.Fatalf("seed %s: %d", p, st)
		}
		if st := n.do(t, n.seeder, "PUT", "Observation/o-"+p, `{"resourceType":"Observation","id":"o-`+p+`","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/`+p+`"}}`); st/100 != 2 {
			t.Fatalf("seed obs %s: %d", p, st)
		}
	}
	if st := n.do(t, n.gw, "GET", "Observation/o-p1", ""); st != 403 {
		t.Fatalf("no grant: %d", st)
	}
	grants := n.na.Grants.For(n.gw.ID)
	if err := grants.OpenTransferGrant(ctx, "p1", "tr-1", "c-1", "TREAT", "outbound"); err != nil {
		t.Fatal(err)
	}
	if st := n.do(t, n.gw, "GET", "Observation/o-p1", ""); st != 200 {
		t.Fatalf("with the transfer grant: %d", st)
	}
	if st := n.do(t, n.gw, "GET", "Observation/o-p2", ""); st != 403 {
		t.Fatalf("another patient under p1's grant: %d", st)
	}
	if err := grants.CloseTransferGrant(ctx, "tr-1"); err != nil {
		t.Fatal(err)
	}
	if st := n.do(t, n.gw, "GET", "Observation/o-p1", ""); st != 403 {
		t.Fatalf("after close: %d", st)
	}
	// Refusals of malformed grants.
	for _, g := range []nodeauth.TransferGrant{
		{Client: "c", Patient: "p1", Transfer: "t", Consent: "c", Purpose: "TREAT"},
		{Client: "c", Patient: "Patient/p1", Transfer: "t", Consent: "c", Purpose: "TREAT", Direction: "inbound"},
		{Client: "c", Patient: "p1", Transfer: "t", Purpose: "TREAT", Direction: "inbound"},
	} {
		if _, err := n.na.Grants.Open(ctx, g); err == nil {
			t.Fatalf("grant %+v opened", g)
		}
	}
	// The audit log holds the open and the close, with the transfer id and
	// consent but no raw patient id.
	feed, err := n.audit.Feed(ctx, -1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, fe := range feed.Events {
		var ev audit.Event
		if err := json.Unmarshal(fe.Event, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.RequestID != "tr-1" {
			continue
		}
		b, _ := json.Marshal(ev)
		if bytes.Contains(b, []byte(`"p1"`)) || ev.What.Patient == "" || ev.Why == nil || ev.Why.ConsentID != "c-1" {
			t.Fatalf("grant audit event %s", b)
		}
		seen = append(seen, ev.Decision.Policies[0])
	}
	if strings.Join(seen, ",") != "nodeauth:transfer-grant:open,nodeauth:transfer-grant:close" {
		t.Fatalf("audited %v", seen)
	}
}

// TestGrantExpiry: a grant ends by itself after its TTL (clock-driven, on
// SQLite and PostgreSQL).
func TestGrantExpiry(t *testing.T) {
	ctx := context.Background()
	dbs := map[string]func() *sql.DB{
		"sqlite": func() *sql.DB {
			db, err := nodeauth.OpenDB(ctx, filepath.Join(t.TempDir(), "auth.db"))
			if err != nil {
				t.Fatal(err)
			}
			return db
		},
		"postgres": func() *sql.DB {
			db, err := nodeauth.OpenDB(ctx, testenv.Postgres(t))
			if err != nil {
				t.Fatal(err)
			}
			return db
		},
	}
	for name, open := range dbs {
		t.Run(name, func(t *testing.T) {
			db := open()
			defer db.Close()
			clock := time.Now()
			g := nodeauth.NewGrantsClock(db, func() time.Time { return clock })
			if _, err := g.Open(ctx, nodeauth.TransferGrant{Client: "gw", Patient: "p1", Transfer: "t1", Consent: "c1", Purpose: "TREAT", Direction: "inbound", TTL: 2 * time.Hour}); err != nil {
				t.Fatal(err)
			}
			if ok, err := g.Check(ctx, "Client/gw", "p1"); err != nil || !ok {
				t.Fatalf("open grant: %v %v", ok, err)
			}
			for _, c := range [][2]string{{"Client/gw", "p2"}, {"Client/other", "p1"}, {"Practitioner/gw", "p1"}, {"gw", "p1"}} {
				if ok, _ := g.Check(ctx, c[0], c[1]); ok {
					t.Fatalf("%v granted", c)
				}
			}
			clock = clock.Add(nodeauth.MaxGrantTTL + time.Second) // the TTL was capped at 1 h
			if ok, _ := g.Check(ctx, "Client/gw", "p1"); ok {
				t.Fatal("grant outlived MaxGrantTTL")
			}
		})
	}
}
