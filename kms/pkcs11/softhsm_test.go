//go:build cgo

package pkcs11

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"phix/internal/testenv"
)

// softHSM makes a fresh SoftHSM2 token in a temporary directory and returns
// the config for it and the token directory. SOFTHSM2_CONF is read when the
// module initializes, and every backend of a test is closed at its end, so
// each test gets its own token store.
func softHSM(t testing.TB) (Config, string) {
	t.Helper()
	if _, err := os.Stat(DefaultModule); err != nil {
		testenv.Missing(t, "SoftHSM2 module %s (apt-get install softhsm2)", DefaultModule)
	}
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		testenv.Missing(t, "softhsm2-util (apt-get install softhsm2)")
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	out, err := exec.Command(util, "--init-token", "--free", "--label", "phix-test", "--so-pin", "87654321", "--pin", "12345678").CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util: %v: %s", err, out)
	}
	return Config{Module: DefaultModule, TokenLabel: "phix-test", PIN: "12345678"}, tokens
}

func openHSM(t testing.TB, cfg Config) *Backend {
	t.Helper()
	b, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}
