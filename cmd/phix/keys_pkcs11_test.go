//go:build cgo

package main

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"phix/internal/testenv"
	"phix/kms"
)

// TestKeysCLIPKCS11 runs the CLI against a fresh SoftHSM2 token.
func TestKeysCLIPKCS11(t *testing.T) {
	const module = "/usr/lib/softhsm/libsofthsm2.so"
	if _, err := os.Stat(module); err != nil {
		testenv.Missing(t, "SoftHSM2 module %s", module)
	}
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		testenv.Missing(t, "softhsm2-util")
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	_ = os.MkdirAll(tokens, 0o700)
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	if out, err := exec.Command(util, "--init-token", "--free", "--label", "cli-test", "--so-pin", "87654321", "--pin", "12345678").CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util: %v: %s", err, out)
	}
	t.Setenv("PHIX_PKCS11_PIN", "12345678")
	hsm := []string{"--dir", filepath.Join(dir, "keys"), "--backend", "pkcs11", "--pkcs11-module", module, "--pkcs11-token", "cli-test"}
	with := func(args ...string) []string { return append(args, hsm...) }

	keysMust(t, with("init", "--hospital", "h")...)
	_, err = keysRun(t, with("init", "--hospital", "g", "--suite", "gm")...)
	if kms.CodeOf(err) != kms.CodeUnsupported {
		t.Fatalf("gm on SoftHSM2 without the opt-in: %v", err)
	}
	keysMust(t, with("init", "--hospital", "g", "--suite", "gm", "--hsm-gm-aes-wrap")...)
	keysMust(t, with("rotate", "--kek", "h/data")...)
	out := keysMust(t, with("list")...)
	if !strings.Contains(out, "pkcs11") || !strings.Contains(out, "g/data") {
		t.Fatalf("list: %s", out)
	}
	for _, c := range []string{"alice", "bob"} {
		keysMust(t, "custodian-new", "--id", c, "--suite", "gm", "--no-passphrase", "--out", filepath.Join(dir, c+".key"))
		keysMust(t, with("enroll", "--public-key", filepath.Join(dir, c+".key.pub"))...)
	}
	var approvals []string
	for _, c := range []string{"alice", "bob"} {
		p := filepath.Join(dir, c+".json")
		keysMust(t, "approve", "--custodian-key", filepath.Join(dir, c+".key"), "--kek", "h/data", "--version", "1", "--out", p)
		approvals = append(approvals, "--approval", p)
	}
	secondFactor := enrolOperator(t, hsm, "h", "intl", "ops")
	before, _ := filepath.Glob(filepath.Join(tokens, "*", "*.object"))
	keysMust(t, with(append(append([]string{"destroy", "--kek", "h/data", "--version", "1", "--actor", "ops"}, approvals...), secondFactor()...)...)...)
	after, _ := filepath.Glob(filepath.Join(tokens, "*", "*.object"))
	if len(after) != len(before)-1 {
		t.Fatalf("token objects %d -> %d", len(before), len(after))
	}
	// The local backend cannot open an HSM keyring.
	t.Setenv("PHIX_MASTER_KEY", base64.StdEncoding.EncodeToString(make([]byte, 32)))
	_, err = keysRun(t, "list", "--dir", filepath.Join(dir, "keys"))
	if kms.CodeOf(err) != kms.CodeBackendMismatched {
		t.Fatalf("local backend on an HSM keyring: %v", err)
	}
}
