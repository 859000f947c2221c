package dicom

import (
	"bytes"
	"strings"
	"time"
	"unicode/utf8"

	dcm "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Dummy values for D, by VR. They are fixed, so they carry nothing of the
// original.
var dummies = map[string]string{
	"DA": "19000101", "DT": "19000101000000", "TM": "000000",
	"PN": "ANONYMOUS", "LO": "ANONYMIZED", "SH": "ANONYMIZED", "CS": "ANONYMIZED",
	"LT": "ANONYMIZED", "ST": "ANONYMIZED", "UT": "ANONYMIZED", "UC": "ANONYMIZED",
	"AE": "ANONYMIZED", "AS": "000D", "IS": "0", "DS": "0", "UR": "",
}

// fileRun is the state of one file.
type fileRun struct {
	d       *Deidentifier
	shift   int
	secrets [][]byte
}

// elements applies the profile to one dataset level and returns the kept
// elements, in order.
func (r *fileRun) elements(in []*dcm.Element) ([]*dcm.Element, error) {
	out := make([]*dcm.Element, 0, len(in))
	var creators map[uint32]string
	for _, e := range in {
		if e.Tag.Group%2 == 1 && e.Tag.Element >= 0x10 && e.Tag.Element <= 0xFF {
			if creators == nil {
				creators = map[uint32]string{}
			}
			if s, ok := e.Value.GetValue().([]string); ok && len(s) > 0 {
				creators[uint32(e.Tag.Group)<<8|uint32(e.Tag.Element)] = strings.TrimSpace(s[0])
			}
		}
	}
	for _, e := range in {
		if e.Value == nil {
			continue
		}
		t := tagOf(e)
		g := e.Tag.Group
		if g == 0x0002 || e.Tag.Element == 0x0000 || g == 0xFFFE {
			continue // meta is rebuilt; group lengths are obsolete
		}
		if g%2 == 1 {
			if r.keepPrivate(e, creators) {
				out = append(out, e)
			}
			continue
		}
		vr := e.RawValueRepresentation
		var act action
		if ent := lookup(t); ent != nil {
			act = resolveCompound(r.d.prof.resolve(ent), t)
			if t == 0x00100020 && act == actZ && r.d.cfg.Pseudonyms != nil {
				act = actD // Z/D: a keyed pseudonym keeps the patient's files linkable
			}
		} else {
			act = r.unlisted(vr)
		}
		ne, keep, err := r.apply(e, t, vr, act)
		if err != nil {
			return nil, err
		}
		if keep {
			out = append(out, ne)
		}
	}
	return out, nil
}

// keepPrivate applies the Retain Safe Private option: a private element
// stays only if its creator, group and element offset are on the safe
// list, or it is the creator element of such a block.
func (r *fileRun) keepPrivate(e *dcm.Element, creators map[uint32]string) bool {
	if !r.d.prof.on[optSafePrivate] || e.Tag.Element < 0x10 {
		return false
	}
	g := e.Tag.Group
	if e.Tag.Element <= 0xFF {
		c := creators[uint32(g)<<8|uint32(e.Tag.Element)]
		for k := range r.d.safe {
			if k.Group == g && k.Creator == c {
				return true
			}
		}
		return false
	}
	c, ok := creators[uint32(g)<<8|uint32(e.Tag.Element>>8)]
	if !ok {
		return false
	}
	if !r.d.safe[safeKey{c, g, uint8(e.Tag.Element)}] {
		return false
	}
	// Only numeric values are retained: text could hold anything.
	switch e.Value.GetValue().(type) {
	case []int, []float64:
		return true
	case []string:
		switch e.RawValueRepresentation {
		case "DS", "IS":
			return true
		}
	}
	return false
}

// unlisted is the action for an attribute Table E.1-1 does not list:
// every date and time by VR, every instance UID remapped, the rest kept.
func (r *fileRun) unlisted(vr string) action {
	p := r.d.prof
	switch vr {
	case "DA", "DT":
		switch {
		case p.on[optLongFull]:
			return actK
		case p.on[optLongModified]:
			return actC
		}
		return actZ
	case "TM":
		if p.on[optLongFull] || p.on[optLongModified] {
			return actK
		}
		return actZ
	case "UI":
		return actU
	}
	return actK
}

// apply carries out one action on one element.
func (r *fileRun) apply(e *dcm.Element, t uint32, vr string, act action) (*dcm.Element, bool, error) {
	if vr == "UI" && act != actX && act != actZ {
		if r.d.prof.on[optUIDs] || uidClassTags[t] {
			return e, true, nil
		}
		act = actU
	}
	switch act {
	case actX:
		return nil, false, nil
	case actZ:
		return r.empty(e), true, nil
	case actD:
		return r.dummy(e, t, vr), true, nil
	case actU:
		return r.uids(e)
	case actC:
		return r.clean(e, t, vr)
	}
	// K and anything else: keep, but never keep a sequence unvisited.
	return r.recurse(e)
}

func (r *fileRun) recurse(e *dcm.Element) (*dcm.Element, bool, error) {
	items, ok := e.Value.GetValue().([]*dcm.SequenceItemValue)
	if !ok {
		return e, true, nil
	}
	var out [][]*dcm.Element
	for _, it := range items {
		elems, _ := it.GetValue().([]*dcm.Element)
		ne, err := r.elements(elems)
		if err != nil {
			return nil, false, err
		}
		out = append(out, ne)
	}
	return withValue(e, out), true, nil
}

// withValue returns a copy of e holding data.
func withValue(e *dcm.Element, data any) *dcm.Element {
	v, err := dcm.NewValue(data)
	if err != nil {
		return nil
	}
	ne := *e
	ne.Value = v
	if _, seq := data.([][]*dcm.Element); seq {
		ne.ValueLength = tag.VLUndefinedLength
	} else {
		ne.ValueLength = 0
	}
	return &ne
}

func (r *fileRun) empty(e *dcm.Element) *dcm.Element {
	switch e.Value.GetValue().(type) {
	case []*dcm.SequenceItemValue:
		return withValue(e, [][]*dcm.Element{})
	case []int:
		return withValue(e, []int{})
	case []float64:
		return withValue(e, []float64{})
	case []byte:
		return withValue(e, []byte{})
	}
	return withValue(e, []string{""})
}

func (r *fileRun) dummy(e *dcm.Element, t uint32, vr string) *dcm.Element {
	switch e.Value.GetValue().(type) {
	case []*dcm.SequenceItemValue:
		ne, _, _ := r.recurse(e)
		return ne
	case []int:
		return withValue(e, []int{0})
	case []float64:
		return withValue(e, []float64{0})
	case []byte:
		return withValue(e, []byte{0, 0})
	}
	if t == 0x00100020 && r.d.cfg.Pseudonyms != nil {
		// A keyed pseudonym keeps the patient's files linkable.
		return withValue(e, []string{r.d.cfg.Pseudonyms.Pseudonym("dicom-patient-id", strings.Join(stringsVal(e), `\`))})
	}
	d, ok := dummies[vr]
	if !ok {
		d = "ANONYMIZED"
	}
	return withValue(e, []string{d})
}

func stringsVal(e *dcm.Element) []string {
	s, _ := e.Value.GetValue().([]string)
	return s
}

// uids remaps every instance UID of e (and in its items).
func (r *fileRun) uids(e *dcm.Element) (*dcm.Element, bool, error) {
	switch v := e.Value.GetValue().(type) {
	case []*dcm.SequenceItemValue:
		return r.recurse(e)
	case []string:
		if r.d.prof.on[optUIDs] {
			return e, true, nil
		}
		out := make([]string, len(v))
		for i, u := range v {
			u = strings.TrimRight(u, " \x00")
			if u == "" || strings.HasPrefix(u, "1.2.840.10008.") {
				out[i] = u
				continue
			}
			out[i] = r.d.cfg.UIDs.UID(u)
		}
		return withValue(e, out), true, nil
	}
	return r.empty(e), true, nil
}

// clean keeps an element with its identifying content removed: dates
// shifted (Modified Dates), text redacted where DLP finds PHI, UIDs
// remapped, sequences visited.
func (r *fileRun) clean(e *dcm.Element, t uint32, vr string) (*dcm.Element, bool, error) {
	switch v := e.Value.GetValue().(type) {
	case []*dcm.SequenceItemValue:
		return r.recurse(e)
	case []string:
		switch vr {
		case "DA", "DT":
			if !r.d.prof.on[optLongModified] {
				return r.empty(e), true, nil
			}
			out := make([]string, len(v))
			for i, s := range v {
				out[i] = shiftDate(s, vr, r.shift)
			}
			return withValue(e, out), true, nil
		case "TM":
			if r.d.prof.on[optLongModified] || r.d.prof.on[optLongFull] {
				return e, true, nil
			}
			return r.empty(e), true, nil
		case "UI":
			return r.uids(e)
		}
		joined := strings.Join(v, `\`)
		fs := r.d.cfg.Scanner.ScanDICOM(t, vr, joined)
		if len(fs) == 0 {
			return e, true, nil
		}
		if vr == "PN" {
			return withValue(e, []string{dummies["PN"]}), true, nil
		}
		runes := []rune(joined)
		for _, f := range fs {
			for i := max(f.Start, 0); i < f.End && i < len(runes); i++ {
				if runes[i] != '\\' {
					runes[i] = '*'
				}
			}
		}
		return withValue(e, strings.Split(string(runes), `\`)), true, nil
	}
	return e, true, nil
}

// shiftDate moves a DA or DT value by days, keeping its precision, time
// and offset. A value that is not a date becomes empty: it is never kept
// unshifted.
func shiftDate(s, vr string, days int) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	n := 0
	for n < len(s) && n < 8 && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	if n != 4 && n != 6 && n != 8 {
		return ""
	}
	if vr == "DA" && n != len(s) {
		return ""
	}
	y, m, d := atoi(s[:4]), 1, 1
	if n >= 6 {
		m = atoi(s[4:6])
	}
	if n == 8 {
		d = atoi(s[6:8])
	}
	tm := time.Date(y, time.Month(m), d, 12, 0, 0, 0, time.UTC)
	if tm.Year() != y || int(tm.Month()) != m || tm.Day() != d {
		return ""
	}
	tm = tm.AddDate(0, 0, days)
	if tm.Year() < 1 || tm.Year() > 9999 {
		return ""
	}
	return tm.Format("20060102")[:n] + s[n:]
}

func atoi(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// collectSecrets keeps the identifiers that must not survive anywhere in
// the output: patient names and ids, in UTF-8, and instance UIDs.
func collectSecrets(body []*dcm.Element) [][]byte {
	var out [][]byte
	add := func(s string) {
		s = strings.TrimSpace(s)
		if utf8.RuneCountInString(s) >= 4 && len(s) >= 6 {
			out = append(out, []byte(s))
		}
	}
	for _, e := range body {
		switch tagOf(e) {
		case 0x00100010, 0x00101001, 0x00101060:
			for _, s := range stringsVal(e) {
				for _, grp := range strings.Split(s, "=") {
					add(strings.Trim(strings.ReplaceAll(grp, "^", " "), " "))
					for _, c := range strings.Split(grp, "^") {
						add(c)
					}
				}
			}
		case 0x00100020, 0x00101000:
			for _, s := range stringsVal(e) {
				add(s)
			}
		}
	}
	return out
}

// leaks reports whether a secret survived. Values equal to text phix
// writes itself are not secrets.
func (r *fileRun) leaks(out []byte) bool {
	for _, s := range r.secrets {
		if strings.Contains(ownText, string(s)) {
			continue
		}
		if bytes.Contains(out, s) {
			return true
		}
	}
	return false
}

// ownText is every fixed string phix writes.
var ownText = func() string {
	var b strings.Builder
	for _, v := range dummies {
		b.WriteString(v + "|")
	}
	for _, o := range optionInfo {
		b.WriteString(o.meaning + "|")
	}
	b.WriteString("Basic Application Confidentiality Profile|PS3.15 E Basic Profile (phix)|PHIX_DEID_1|ISO_IR 192")
	return b.String()
}()
