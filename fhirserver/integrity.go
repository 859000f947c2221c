package fhirserver

import (
	"context"
	"errors"
	"strings"

	"phix/errcode"
	"phix/fhir"
	"phix/store"
)

// IntegrityFinding is one stored version that fails its integrity check.
// Reason is a fixed description (no PHI: element paths and names only).
type IntegrityFinding struct {
	Type    string
	ID      string
	Version int64
	Reason  string
}

// IntegrityStats counts what VerifyIntegrity looked at.
type IntegrityStats struct {
	Versions int // stored versions with content checked
	Deleted  int // deletion versions (nothing to check)
	Bad      int // findings
}

// integrityPage is the history page size of a scan.
const integrityPage = 500

// VerifyIntegrity checks every stored version of st (all types, all
// history) with v: the body must parse, name the row's own type and id, and
// carry a valid HMAC. Each failure goes to report; the scan goes on. It
// returns an error only when the store itself fails. Versions written while
// the scan runs may be skipped or seen twice (history pages by offset).
func VerifyIntegrity(ctx context.Context, st store.Store, v Protector, report func(IntegrityFinding)) (IntegrityStats, error) {
	var stats IntegrityStats
	for off := 0; ; off += integrityPage {
		recs, _, err := st.History(ctx, store.HistoryOptions{Count: integrityPage, Offset: off})
		if err != nil {
			return stats, err
		}
		for _, rec := range recs {
			if rec.Deleted {
				stats.Deleted++
				continue
			}
			stats.Versions++
			if reason := checkIntegrity(ctx, v, rec); reason != "" {
				stats.Bad++
				report(IntegrityFinding{Type: rec.Type, ID: rec.ID, Version: rec.Version, Reason: reason})
			}
		}
		if len(recs) < integrityPage {
			return stats, nil
		}
	}
}

// checkIntegrity returns why rec fails, or "".
func checkIntegrity(ctx context.Context, v Protector, rec *store.Record) string {
	r, err := fhir.Parse(rec.Body, fhir.ParseOptions{})
	if err != nil {
		return "stored body does not parse"
	}
	if r.Type != rec.Type || r.ID != rec.ID {
		return "stored body names another resource"
	}
	if _, err := v.Verify(ctx, r); err != nil {
		return integrityReason(err)
	}
	return ""
}

// integrityReason is the PHI-free reason of a Verify error: the errcode
// detail without its "Type/id: " prefix, or the code's name.
func integrityReason(err error) string {
	var pe *errcode.Error
	if !errors.As(err, &pe) {
		return "integrity check failed"
	}
	d := pe.Detail
	if i := strings.Index(d, ": "); i >= 0 && strings.Contains(d[:i], "/") {
		d = d[i+2:]
	}
	if d == "" {
		def, _ := errcode.Lookup(pe.Code)
		d = def.Name
	}
	return string(pe.Code) + " " + d
}
