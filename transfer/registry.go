package transfer

import (
	"context"
	"errors"
	"net"
	"net/http"
	"unicode/utf8"

	"phix/audit"
	"phix/pki"
	"phix/suite"
)

// ValidateHospital checks a registry entry and canonicalises its pins.
func ValidateHospital(h *Hospital) error {
	bad := func(d string) error { return errf(400, CodeBadRequest, "Invalid hospital", d) }
	if !idRe.MatchString(h.ID) {
		return bad("id must be 1-64 of [A-Za-z0-9_-]")
	}
	if h.NameZH == "" || h.NameEN == "" || len(h.NameZH) > 256 || len(h.NameEN) > 256 || !utf8.ValidString(h.NameZH) || !utf8.ValidString(h.NameEN) {
		return bad("name_zh and name_en are required (at most 256 bytes)")
	}
	if !regionRe.MatchString(h.Region) {
		return bad("region must look like CN-BJ or US-CA")
	}
	if len(h.Networks) == 0 {
		return bad("at least one network range is required")
	}
	for _, c := range h.Networks {
		if _, _, err := net.ParseCIDR(c); err != nil {
			return bad("networks must be CIDRs")
		}
	}
	for p, pol := range h.Partners {
		if !idRe.MatchString(p) {
			return bad("partner ids must be hospital ids")
		}
		for _, c := range pol.DataClasses {
			if !contains(KnownDataClasses, c) {
				return bad("unknown data class in partners")
			}
		}
		for _, c := range pol.Purposes {
			if !contains(KnownPurposes, c) {
				return bad("unknown purpose of use in partners")
			}
		}
	}
	s, err := suite.Lookup(suite.ID(h.Suite))
	if err != nil {
		return bad("suite must be intl or gm")
	}
	kb, err := b64(h.SigningKey)
	if err != nil {
		return bad("signing_key must be base64")
	}
	if _, err := s.ParseVerifyKey(kb); err != nil {
		return bad("signing_key is not a verify key of the suite")
	}
	wb, err := b64(h.WrapKey)
	if err != nil {
		return bad("wrap_key must be base64")
	}
	if _, err := s.ParseRecipientPublicKey(wb); err != nil {
		return bad("wrap_key is not a recipient public key of the suite")
	}
	if len(h.Pins) == 0 {
		return bad("at least one certificate pin is required")
	}
	for i, p := range h.Pins {
		c, _, err := pki.ParsePin(p)
		if err != nil {
			return bad("pins must be SPKI pins (sha256/<base64>)")
		}
		h.Pins[i] = c
	}
	switch h.Status {
	case "":
		h.Status = StatusActive
	case StatusActive, StatusSuspended:
	default:
		return bad("status must be active or suspended")
	}
	return nil
}

// Registry is the hospital registry over a Store, shared by the admin API
// and the CLI.
type Registry struct {
	Store   Store
	Auditor Auditor
}

// Add validates and stores a hospital.
func (g Registry) Add(ctx context.Context, h Hospital) (Hospital, error) {
	if err := ValidateHospital(&h); err != nil {
		return h, err
	}
	err := g.Store.AddHospital(ctx, h)
	if errors.Is(err, ErrExists) {
		return h, errf(409, CodeConflict, "Hospital exists", "a hospital with this id is already registered")
	}
	if err == nil && g.Auditor != nil {
		_, err = g.Auditor.Append(ctx, audit.Event{Action: audit.ActionCreate, Outcome: audit.OutcomeSuccess,
			Who: audit.Who{Role: "registry-admin"}, What: audit.What{ResourceType: "Organization"}})
	}
	return h, err
}

// Suspend suspends a hospital: its calls, pins and new transfers are refused.
func (g Registry) Suspend(ctx context.Context, id string) error {
	err := g.Store.SetHospitalStatus(ctx, id, StatusSuspended)
	if errors.Is(err, ErrNotFound) {
		return errf(404, CodeNotFound, "Not found", "no such hospital")
	}
	if err == nil && g.Auditor != nil {
		_, err = g.Auditor.Append(ctx, audit.Event{Action: audit.ActionUpdate, Outcome: audit.OutcomeSuccess,
			Who: audit.Who{Role: "registry-admin"}, What: audit.What{ResourceType: "Organization"}})
	}
	return err
}

func (s *Server) registry() Registry { return Registry{Store: s.cfg.Store, Auditor: s.cfg.Auditor} }

func (s *Server) listHospitals(w http.ResponseWriter, r *http.Request) {
	hs, err := s.cfg.Store.Hospitals(r.Context())
	if err != nil {
		writeProblem(w, s.internal(err))
		return
	}
	if hs == nil {
		hs = []Hospital{}
	}
	writeJSON(w, 200, map[string]any{"hospitals": hs})
}

func (s *Server) addHospital(w http.ResponseWriter, r *http.Request) {
	var h Hospital
	if err := readJSON(r, &h); err != nil {
		writeProblem(w, err)
		return
	}
	h, err := s.registry().Add(r.Context(), h)
	if err != nil {
		writeProblem(w, err)
		return
	}
	writeJSON(w, 201, h)
}

func (s *Server) suspendHospital(w http.ResponseWriter, r *http.Request) {
	if err := s.registry().Suspend(r.Context(), r.PathValue("id")); err != nil {
		writeProblem(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
