package deid

import (
	"sort"
	"strconv"
	"strings"

	"phix/fhir/fhirpath"
)

// RiskConfig configures the re-identification risk check of a batch.
type RiskConfig struct {
	// K is the smallest allowed equivalence class (default 5, seed 002).
	K int `json:"k,omitempty"`
	// L, when > 0, is the smallest allowed number of distinct sensitive
	// values per class, for every sensitive attribute.
	L int `json:"l,omitempty"`
	// QuasiIdentifiers are evaluated on each patient's de-identified Patient
	// resource; the default is birth year, gender and ZIP3/region.
	QuasiIdentifiers []Attribute `json:"quasiIdentifiers,omitempty"`
	// Sensitive attributes are evaluated on every resource of the patient
	// (e.g. Condition.code.coding.code); a patient's value is the set found.
	Sensitive []Attribute `json:"sensitive,omitempty"`
}

// Attribute is a named FHIRPath expression.
type Attribute struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

// DefaultQuasiIdentifiers are birth year, gender and ZIP3 (or state).
var DefaultQuasiIdentifiers = []Attribute{
	{Name: "birthYear", Path: "Patient.birthDate.toString().substring(0, 4)"},
	{Name: "gender", Path: "Patient.gender"},
	{Name: "region", Path: "(Patient.address.postalCode.substring(0, 3) | Patient.address.state).first()"},
}

func (c *RiskConfig) check() error {
	if c.K < 0 || c.L < 0 {
		return &Error{Code: CodeRuleInvalid, Rule: -1, Where: "risk", Msg: "k and l must not be negative"}
	}
	for _, a := range append(append([]Attribute(nil), c.QuasiIdentifiers...), c.Sensitive...) {
		if a.Name == "" {
			return &Error{Code: CodeRuleInvalid, Rule: -1, Where: "risk", Msg: "attribute without a name"}
		}
		if _, err := fhirpath.Compile(a.Path); err != nil {
			msg := "FHIRPath does not compile"
			if fe, ok := fhirpath.AsError(err); ok {
				msg = "FHIRPath " + fe.Code + " at " + fe.Pos.String()
			}
			return &Error{Code: CodeRuleInvalid, Rule: -1, Where: "risk." + a.Name, Msg: msg}
		}
	}
	return nil
}

type compiledAttr struct {
	name string
	expr *fhirpath.Expression
}

type compiledRisk struct {
	cfg       RiskConfig
	qi, sens  []compiledAttr
	threshold int
}

func (c *RiskConfig) compile() (*compiledRisk, error) {
	r := &compiledRisk{cfg: *c, threshold: c.K}
	if r.threshold == 0 {
		r.threshold = 5
	}
	qis := c.QuasiIdentifiers
	if len(qis) == 0 {
		qis = DefaultQuasiIdentifiers
	}
	for _, a := range qis {
		e, err := fhirpath.Cached(a.Path)
		if err != nil {
			return nil, &Error{Code: CodeRuleInvalid, Rule: -1, Where: "risk." + a.Name, Msg: "FHIRPath does not compile"}
		}
		r.qi = append(r.qi, compiledAttr{a.Name, e})
	}
	for _, a := range c.Sensitive {
		e, err := fhirpath.Cached(a.Path)
		if err != nil {
			return nil, &Error{Code: CodeRuleInvalid, Rule: -1, Where: "risk." + a.Name, Msg: "FHIRPath does not compile"}
		}
		r.sens = append(r.sens, compiledAttr{a.Name, e})
	}
	return r, nil
}

type riskInput struct {
	patient string
	obj     map[string]any
}

// RiskRecord is one individual's quasi-identifier and sensitive values.
type RiskRecord struct {
	QI        map[string]string
	Sensitive map[string]string
}

// RiskReport is the outcome of a risk assessment. It holds counts and
// attribute names only, never values.
type RiskReport struct {
	Records          int      `json:"records"`
	Classes          int      `json:"classes"`
	K                int      `json:"k"`
	Threshold        int      `json:"threshold"`
	QuasiIdentifiers []string `json:"quasiIdentifiers"`
	// L is the smallest number of distinct values per class, per sensitive
	// attribute.
	L map[string]int `json:"l,omitempty"`
	// ProsecutorMax is max 1/|class|; ProsecutorAvg the mean over records.
	ProsecutorMax float64 `json:"prosecutorMax"`
	ProsecutorAvg float64 `json:"prosecutorAvg"`
	// Drivers lists each quasi-identifier with the k the batch would have
	// without it, the strongest driver (highest k without it) first.
	Drivers []Driver `json:"drivers"`
	// RecordsBelowK counts records in classes smaller than the threshold.
	RecordsBelowK int `json:"recordsBelowK"`
}

// Driver is one quasi-identifier's effect on k.
type Driver struct {
	QuasiIdentifier string `json:"quasiIdentifier"`
	KWithout        int    `json:"kWithout"`
}

func (e *Engine) assessBatch(batch []riskInput) (*RiskReport, error) {
	r := e.risk
	recs := map[string]*RiskRecord{}
	var order []string
	sets := map[string]map[string]map[string]bool{}
	ec := &fhirpath.EvalContext{}
	for _, in := range batch {
		rec := recs[in.patient]
		if rec == nil {
			rec = &RiskRecord{QI: map[string]string{}, Sensitive: map[string]string{}}
			recs[in.patient] = rec
			order = append(order, in.patient)
			sets[in.patient] = map[string]map[string]bool{}
		}
		if rt, _ := in.obj["resourceType"].(string); rt == "Patient" {
			for _, a := range r.qi {
				vals, err := a.expr.EvaluateStrings(ec, fhirpath.Collection{fhirpath.NewResourceItem(in.obj)})
				if err != nil {
					return nil, failed("risk."+a.name, "quasi-identifier could not be evaluated")
				}
				sort.Strings(vals)
				rec.QI[a.name] = strings.Join(vals, "|")
			}
		}
		for _, a := range r.sens {
			vals, err := a.expr.EvaluateStrings(ec, fhirpath.Collection{fhirpath.NewResourceItem(in.obj)})
			if err != nil {
				continue
			}
			if sets[in.patient][a.name] == nil {
				sets[in.patient][a.name] = map[string]bool{}
			}
			for _, v := range vals {
				sets[in.patient][a.name][v] = true
			}
		}
	}
	var list []RiskRecord
	for _, p := range order {
		rec := recs[p]
		if len(rec.QI) == 0 {
			continue // no Patient resource in the batch for this id: nothing to link
		}
		for name, set := range sets[p] {
			vs := make([]string, 0, len(set))
			for v := range set {
				vs = append(vs, v)
			}
			sort.Strings(vs)
			rec.Sensitive[name] = strings.Join(vs, "|")
		}
		list = append(list, *rec)
	}
	names := make([]string, len(r.qi))
	for i, a := range r.qi {
		names[i] = a.name
	}
	var sens []string
	for _, a := range r.sens {
		sens = append(sens, a.name)
	}
	rep := Assess(list, names, sens, r.threshold)
	if err := rep.Check(r.cfg.L); err != nil {
		return rep, err
	}
	return rep, nil
}

// Assess computes k-anonymity, l-diversity and prosecutor risk over records
// for the named quasi-identifiers and sensitive attributes.
func Assess(recs []RiskRecord, qis, sensitive []string, threshold int) *RiskReport {
	rep := &RiskReport{Records: len(recs), Threshold: threshold, QuasiIdentifiers: qis}
	if len(recs) == 0 {
		return rep
	}
	classes := group(recs, qis, "")
	rep.Classes = len(classes)
	rep.K = len(recs)
	for _, members := range classes {
		rep.K = min(rep.K, len(members))
		if len(members) < threshold {
			rep.RecordsBelowK += len(members)
		}
	}
	rep.ProsecutorMax = 1 / float64(rep.K)
	rep.ProsecutorAvg = float64(len(classes)) / float64(len(recs))
	if len(sensitive) > 0 {
		rep.L = map[string]int{}
		for _, s := range sensitive {
			l := -1
			for _, members := range classes {
				d := map[string]bool{}
				for _, i := range members {
					d[recs[i].Sensitive[s]] = true
				}
				if l < 0 || len(d) < l {
					l = len(d)
				}
			}
			rep.L[s] = l
		}
	}
	for _, q := range qis {
		k := len(recs)
		for _, m := range group(recs, qis, q) {
			k = min(k, len(m))
		}
		rep.Drivers = append(rep.Drivers, Driver{QuasiIdentifier: q, KWithout: k})
	}
	sort.SliceStable(rep.Drivers, func(i, j int) bool { return rep.Drivers[i].KWithout > rep.Drivers[j].KWithout })
	return rep
}

func group(recs []RiskRecord, qis []string, without string) map[string][]int {
	classes := map[string][]int{}
	var b strings.Builder
	for i, r := range recs {
		b.Reset()
		for _, q := range qis {
			if q == without {
				continue
			}
			v := r.QI[q]
			b.WriteString(strconv.Itoa(len(v)))
			b.WriteByte(':')
			b.WriteString(v)
		}
		classes[b.String()] = append(classes[b.String()], i)
	}
	return classes
}

// Check returns PHI-6009 when k is below the threshold or (l > 0) a
// sensitive attribute has fewer than l distinct values in some class. The
// message names the driving quasi-identifiers.
func (rep *RiskReport) Check(l int) error {
	low := rep.Records > 0 && rep.K < rep.Threshold
	var lowL []string
	if l > 0 {
		for s, v := range rep.L {
			if v < l {
				lowL = append(lowL, s)
			}
		}
		sort.Strings(lowL)
	}
	if !low && len(lowL) == 0 {
		return nil
	}
	msg := "k=" + strconv.Itoa(rep.K) + " below " + strconv.Itoa(rep.Threshold)
	if !low {
		msg = "l-diversity below " + strconv.Itoa(l) + " for " + strings.Join(lowL, ", ")
	}
	var drivers []string
	for _, d := range rep.Drivers {
		if d.KWithout > rep.K {
			drivers = append(drivers, d.QuasiIdentifier+" (k="+strconv.Itoa(d.KWithout)+" without it)")
		}
	}
	if len(drivers) > 0 {
		msg += "; driven by " + strings.Join(drivers, ", ")
	}
	return &Error{Code: CodeRiskHigh, Rule: -1, Msg: msg, Report: rep}
}
