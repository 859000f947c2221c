package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"phix/deid"
	"phix/fhir"
	"phix/suite"
)

// deidDICOM is set by the DICOM de-identifier when it is built in.
var deidDICOM func(ctx context.Context, args []string) error

func init() {
	register(command{
		name:    "deid",
		summary: "de-identify a FHIR Bundle or NDJSON (deid --profile P [--key-file F] IN OUT; deid dicom ...)",
		run:     runDeid,
	})
}

func runDeid(ctx context.Context, args []string) error {
	return deidCmd(ctx, args, os.Stdin, os.Stdout)
}

// deidCmd is runDeid with its standard streams passed in (for tests).
func deidCmd(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "dicom" {
		if deidDICOM == nil {
			return errors.New("DICOM de-identification is not built into this binary")
		}
		return deidDICOM(ctx, args[1:])
	}
	fs := flag.NewFlagSet("deid", flag.ContinueOnError)
	profile := fs.String("profile", "safe-harbor", "safe-harbor, limited-data-set, expert, china, or a profile file")
	keyFile := fs.String("key-file", "", "file with the project secret (at least 32 bytes; hex or raw); default $PHIX_DEID_KEY, else a one-time random key")
	suiteID := fs.String("suite", "intl", "intl or gm")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return errors.New("usage: phix deid --profile P [--key-file F] IN OUT (- for stdin/stdout)")
	}
	keys, err := deidKeys(*keyFile, *suiteID, nil)
	if err != nil {
		return err
	}
	p, err := deid.LoadProfile(*profile)
	if err != nil {
		return err
	}
	e, err := deid.New(p, keys, deid.Options{})
	if err != nil {
		return err
	}
	in, out := fs.Arg(0), fs.Arg(1)
	var data []byte
	if in == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(in)
	}
	if err != nil {
		return fmt.Errorf("read input: %w", err)
	}
	var buf bytes.Buffer
	if isBundle(data) {
		r, err := fhir.Parse(data, fhir.ParseOptions{})
		if err != nil {
			return fmt.Errorf("input: %w", err)
		}
		res, err := e.Bundle(ctx, r)
		if err != nil {
			return err
		}
		b, err := fhir.Marshal(res)
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	} else if err := e.NDJSON(ctx, bytes.NewReader(data), &buf); err != nil {
		return err
	}
	// Nothing is written unless the whole input passed.
	if out == "-" {
		w := bufio.NewWriter(stdout)
		w.Write(buf.Bytes())
		return w.Flush()
	}
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

// isBundle reports whether the whole input is one Bundle (possibly
// pretty-printed) rather than NDJSON.
// deidKeys derives the de-identification keys of suiteID from the project
// secret in keyFile, wiping the secret at once. An error reading the file is
// returned as it is; a derivation error goes through wrap when it is set.
func deidKeys(keyFile, suiteID string, wrap func(error) error) (*deid.StaticKeys, error) {
	secret, err := deidSecret(keyFile)
	if err != nil {
		return nil, err
	}
	keys, err := deid.DeriveKeys(suite.ID(suiteID), secret)
	suite.Wipe(secret)
	if err != nil && wrap != nil {
		err = wrap(err)
	}
	return keys, err
}

// deidSecret reads the project secret from keyFile, or from $PHIX_DEID_KEY
// (hex, at least 32 bytes) when no file is named. With neither, it makes a
// one-time random secret and says so on stderr: the output is de-identified
// all the same, but its pseudonyms, date shifts and UIDs match no other run,
// which is right for a one-off export and wrong for a longitudinal project.
func deidSecret(keyFile string) ([]byte, error) {
	if keyFile != "" {
		return readSecret(keyFile)
	}
	if env := strings.TrimSpace(os.Getenv("PHIX_DEID_KEY")); env != "" {
		if dec, ok := decodeHex(env); ok && len(dec) >= 32 {
			return dec, nil
		}
		return nil, errors.New("PHIX_DEID_KEY must hold at least 64 hex digits")
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	fmt.Fprintln(os.Stderr, "phix deid: no --key-file or PHIX_DEID_KEY: using a one-time random key (pseudonyms and date shifts will not match other runs)")
	return secret, nil
}

func isBundle(data []byte) bool {
	t := bytes.TrimSpace(data)
	if len(t) == 0 || t[0] != '{' {
		return false
	}
	if r, err := fhir.Parse(t, fhir.ParseOptions{}); err == nil {
		return r.Type == "Bundle"
	}
	return false
}

func readSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, errors.New("cannot read the key file")
	}
	s := strings.TrimSpace(string(b))
	if dec, ok := decodeHex(s); ok && len(dec) >= 32 {
		return dec, nil
	}
	if len(b) < 32 {
		return nil, errors.New("key file must hold at least 32 bytes (or 64 hex digits)")
	}
	return b, nil
}

func decodeHex(s string) ([]byte, bool) {
	if len(s)%2 != 0 {
		return nil, false
	}
	out := make([]byte, len(s)/2)
	for i := 0; i < len(out); i++ {
		var v byte
		for _, c := range []byte(s[2*i : 2*i+2]) {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= c - '0'
			case c >= 'a' && c <= 'f':
				v |= c - 'a' + 10
			case c >= 'A' && c <= 'F':
				v |= c - 'A' + 10
			default:
				return nil, false
			}
		}
		out[i] = v
	}
	return out, true
}
