package dicom

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
)

// Summary counts the outcome of a tree run.
type Summary struct {
	Done        int `json:"done"`
	Quarantined int `json:"quarantined"`
	Failed      int `json:"failed"`
}

// QuarantineEntry is one line of quarantine.jsonl: a file that was not
// written to the output, and why. Path is relative to the input tree.
type QuarantineEntry struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
	Code   string `json:"code,omitempty"`
}

// DeidentifyTree de-identifies every regular file under in into the same
// relative path under out. Quarantined files go (de-identified header,
// original pixels) under quarantine with a line in quarantine/quarantine.jsonl;
// failed files are listed there too and written nowhere. Paths are not
// printed: file names can hold PHI.
func (d *Deidentifier) DeidentifyTree(ctx context.Context, in, out, quarantine string) (Summary, error) {
	var sum Summary
	if quarantine == "" {
		return sum, &Error{Code: CodeBadOption, Stage: "options", Msg: "a quarantine directory is required"}
	}
	absIn, err1 := filepath.Abs(in)
	absQ, err2 := filepath.Abs(quarantine)
	absOut, err3 := filepath.Abs(out)
	if err := errors.Join(err1, err2, err3); err != nil {
		return sum, err
	}
	if within(absOut, absIn) || within(absQ, absIn) || within(absQ, absOut) || within(absOut, absQ) {
		return sum, &Error{Code: CodeBadOption, Stage: "options", Msg: "input, output and quarantine directories must not contain each other"}
	}
	if err := os.MkdirAll(absQ, 0o700); err != nil {
		return sum, err
	}
	qf, err := os.OpenFile(filepath.Join(absQ, "quarantine.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return sum, err
	}
	defer qf.Close()
	enc := json.NewEncoder(qf)

	var files []string
	err = filepath.WalkDir(absIn, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if de.Type().IsRegular() {
			rel, err := filepath.Rel(absIn, p)
			if err != nil {
				return err
			}
			files = append(files, rel)
		}
		return ctx.Err()
	})
	if err != nil {
		return sum, err
	}
	var mu sync.Mutex
	var dirs sync.Map // directories already made
	var firstErr error
	work := make(chan string)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rel := range work {
				res, err := d.deidentifyFile(filepath.Join(absIn, rel))
				// Files are written outside the lock; only the summary and
				// quarantine.jsonl are shared.
				var werr error
				switch {
				case err != nil:
				case res.Quarantined:
					werr = writeFile(filepath.Join(absQ, rel), res.Data, &dirs)
				default:
					werr = writeFile(filepath.Join(absOut, rel), res.Data, &dirs)
				}
				mu.Lock()
				switch {
				case err != nil:
					sum.Failed++
					code := CodeDeidFailed
					var de *Error
					if errors.As(err, &de) {
						code = de.Code
					}
					werr = enc.Encode(QuarantineEntry{Path: rel, Reason: "failed: " + safeMessage(err), Code: code})
				case res.Quarantined:
					sum.Quarantined++
					if eerr := enc.Encode(QuarantineEntry{Path: rel, Reason: res.Reason}); werr == nil {
						werr = eerr
					}
				case werr == nil:
					sum.Done++
				default:
					sum.Failed++
				}
				if werr != nil && firstErr == nil {
					firstErr = werr
				}
				mu.Unlock()
			}
		}()
	}
	for _, f := range files {
		if ctx.Err() != nil {
			break
		}
		work <- f
	}
	close(work)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return sum, firstErr
}

// safeMessage is the PHI-free text of a package error.
func safeMessage(err error) string {
	var de *Error
	if errors.As(err, &de) {
		return de.Error()
	}
	return CodeDeidFailed + " DEIDENTIFICATION_FAILED: io: cannot read the file"
}

func (d *Deidentifier) deidentifyFile(p string) (*Result, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, failed("io", "cannot open the file", nil)
	}
	defer f.Close()
	var size int64
	if st, err := f.Stat(); err == nil {
		size = st.Size()
	}
	return d.deidentifyReader(f, size)
}

// DeidentifyReader reads one file from r, refusing it with PHI-6008 as
// soon as it passes Config.MaxFileSize, and de-identifies it.
func (d *Deidentifier) DeidentifyReader(r io.Reader) (*Result, error) {
	return d.deidentifyReader(r, 0)
}

// deidentifyReader reads r into one buffer sized by the hint (the file
// size), never past the bound.
func (d *Deidentifier) deidentifyReader(r io.Reader, hint int64) (*Result, error) {
	limit := d.cfg.MaxFileSize
	if hint > limit {
		return nil, failed("io", "file too large", nil)
	}
	buf := bytes.NewBuffer(make([]byte, 0, hint+bytes.MinRead))
	n, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, failed("io", "cannot read the file", nil)
	}
	if n > limit {
		return nil, failed("io", "file too large", nil)
	}
	return d.deidentify(buf.Bytes(), true)
}

// writeFile writes atomically (temp file and rename), so a crash never
// leaves a half-written file under out.
func writeFile(p string, data []byte, dirs *sync.Map) error {
	dir := filepath.Dir(p)
	if _, ok := dirs.Load(dir); !ok {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		dirs.Store(dir, true)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".phix-deid-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !filepath.IsAbs(rel) && (rel == "." || len(rel) < 3 || rel[:3] != "../")
}
