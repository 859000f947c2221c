package fhirserver

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	"phix/audit"
)

// TestAuditBundleOneEvent: a transaction and a batch each leave exactly one
// audit event (action transaction/batch, the entry count, the hash of the
// pseudonymous targets), with what.patient only when one Patient was
// written; no id or name reaches the log.
func TestAuditBundleOneEvent(t *testing.T) {
	a := newAuditEnv(t)
	tx := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
		map[string]any{"fullUrl": "urn:uuid:8c1b5a40-5d0c-4b6a-9f44-2a7b0b6c1e01", "resource": patient("Bundled", "Bea"),
			"request": map[string]any{"method": "POST", "url": "Patient"}},
		map[string]any{"resource": map[string]any{"resourceType": "Observation", "id": "ob-1", "status": "final", "code": map[string]any{"text": "w"},
			"subject": map[string]any{"reference": "urn:uuid:8c1b5a40-5d0c-4b6a-9f44-2a7b0b6c1e01"}},
			"request": map[string]any{"method": "PUT", "url": "Observation/ob-1"}},
		map[string]any{"request": map[string]any{"method": "GET", "url": "Observation?code=w"}},
	}}
	res := a.do("POST", "", tx).want(t, 200)
	loc := res.entries()[0]["response"].(map[string]any)["location"].(string)
	pid := strings.Split(loc, "/")[1]
	batch := map[string]any{"resourceType": "Bundle", "type": "batch", "entry": []any{
		map[string]any{"resource": patient("Batched", "Bo"), "request": map[string]any{"method": "POST", "url": "Patient"}},
		map[string]any{"resource": patient("Batched", "Bu"), "request": map[string]any{"method": "POST", "url": "Patient"}},
		map[string]any{"request": map[string]any{"method": "DELETE", "url": "Observation/ob-1"}},
		map[string]any{"request": map[string]any{"method": "GET", "url": "Patient/" + pid}},
	}}
	bres := a.do("POST", "", batch).want(t, 200)
	var batchIDs []string
	for _, en := range bres.entries()[:2] {
		batchIDs = append(batchIDs, strings.Split(en["response"].(map[string]any)["location"].(string), "/")[1])
	}
	var evs []audit.Event
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if evs = a.events(t); len(evs) >= 2 {
			break
		}
	}
	if len(evs) != 2 {
		t.Fatalf("%d events for two Bundles: %+v", len(evs), evs)
	}
	hash := func(refs ...[2]string) string {
		var ps []string
		for _, r := range refs {
			ps = append(ps, a.ps.Resource(r[0], r[1]))
		}
		sort.Strings(ps)
		sum := sha256.Sum256([]byte(strings.Join(ps, "\n")))
		return hex.EncodeToString(sum[:])
	}
	byAction := map[audit.Action]audit.Event{}
	for _, ev := range evs {
		byAction[ev.Action] = ev
	}
	te, ok := byAction[audit.ActionTransaction]
	if !ok || te.What.ResourceType != "Bundle" || te.What.Entries != 3 || te.Outcome != audit.OutcomeSuccess ||
		te.What.TargetsHash != hash([2]string{"Patient", pid}, [2]string{"Observation", "ob-1"}) ||
		te.What.Patient != a.ps.Patient(pid) || te.What.ResourceID != "" {
		t.Fatalf("transaction event: %+v", te)
	}
	be, ok := byAction[audit.ActionBatch]
	if !ok || be.What.Entries != 4 || be.What.Patient != "" ||
		be.What.TargetsHash != hash([2]string{"Patient", batchIDs[0]}, [2]string{"Patient", batchIDs[1]}, [2]string{"Observation", "ob-1"}) {
		t.Fatalf("batch event: %+v", be)
	}
	raw, _ := json.Marshal(evs)
	for _, v := range []string{"Bundled", "Batched", pid, "ob-1"} {
		if strings.Contains(string(raw), v) {
			t.Fatalf("audit events contain %q", v)
		}
	}
	// The AuditEvent rendering says transaction/batch.
	r := a.doAs(a.auditor, "GET", BasePath+"/AuditEvent?subtype=transaction")
	if r.status != 200 || !strings.Contains(string(r.body), `"code":"transaction"`) || !strings.Contains(string(r.body), "targets-hash") {
		t.Fatalf("AuditEvent: %d %.400s", r.status, r.body)
	}

	// A failed transaction is still one event, with its entry count and no targets.
	bad := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
		map[string]any{"resource": patient("Failing", "Fa"), "request": map[string]any{"method": "POST", "url": "Patient"}},
		map[string]any{"request": map[string]any{"method": "GET", "url": "Patient/missing"}},
	}}
	a.do("POST", "", bad).want(t, 404)
	evs = a.events(t)
	last := evs[len(evs)-1]
	if len(evs) != 3 || last.Action != audit.ActionTransaction || last.Outcome != audit.OutcomeMinorFailure || last.What.Entries != 2 || last.What.TargetsHash != "" {
		t.Fatalf("failed transaction: %d events, last %+v", len(evs), last)
	}
}
