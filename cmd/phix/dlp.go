package main

// phix dlp scan: PHI detection over notes (JSON lines), plain text, FHIR
// JSON and CSV. Output names kinds, locations and offsets, never values.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"phix/dlp"
)

func init() {
	register(command{name: "dlp", summary: "detect PHI in notes, text, FHIR JSON and CSV (phix dlp scan)", run: runDLP})
}

// exitBlocked is the exit status when a finding's policy action is block.
const exitBlocked = 3

func runDLP(ctx context.Context, args []string) error {
	return dlpCmd(ctx, args, os.Stdin, os.Stdout)
}

func dlpCmd(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "scan" {
		return &exitError{2, errors.New("usage: phix dlp scan [--policy SPEC] (--jsonl FILE | FILE...)")}
	}
	fl := flag.NewFlagSet("dlp scan", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	jsonl := fl.String("jsonl", "", "notes file, one {\"id\", \"text\"} object per line (\"-\" for stdin)")
	policy := fl.String("policy", "", "per-kind actions, e.g. default=warn,US_SSN=block,NAME=redact; exit status 3 when a finding is blocked")
	minScore := fl.Float64("min-score", 0, "drop findings scored below this (default 0.5)")
	mrnPattern := fl.String("mrn-pattern", "", "regexp an MRN after a keyword must match (e.g. ^MR\\d{8}$)")
	patient := fl.String("patient", "", "FHIR Patient JSON whose names, identifiers, phones, emails and addresses are looked for as well")
	if err := fl.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, "usage: phix dlp scan [flags] (--jsonl FILE | FILE...)")
			fl.SetOutput(stdout)
			fl.PrintDefaults()
			return nil
		}
		return &exitError{2, err}
	}
	opts := dlp.Options{MinScore: *minScore, MRN: dlp.MRNConfig{Pattern: *mrnPattern}}
	if *patient != "" {
		data, err := os.ReadFile(*patient)
		if err != nil {
			return &exitError{2, err}
		}
		if opts.Hints, err = dlp.HintsFromPatient(data); err != nil {
			return &exitError{2, fmt.Errorf("--patient: %w", err)}
		}
	}
	sc, err := dlp.New(opts)
	if err != nil {
		return &exitError{2, err}
	}
	var pol *dlp.Policy
	if *policy != "" {
		p, err := dlp.ParsePolicy(*policy)
		if err != nil {
			return &exitError{2, err}
		}
		pol = &p
	}
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	blocked := map[dlp.Type]int{}
	check := func(fs []dlp.Finding) {
		if pol == nil {
			return
		}
		for _, f := range fs {
			if pol.Action(f.Type) == dlp.Block {
				blocked[f.Type]++
			}
		}
	}
	switch {
	case *jsonl != "" && fl.NArg() == 0:
		if err := scanJSONL(ctx, sc, *jsonl, stdin, w, check); err != nil {
			return err
		}
	case *jsonl == "" && fl.NArg() > 0:
		for _, name := range fl.Args() {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := scanFile(sc, name, stdin, w, pol, check); err != nil {
				return err
			}
		}
	default:
		return &exitError{2, errors.New("need either --jsonl FILE or one or more FILEs")}
	}
	if len(blocked) > 0 {
		if err := w.Flush(); err != nil {
			return err
		}
		kinds := make([]string, 0, len(blocked))
		n := 0
		for t, c := range blocked {
			kinds = append(kinds, string(t))
			n += c
		}
		sort.Strings(kinds)
		return &exitError{exitBlocked, fmt.Errorf("blocked by policy: %d finding(s) of %s", n, strings.Join(kinds, ", "))}
	}
	return w.Flush()
}

func dlpOpen(name string, stdin io.Reader) (io.ReadCloser, error) {
	if name == "-" {
		return io.NopCloser(stdin), nil
	}
	f, err := os.Open(name)
	if err != nil {
		// The path is the operator's own argument, not PHI.
		return nil, err
	}
	return f, nil
}

type jsonlFinding struct {
	Start int      `json:"start"`
	End   int      `json:"end"`
	Type  dlp.Type `json:"type"`
	Score float64  `json:"score"`
}

// scanJSONL reads notes ({"id", "text", ...} per line) and writes
// {"id", "findings": [{"start", "end", "type", "score"}]} per note.
func scanJSONL(ctx context.Context, sc *dlp.Scanner, name string, stdin io.Reader, w io.Writer, check func([]dlp.Finding)) error {
	in, err := dlpOpen(name, stdin)
	if err != nil {
		return err
	}
	defer in.Close()
	r := bufio.NewReaderSize(in, 1<<20)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for line := 1; ; line++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, rerr := readLine(r, maxNoteLine)
		if errors.Is(rerr, errLineTooLong) {
			return fmt.Errorf("%s line %d: longer than %d MiB", name, line, maxNoteLine>>20)
		}
		if len(bytes.TrimSpace(b)) > 0 {
			var n struct {
				ID   json.RawMessage `json:"id"`
				Text *string         `json:"text"`
			}
			if err := json.Unmarshal(b, &n); err != nil || n.Text == nil {
				// Never echo the line: it is a patient note.
				return fmt.Errorf("%s line %d: not a note object with a \"text\" string", name, line)
			}
			fs := sc.ScanText(*n.Text)
			check(fs)
			out := struct {
				ID       json.RawMessage `json:"id"`
				Findings []jsonlFinding  `json:"findings"`
			}{ID: n.ID, Findings: make([]jsonlFinding, 0, len(fs))}
			if out.ID == nil {
				out.ID = json.RawMessage("null")
			}
			for _, f := range fs {
				out.Findings = append(out.Findings, jsonlFinding{f.Start, f.End, f.Type, f.Score})
			}
			if err := enc.Encode(out); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("%s line %d: %w", name, line, rerr)
		}
	}
}

// maxNoteLine bounds one line of a notes file.
const maxNoteLine = 64 << 20

var errLineTooLong = errors.New("line too long")

// readLine reads up to and including '\n', refusing lines over max bytes.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > max {
			return nil, errLineTooLong
		}
		line = append(line, chunk...)
		if err != bufio.ErrBufferFull {
			return line, err
		}
	}
}

type fileFinding struct {
	File     string     `json:"file"`
	Location string     `json:"location,omitempty"`
	Start    int        `json:"start"`
	End      int        `json:"end"`
	Type     dlp.Type   `json:"type"`
	Score    float64    `json:"score"`
	Detector string     `json:"detector"`
	Action   dlp.Action `json:"action,omitempty"`
}

// scanFile scans one file by its extension: .json as FHIR JSON, .csv as
// CSV, anything else as UTF-8 text; "-" is text on stdin.
func scanFile(sc *dlp.Scanner, name string, stdin io.Reader, w io.Writer, pol *dlp.Policy, check func([]dlp.Finding)) error {
	in, err := dlpOpen(name, stdin)
	if err != nil {
		return err
	}
	defer in.Close()
	var fs []dlp.Finding
	switch strings.ToLower(filepath.Ext(name)) {
	case ".json":
		data, err := io.ReadAll(in)
		if err != nil {
			return err
		}
		if fs, err = sc.ScanJSON(data); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	case ".csv":
		if fs, err = sc.ScanCSV(in); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	default:
		data, err := io.ReadAll(in)
		if err != nil {
			return err
		}
		fs = sc.ScanText(string(data))
		lineCol(string(data), fs)
	}
	check(fs)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, f := range fs {
		ff := fileFinding{File: name, Location: f.Location, Start: f.Start, End: f.End, Type: f.Type, Score: f.Score, Detector: f.Detector}
		if pol != nil {
			ff.Action = pol.Action(f.Type)
		}
		if err := enc.Encode(ff); err != nil {
			return err
		}
	}
	return nil
}

// lineCol sets each text finding's location to "line L, col C" (1-based,
// columns in code points) of its start; fs is sorted by start.
func lineCol(text string, fs []dlp.Finding) {
	line, col, cp, k := 1, 1, 0, 0
	for _, r := range text {
		for k < len(fs) && fs[k].Start == cp {
			fs[k].Location = fmt.Sprintf("line %d, col %d", line, col)
			k++
		}
		cp++
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
}
