package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"phix/seal"
)

// testIO returns a sealIO with in-memory stdio and a fixed passphrase.
func testIO(stdin []byte, pass string) (sealIO, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	return sealIO{
		stdin: bytes.NewReader(stdin), stdout: &out, stderr: &errb,
		passphrase: func() ([]byte, error) {
			if pass == "" {
				return nil, nil
			}
			return []byte(pass), nil
		},
	}, &out, &errb
}

func keygen(t *testing.T, dir, name, suiteName, pass string) string {
	t.Helper()
	sio, _, _ := testIO(nil, pass)
	base := filepath.Join(dir, name)
	if err := sealCmd(context.Background(), []string{"keygen", "--suite", suiteName, "--out", base}, sio); err != nil {
		t.Fatal(err)
	}
	return base
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSealCLIRoundTrip(t *testing.T) {
	for _, tc := range []struct{ suite, pass string }{{"intl", ""}, {"gm", ""}, {"intl", "correct horse"}, {"gm", "correct horse"}} {
		t.Run(tc.suite+"/pass="+tc.pass, func(t *testing.T) {
			dir := t.TempDir()
			a := keygen(t, dir, "a", tc.suite, tc.pass)
			b := keygen(t, dir, "b", tc.suite, tc.pass)
			st, err := os.Stat(a + ".key")
			if err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("private key mode %v, %v", st.Mode(), err)
			}
			keyPEM, _ := os.ReadFile(a + ".key")
			if blk, _ := pem.Decode(keyPEM); blk == nil || (blk.Headers["Encryption"] != "") != (tc.pass != "") {
				t.Fatal("key file encryption does not follow PHIX_PASSPHRASE")
			}
			pt := make([]byte, 200_000)
			rand.Read(pt)
			in, sealed, out := filepath.Join(dir, "in"), filepath.Join(dir, "in.phx"), filepath.Join(dir, "out")
			writeFile(t, in, pt)
			sio, _, errb := testIO(nil, tc.pass)
			if err := sealCmd(context.Background(), []string{"--suite", tc.suite, "--to", a + ".pub", "--to", b + ".pub", "--segment-size", "4096", in, sealed}, sio); err != nil {
				t.Fatal(err)
			}
			if errb.Len() != 0 {
				t.Fatalf("seal printed %q on a non-terminal", errb.String())
			}
			for _, k := range []string{a, b} {
				if err := unsealCmd(context.Background(), []string{"--key", k + ".key", sealed, out}, sio); err != nil {
					t.Fatal(err)
				}
				got, _ := os.ReadFile(out)
				if !bytes.Equal(got, pt) {
					t.Fatal("round trip differs")
				}
			}
			// Through stdin and stdout.
			sealedBytes, _ := os.ReadFile(sealed)
			sio2, stdout, _ := testIO(sealedBytes, tc.pass)
			if err := unsealCmd(context.Background(), []string{"--key", b + ".key", "-", "-"}, sio2); err != nil || !bytes.Equal(stdout.Bytes(), pt) {
				t.Fatalf("stdin/stdout: %v", err)
			}
			sio3, stdout3, _ := testIO(pt, tc.pass)
			if err := sealCmd(context.Background(), []string{"--to", a + ".pub", "-", "-"}, sio3); err != nil {
				t.Fatal(err)
			}
			sio4, stdout4, _ := testIO(stdout3.Bytes(), tc.pass)
			if err := unsealCmd(context.Background(), []string{"--key", a + ".key", "-", "-"}, sio4); err != nil || !bytes.Equal(stdout4.Bytes(), pt) {
				t.Fatalf("seal to stdout: %v", err)
			}
		})
	}
}

// A failed unseal leaves no OUT and no temporary file.
func TestUnsealFailureLeavesNoOutput(t *testing.T) {
	dir := t.TempDir()
	a := keygen(t, dir, "a", "gm", "")
	stranger := keygen(t, dir, "s", "gm", "")
	pt := bytes.Repeat([]byte("patient record "), 20_000)
	in, sealed := filepath.Join(dir, "in"), filepath.Join(dir, "in.phx")
	writeFile(t, in, pt)
	sio, _, _ := testIO(nil, "")
	if err := sealCmd(context.Background(), []string{"--to", a + ".pub", "--segment-size", "1024", in, sealed}, sio); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(sealed)
	flipped := bytes.Clone(good)
	flipped[len(flipped)-3000] ^= 1
	for _, tc := range []struct {
		name, key string
		data      []byte
		code      string
	}{
		{"truncated at a segment boundary", a, good[:len(good)-(len(pt)%1024+16)], "SEAL_TRUNCATED"},
		{"truncated mid-segment", a, good[:len(good)-1500], "SEAL_SEGMENT_AUTH"},
		{"bit flip late in the body", a, flipped, "SEAL_SEGMENT_AUTH"},
		{"wrong key", stranger, good, "SEAL_NO_KEY"},
		{"garbage", a, []byte("hello, not sealed at all........................................."), "SEAL_BAD_MAGIC"},
		{"empty", a, nil, "SEAL_HEADER_TRUNCATED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := filepath.Join(dir, "bad.phx")
			writeFile(t, bad, tc.data)
			out := filepath.Join(dir, "out-"+strings.ReplaceAll(tc.name, " ", "-"))
			err := unsealCmd(context.Background(), []string{"--key", tc.key + ".key", bad, out}, sio)
			if seal.Code(err) != tc.code {
				t.Fatalf("err = %v, want code %s", err, tc.code)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatal("multi-line error")
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("OUT exists after failure: %v", err)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if strings.HasSuffix(e.Name(), ".partial") {
					t.Fatalf("temporary file %s left behind", e.Name())
				}
			}
		})
	}
}

func TestSealCLIErrors(t *testing.T) {
	dir := t.TempDir()
	gmKey := keygen(t, dir, "g", "gm", "")
	intlKey := keygen(t, dir, "i", "intl", "secret pass")
	in := filepath.Join(dir, "in")
	writeFile(t, in, []byte("x"))
	out := filepath.Join(dir, "out")
	sio, _, _ := testIO(nil, "")
	wrongPass, _, _ := testIO(nil, "wrong pass")
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		fn   func(context.Context, []string, sealIO) error
		args []string
		sio  sealIO
		want string // substring or seal code
	}{
		{"unknown suite", sealCmd, []string{"--suite", "rot13", "--to", gmKey + ".pub", in, out}, sio, "unknown suite"},
		{"suite mismatch", sealCmd, []string{"--suite", "intl", "--to", gmKey + ".pub", in, out}, sio, "gm key"},
		{"mixed recipients", sealCmd, []string{"--to", gmKey + ".pub", "--to", intlKey + ".pub", in, out}, sio, "intl key"},
		{"no recipients", sealCmd, []string{in, out}, sio, "--to"},
		{"missing input", sealCmd, []string{"--to", gmKey + ".pub", filepath.Join(dir, "nope"), out}, sio, "cannot open input"},
		{"missing key file", sealCmd, []string{"--to", filepath.Join(dir, "nope.pub"), in, out}, sio, "cannot read key file"},
		{"bad segment size", sealCmd, []string{"--to", gmKey + ".pub", "--segment-size", "3", in, out}, sio, "SEAL_OPTIONS"},
		{"keygen unknown suite", sealCmd, []string{"keygen", "--suite", "x", "--out", filepath.Join(dir, "x")}, sio, "unknown suite"},
		{"keygen overwrite", sealCmd, []string{"keygen", "--suite", "gm", "--out", gmKey}, sio, "refusing to overwrite"},
		{"wrong passphrase", unsealCmd, []string{"--key", intlKey + ".key", in, out}, wrongPass, "SEAL_PASSPHRASE"},
		{"no passphrase", unsealCmd, []string{"--key", intlKey + ".key", in, out}, sio, "SEAL_PASSPHRASE_REQUIRED"},
		{"public key to unseal", unsealCmd, []string{"--key", gmKey + ".pub", in, out}, sio, "public key file"},
		{"key file garbage", unsealCmd, []string{"--key", in, in, out}, sio, "SEAL_KEYFILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.fn(ctx, tc.args, tc.sio)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) && seal.Code(err) != tc.want {
				t.Fatalf("err = %v, want %s", err, tc.want)
			}
		})
	}
	// An encrypted private key file given as a recipient needs its passphrase.
	if err := sealCmd(ctx, []string{"--to", intlKey + ".key", in, out}, sio); seal.Code(err) != "SEAL_PASSPHRASE_REQUIRED" {
		t.Fatalf("encrypted private key as recipient: %v", err)
	}
}

// Every error path, with keys and a passphrase in play: no error text may
// contain key material in any common encoding.
func TestErrorsCarryNoKeyMaterial(t *testing.T) {
	dir := t.TempDir()
	const pass = "hunter2-very-secret-passphrase"
	var secrets [][]byte
	var errs []string
	for _, s := range []string{"intl", "gm"} {
		plain := keygen(t, dir, s+"-plain", s, "")
		enc := keygen(t, dir, s+"-enc", s, pass)
		kb, _ := os.ReadFile(plain + ".key")
		blk, _ := pem.Decode(kb)
		secrets = append(secrets, blk.Bytes)
		in, sealed := filepath.Join(dir, s+".in"), filepath.Join(dir, s+".phx")
		writeFile(t, in, []byte("Jane Doe, MRN 12345678"))
		sio, _, _ := testIO(nil, pass)
		if err := sealCmd(context.Background(), []string{"--to", plain + ".pub", "--to", enc + ".pub", in, sealed}, sio); err != nil {
			t.Fatal(err)
		}
		good, _ := os.ReadFile(sealed)
		bad := filepath.Join(dir, s+".bad")
		wrong, _, _ := testIO(nil, "wrong")
		none, _, _ := testIO(nil, "")
		collect := func(err error) {
			if err != nil {
				errs = append(errs, err.Error())
			}
		}
		for i := 0; i < len(good); i += 97 {
			mut := bytes.Clone(good)
			mut[i] ^= 0x10
			writeFile(t, bad, mut)
			collect(unsealCmd(context.Background(), []string{"--key", plain + ".key", bad, "-"}, none))
		}
		writeFile(t, bad, good[:len(good)-1])
		collect(unsealCmd(context.Background(), []string{"--key", plain + ".key", bad, "-"}, none))
		collect(unsealCmd(context.Background(), []string{"--key", enc + ".key", sealed, "-"}, wrong))
		collect(unsealCmd(context.Background(), []string{"--key", enc + ".key", sealed, "-"}, none))
		// A key file whose key bytes are damaged.
		kmut := bytes.Replace(kb, []byte("Key-Version: 1"), []byte("Key-Version: x"), 1)
		writeFile(t, bad, kmut)
		collect(unsealCmd(context.Background(), []string{"--key", bad, sealed, "-"}, none))
		blk.Bytes = blk.Bytes[:len(blk.Bytes)-1]
		writeFile(t, bad, pem.EncodeToMemory(blk))
		collect(unsealCmd(context.Background(), []string{"--key", bad, sealed, "-"}, none))
	}
	secrets = append(secrets, []byte(pass), []byte("Jane Doe"))
	if len(errs) < 20 {
		t.Fatalf("only %d error paths exercised", len(errs))
	}
	for _, e := range errs {
		for _, sec := range secrets {
			encs := []string{string(sec), hex.EncodeToString(sec), strings.ToUpper(hex.EncodeToString(sec)),
				base64.StdEncoding.EncodeToString(sec), base64.RawURLEncoding.EncodeToString(sec)}
			for _, enc := range encs {
				// Any 12-character window of an encoding is a leak.
				for i := 0; i+12 <= len(enc); i += 4 {
					if strings.Contains(e, enc[i:i+12]) {
						t.Fatalf("error %q contains secret material", e)
					}
				}
			}
		}
	}
}

// The commands are registered and fail with a one-line message and status.
func TestSealCommandsRegistered(t *testing.T) {
	for _, name := range []string{"seal", "unseal"} {
		if _, ok := commands[name]; !ok {
			t.Fatalf("%s not registered", name)
		}
	}
	var stderr bytes.Buffer
	if code := run([]string{"unseal", "--key", filepath.Join(t.TempDir(), "none.key"), "a", "b"}, &stderr); code == 0 {
		t.Fatal("exit status 0 on failure")
	}
	if n := strings.Count(stderr.String(), "\n"); n != 1 {
		t.Fatalf("want one line, got %q", stderr.String())
	}
}

// On a terminal, a large input gets a progress bar on stderr; a cancelled
// context (Ctrl-C) stops the copy and leaves no OUT.
func TestSealProgressAndCancel(t *testing.T) {
	dir := t.TempDir()
	a := keygen(t, dir, "a", "intl", "")
	in, sealed := filepath.Join(dir, "big"), filepath.Join(dir, "big.phx")
	writeFile(t, in, make([]byte, progressThreshold+1))
	sio, _, errb := testIO(nil, "")
	sio.stderrTTY = true
	if err := sealCmd(context.Background(), []string{"--to", a + ".pub", in, sealed}, sio); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errb.String(), "sealing [") || !strings.Contains(errb.String(), "100%") {
		t.Fatalf("no progress bar: %q", errb.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := filepath.Join(dir, "out")
	if err := unsealCmd(ctx, []string{"--key", a + ".key", sealed, out}, sio); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled unseal: %v", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("OUT exists after cancel")
	}
}

func TestSealRewrapCLI(t *testing.T) {
	dir := t.TempDir()
	a := keygen(t, dir, "a", "gm", "")
	c := keygen(t, dir, "c", "gm", "")
	pt := bytes.Repeat([]byte("imaging study "), 10_000)
	in, sealed, re, out := filepath.Join(dir, "in"), filepath.Join(dir, "in.phx"), filepath.Join(dir, "re.phx"), filepath.Join(dir, "out")
	writeFile(t, in, pt)
	sio, _, _ := testIO(nil, "")
	ctx := context.Background()
	if err := sealCmd(ctx, []string{"--to", a + ".pub", in, sealed}, sio); err != nil {
		t.Fatal(err)
	}
	if err := sealCmd(ctx, []string{"rewrap", "--key", a + ".key", "--to", c + ".pub", sealed, re}, sio); err != nil {
		t.Fatal(err)
	}
	if err := unsealCmd(ctx, []string{"--key", c + ".key", re, out}, sio); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, pt) {
		t.Fatal("rewrapped file does not round-trip")
	}
	if err := unsealCmd(ctx, []string{"--key", a + ".key", re, out}, sio); seal.Code(err) != "SEAL_NO_KEY" {
		t.Fatalf("old recipient after rewrap: %v", err)
	}
	if err := sealCmd(ctx, []string{"rewrap", "--key", c + ".key", "--to", a + ".pub", sealed, filepath.Join(dir, "x")}, sio); seal.Code(err) != "SEAL_NO_KEY" {
		t.Fatalf("rewrap without the key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("output left after a failed rewrap")
	}
}
