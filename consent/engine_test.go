package consent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sync"
	"testing"
	"time"

	"phix/fhir"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newEngine(t testing.TB, clock *fakeClock, opt Options) (*Engine, *memSource) {
	src := &memSource{byPat: map[string][]*fhir.Resource{}}
	opt.Now = clock.Now
	return NewEngine(src, trusted(t), opt), src
}

func classReq() Request {
	r := baseReq()
	r.Time = time.Time{} // cacheable
	return r
}

func TestWithdrawalSameSecond(t *testing.T) {
	clock := &fakeClock{t: when}
	e, src := newEngine(t, clock, Options{})
	intl, _, _ := testKeys(t)
	granted := signed(t, parse(t, consentJSON("c1", `{"type":"permit","actor":[`+actorDr1+`]}`)), intl)
	src.set("Patient/p1", granted)
	ctx := context.Background()
	for range 3 {
		d, err := e.Decide(ctx, classReq())
		if err != nil || d.Effect != Permit {
			t.Fatalf("before withdrawal: %+v %v", d, err)
		}
	}
	if src.loads != 1 {
		t.Fatalf("%d loads, want 1 (cached)", src.loads)
	}
	withdrawn := parse(t, consentJSON("c1", `{"type":"permit","actor":[`+actorDr1+`]}`))
	withdrawn.Object["status"] = "inactive"
	src.set("Patient/p1", signed(t, withdrawn, intl))
	// Without invalidation the cache still answers (TTL 60 s): the store
	// must call Invalidate on every Consent change.
	if d, _ := e.Decide(ctx, classReq()); d.Effect != Permit {
		t.Fatalf("cache not used")
	}
	e.Invalidate("Patient/p1")
	start := clock.Now()
	d, err := e.Decide(ctx, classReq())
	if err != nil {
		t.Fatal(err)
	}
	if d.Effect == Permit || d.Code != CodeRequired {
		t.Fatalf("withdrawal not effective: %+v", d)
	}
	if clock.Now().Sub(start) >= time.Second {
		t.Fatal("clock moved")
	}
}

func TestCacheTTLAndBoundaries(t *testing.T) {
	clock := &fakeClock{t: when}
	e, src := newEngine(t, clock, Options{})
	intl, _, _ := testKeys(t)
	// The permit ends 30 s from now: the cached decision must not outlive it.
	end := when.Add(30 * time.Second).Format(time.RFC3339)
	src.set("Patient/p1", signed(t, parse(t, consentJSON("c1", `{"type":"permit","period":{"end":"`+end+`"}}`)), intl))
	ctx := context.Background()
	if d, _ := e.Decide(ctx, classReq()); d.Effect != Permit {
		t.Fatalf("got %+v", d)
	}
	clock.Add(31 * time.Second)
	if d, _ := e.Decide(ctx, classReq()); d.Effect != NotApplicable || d.Code != CodeExpired {
		t.Fatalf("after period end: %+v", d)
	}
	clock.Add(DefaultTTL)
	e.Decide(ctx, classReq())
	if src.loads != 2 {
		t.Fatalf("%d loads, want 2 after the TTL", src.loads)
	}
}

func TestCacheBounded(t *testing.T) {
	clock := &fakeClock{t: when}
	e, src := newEngine(t, clock, Options{MaxEntries: 10})
	intl, _, _ := testKeys(t)
	c := signed(t, parse(t, consentJSON("c1", `{"type":"permit"}`)), intl)
	for i := range 50 {
		p := fmt.Sprintf("Patient/p%d", i)
		src.set(p, c)
		r := classReq()
		r.Patient = p
		if _, err := e.Decide(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		if n := e.Len(); n > 10 {
			t.Fatalf("cache holds %d entries", n)
		}
	}
}

func TestAuditHook(t *testing.T) {
	clock := &fakeClock{t: when}
	var got []Ignored
	e, src := newEngine(t, clock, Options{Audit: func(_ string, ig Ignored) { got = append(got, ig) }})
	_, _, other := testKeys(t)
	src.set("Patient/p1", signed(t, parse(t, consentJSON("c1", `{"type":"permit"}`)), other))
	d, _ := e.Decide(context.Background(), classReq())
	if d.Code != CodeBadSignature || len(got) != 1 || got[0].Reason != SigUntrusted {
		t.Fatalf("decision %+v audit %+v", d, got)
	}
}

func TestConcurrentDecide(t *testing.T) {
	clock := &fakeClock{t: when}
	e, src := newEngine(t, clock, Options{})
	intl, _, _ := testKeys(t)
	src.set("Patient/p1", signed(t, parse(t, consentJSON("c1", `{"type":"permit"}`)), intl))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if (i+g)%50 == 0 {
					e.Invalidate("Patient/p1")
				}
				if d, err := e.Decide(context.Background(), classReq()); err != nil || d.Effect != Permit {
					t.Errorf("got %+v %v", d, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestConsentStatusSeed(t *testing.T) {
	intl, _, _ := testKeys(t)
	clock := &fakeClock{t: when}
	e, src := newEngine(t, clock, Options{})
	src.set("Patient/patient-12345", signed(t, readFile(t, "seed002-consent.json"), intl))
	got, err := e.ConsentStatus(context.Background(), "Patient/patient-12345", readFile(t, "seed002-status-request.json"))
	if err != nil {
		t.Fatal(err)
	}
	gb, _ := fhir.Marshal(got)
	wb, _ := os.ReadFile("testdata/seed002-status-granted.json")
	var g, w any
	json.Unmarshal(gb, &g)
	json.Unmarshal(wb, &w)
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("response\n%s\nwant\n%s", gb, wb)
	}

	// Another practitioner: no consent.
	other := readFile(t, "seed002-status-request.json")
	mapOf(mapOf(slice(other.Object["parameter"])[0])["valueReference"])["reference"] = "Practitioner/x"
	got, _ = e.ConsentStatus(context.Background(), "Patient/patient-12345", other)
	if s := str(mapOf(slice(got.Object["parameter"])[0])["valueCode"]); s != StatusNone || len(slice(got.Object["parameter"])) != 1 {
		t.Fatalf("other practitioner: %v", got.Object)
	}

	// After the period: expired, with the consent and expiry.
	clock.Add(365 * 24 * time.Hour)
	e.Invalidate("Patient/patient-12345")
	got, _ = e.ConsentStatus(context.Background(), "Patient/patient-12345", readFile(t, "seed002-status-request.json"))
	if s := str(mapOf(slice(got.Object["parameter"])[0])["valueCode"]); s != StatusExpired {
		t.Fatalf("expired: %v", got.Object)
	}
}

func TestConsentStatusBadRequest(t *testing.T) {
	e, _ := newEngine(t, &fakeClock{t: when}, Options{})
	for name, js := range map[string]string{
		"not parameters":  `{"resourceType":"Patient","id":"x"}`,
		"no practitioner": `{"resourceType":"Parameters","parameter":[{"name":"action","valueCode":"access"}]}`,
		"no action":       `{"resourceType":"Parameters","parameter":[{"name":"practitioner","valueReference":{"reference":"Practitioner/1"}}]}`,
		"bad action":      `{"resourceType":"Parameters","parameter":[{"name":"practitioner","valueReference":{"reference":"Practitioner/1"}},{"name":"action","valueCode":"steal"}]}`,
	} {
		_, err := e.ConsentStatus(context.Background(), "Patient/1", parse(t, js))
		if ce, ok := err.(*Error); !ok || ce.Code != "invalid-parameters" {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestNormRef(t *testing.T) {
	for in, want := range map[string]string{
		"Patient/1":                           "Patient/1",
		"https://h/fhir/Patient/1/_history/2": "Patient/1",
		"https://h/fhir/Patient/1":            "Patient/1",
		"Patient/1/_history/3":                "Patient/1",
		"Patient/1/*":                         "Patient/1/*",
		"Practitioner":                        "Practitioner",
		"/x":                                  "/x",
		"a//b":                                "/b",
		"":                                    "",
	} {
		if got := normRef(in); got != want {
			t.Errorf("normRef(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestNeeds: the engine reports the fields a patient's consents read.
func TestNeeds(t *testing.T) {
	for _, c := range []struct {
		provision string
		want      Fields
	}{
		{`{"type":"permit"}`, 0},
		{`{"type":"permit","provision":[{"type":"deny","securityLabel":[{"code":"HIV"}]}]}`, FieldLabels},
		{`{"type":"permit","provision":[{"type":"deny","code":[{"coding":[{"code":"x"}]}],"dataPeriod":{"start":"2020-01-01"}}]}`, FieldCodes | FieldDate},
		{`{"type":"permit","provision":[{"type":"deny","data":[{"meaning":"related","reference":{"reference":"Encounter/e"}}]}]}`, FieldReferences},
		{`{"type":"permit","provision":[{"type":"deny","class":[{"code":"http://example.org/profile"}]}]}`, FieldProfiles},
	} {
		var prov map[string]any
		if err := json.Unmarshal([]byte(c.provision), &prov); err != nil {
			t.Fatal(err)
		}
		r := &fhir.Resource{Type: "Consent", ID: "c", Object: map[string]any{"resourceType": "Consent", "id": "c", "status": "active",
			"patient": map[string]any{"reference": "Patient/p"}, "provision": prov}}
		e := NewEngine(SourceFunc(func(context.Context, string) ([]*fhir.Resource, error) { return []*fhir.Resource{r}, nil }), nil, Options{})
		got, err := e.Needs(context.Background(), "Patient/p")
		if err != nil || got != c.want {
			t.Errorf("%s: needs %b (%v), want %b", c.provision, got, err, c.want)
		}
		if cached, ok := e.CachedNeeds("Patient/p"); !ok || cached != c.want {
			t.Errorf("%s: cached %b %v", c.provision, cached, ok)
		}
	}
}
