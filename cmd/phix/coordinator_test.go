package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"phix/suite"
	"phix/transfer"
)

func TestCoordinatorHospitalsCLI(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "c.db")
	s, _ := suite.Lookup(suite.Intl)
	k, _ := s.GenerateSigningKey()
	rk, _ := s.GenerateRecipientKey()
	pin := sha256.Sum256([]byte("spki"))
	h := transfer.Hospital{ID: "hospital-a", NameZH: "甲医院", NameEN: "Hospital A", Region: "CN-BJ", Networks: []string{"10.1.0.0/16"},
		Suite: "intl", SigningKey: base64.StdEncoding.EncodeToString(k.Public().Bytes()),
		WrapKey: base64.StdEncoding.EncodeToString(rk.Public().Bytes()), Pins: []string{"sha256/" + base64.StdEncoding.EncodeToString(pin[:])}}
	b, _ := json.Marshal(h)
	file := filepath.Join(dir, "a.json")
	os.WriteFile(file, b, 0o600)
	var out bytes.Buffer
	if err := coordinatorHospitals(ctx, "add", []string{"--db", db, "--file", file}, &out); err != nil {
		t.Fatal(err)
	}
	if err := coordinatorHospitals(ctx, "add", []string{"--db", db, "--file", file}, &out); err == nil || !strings.Contains(err.Error(), transfer.CodeConflict) {
		t.Fatalf("duplicate add: %v", err)
	}
	if err := coordinatorHospitals(ctx, "suspend", []string{"--db", db, "hospital-a"}, &out); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := coordinatorHospitals(ctx, "list", []string{"--db", db}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "hospital-a\tCN-BJ\tsuspended\tHospital A\t甲医院") {
		t.Fatalf("list: %q", out.String())
	}
	bad := strings.Replace(string(b), `"CN-BJ"`, `"moon"`, 1)
	os.WriteFile(file, []byte(bad), 0o600)
	if err := coordinatorHospitals(ctx, "add", []string{"--db", db, "--file", file}, &out); err == nil {
		t.Fatal("bad region accepted")
	}
	if err := runCoordinator(ctx, []string{"serve", "--data", dir}); err == nil || !strings.Contains(err.Error(), "--tls-ca") {
		t.Fatalf("serve without TLS: %v", err)
	}
}
