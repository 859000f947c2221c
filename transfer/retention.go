package transfer

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"phix/audit"
)

// WithdrawResult is the answer to POST /v1/consents/{id}/withdraw.
type WithdrawResult struct {
	ConsentID string `json:"consent_id"`
	// Stopped counts transfers that were pending (uploading or ready) and
	// are now withdrawn.
	Stopped int `json:"stopped"`
	// Erased counts transfers whose stored objects were deleted by this call.
	Erased int `json:"erased"`
}

// withdrawConsent records the withdrawal, stops the sender's pending
// transfers bound to the consent and erases what is stored for them. It is
// idempotent: a repeated call finishes an erasure a crash interrupted.
func (s *Server) withdrawConsent(w http.ResponseWriter, r *http.Request, c caller) {
	ctx := r.Context()
	id := r.PathValue("id")
	if !fhirIDRe.MatchString(id) {
		writeProblem(w, errf(http.StatusBadRequest, CodeBadRequest, "Invalid consent id", "the consent id is not a FHIR id"))
		return
	}
	now := s.cfg.Now()
	if _, err := s.cfg.Store.WithdrawConsent(ctx, c.Hospital.ID, id, now); err != nil {
		writeProblem(w, s.internal(err))
		return
	}
	s.audit(ctx, audit.Event{Action: audit.ActionConsent, Outcome: audit.OutcomeSuccess, RequestID: newID(),
		Who: audit.Who{Org: c.Hospital.ID, CertFP: c.CertFP, Role: "sender"}, What: audit.What{ResourceType: "Consent"},
		Why: &audit.Why{ConsentID: id}, Decision: &audit.Decision{Effect: "deny", Policies: []string{ReasonConsentWithdrawn}}})
	ts, err := s.cfg.Store.TransfersByConsent(ctx, c.Hospital.ID, id)
	if err != nil {
		writeProblem(w, s.internal(err))
		return
	}
	res := WithdrawResult{ConsentID: id}
	// The work must finish even if the sender hangs up.
	wctx := context.WithoutCancel(ctx)
	for _, t := range ts {
		if t.Status == TransferUploading || t.Status == TransferReady {
			err := s.cfg.Store.SetTransferStatus(wctx, t.ID, []string{TransferUploading, TransferReady}, TransferWithdrawn, nil, ReasonConsentWithdrawn)
			switch {
			case err == nil:
				res.Stopped++
				t.Status = TransferWithdrawn
				s.metrics.event("withdrawn")
			case errors.Is(err, ErrConflict):
				// Completed or delivered meanwhile: it is still erased below.
			default:
				writeProblem(w, s.internal(err))
				return
			}
		}
		if !t.Erased.IsZero() {
			continue
		}
		if err := s.erase(wctx, t, "consent-withdrawn"); err != nil {
			writeProblem(w, s.internal(err))
			return
		}
		res.Erased++
	}
	writeJSON(w, http.StatusOK, res)
}

// erase kills every capability of t, deletes its objects and marks it
// erased, in that order, so a crash leaves it due for the next sweep and
// nobody can read a half-deleted object.
func (s *Server) erase(ctx context.Context, t Transfer, why string) error {
	for _, kind := range []string{CapUpload, CapDownload} {
		if err := s.cfg.Store.KillCapabilities(ctx, kind, t.ID, -1); err != nil {
			return err
		}
	}
	if _, err := s.cfg.Blobs.DeletePrefix(ctx, t.ID+"/"); err != nil {
		return err
	}
	if err := s.cfg.Store.MarkErased(ctx, t.ID, s.cfg.Now()); err != nil {
		return err
	}
	s.audit(ctx, audit.Event{Action: audit.ActionDelete, Outcome: audit.OutcomeSuccess, RequestID: t.ID,
		What: audit.What{ResourceType: "Transfer"}, Why: &audit.Why{ConsentID: t.Request.ConsentID},
		Decision: &audit.Decision{Effect: "permit", Policies: []string{"erase-" + why}}})
	s.metrics.event("erased")
	return nil
}

// sweepBatch bounds one store query of the sweeper.
const sweepBatch = 100

// Sweep runs one retention pass: transfers delivered longer ago than
// DeliveredGrace, past retention_until, or closed without delivery lose
// their ciphertext; pending ones past retention_until become expired. It
// returns how many transfers it erased. Several replicas may sweep at once:
// every step is idempotent.
func (s *Server) Sweep(ctx context.Context) (int, error) {
	n := 0
	for {
		now := s.cfg.Now()
		due, err := s.cfg.Store.DueForErasure(ctx, now.Add(-s.cfg.DeliveredGrace), now, sweepBatch)
		if err != nil || len(due) == 0 {
			return n, err
		}
		for _, t := range due {
			why := "closed"
			switch {
			case t.Status == TransferDelivered && !t.Request.RetentionUntil.After(now):
				why = "retention"
			case t.Status == TransferDelivered:
				why = "delivered"
			case slices.Contains([]string{TransferUploading, TransferReady}, t.Status):
				why = "retention"
				err := s.cfg.Store.SetTransferStatus(ctx, t.ID, []string{TransferUploading, TransferReady}, TransferExpired, nil, "retention-expired")
				if err != nil && !errors.Is(err, ErrConflict) {
					return n, err
				}
				if err == nil {
					s.metrics.event("expired")
				}
			}
			if err := s.erase(ctx, t, why); err != nil {
				return n, err
			}
			n++
		}
		if len(due) < sweepBatch {
			return n, nil
		}
	}
}

// RunSweeper sweeps every interval until ctx ends. Errors are logged (codes
// only) and retried on the next tick.
func (s *Server) RunSweeper(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = 5 * time.Minute
	}
	tk := time.NewTicker(interval)
	defer tk.Stop()
	for {
		if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("retention sweep failed", slog.String("kind", ErrorKind(err)))
		}
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
	}
}
