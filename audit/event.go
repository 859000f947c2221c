package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// SchemaVersion is the version of the event schema, written into every event
// ("v") so a verifier years from now knows how to read it.
const SchemaVersion = 1

// MaxEventSize bounds the canonical encoding of one event. Events hold codes,
// pseudonyms and hashes only, so real events are far smaller.
const MaxEventSize = 8 << 10

// Event is one audit record. Its fields follow seed 000 (who, what, why, data
// class, payload hash, policy decision, outcome, request id, time). Every field
// is a code, a pseudonym or a hash with a fixed syntax: there is deliberately no
// free-text field where PHI could slip in, and Append refuses values outside
// the syntax.
//
// The JSON field order below is alphabetical at every level, so encoding/json
// produces the canonical form (sorted keys, compact) directly; a test checks it.
type Event struct {
	// Action is what happened (create, read, search, consent, security-alert…).
	Action Action `json:"action"`
	// Alert is the kind of security alert; only with ActionSecurityAlert.
	Alert AlertKind `json:"alert,omitempty"`
	// DataClass is the data classification of the payload (a code, e.g. "clinical").
	DataClass string `json:"data_class,omitempty"`
	// Decision is the policy decision with the ids of the policies that made it.
	Decision *Decision `json:"decision,omitempty"`
	// Index is the leaf index, assigned by Append. Callers leave it zero.
	Index int64 `json:"index"`
	// Outcome is the result of the action.
	Outcome Outcome `json:"outcome"`
	// PayloadHash is "sha256:<hex>" or "sm3:<hex>" of the payload, if any.
	PayloadHash string `json:"payload_hash,omitempty"`
	// RequestID correlates the event with the request that caused it.
	RequestID string `json:"request_id,omitempty"`
	// Time is when the event happened; Append fills it in when zero and
	// stores it in UTC at microsecond precision.
	Time time.Time `json:"time"`
	// V is the schema version; Append sets it.
	V int `json:"v"`
	// What is the object of the action.
	What What `json:"what"`
	// Who is the actor.
	Who Who `json:"who"`
	// Why is the purpose of use and the consent relied upon.
	Why *Why `json:"why,omitempty"`
}

// Who is the actor of an event.
type Who struct {
	// CertFP is the lowercase hex SHA-256 fingerprint of the client certificate.
	CertFP string `json:"cert_fp,omitempty"`
	// Org is the organisation (hospital or service id, e.g. "hospital-a").
	Org string `json:"org,omitempty"`
	// Role is the role the actor acted in (a code, e.g. "clinician").
	Role string `json:"role,omitempty"`
	// User is the pseudonymous user id (Pseudonymizer.User), never a name.
	User string `json:"user,omitempty"`
}

// What is the object of an event.
type What struct {
	// Entries is the number of entries of a batch or transaction Bundle.
	Entries int `json:"entries,omitempty"`
	// Patient is the pseudonymous id of the patient concerned (Pseudonymizer.Patient).
	Patient string `json:"patient,omitempty"`
	// QueryHash is the hex suite hash of the canonical query; the query values
	// themselves are PHI and never reach the log.
	QueryHash string `json:"query_hash,omitempty"`
	// QueryParams are the search parameter names used (no values).
	QueryParams []string `json:"query_params,omitempty"`
	// ResourceID is the pseudonymous id of the resource (Pseudonymizer.Resource).
	ResourceID string `json:"resource_id,omitempty"`
	// ResourceType is the FHIR resource type or another object type name.
	ResourceType string `json:"resource_type,omitempty"`
	// TargetsHash is the hex SHA-256 of the sorted pseudonymous ids
	// (Pseudonymizer.Resource) of the resources a batch or transaction
	// wrote, one per line: the targets without listing them.
	TargetsHash string `json:"targets_hash,omitempty"`
}

// Why is the purpose of an event.
type Why struct {
	// ConsentID is the logical id of the Consent relied upon.
	ConsentID string `json:"consent_id,omitempty"`
	// Purpose is the purpose-of-use code (e.g. TREAT, ETREAT, HPAYMT).
	Purpose string `json:"purpose,omitempty"`
}

// Decision is a policy decision and the policies that made it.
type Decision struct {
	// Effect is "permit" or "deny".
	Effect string `json:"effect"`
	// Policies are the ids of the policies (rules) behind the decision.
	Policies []string `json:"policies,omitempty"`
}

// Action is what an event records.
type Action string

// The actions. The REST ones render as the IHE BALP read/query/create/update/
// delete profiles; consent as AuthZconsent; security-alert as a security alert.
const (
	ActionCreate        Action = "create"
	ActionRead          Action = "read"
	ActionVRead         Action = "vread"
	ActionUpdate        Action = "update"
	ActionPatch         Action = "patch"
	ActionDelete        Action = "delete"
	ActionSearch        Action = "search"
	ActionHistory       Action = "history"
	ActionOperation     Action = "operation"
	ActionTransaction   Action = "transaction"
	ActionBatch         Action = "batch"
	ActionConsent       Action = "consent"
	ActionSecurityAlert Action = "security-alert"
	ActionLogin         Action = "login"
	ActionTransfer      Action = "transfer"
	ActionExport        Action = "export"
)

var actions = map[Action]bool{
	ActionCreate: true, ActionRead: true, ActionVRead: true, ActionUpdate: true,
	ActionPatch: true, ActionDelete: true, ActionSearch: true, ActionHistory: true,
	ActionOperation: true, ActionTransaction: true, ActionBatch: true, ActionConsent: true, ActionSecurityAlert: true,
	ActionLogin: true, ActionTransfer: true, ActionExport: true,
}

// AlertKind is the kind of a security alert.
type AlertKind string

// The security alert kinds.
const (
	AlertBreakGlass      AlertKind = "break-glass"
	AlertAuthFailure     AlertKind = "auth-failure"
	AlertPolicyViolation AlertKind = "policy-violation"
	AlertTamper          AlertKind = "tamper-detected"
	AlertDLPBlock        AlertKind = "dlp-block"
)

var alerts = map[AlertKind]bool{
	AlertBreakGlass: true, AlertAuthFailure: true, AlertPolicyViolation: true,
	AlertTamper: true, AlertDLPBlock: true,
}

// Outcome is the result of an action (the FHIR AuditEvent outcome codes 0, 4, 8, 12).
type Outcome string

// The outcomes.
const (
	OutcomeSuccess        Outcome = "success"
	OutcomeMinorFailure   Outcome = "minor-failure"
	OutcomeSeriousFailure Outcome = "serious-failure"
	OutcomeMajorFailure   Outcome = "major-failure"
)

var outcomes = map[Outcome]string{
	OutcomeSuccess: "0", OutcomeMinorFailure: "4", OutcomeSeriousFailure: "8", OutcomeMajorFailure: "12",
}

// ErrInvalidEvent is wrapped by every validation error (errors.Is).
var ErrInvalidEvent = errors.New("audit: invalid event")

// FieldError says which schema field is invalid and why. It never carries the
// field's value, which may be PHI.
type FieldError struct {
	Field  string // JSON path of the field, e.g. "who.user"
	Reason string // fixed text
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("audit: invalid event: %s: %s", e.Field, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalidEvent) hold.
func (e *FieldError) Unwrap() error { return ErrInvalidEvent }

func fieldErr(field, reason string) error { return &FieldError{Field: field, Reason: reason} }

// Validate checks every field against its syntax. It is what Append runs.
func (e *Event) Validate() error {
	if !actions[e.Action] {
		return fieldErr("action", "unknown action")
	}
	if e.Action == ActionSecurityAlert {
		if !alerts[e.Alert] {
			return fieldErr("alert", "unknown or missing alert kind")
		}
	} else if e.Alert != "" {
		return fieldErr("alert", "only allowed on security-alert events")
	}
	if _, ok := outcomes[e.Outcome]; !ok {
		return fieldErr("outcome", "unknown outcome")
	}
	if e.Index < 0 {
		return fieldErr("index", "negative")
	}
	if e.V != 0 && e.V != SchemaVersion {
		return fieldErr("v", "unsupported schema version")
	}
	checks := []struct {
		field string
		val   string
		ok    func(string) bool
		why   string
	}{
		{"data_class", e.DataClass, isCode, "not a code"},
		{"payload_hash", e.PayloadHash, isPayloadHash, "not sha256:<hex> or sm3:<hex>"},
		{"request_id", e.RequestID, isToken, "not a request id token"},
		{"who.cert_fp", e.Who.CertFP, isHex64, "not a hex SHA-256 fingerprint"},
		{"who.org", e.Who.Org, isToken, "not an organisation id"},
		{"who.role", e.Who.Role, isCode, "not a role code"},
		{"who.user", e.Who.User, IsPseudonym, "not a pseudonym"},
		{"what.patient", e.What.Patient, IsPseudonym, "not a pseudonym"},
		{"what.query_hash", e.What.QueryHash, isHex64, "not a hex hash"},
		{"what.resource_id", e.What.ResourceID, IsPseudonym, "not a pseudonym"},
		{"what.resource_type", e.What.ResourceType, isTypeName, "not a type name"},
		{"what.targets_hash", e.What.TargetsHash, isHex64, "not a hex hash"},
	}
	for _, c := range checks {
		if c.val != "" && !c.ok(c.val) {
			return fieldErr(c.field, c.why)
		}
	}
	if e.What.Entries < 0 || e.What.Entries > maxEntries {
		return fieldErr("what.entries", "out of range")
	}
	if len(e.What.QueryParams) > maxList {
		return fieldErr("what.query_params", "too many")
	}
	for _, p := range e.What.QueryParams {
		if !isParamName(p) {
			return fieldErr("what.query_params", "not a parameter name")
		}
	}
	if e.Why != nil {
		if e.Why.ConsentID != "" && !isFHIRID(e.Why.ConsentID) {
			return fieldErr("why.consent_id", "not a FHIR id")
		}
		if e.Why.Purpose != "" && !isCode(e.Why.Purpose) {
			return fieldErr("why.purpose", "not a purpose-of-use code")
		}
	}
	if d := e.Decision; d != nil {
		if d.Effect != "permit" && d.Effect != "deny" {
			return fieldErr("decision.effect", "not permit or deny")
		}
		if len(d.Policies) > maxList {
			return fieldErr("decision.policies", "too many")
		}
		for _, p := range d.Policies {
			if !isPolicyID(p) {
				return fieldErr("decision.policies", "not a policy id")
			}
		}
	}
	return nil
}

// normalize prepares a validated event for hashing.
func (e *Event) normalize(now time.Time) {
	if e.Time.IsZero() {
		e.Time = now
	}
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	e.V = SchemaVersion
	if e.Why != nil && *e.Why == (Why{}) {
		e.Why = nil
	}
}

// Canonical returns the canonical JSON of the event: sorted keys, compact, no
// insignificant whitespace. This is the leaf that is hashed into the tree.
func (e *Event) Canonical() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, fmt.Errorf("audit: encode event: %w", err)
	}
	b := buf.Bytes()
	b = b[:len(b)-1] // Encoder appends a newline
	if len(b) > MaxEventSize {
		return nil, fieldErr("event", "too large")
	}
	return b, nil
}

// ParseEvent reads an event from JSON, refusing any field that is not in the
// schema, trailing data, and values outside the field syntax. Use it for
// events that arrive over the wire (a gateway reporting to its coordinator).
func ParseEvent(data []byte) (Event, error) {
	var e Event
	if len(data) > MaxEventSize {
		return e, fieldErr("event", "too large")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Event{}, fmt.Errorf("%w: not schema JSON (unknown field, wrong type or malformed)", ErrInvalidEvent)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Event{}, fmt.Errorf("%w: trailing data", ErrInvalidEvent)
	}
	if err := e.Validate(); err != nil {
		return Event{}, err
	}
	return e, nil
}

const maxList = 32

// maxEntries bounds what.entries (a Bundle's entry count).
const maxEntries = 1 << 20

func isCode(s string) bool {
	if len(s) == 0 || len(s) > 32 || !isAlpha(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

func isToken(s string) bool {
	if len(s) == 0 || len(s) > 64 || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '-' && c != '_' && c != '.' && c != ':' {
			return false
		}
	}
	return true
}

func isPolicyID(s string) bool {
	if len(s) == 0 || len(s) > 128 || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '-' && c != '_' && c != '.' && c != ':' && c != '/' {
			return false
		}
	}
	return true
}

func isFHIRID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func isTypeName(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isAlpha(s[i]) {
			return false
		}
	}
	return true
}

func isParamName(s string) bool {
	if len(s) == 0 || len(s) > 64 || !(isAlpha(s[0]) || s[0] == '_') {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '-' && c != '_' && c != '.' && c != ':' {
			return false
		}
	}
	return true
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func isPayloadHash(s string) bool {
	switch {
	case len(s) > 7 && s[:7] == "sha256:":
		return isHex64(s[7:])
	case len(s) > 4 && s[:4] == "sm3:":
		return isHex64(s[4:])
	}
	return false
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isAlnum(c byte) bool { return isAlpha(c) || c >= '0' && c <= '9' }
