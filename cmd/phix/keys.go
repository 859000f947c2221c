package main

// phix keys: the kms keyring (docs/kms.md). Subcommands only parse flags and
// call package kms.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"phix/auth/nodeauth"
	"phix/auth/secretbox"
	"phix/auth/totp"
	"phix/kms"
	"phix/kms/keyring"
	"phix/kms/pkcs11"
	"phix/kms/sqlstore"
	"phix/suite"
)

func init() {
	register(command{name: "keys", summary: "key management: init, list, rotate, approve, destroy, export-public", run: runKeys})
}

// keysIO is what the keys commands write to; tests replace it.
type keysIO struct {
	stdout, stderr io.Writer
	now            func() time.Time
}

var keysOut = keysIO{stdout: os.Stdout, stderr: os.Stderr, now: time.Now}

const keysUsage = `usage: phix keys <subcommand> [flags]

  init            create a keyring (if needed) and a hospital's KEKs
  list            list KEKs, versions and rotation progress
  rotate          new KEK version; re-wrap its data keys (--resume continues)
  retire          set min_decryption_version of a KEK
  custodian-new   make a custodian signing key file (and print its public key)
  enroll          enrol a custodian's public key (the third on needs 2 approvals)
  approve         sign an approval for destroy-kek / export-kek / enroll-custodian
  destroy         destroy a KEK version (needs 2 approvals)
  export          export a KEK version wrapped for an escrow key (needs 2 approvals)
  escrow-new      make an escrow recipient key file (sealed by $PHIX_ESCROW_PASSPHRASE)
  import          restore an exported KEK version with the escrow key (local backend)
  export-public   print a hospital's public keys (signing, recipient) as JSON
  log             print the key-operation log
  rekey           move a local keyring to a new master key (offline)

Keyring: --dir DIR (SQLite, default $PHIX_KEYRING_DIR) or --db postgres://...
Master key (local backend): --master-key-file F, or $PHIX_MASTER_KEY (base64),
or a passphrase in $PHIX_MASTER_PASSPHRASE. HSM: --backend pkcs11 with
--pkcs11-module/--pkcs11-token/--pkcs11-slot and the PIN in $PHIX_PKCS11_PIN.
`

func runKeys(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(keysOut.stderr, keysUsage)
		if len(args) == 0 {
			return &exitError{code: 2, err: errors.New("missing subcommand")}
		}
		return nil
	}
	sub, rest := args[0], args[1:]
	cmds := map[string]func(context.Context, []string) error{
		"init": keysInit, "list": keysList, "rotate": keysRotate, "retire": keysRetire,
		"custodian-new": keysCustodianNew, "enroll": keysEnroll, "approve": keysApprove,
		"destroy": keysDestroy, "export": keysExport, "export-public": keysExportPublic, "log": keysLog, "rekey": keysRekey,
		"escrow-new": keysEscrowNew, "import": keysImport,
	}
	f, ok := cmds[sub]
	if !ok {
		return &exitError{code: 2, err: fmt.Errorf("unknown subcommand %q (see phix keys help)", sub)}
	}
	return f(ctx, rest)
}

// keyringFlags are the flags that locate and open a keyring.
type keyringFlags struct {
	dir, db, backend, masterFile, actor string
	p11Module, p11Token, p11Slot, suite string
	gmAESWrap                           bool
}

func newKeysFlags(name string, kf *keyringFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("phix keys "+name, flag.ContinueOnError)
	fs.SetOutput(keysOut.stderr)
	if kf != nil {
		fs.StringVar(&kf.dir, "dir", os.Getenv("PHIX_KEYRING_DIR"), "keyring directory (SQLite keyring.db)")
		fs.StringVar(&kf.db, "db", "", "PostgreSQL DSN for the keyring instead of --dir")
		fs.StringVar(&kf.backend, "backend", "local", "KEK backend: local or pkcs11")
		fs.StringVar(&kf.masterFile, "master-key-file", "", "file holding the base64 master key (local backend)")
		fs.StringVar(&kf.actor, "actor", os.Getenv("USER"), "who performs the operation (recorded in the log)")
		fs.StringVar(&kf.p11Module, "pkcs11-module", "", "PKCS#11 library (default $PHIX_PKCS11_MODULE or SoftHSM2)")
		fs.StringVar(&kf.p11Token, "pkcs11-token", "", "token label (default $PHIX_PKCS11_TOKEN)")
		fs.StringVar(&kf.p11Slot, "pkcs11-slot", "", "slot id, instead of a token label (default $PHIX_PKCS11_SLOT)")
		fs.BoolVar(&kf.gmAESWrap, "hsm-gm-aes-wrap", false, "allow gm-suite KEKs as AES keys in an HSM without SM4 (docs/kms.md)")
		fs.StringVar(&kf.suite, "keyring-suite", "intl", "suite sealing a new local keyring's check value")
	}
	return fs
}

func keysParse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &exitError{code: 2, err: err}
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, err: fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

func keysUsageErr(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

// openKeyring opens store, backend and manager; close releases them.
func openKeyring(ctx context.Context, kf *keyringFlags) (m *kms.Manager, closeFn func(), err error) {
	var st *sqlstore.Store
	switch {
	case kf.db != "":
		st, err = sqlstore.OpenPostgres(ctx, kf.db)
	case kf.dir != "":
		st, err = sqlstore.OpenSQLite(ctx, filepath.Join(kf.dir, "keyring.db"))
	default:
		return nil, nil, keysUsageErr("say where the keyring is: --dir DIR (or $PHIX_KEYRING_DIR) or --db DSN")
	}
	if err != nil {
		return nil, nil, err
	}
	closers := []func(){func() { _ = st.Close() }}
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	var be kms.Backend
	switch kf.backend {
	case "local":
		master, err := keysMaster(kf)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		b, err := keyring.Open(ctx, st, master, keyring.Options{Suite: kf.suite})
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		be = b
	case "pkcs11":
		cfg, err := pkcs11.ConfigFromEnv()
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		if kf.p11Module != "" {
			cfg.Module = kf.p11Module
		}
		if kf.p11Token != "" {
			cfg.TokenLabel = kf.p11Token
		}
		if kf.p11Slot != "" {
			var n uint
			if _, err := fmt.Sscan(kf.p11Slot, &n); err != nil {
				closeAll()
				return nil, nil, keysUsageErr("--pkcs11-slot must be a number")
			}
			cfg.Slot = &n
		}
		cfg.AllowAESWrapForGM = kf.gmAESWrap
		b, err := pkcs11.Open(cfg)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		closers = append(closers, b.Close)
		be = b
	default:
		closeAll()
		return nil, nil, keysUsageErr("--backend must be local or pkcs11")
	}
	m, err = kms.Open(ctx, kms.Config{Store: st, Backend: be, Now: keysOut.now})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return m, closeAll, nil
}

func keysMaster(kf *keyringFlags) (keyring.Master, error) {
	switch {
	case kf.masterFile != "":
		return keyring.MasterKeyFromFile(kf.masterFile)
	case os.Getenv(keyring.EnvMasterKey) != "":
		return keyring.MasterKeyFromEnv()
	case os.Getenv("PHIX_MASTER_PASSPHRASE") != "":
		return keyring.Passphrase(os.Getenv("PHIX_MASTER_PASSPHRASE"))
	}
	return keyring.Master{}, keysUsageErr("no master key: --master-key-file, $%s or $PHIX_MASTER_PASSPHRASE", keyring.EnvMasterKey)
}

func keysCtx(ctx context.Context, kf *keyringFlags) context.Context {
	a := kf.actor
	if a == "" {
		a = "cli"
	}
	return kms.WithActor(ctx, a)
}

func keysInit(ctx context.Context, args []string) error {
	var kf keyringFlags
	fs := newKeysFlags("init", &kf)
	hospital := fs.String("hospital", "", "hospital id (required)")
	suiteID := fs.String("suite", "intl", "suite of the hospital's keys: intl or gm")
	newMaster := fs.Bool("new-master-key", false, "generate the master key into --master-key-file (which must not exist)")
	if err := keysParse(fs, args); err != nil {
		return err
	}
	if *hospital == "" {
		return keysUsageErr("--hospital is required")
	}
	if *newMaster {
		if kf.masterFile == "" {
			return keysUsageErr("--new-master-key needs --master-key-file")
		}
		if err := writeNewMasterKey(kf.masterFile); err != nil {
			return err
		}
	}
	return withKeyring(ctx, &kf, func(m *kms.Manager) error {
		created, err := m.InitHospital(keysCtx(ctx, &kf), *hospital, *suiteID)
		for _, id := range created {
			fmt.Fprintf(keysOut.stdout, "created %s version 1\n", id)
		}
		if err == nil && len(created) == 0 {
			fmt.Fprintf(keysOut.stdout, "hospital %s already has all its KEKs\n", *hospital)
		}
		return err
	})
}

func keysList(ctx context.Context, args []string) error {
	var kf keyringFlags
	fs := newKeysFlags("list", &kf)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := keysParse(fs, args); err != nil {
		return err
	}
	return withKeyring(ctx, &kf, func(m *kms.Manager) error {
		infos, err := m.List(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(infos)
		}
		tw := tabwriter.NewWriter(keysOut.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KEK\tSUITE\tBACKEND\tCURRENT\tMIN-DECRYPT\tVERSIONS\tROTATION")
		for _, k := range infos {
			var vs []string
			for _, v := range k.Versions {
				s := fmt.Sprint(v.Version)
				switch {
				case v.Destroyed != "":
					s += "(destroyed)"
				case v.Retired:
					s += "(retired)"
				}
				vs = append(vs, s)
			}
			rot := "-"
			if r := k.Rotation; r != nil {
				rot = fmt.Sprintf("to v%d %d/%d", r.ToVersion, r.Done, r.Total)
				if !r.Finished {
					rot += " UNFINISHED"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", k.ID, k.Suite, k.Backend, k.Current, k.MinDecryption, strings.Join(vs, ","), rot)
		}
		return tw.Flush()
	})
}

func keysRotate(ctx context.Context, args []string) error {
	var kf keyringFlags
	fs := newKeysFlags("rotate", &kf)
	kek := fs.String("kek", "", "KEK to rotate, e.g. hospital-a/data (required)")
	resume := fs.Bool("resume", false, "resume the unfinished rotation instead of starting one")
	batch := fs.Int("batch", 100, "data keys re-wrapped between progress saves")
	if err := keysParse(fs, args); err != nil {
		return err
	}
	if *kek == "" {
		return keysUsageErr("--kek is required")
	}
	return withKeyring(ctx, &kf, func(m *kms.Manager) error {
		actx := keysCtx(ctx, &kf)
		if !*resume {
			r, err := m.Rotate(actx, *kek)
			if kms.CodeOf(err) == kms.CodeRotationRunning {
				return fmt.Errorf("%w; run: phix keys rotate --kek %s --resume", err, *kek)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(keysOut.stdout, "%s: version %d is current; %d data keys to re-wrap\n", *kek, r.ToVersion, r.Total)
		}
		r, err := m.ResumeRotation(actx, *kek, kms.RotateOptions{BatchSize: *batch, Progress: func(r kms.Rotation) {
			fmt.Fprintf(keysOut.stdout, "re-wrapped %d/%d\n", r.Done, r.Total)
		}})
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return fmt.Errorf("interrupted at %d/%d; progress is saved: run phix keys rotate --kek %s --resume", r.Done, r.Total, *kek)
			}
			return err
		}
		fmt.Fprintf(keysOut.stdout, "%s: rotation to version %d finished (%d/%d)\n", *kek, r.ToVersion, r.Done, r.Total)
		return nil
	})
}

func keysRetire(ctx context.Context, args []string) error {
	var kf keyringFlags
	fs := newKeysFlags("retire", &kf)
	kek := fs.String("kek", "", "KEK (required)")
	minV := fs.Int("min-version", 0, "lowest version still allowed to unwrap (required)")
	force := fs.Bool("force", false, "retire even if stored data keys are still wrapped under older versions")
	if err := keysParse(fs, args); err != nil {
		return err
	}
	if *kek == "" || *minV < 1 {
		return keysUsageErr("--kek and --min-version are required")
	}
	return withKeyring(ctx, &kf, func(m *kms.Manager) error {
		if err := m.SetMinDecryptionVersion(keysCtx(ctx, &kf), *kek, *minV, *force); err != nil {
			return err
		}
		fmt.Fprintf(keysOut.stdout, "%s: versions below %d retired\n", *kek, *minV)
		return nil
	})
}

// envCustodianPassphrase seals and opens custodian key files.
const envCustodianPassphrase = "PHIX_CUSTODIAN_PASSPHRASE"

func custodianPassphrase() []byte {
	if p := os.Getenv(envCustodianPassphrase); p != "" {
		return []byte(p)
	}
	return nil
}

func keysCustodianNew(_ context.Context, args []string) error {
	fs := newKeysFlags("custodian-new", nil)
	id := fs.String("id", "", "custodian id (required)")
	suiteID := fs.String("suite", "intl", "suite of the signing key")
	out := fs.String("out", "", "private key file to create (required); OUT.pub gets the public key")
	clear := fs.Bool("no-passphrase", false, "keep the private key unsealed (only on an encrypted token)")
	if err := keysParse(fs, args); err != nil {
		return err
	}
	if *id == "" || *out == "" {
		return keysUsageErr("--id and --out are required")
	}
	pass := custodianPassphrase()
	if pass == nil && !*clear {
		return keysUsageErr("set $%s to seal the custodian key (or --no-passphrase)", envCustodianPassphrase)
	}
	if *clear {
		pass = nil
	}
	f, sk, err := keyring.NewCustodianKey(*id, *suiteID, pass, nil)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(f)
	if err := writeNewFile(*out, b, "custodian key file", false); err != nil {
		return err
	}
	pub := *out + ".pub"
	pb, _ := json.Marshal(f.PublicOnly())
	if err := os.WriteFile(pub, pb, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(keysOut.stdout, "custodian %s: private key %s, public key %s (key id %s)\n", *id, *out, pub, sk.KeyID())
	return nil
}

func readCustodianFile(path string) (keyring.CustodianKeyFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return keyring.CustodianKeyFile{}, fmt.Errorf("read custodian key file: %w", err)
	}
	return keyring.ParseCustodianKeyFile(b)
}

func readApprovals(paths []string) ([]kms.Approval, error) {
	var out []kms.Approval
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read approval: %w", err)
		}
		var a kms.Approval
		if err := json.Unmarshal(b, &a); err != nil {
			return nil, kms.Errorf(kms.CodeBadInput, "%s is not an approval file", filepath.Base(p))
		}
		out = append(out, a)
	}
	return out, nil
}

// keysMulti collects a repeatable flag.
type keysMulti []string

// String implements flag.Value.
func (m *keysMulti) String() string { return strings.Join(*m, ",") }

// Set implements flag.Value.
func (m *keysMulti) Set(v string) error { *m = append(*m, v); return nil }

func keysEnroll(ctx context.Context, args []string) error {
	var kf keyringFlags
	fs := newKeysFlags("enroll", &kf)
	pub := fs.String("public-key", "", "custodian public key file from custodian-new (required)")
	var approvals keysMulti
	fs.Var(&approvals, "approval", "approval file (repeat; needed from the third custodian on)")
	if err := keysParse(fs, args); err != nil {
		return err
	}
	if *pub == "" {
		return keysUsageErr("--public-key is required")
	}
	c, err := readCustodianFile(*pub)
	if err != nil {
		return err
	}
	as, err := readApprovals(approvals)
	if err != nil {
		return err
	}
	return withKeyring(ctx, &kf, func(m *kms.Manager) error {
		if err := m.EnrollCustodian(keysCtx(ctx, &kf), c.ID, c.Suite, c.Public, as); err != nil {
			return err
		}
		fmt.Fprintf(keysOut.stdout, "enrolled custodian %s\n", c.ID)
		return nil
	})
}

func keysApprove(_ context.Context, args []string) error {
	fs := newKeysFlags("approve", nil)
	keyFile := fs.String("custodian-key", "", "the approving custodian's private key file (required)")
	op := fs.String("op", kms.OpDestroyKEK, "operation: destroy-kek, export-kek, enroll-custodian or destroy-data-key (a patient $erase: --kek is then the data key id HOSPITAL/patient/ID, version 0)")
	key := fs.String("kek", "", "KEK id (or, for enroll-custodian, the new custodian's id) (required)")
	version := fs.Int("version", 0, "KEK version (0 for enroll-custodian)")
	target := fs.String("target", "", "export: recipient key id; enroll: the new custodian's key id")
	ttl := fs.Duration("ttl", time.Hour, "validity (at most 24h)")
	out := fs.String("out", "", "approval file to write (default stdout)")
	if err := keysParse(fs, args); err != nil {
		return err
	}
	if *keyFile == "" || *key == "" {
		return keysUsageErr("--custodian-key and --kek are required")
	}
	c, err := readCustodianFile(*keyFile)
	if err != nil {
		return err
	}
	sk, err := c.SigningKey(custodianPassphrase())
	if err != nil {
		return err
	}
	a, err := kms.SignApproval(sk, c.ID, *op, *key, *version, *target, keysOut.now(), *ttl)
	if err != nil {
		return err
	}
	b, _ := json.MarshalIndent(a, "", "  ")
	b = append(b, '\n')
	if *out == "" {
		_, err = keysOut.stdout.Write(b)
		return err
	}
	if err := os.WriteFile(*out, b, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(keysOut.stdout, "%s approves %s of %s version %d until %s: %s\n", c.ID, *op, *key, *version, a.Expires.Format(time.RFC3339), *out)
	return nil
}

func keysDestroy(ctx context.Context, args []string) error {
	var kf keyringFlags
	fs := newKeysFlags("destroy", &kf)
	kek := fs.String("kek", "", "KEK id (required)")
	version := fs.Int("version", 0, "version to destroy (required)")
	var approvals keysMulti
	fs.Var(&approvals, "approval", "approval file (repeat: two custodians)")
	sf := secondFactorFlags(fs)
	if err := keysParse(fs, args); err != nil {
		return err
	}
	if *kek == "" || *version < 1 {
		return keysUsageErr("--kek and --version are required")
	}
	if err := sf.check(); err != nil {
		return err
	}
	as, err := readApprovals(approvals)
	if err != nil {
		return err
	}
	return withKeyring(ctx, &kf, func(m *kms.Manager) error {
		kctx := keysCtx(ctx, &kf)
		// Approvals first, unspent: a refused set must not use up the
		// operator's code. DestroyKEKVersion refuses (and records) it.
		if err := m.CheckApprovals(kctx, kms.OpDestroyKEK, *kek, *version, "", as); err == nil {
			if err := sf.verify(ctx, m, kf.actor, *kek, kf.suite); err != nil {
				return err
			}
		}
		if err := m.DestroyKEKVersion(kctx, *kek, *version, as); err != nil {
			return err
		}
		fmt.Fprintf(keysOut.stdout, "destroyed %s version %d: everything wrapped under it is now undecryptable\n", *kek, *version)
		return nil
	})
}

func keysExport(ctx context.Context, args []string) error {
	var kf keyringFlags
	fs := newKeysFlags("export", &kf)
	kek := fs.String("kek", "", "KEK id (required)")
	version := fs.Int("version", 0, "version (required)")
	recipient := fs.String("recipient", "", "file with the escrow recipient public key, base64 (required)")
	out := fs.String("out", "", "file to write the wrapped KEK to (required)")
	var approvals keysMulti
	fs.Var(&approvals, "approval", "approval file (repeat: two custodians)")
	if err := keysParse(fs, args); err != nil {
		return err
	}
	if *kek == "" || *version < 1 || *recipient == "" || *out == "" {
		return keysUsageErr("--kek, --version, --recipient and --out are required")
	}
	rb, err := os.ReadFile(*recipient)
	if err != nil {
		return fmt.Errorf("read recipient key: %w", err)
	}
	pub, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(rb)))
	if err != nil {
		return kms.Errorf(kms.CodeBadInput, "recipient key file is not base64")
	}
	as, err := readApprovals(approvals)
	if err != nil {
		return err
	}
	return withKeyring(ctx, &kf, func(m *kms.Manager) error {
		x, err := m.ExportKEK(keysCtx(ctx, &kf), *kek, *version, pub, as)
		if err != nil {
			return err
		}
		b, _ := json.MarshalIndent(x, "", "  ")
		if err := os.WriteFile(*out, append(b, '\n'), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(keysOut.stdout, "exported %s version %d for recipient %s to %s\n", *kek, *version, x.Recipient, *out)
		return nil
	})
}

func keysExportPublic(ctx context.Context, args []string) error {
	var kf keyringFlags
	fs := newKeysFlags("export-public", &kf)
	hospital := fs.String("hospital", "", "hospital id (required)")
	if err := keysParse(fs, args); err != nil {
		return err
	}
	if *hospital == "" {
		return keysUsageErr("--hospital is required")
	}
	return withKeyring(ctx, &kf, func(m *kms.Manager) error {
		pubs, err := m.PublicKeys(ctx, *hospital)
		if err != nil {
			return err
		}
		return printJSON(pubs)
	})
}

func keysLog(ctx context.Context, args []string) error {
	var kf keyringFlags
	fs := newKeysFlags("log", &kf)
	after := fs.Int64("after", 0, "print entries after this sequence number")
	if err := keysParse(fs, args); err != nil {
		return err
	}
	return withKeyring(ctx, &kf, func(m *kms.Manager) error {
		ops, err := m.Store().Ops(ctx, *after, 10000)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(keysOut.stdout)
		for _, op := range ops {
			if err := enc.Encode(op); err != nil {
				return err
			}
		}
		return nil
	})
}

func keysRekey(ctx context.Context, args []string) error {
	var kf keyringFlags
	fs := newKeysFlags("rekey", &kf)
	newFile := fs.String("new-master-key-file", "", "file with the new base64 master key (or $PHIX_NEW_MASTER_PASSPHRASE)")
	generate := fs.Bool("generate", false, "generate the new master key into --new-master-key-file (which must not exist)")
	if err := keysParse(fs, args); err != nil {
		return err
	}
	if kf.backend != "local" {
		return keysUsageErr("rekey applies to the local backend only")
	}
	if kf.dir == "" && kf.db == "" {
		return keysUsageErr("say where the keyring is: --dir DIR or --db DSN")
	}
	old, err := keysMaster(&kf)
	if err != nil {
		return err
	}
	var next keyring.Master
	switch {
	case *newFile != "" && *generate:
		if err := writeNewMasterKey(*newFile); err != nil {
			return err
		}
		next, err = keyring.MasterKeyFromFile(*newFile)
	case *newFile != "":
		next, err = keyring.MasterKeyFromFile(*newFile)
	case os.Getenv("PHIX_NEW_MASTER_PASSPHRASE") != "":
		next, err = keyring.Passphrase(os.Getenv("PHIX_NEW_MASTER_PASSPHRASE"))
	default:
		return keysUsageErr("no new master key: --new-master-key-file or $PHIX_NEW_MASTER_PASSPHRASE")
	}
	if err != nil {
		return err
	}
	var st *sqlstore.Store
	if kf.db != "" {
		st, err = sqlstore.OpenPostgres(ctx, kf.db)
	} else {
		st, err = sqlstore.OpenSQLite(ctx, filepath.Join(kf.dir, "keyring.db"))
	}
	if err != nil {
		return err
	}
	defer st.Close()
	n, err := keyring.Rekey(ctx, st, old, next, keyring.Options{})
	if err != nil {
		return err
	}
	fmt.Fprintf(keysOut.stdout, "re-sealed %d KEK versions under the new master key; restart every process using this keyring\n", n)
	return nil
}

// writeNewMasterKey writes a fresh random master key, base64, mode 0600;
// it never overwrites a file.
func writeNewMasterKey(path string) error {
	k := make([]byte, keyring.MasterKeySize)
	_, _ = rand.Read(k)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := writeNewFile(path, []byte(base64.StdEncoding.EncodeToString(k)+"\n"), "master key file", true); err != nil {
		return err
	}
	fmt.Fprintf(keysOut.stderr, "wrote a new master key to %s: back it up offline; without it the keyring is lost\n", path)
	return nil
}

func keysEscrowNew(_ context.Context, args []string) error {
	fs := newKeysFlags("escrow-new", nil)
	suiteID := fs.String("suite", "intl", "suite of the KEKs it will receive")
	out := fs.String("out", "", "escrow key file to create (required); OUT.pub gets the base64 public key for export --recipient")
	if err := keysParse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return keysUsageErr("--out is required")
	}
	pass := os.Getenv("PHIX_ESCROW_PASSPHRASE")
	if pass == "" {
		return keysUsageErr("set $PHIX_ESCROW_PASSPHRASE to seal the escrow key")
	}
	f, err := keyring.NewEscrowKey(*suiteID, []byte(pass), nil)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(f)
	if err := writeNewFile(*out, b, "escrow key file", false); err != nil {
		return err
	}
	if err := os.WriteFile(*out+".pub", []byte(base64.StdEncoding.EncodeToString(f.Public)+"\n"), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(keysOut.stdout, "escrow key %s (public %s.pub): keep it offline\n", *out, *out)
	return nil
}

func keysImport(ctx context.Context, args []string) error {
	var kf keyringFlags
	fs := newKeysFlags("import", &kf)
	in := fs.String("in", "", "export file from phix keys export (required)")
	escrowFile := fs.String("escrow-key", "", "escrow key file (required; passphrase in $PHIX_ESCROW_PASSPHRASE)")
	if err := keysParse(fs, args); err != nil {
		return err
	}
	if *in == "" || *escrowFile == "" {
		return keysUsageErr("--in and --escrow-key are required")
	}
	xb, err := os.ReadFile(*in)
	if err != nil {
		return fmt.Errorf("read export: %w", err)
	}
	var x kms.ExportedKEK
	if err := json.Unmarshal(xb, &x); err != nil {
		return kms.Errorf(kms.CodeBadInput, "%s is not a KEK export", filepath.Base(*in))
	}
	eb, err := os.ReadFile(*escrowFile)
	if err != nil {
		return fmt.Errorf("read escrow key: %w", err)
	}
	ef, err := keyring.ParseEscrowKeyFile(eb)
	if err != nil {
		return err
	}
	rk, err := ef.RecipientKey([]byte(os.Getenv("PHIX_ESCROW_PASSPHRASE")))
	if err != nil {
		return err
	}
	return withKeyring(ctx, &kf, func(m *kms.Manager) error {
		if err := m.ImportKEK(keysCtx(ctx, &kf), x, rk); err != nil {
			return err
		}
		fmt.Fprintf(keysOut.stdout, "imported %s version %d\n", x.KEK, x.Version)
		return nil
	})
}

// withKeyring opens the keyring kf names, runs fn on it and closes it.
func withKeyring(ctx context.Context, kf *keyringFlags, fn func(m *kms.Manager) error) error {
	m, closeFn, err := openKeyring(ctx, kf)
	if err != nil {
		return err
	}
	defer closeFn()
	return fn(m)
}

// printJSON writes v to stdout as indented JSON.
func printJSON(v any) error {
	enc := json.NewEncoder(keysOut.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeNewFile writes data to a file that must not exist yet, mode 0600; a
// failed write removes the partial file. what names the file in the error
// when it cannot be created, and also when it cannot be written if wrapWrite.
func writeNewFile(path string, data []byte, what string, wrapWrite bool) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", what, err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		if wrapWrite {
			return fmt.Errorf("write %s: %w", what, err)
		}
		return err
	}
	return nil
}

// secondFactor is the operator's TOTP, required to destroy a key version
// (issue #6: approvals of key destruction need a second factor, as
// Patient/$erase does). The code is checked against the operator's
// enrolment in the node's authorization-server store (phix auth totp
// enrol), whose secrets the node's keyring seals.
type secondFactor struct {
	authDB, hospital, code *string
}

func secondFactorFlags(fs *flag.FlagSet) *secondFactor {
	return &secondFactor{
		authDB:   fs.String("auth-db", os.Getenv("PHIX_AUTH_DB"), "the node's authorization-server store (SQLite file or postgres:// DSN) holding the operator's TOTP enrolment (required)"),
		hospital: fs.String("hospital", "", "the hospital whose keyring seals the TOTP secrets (default: the KEK id's hospital)"),
		code:     fs.String("totp", os.Getenv("PHIX_TOTP"), "the operator's (--actor) current TOTP code (required; or $PHIX_TOTP)"),
	}
}

func (sf *secondFactor) check() error {
	if *sf.authDB == "" || *sf.code == "" {
		return keysUsageErr("destroying a key needs the operator's second factor: --auth-db and --totp")
	}
	return nil
}

// verify checks the code of user (the --actor) before anything is destroyed.
func (sf *secondFactor) verify(ctx context.Context, m *kms.Manager, user, kek, suiteID string) error {
	hospital := *sf.hospital
	if hospital == "" {
		hospital, _, _ = strings.Cut(kek, "/")
	}
	db, err := nodeauth.OpenDB(ctx, *sf.authDB)
	if err != nil {
		return fmt.Errorf("open the authorization store: %w", err)
	}
	defer db.Close()
	box, err := secretbox.FromKMS(ctx, m, hospital, suite.ID(suiteID))
	if err != nil {
		return err
	}
	if err := nodeauth.NewTOTP(db, box, hospital).Verify(ctx, user, *sf.code); err != nil {
		// The code and the secret never reach the message.
		return &exitError{code: 1, err: fmt.Errorf("second factor refused for %s: %s", user, totp.CodeOf(err))}
	}
	return nil
}
