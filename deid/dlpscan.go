package deid

import (
	"context"

	"phix/dlp"
)

// DLPScanner adapts a dlp.Scanner to TextScanner: the patient's own values
// become dlp.Hints and findings keep dlp's code-point offsets.
type DLPScanner struct {
	sc *dlp.Scanner
}

// NewDLPScanner wraps sc; nil uses dlp.Default().
func NewDLPScanner(sc *dlp.Scanner) *DLPScanner {
	if sc == nil {
		sc = dlp.Default()
	}
	return &DLPScanner{sc: sc}
}

// Scan implements TextScanner. It compiles hints on every call; the engine
// uses WithHints once per patient instead.
func (d *DLPScanner) Scan(ctx context.Context, text string, h Hints) []Finding {
	return d.WithHints(h).Scan(ctx, text, Hints{})
}

// WithHints implements HintBinder.
func (d *DLPScanner) WithHints(h Hints) TextScanner {
	if h.empty() {
		return boundDLP{d.sc}
	}
	return boundDLP{d.sc.WithHints(dlp.Hints{
		Names: h.Names, Identifiers: h.Identifiers, Phones: h.Phones,
		Emails: h.Emails, Addresses: h.Addresses,
	})}
}

func (h Hints) empty() bool {
	return len(h.Names)+len(h.Identifiers)+len(h.Phones)+len(h.Emails)+len(h.Addresses) == 0
}

// boundDLP is a dlp.Scanner that already holds one patient's hints.
type boundDLP struct{ sc *dlp.Scanner }

func (b boundDLP) Scan(_ context.Context, text string, _ Hints) []Finding {
	fs := b.sc.ScanText(text)
	if len(fs) == 0 {
		return nil
	}
	out := make([]Finding, len(fs))
	for i, f := range fs {
		out[i] = Finding{Type: string(f.Type), Start: f.Start, End: f.End}
	}
	return out
}
