package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"phix/deid"
	ddicom "phix/deid/dicom"
)

func init() { deidDICOM = runDeidDICOM }

const deidDICOMUsage = "usage: phix deid dicom --profile basic[,option...] [--key-file F] [--quarantine DIR] [--max-file-size BYTES] IN_DIR OUT_DIR"

// runDeidDICOM is `phix deid dicom`: PS3.15 Annex E de-identification of a
// directory tree.
func runDeidDICOM(ctx context.Context, args []string) error {
	return deidDICOMMain(ctx, args, os.Stdout)
}

func deidDICOMMain(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("deid dicom", flag.ContinueOnError)
	profile := fs.String("profile", "basic", "basic[,option...]; options: "+strings.Join(ddicom.OptionNames(), ", "))
	keyFile := fs.String("key-file", "", "file with the project secret (at least 32 bytes; hex or raw); default $PHIX_DEID_KEY, else a one-time random key (UIDs and date shifts then match no other run)")
	suiteID := fs.String("suite", "intl", "intl or gm")
	fhirProfile := fs.String("fhir-profile", "", "FHIR de-identification profile whose dateShift range to share (default: -365..365 days)")
	quarantine := fs.String("quarantine", "", "directory for quarantined files and quarantine.jsonl (default OUT_DIR.quarantine)")
	maxSize := fs.Int64("max-file-size", ddicom.DefaultMaxFileSize, "largest input file in bytes; larger files fail with PHI-6008 unread")
	cleanPixel := fs.String("clean-pixel-rules", "", "JSON file: list of {modality, sopClassUID, manufacturer, model, rows, columns} certified free of burned-in text")
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil || fs.NArg() != 2 {
		return errors.New(deidDICOMUsage)
	}
	keys, err := deidKeys(*keyFile, *suiteID, func(err error) error { return fmt.Errorf("keys: %w", err) })
	if err != nil {
		return err
	}
	var rng deid.DateShiftRange
	if *fhirProfile != "" {
		p, err := deid.LoadProfile(*fhirProfile)
		if err != nil {
			return err
		}
		rng = p.DateShift
	}
	ps, err := deid.NewPseudonymizer(keys, rng)
	if err != nil {
		return err
	}
	cfg, err := ddicom.NewConfig(*profile, ps)
	if err != nil {
		return err
	}
	if *cleanPixel != "" {
		b, err := os.ReadFile(*cleanPixel)
		if err != nil {
			return errors.New("cannot read the clean-pixel rules file")
		}
		if err := json.Unmarshal(b, &cfg.CleanPixel); err != nil {
			return errors.New("clean-pixel rules: not a JSON list of rules")
		}
	}
	if *maxSize <= 0 {
		return errors.New("--max-file-size must be positive")
	}
	cfg.MaxFileSize = *maxSize
	d, err := ddicom.New(cfg)
	if err != nil {
		return err
	}
	in, out := fs.Arg(0), fs.Arg(1)
	q := *quarantine
	if q == "" {
		q = strings.TrimRight(out, `/\`) + ".quarantine"
	}
	sum, err := d.DeidentifyTree(ctx, in, out, q)
	fmt.Fprintf(stdout, "deid dicom (%s): %d done, %d quarantined, %d failed (see %s)\n", cfg.Profile, sum.Done, sum.Quarantined, sum.Failed, "quarantine.jsonl")
	if err != nil {
		return err
	}
	if sum.Failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d file(s) failed with %s and were not written", sum.Failed, ddicom.CodeDeidFailed)}
	}
	return nil
}
