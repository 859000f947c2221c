package fhirserver

import (
	"context"

	"phix/access/policy"
	"phix/consent"
	"phix/errcode"
	"phix/fhir"
	"phix/store"
)

// ---------------------------------------------------------------- writes

// enforceWrite decides a create, update or delete of res by the caller.
// cur is the stored version an update or delete replaces (nil for none).
func (s *Server) enforceWrite(ctx context.Context, action string, res *fhir.Resource, cur *store.Record) error {
	if s.enf == nil {
		return nil
	}
	rq := enfReqFrom(ctx)
	if rq == nil {
		return nil
	}
	e := s.enf
	if e.cfg.OrganisationTags && action != policy.ActionDelete {
		// The owner is the server's to say: the first writer's
		// organisation, kept by updates; a client's tag is replaced.
		owner := rq.p.Org
		if cur != nil && !cur.Deleted && len(cur.Body) > 0 {
			if prev, err := fhir.ParseMembers(cur.Body, func(k string) bool { return k == "meta" }, fhir.ParseOptions{}); err == nil {
				owner = ownerTag(prev)
			}
		}
		setOwnerTag(res, owner)
	}
	sub := describe(res, consent.AllFields)
	if ok, _ := scopeAllows(rq.p, action, sub, &lazyResource{res: res}); !ok {
		rq.note(false, []string{"smart-scope"}, "")
		return denial(errcode.MinimumNecessaryViolated, []string{"smart-scope"})
	}
	tr, err := e.treatment(ctx, rq, sub.patient)
	if err != nil {
		return storeError(err)
	}
	d := e.policyDecide(policy.Input{Principal: rq.pp, Action: action,
		Resource: policy.Resource{Type: sub.typ, Labels: sub.labels, Org: e.resourceOrg(sub)}, Purpose: rq.purpose, Treatment: tr})
	if !d.Allow {
		rq.note(false, d.Reasons, "")
		return denial(d.Code, d.Reasons)
	}
	if res.Type == "Consent" {
		if cur != nil && !cur.Deleted && e.cfg.SecondFactor != nil {
			// Changing or withdrawing a recorded consent is an override: a
			// second factor of the writer.
			if rq.totp == "" || e.cfg.SecondFactor.Verify(ctx, rq.p.Subject, rq.totp) != nil {
				rq.note(false, []string{"second-factor"}, "")
				return errorf(CodeSecondFactor, "changing a recorded consent needs a valid TOTP code in X-TOTP")
			}
		}
		if action != policy.ActionDelete {
			c, err := consent.Compile(res, e.cfg.ConsentKeys)
			if err != nil {
				return errorf(CodeValidation, "the Consent cannot be evaluated")
			}
			if !c.Verified {
				rq.note(false, []string{"consent-signature:" + c.SigReason}, "")
				perr := errcode.New(errcode.ConsentSignatureInvalid, "consent signature does not verify (%s)", c.SigReason)
				if s.lockout != nil {
					_, _ = s.lockout.Record(context.WithoutCancel(ctx), rq.p.Subject, perr)
				}
				pe, _ := phiError(perr)
				return pe
			}
		}
	}
	rq.note(true, d.Reasons, "")
	if sub.patient != "" {
		rq.mu.Lock()
		switch res.Type {
		case "Consent":
			if rq.touched == nil {
				rq.touched = map[string]bool{}
			}
			rq.touched[sub.patient] = true
		case "CareTeam", "Encounter":
			if rq.treatments == nil {
				rq.treatments = map[string]bool{}
			}
			rq.treatments[sub.patient] = true
		}
		rq.mu.Unlock()
		// Also at once: a reader between here and the commit reloads, and
		// the commit hook drops what that reader may have cached.
		e.forgetPatient(sub.patient, res.Type == "Consent", res.Type == "CareTeam" || res.Type == "Encounter")
	}
	return nil
}

// enforceDelete decides the deletion of the stored (sealed) version cur.
func (s *Server) enforceDelete(ctx context.Context, cur *store.Record) error {
	if s.enf == nil || enfReqFrom(ctx) == nil {
		return nil
	}
	plain, err := s.plain(ctx, cur)
	if err != nil {
		return err
	}
	res, err := fhir.Parse(plain.Body, fhir.ParseOptions{})
	if err != nil {
		return storeError(err)
	}
	return s.enforceWrite(ctx, policy.ActionDelete, res, cur)
}

// enforceCommitted runs after a transaction committed: caches of patients
// whose consents or treatment relationships changed are dropped at once.
func (s *Server) enforceCommitted(ctx context.Context) {
	if s.enf == nil {
		return
	}
	rq, _ := ctx.Value(enfReqKey).(*enfReq)
	if rq == nil {
		return
	}
	rq.mu.Lock()
	touched, treat := rq.touched, rq.treatments
	rq.touched, rq.treatments = nil, nil
	rq.mu.Unlock()
	for p := range touched {
		s.enf.forgetPatient(p, true, false)
	}
	for p := range treat {
		s.enf.forgetPatient(p, false, true)
	}
}

// Hooks for the write path (write.go).

func (s *Server) enforceCreate(ctx context.Context, res *fhir.Resource) error {
	return s.enforceWrite(ctx, policy.ActionCreate, res, nil)
}

// enforceUpdate decides an update; one that creates (no current version)
// needs create permission.
func (s *Server) enforceUpdate(ctx context.Context, res *fhir.Resource, cur *store.Record) error {
	if cur == nil || cur.Deleted {
		return s.enforceWrite(ctx, policy.ActionCreate, res, nil)
	}
	return s.enforceWrite(ctx, policy.ActionUpdate, res, cur)
}

// enforceRecord decides a read inside a transaction (a Bundle's GET entry).
func (s *Server) enforceRecord(ctx context.Context, rec *store.Record) (*store.Record, error) {
	if s.enf == nil {
		return rec, nil
	}
	rq := enfReqFrom(ctx)
	if rq == nil {
		return rec, nil
	}
	out, deny, err := s.enf.filterRecord(ctx, rq, policy.ActionRead, rec)
	if err != nil {
		return nil, storeError(err)
	}
	if deny != nil {
		return nil, deny
	}
	return out, nil
}
