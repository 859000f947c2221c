package dicom

//go:generate go run gen_table.go /work/shared/testdata/dicom/confidentiality_profile_attributes.json

// action is one PS3.15 Annex E action code.
type action uint8

const (
	actNone action = iota // not listed in this column
	actD                  // replace with a non-zero dummy value
	actZ                  // replace with a zero-length value
	actX                  // remove
	actK                  // keep
	actC                  // clean: keep, with identifying content removed or shifted
	actU                  // replace UID with a keyed, consistent one
	actXZ                 // X unless Z is required (Type 2)
	actXD                 // X unless D is required (Type 1)
	actXZD                // X unless Z (Type 2) or D (Type 1) is required
	actXZU                // X unless Z (Type 2) or U (Type 1, UI) is required
	actZD                 // Z unless D is required (Type 1)
)

var actionNames = [...]string{"-", "D", "Z", "X", "K", "C", "U", "X/Z", "X/D", "X/Z/D", "X/Z/U*", "Z/D"}

func (a action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "?"
}

// Option columns of Table E.1-1, in the order gen_table.go writes them.
const (
	optLongFull = iota
	optLongModified
	optPatientChars
	optDevice
	optInstitution
	optUIDs
	optCleanDesc
	optSafePrivate
	nOpts
)

// entry is one row of Table E.1-1.
type entry struct {
	tag, mask uint32
	basic     action
	inStdIOD  bool // used in a standard composite IOD
	opts      [nOpts]action
}

var (
	exactTable  map[uint32]*entry
	maskedTable []*entry
)

func init() {
	exactTable = make(map[uint32]*entry, len(annexE))
	for i := range annexE {
		e := &annexE[i]
		if e.mask == 0xFFFFFFFF {
			exactTable[e.tag] = e
		} else {
			maskedTable = append(maskedTable, e)
		}
	}
}

// lookup finds the Table E.1-1 row for a tag, if any.
func lookup(t uint32) *entry {
	if e, ok := exactTable[t]; ok {
		return e
	}
	for _, e := range maskedTable {
		if t&e.mask == e.tag {
			return e
		}
	}
	return nil
}
