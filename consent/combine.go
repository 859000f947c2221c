package consent

import "time"

// Evaluate decides req against a patient's compiled consents. Only active,
// verified consents count; across them deny overrides permit, and a permit
// and a deny of equal specificity from different consents are a conflict
// (PHI-6016, enforced as deny). When nothing valid applies, the code says
// whether an expired (PHI-6003) or badly signed (PHI-6004) consent would
// have, else PHI-6001.
func Evaluate(consents []*Consent, req Request) Decision {
	now := req.Time
	if now.IsZero() {
		now = time.Now()
	}
	req.Patient = normRef(req.Patient)
	req.Actor.Reference = normRef(req.Actor.Reference)

	var d Decision
	var permit, deny *Consent
	var pr, dr result
	var conflicts []string
	for _, c := range consents {
		if c == nil {
			continue
		}
		if !c.Verified {
			d.Ignored = append(d.Ignored, Ignored{ConsentID: c.ID, Code: CodeBadSignature, Reason: c.SigReason})
			continue
		}
		r, ok := c.evaluate(&req, now)
		if !ok {
			continue
		}
		switch r.effect {
		case Permit:
			if permit == nil || r.spec > pr.spec {
				permit, pr = c, r
			}
		case Deny:
			if deny == nil || r.spec > dr.spec {
				deny, dr = c, r
			}
		}
	}
	if deny != nil && permit != nil && dr.spec == pr.spec && deny.ID != permit.ID {
		conflicts = append(conflicts, permit.ID)
	}
	switch {
	case deny != nil:
		d.Effect, d.ConsentID, d.ProvisionPath, d.Expiry = Deny, deny.ID, dr.path, dr.end
		d.SignatureVerified = true
		if len(conflicts) > 0 {
			d.Code, d.Conflicts = CodeConflict, conflicts
			d.Reason = "consent-conflict: consents of equal specificity permit and deny; deny enforced"
		} else {
			d.Code, d.Reason = CodeDenied, "consent-denied: a deny provision matched"
		}
		return d
	case permit != nil:
		d.Effect, d.ConsentID, d.ProvisionPath, d.Expiry = Permit, permit.ID, pr.path, pr.end
		d.Obligations, d.SignatureVerified = pr.obligations, true
		d.Reason = "consent-permitted: a permit provision matched"
		return d
	}
	d.Effect = NotApplicable
	// Would a badly signed or expired consent have applied?
	for _, c := range consents {
		if c == nil {
			continue
		}
		if !c.Verified {
			if r, ok := c.evaluate(&req, now); ok {
				d.Code, d.ConsentID, d.ProvisionPath, d.Expiry = CodeBadSignature, c.ID, r.path, r.end
				d.Reason = "consent-signature-invalid: the only applicable consent does not verify (" + c.SigReason + ")"
				return d
			}
			continue
		}
		if end, ok := c.expiredMatch(&req, now); ok && d.Code == CodeNone {
			d.Code, d.ConsentID, d.Expiry = CodeExpired, c.ID, end
			d.SignatureVerified = true
			d.Reason = "consent-expired: the applicable consent's period has ended"
		}
	}
	if d.Code == CodeNone {
		d.Code, d.Reason = CodeRequired, "consent-required: no consent applies"
	}
	return d
}

// expiredMatch reports whether c applied just before its root period ended.
func (c *Consent) expiredMatch(req *Request, now time.Time) (time.Time, bool) {
	if c.Root == nil || c.Root.End.IsZero() || !now.After(c.Root.End) {
		return time.Time{}, false
	}
	_, ok := c.evaluate(req, c.Root.End)
	return c.Root.End, ok
}

// boundaries returns the earliest instant after now at which some consent's
// answer can change with time alone (a period start or end, a dateTime).
func nextBoundary(consents []*Consent, now time.Time) time.Time {
	var next time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	var walk func(p *Provision)
	walk = func(p *Provision) {
		consider(p.Start)
		if !p.End.IsZero() {
			consider(p.End.Add(time.Nanosecond))
		}
		for _, ch := range p.Children {
			walk(ch)
		}
	}
	for _, c := range consents {
		consider(c.DateTime)
		if c.Root != nil {
			walk(c.Root)
		}
	}
	return next
}
