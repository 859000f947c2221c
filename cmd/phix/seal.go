package main

// phix seal / phix unseal: age-like file sealing with the phix sealed-file
// format (docs/formats/sealed-file.md).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"phix/seal"
	"phix/suite"
)

func init() {
	register(command{name: "seal", summary: "seal a file for recipients (also: seal keygen, seal rewrap)", run: runSeal})
	register(command{name: "unseal", summary: "open a sealed file with a private key", run: runUnseal})
}

// progressThreshold: inputs smaller than this finish before a bar is useful.
const progressThreshold = 16 << 20

// sealIO is what the commands touch outside their arguments, so tests can
// drive them without a terminal or real stdin/stdout.
type sealIO struct {
	stdin      io.Reader
	stdout     io.Writer
	stderr     io.Writer
	stderrTTY  bool
	passphrase func() ([]byte, error)
}

func defaultSealIO() sealIO {
	return sealIO{
		stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr,
		stderrTTY:  isTerminal(os.Stderr),
		passphrase: envPassphrase,
	}
}

// envPassphrase reads PHIX_PASSPHRASE. An unset variable means "no
// passphrase" (the key file is written in the clear, or cannot be opened if
// it is encrypted).
func envPassphrase() ([]byte, error) {
	p, ok := os.LookupEnv("PHIX_PASSPHRASE")
	if !ok || p == "" {
		return nil, nil
	}
	return []byte(p), nil
}

// isTerminal reports whether f is a character device (a terminal; also
// /dev/null, where a progress bar is harmless).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func runSeal(ctx context.Context, args []string) error {
	return sealCmd(ctx, args, defaultSealIO())
}

func runUnseal(ctx context.Context, args []string) error {
	return unsealCmd(ctx, args, defaultSealIO())
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fl := flag.NewFlagSet(name, flag.ContinueOnError)
	fl.SetOutput(stderr)
	return fl
}

func sealCmd(ctx context.Context, args []string, sio sealIO) error {
	if len(args) > 0 && args[0] == "keygen" {
		return keygenCmd(args[1:], sio)
	}
	if len(args) > 0 && args[0] == "rewrap" {
		return rewrapCmd(ctx, args[1:], sio)
	}
	fl := newFlagSet("seal", sio.stderr)
	fl.Usage = func() {
		fmt.Fprintln(sio.stderr, "usage: phix seal [--suite intl|gm] --to NAME.pub [--to OTHER.pub] [--segment-size N] IN OUT")
		fmt.Fprintln(sio.stderr, "       phix seal keygen --suite intl|gm --out NAME [--key-version N]")
		fmt.Fprintln(sio.stderr, "       phix seal rewrap --key NAME.key --to OTHER.pub [--to ...] IN OUT")
		fmt.Fprintln(sio.stderr, "IN or OUT may be - for stdin/stdout.")
		fl.PrintDefaults()
	}
	suiteName := fl.String("suite", "", "algorithm suite: intl or gm (default: the recipients' suite)")
	segSize := fl.Int("segment-size", seal.DefaultSegmentSize, "plaintext bytes per segment")
	var to multiFlag
	fl.Var(&to, "to", "recipient public key file (repeatable)")
	if err := parseInOut(fl, args); err != nil {
		return err
	}
	if len(to) == 0 {
		return &exitError{2, errors.New("need at least one --to recipient")}
	}
	var s suite.Suite
	if *suiteName != "" {
		var err error
		if s, err = suite.Lookup(suite.ID(*suiteName)); err != nil {
			return err
		}
	}
	var recips []seal.Recipient
	for i, path := range to {
		kf, err := readKeyFile(path, nil)
		if err != nil {
			return fmt.Errorf("recipient %d: %w", i+1, err)
		}
		if s == nil {
			s = kf.Suite
		}
		if kf.Suite.ID() != s.ID() {
			return fmt.Errorf("recipient %d is a %s key, the file is sealed with %s", i+1, kf.Suite.ID(), s.ID())
		}
		recips = append(recips, kf.Recipient())
	}
	return pipe(ctx, fl, sio, "sealing", func(src io.Reader, out io.Writer) error {
		w, err := seal.NewWriter(out, seal.Options{Suite: s, Recipients: recips, SegmentSize: *segSize})
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, src); err != nil {
			return err
		}
		return w.Close()
	})
}

func unsealCmd(ctx context.Context, args []string, sio sealIO) error {
	fl := newFlagSet("unseal", sio.stderr)
	fl.Usage = func() {
		fmt.Fprintln(sio.stderr, "usage: phix unseal --key NAME.key [--key OTHER.key] IN OUT")
		fmt.Fprintln(sio.stderr, "IN or OUT may be - for stdin/stdout. An encrypted key reads PHIX_PASSPHRASE.")
		fmt.Fprintln(sio.stderr, "Written to stdout, output is untrusted until phix exits with status 0.")
		fl.PrintDefaults()
	}
	var keys multiFlag
	fl.Var(&keys, "key", "private key file (repeatable)")
	if err := parseInOut(fl, args); err != nil {
		return err
	}
	if len(keys) == 0 {
		return &exitError{2, errors.New("need at least one --key")}
	}
	ids, err := readIdentities(keys, sio)
	if err != nil {
		return err
	}
	return pipe(ctx, fl, sio, "unsealing", func(src io.Reader, out io.Writer) error {
		r, err := seal.NewReader(src, ids...)
		if err != nil {
			return err
		}
		_, err = r.WriteTo(out)
		return err
	})
}

// rewrapCmd gives a sealed file a new recipient list without re-encrypting it.
func rewrapCmd(ctx context.Context, args []string, sio sealIO) error {
	fl := newFlagSet("seal rewrap", sio.stderr)
	var keys, to multiFlag
	fl.Var(&keys, "key", "private key file that opens IN (repeatable)")
	fl.Var(&to, "to", "new recipient public key file (repeatable; replaces all recipients)")
	if err := fl.Parse(args); err != nil {
		return usageError(err)
	}
	if fl.NArg() != 2 || len(keys) == 0 || len(to) == 0 {
		fl.Usage()
		return &exitError{2, errors.New("need --key, --to, IN and OUT")}
	}
	ids, err := readIdentities(keys, sio)
	if err != nil {
		return err
	}
	var recips []seal.Recipient
	for i, path := range to {
		kf, err := readKeyFile(path, nil)
		if err != nil {
			return fmt.Errorf("recipient %d: %w", i+1, err)
		}
		recips = append(recips, kf.Recipient())
	}
	return pipe(ctx, fl, sio, "rewrapping", func(src io.Reader, out io.Writer) error {
		_, err := seal.Rewrap(out, src, recips, ids...)
		return err
	})
}

func readIdentities(keys []string, sio sealIO) ([]seal.Identity, error) {
	var ids []seal.Identity
	for i, path := range keys {
		kf, err := readKeyFile(path, sio.passphrase)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		if kf.Private == nil {
			return nil, fmt.Errorf("key %d is a public key file; a private key (.key) is needed", i+1)
		}
		ids = append(ids, kf.Identity())
	}
	return ids, nil
}

func keygenCmd(args []string, sio sealIO) error {
	fl := newFlagSet("seal keygen", sio.stderr)
	suiteName := fl.String("suite", "", "algorithm suite: intl or gm (required)")
	out := fl.String("out", "", "write NAME.pub and NAME.key (required)")
	version := fl.Uint("key-version", 1, "key version recorded in the files and in sealed headers")
	if err := fl.Parse(args); err != nil {
		return usageError(err)
	}
	if *suiteName == "" || *out == "" || fl.NArg() != 0 {
		fl.Usage()
		return &exitError{2, errors.New("need --suite and --out")}
	}
	if *version == 0 || *version > 1<<32-1 {
		return &exitError{2, errors.New("--key-version must be 1..4294967295")}
	}
	s, err := suite.Lookup(suite.ID(*suiteName))
	if err != nil {
		return err
	}
	k, err := s.GenerateRecipientKey()
	if err != nil {
		return err
	}
	pass, err := sio.passphrase()
	if err != nil {
		return err
	}
	priv, err := seal.MarshalPrivateKeyFile(k, uint32(*version), pass)
	if err != nil {
		return err
	}
	// Refuse to clobber keys: an overwritten private key is data lost for good.
	for _, p := range []string{*out + ".key", *out + ".pub"} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s already exists; refusing to overwrite a key", filepath.Base(p))
		}
	}
	if err := writeFileAtomic(*out+".key", priv, 0o600); err != nil {
		return err
	}
	if err := writeFileAtomic(*out+".pub", seal.MarshalPublicKeyFile(k.Public(), uint32(*version)), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(sio.stderr, "key id %s (%s, version %d)\n", k.KeyID(), s.ID(), *version)
	return nil
}

func usageError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return &exitError{2, err}
}

// readKeyFile reads and parses a key file; errors name the problem, not the
// path or the contents.
func readKeyFile(path string, pass func() ([]byte, error)) (*seal.KeyFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read key file: %w", pathless(err))
	}
	return seal.ParseKeyFile(b, pass)
}

// pathless drops the file name from a *fs.PathError: file names can be PHI.
func pathless(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

// parseInOut parses args into fl and requires exactly the IN and OUT operands.
func parseInOut(fl *flag.FlagSet, args []string) error {
	if err := fl.Parse(args); err != nil {
		return usageError(err)
	}
	if fl.NArg() != 2 {
		fl.Usage()
		return &exitError{2, errors.New("need IN and OUT")}
	}
	return nil
}

// pipe opens IN (fl.Arg(0)) and runs fn with it, behind a progress bar
// labelled verb, and OUT (fl.Arg(1)); see writeOutput for how OUT is committed.
func pipe(ctx context.Context, fl *flag.FlagSet, sio sealIO, verb string, fn func(src io.Reader, out io.Writer) error) error {
	in, size, closeIn, err := openInput(fl.Arg(0), sio)
	if err != nil {
		return err
	}
	defer closeIn()
	return writeOutput(fl.Arg(1), sio, func(out io.Writer) error {
		return fn(progress(ctx, in, size, verb, sio), out)
	})
}

func openInput(name string, sio sealIO) (io.Reader, int64, func(), error) {
	if name == "-" {
		return sio.stdin, -1, func() {}, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("cannot open input: %w", pathless(err))
	}
	size := int64(-1)
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		size = st.Size()
	}
	return f, size, func() { f.Close() }, nil
}

// writeOutput runs fill against OUT. For a file it writes a temporary file in
// OUT's directory and renames it over OUT only when fill succeeded, so a
// failure (a forged or truncated input, above all) leaves no OUT behind.
func writeOutput(name string, sio sealIO, fill func(io.Writer) error) error {
	if name == "-" {
		return fill(sio.stdout)
	}
	dir, base := filepath.Split(name)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".*.partial")
	if err != nil {
		return fmt.Errorf("cannot create output: %w", pathless(err))
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := fill(tmp); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("cannot write output: %w", pathless(err))
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cannot write output: %w", pathless(err))
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("cannot rename output into place: %w", pathless(err))
	}
	ok = true
	return nil
}

func writeFileAtomic(name string, b []byte, perm os.FileMode) error {
	return writeOutput(name, sealIO{}, func(w io.Writer) error {
		if f, ok := w.(*os.File); ok {
			if err := f.Chmod(perm); err != nil {
				return fmt.Errorf("cannot set key file mode: %w", pathless(err))
			}
		}
		_, err := w.Write(b)
		return err
	})
}

// progress wraps r with a progress bar on stderr when stderr is a terminal and
// the input is large and of known size; otherwise it returns r. It also
// stops the copy when ctx is cancelled (Ctrl-C), so temp files are removed.
func progress(ctx context.Context, r io.Reader, size int64, verb string, sio sealIO) io.Reader {
	p := &progressReader{ctx: ctx, r: r}
	if sio.stderrTTY && size >= progressThreshold {
		p.w, p.size, p.verb = sio.stderr, size, verb
	}
	return p
}

type progressReader struct {
	ctx  context.Context
	r    io.Reader
	w    io.Writer // nil: no bar
	size int64
	verb string
	done int64
	last time.Time
}

func (p *progressReader) Read(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.r.Read(b)
	p.done += int64(n)
	if p.w != nil {
		if now := time.Now(); err != nil || now.Sub(p.last) > 200*time.Millisecond {
			p.last = now
			p.draw(err != nil)
		}
	}
	return n, err
}

func (p *progressReader) draw(final bool) {
	const width = 30
	frac := float64(p.done) / float64(max(p.size, 1))
	frac = min(frac, 1)
	filled := int(frac * width)
	fmt.Fprintf(p.w, "\r%s [%s%s] %3.0f%% %d/%d MiB", p.verb, strings.Repeat("=", filled), strings.Repeat(" ", width-filled), frac*100, p.done>>20, p.size>>20)
	if final {
		fmt.Fprintln(p.w)
	}
}
