package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"phix/audit"
	"phix/audit/auditpg"
	"phix/audit/auditsqlite"
)

func init() {
	register(command{name: "audit", summary: "verify the audit log, print and check inclusion proofs, export to a SIEM", run: runAudit})
}

// auditStdout is where audit subcommands print (tests replace it).
var auditStdout io.Writer = os.Stdout

const auditUsage = `usage:
  phix audit verify --db URL [--trusted CHECKPOINT_FILE] [--key VKEY|@FILE]...
  phix audit prove  --db URL [--size N] INDEX
  phix audit check  --proof FILE [--key VKEY|@FILE]...
  phix audit export --db URL --to relp://HOST:PORT|syslog://HOST:PORT|file:PATH [...]

URL is a PostgreSQL URL (postgres://...) or a SQLite file (sqlite:PATH or a path).
verify exits 3 and names the first failing index when the log was tampered with`

func runAudit(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return &exitError{code: 2, err: errors.New(auditUsage)}
	}
	switch args[0] {
	case "verify":
		return auditVerify(ctx, args[1:])
	case "prove":
		return auditProve(ctx, args[1:])
	case "check":
		return auditCheck(args[1:])
	case "export":
		return auditExport(ctx, args[1:])
	case "-h", "--help", "help":
		fmt.Fprintln(auditStdout, auditUsage)
		return nil
	}
	return &exitError{code: 2, err: fmt.Errorf("unknown audit subcommand %q\n%s", auditTrunc(args[0]), auditUsage)}
}

func auditTrunc(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

type auditKeys []string

func (k *auditKeys) String() string     { return strings.Join(*k, ",") }
func (k *auditKeys) Set(v string) error { *k = append(*k, v); return nil }

// verifiers reads --key values (a verifier key, or @file holding one per line).
func (k auditKeys) verifiers() ([]*audit.Verifier, error) {
	var out []*audit.Verifier
	for _, v := range k {
		lines := []string{v}
		if path, ok := strings.CutPrefix(v, "@"); ok {
			data, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("read key file: %w", err)
			}
			lines = strings.Fields(string(data))
		}
		for _, l := range lines {
			ver, err := audit.ParseVerifier(l)
			if err != nil {
				return nil, err
			}
			out = append(out, ver)
		}
	}
	return out, nil
}

// auditParse parses flags that may come before or after positional arguments.
func auditParse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, &exitError{code: 2, err: err}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func auditOpen(ctx context.Context, url string) (audit.Backend, error) {
	switch {
	case url == "":
		return nil, &exitError{code: 2, err: errors.New("--db is required")}
	case strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://"):
		return auditpg.Open(ctx, url)
	default:
		path := strings.TrimPrefix(strings.TrimPrefix(url, "sqlite://"), "sqlite:")
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("no SQLite database at that path")
		}
		return auditsqlite.Open(ctx, path)
	}
}

func auditVerify(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	db := fs.String("db", "", "database URL")
	trusted := fs.String("trusted", "", "file holding a checkpoint kept from earlier")
	var keys auditKeys
	fs.Var(&keys, "key", "checkpoint verifier key, or @file (repeatable)")
	pos, err := auditParse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return &exitError{code: 2, err: errors.New("verify takes no arguments\n" + auditUsage)}
	}
	opts := audit.VerifyOptions{}
	if opts.Verifiers, err = keys.verifiers(); err != nil {
		return &exitError{code: 2, err: err}
	}
	if *trusted != "" {
		if opts.Trusted, err = os.ReadFile(*trusted); err != nil {
			return &exitError{code: 2, err: fmt.Errorf("read trusted checkpoint: %w", err)}
		}
	}
	b, err := auditOpen(ctx, *db)
	if err != nil {
		return err
	}
	defer b.Close()
	rep, err := audit.Verify(ctx, b, opts)
	var f *audit.Failure
	if errors.As(err, &f) {
		_ = json.NewEncoder(auditStdout).Encode(map[string]any{"ok": false, "failure": f})
		return &exitError{code: 3, err: f}
	}
	if err != nil {
		return err
	}
	out := map[string]any{"ok": true, "report": rep}
	if rep.UsedStoredKeys {
		out["warning"] = "no --key given: signatures were checked with keys read from the database, which proves internal consistency only"
	}
	return json.NewEncoder(auditStdout).Encode(out)
}

func auditProve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("audit prove", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	db := fs.String("db", "", "database URL")
	size := fs.Int64("size", 0, "tree size (default: the latest checkpoint)")
	pos, err := auditParse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return &exitError{code: 2, err: errors.New("prove takes one INDEX\n" + auditUsage)}
	}
	index, err := strconv.ParseInt(pos[0], 10, 64)
	if err != nil || index < 0 || *size < 0 {
		return &exitError{code: 2, err: errors.New("INDEX and --size must be non-negative integers")}
	}
	b, err := auditOpen(ctx, *db)
	if err != nil {
		return err
	}
	defer b.Close()
	p, err := audit.Prove(ctx, b, index, *size)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(auditStdout)
	enc.SetIndent("", "  ")
	return enc.Encode(p)
}

func auditCheck(args []string) error {
	fs := flag.NewFlagSet("audit check", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	proof := fs.String("proof", "", "file holding the output of 'phix audit prove' (- for stdin)")
	var keys auditKeys
	fs.Var(&keys, "key", "checkpoint verifier key, or @file (repeatable)")
	if _, err := auditParse(fs, args); err != nil {
		return err
	}
	vs, err := keys.verifiers()
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	var data []byte
	if *proof == "-" {
		data, err = io.ReadAll(io.LimitReader(os.Stdin, 16<<20))
	} else {
		data, err = os.ReadFile(*proof)
	}
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("read proof: %w", err)}
	}
	var p audit.InclusionProof
	if err := json.Unmarshal(data, &p); err != nil {
		return &exitError{code: 2, err: errors.New("the proof file is not a proof")}
	}
	if err := audit.CheckInclusion(&p, vs); err != nil {
		return &exitError{code: 3, err: err}
	}
	msg := "proof OK: event %d is in the tree of size %d"
	if len(vs) > 0 {
		msg += " committed to by a checkpoint signed by a given key"
	} else {
		msg += " (no --key: the checkpoint signature was not checked)"
	}
	fmt.Fprintf(auditStdout, msg+"\n", p.Index, p.Size)
	return nil
}
