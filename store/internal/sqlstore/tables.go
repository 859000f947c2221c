package sqlstore

import (
	"fmt"
	"math"
	"time"

	"phix/fhir/search"
	"phix/store"
)

// Table is one index table: the entries of one search parameter type.
type Table struct {
	Name string
	Bit  uint8 // this table's bit in resources.idx_mask
	// Cols are the value columns after res_pk, rtype, param, in the order of
	// Row.Vals.
	Cols []string
}

// Tables are the index tables, one per indexable parameter type.
var Tables = []Table{
	{Name: "idx_string", Bit: 1 << 0, Cols: []string{"norm", "exact", "grp"}},
	{Name: "idx_token", Bit: 1 << 1, Cols: []string{"system", "code", "text", "grp", "type_system", "type_code"}},
	{Name: "idx_date", Bit: 1 << 2, Cols: []string{"lo", "hi", "grp"}},
	{Name: "idx_number", Bit: 1 << 3, Cols: []string{"num", "lo", "hi", "grp"}},
	{Name: "idx_quantity", Bit: 1 << 4, Cols: []string{"system", "code", "num", "lo", "hi", "grp"}},
	{Name: "idx_reference", Bit: 1 << 5, Cols: []string{"ref_type", "ref_id", "ref_version", "url", "system", "code", "grp"}},
	{Name: "idx_uri", Bit: 1 << 6, Cols: []string{"url", "grp"}},
}

// Table indexes into Tables.
const (
	TString = iota
	TToken
	TDate
	TNumber
	TQuantity
	TReference
	TURI
)

// TableFor returns the index of the table holding entries of type t, or -1.
func TableFor(t search.Type) int {
	switch t {
	case search.TypeString:
		return TString
	case search.TypeToken:
		return TToken
	case search.TypeDate:
		return TDate
	case search.TypeNumber:
		return TNumber
	case search.TypeQuantity:
		return TQuantity
	case search.TypeReference:
		return TReference
	case search.TypeURI:
		return TURI
	}
	return -1
}

// Micros limits: dates are stored as microseconds since the Unix epoch; a zero
// Lo means "no lower bound" and a zero Hi "no upper bound".
const (
	MinMicros = math.MinInt64
	MaxMicros = math.MaxInt64
)

// LoMicros encodes a range's lower bound.
func LoMicros(t time.Time) int64 {
	if t.IsZero() {
		return MinMicros
	}
	return t.UnixMicro()
}

// HiMicros encodes a range's upper bound (inclusive).
func HiMicros(t time.Time) int64 {
	if t.IsZero() {
		return MaxMicros
	}
	return t.UnixMicro()
}

// Row is one index row ready to insert: the table and its value columns.
type Row struct {
	Table int
	Param string
	Vals  []any
}

// EncodeEntries validates entries and turns them into rows. It returns the
// idx_mask bits of the tables the rows go to.
func EncodeEntries(entries []search.Entry) ([]Row, uint8, error) {
	rows := make([]Row, 0, len(entries))
	var mask uint8
	for i := range entries {
		e := &entries[i]
		if e.Param == "_id" || e.Param == "_lastUpdated" {
			// Searched and sorted on the resources columns; the extractor's
			// entries for them would only cost index writes.
			continue
		}
		if e.Param == "" {
			return nil, 0, fmt.Errorf("%w: index entry %d has no param", store.ErrInvalid, i)
		}
		t := TableFor(e.Type)
		if t < 0 {
			return nil, 0, fmt.Errorf("%w: index entry %d has unsupported type %q", store.ErrInvalid, i, string(e.Type))
		}
		var vals []any
		switch t {
		case TString:
			vals = []any{e.Str, e.Exact}
		case TToken:
			vals = []any{e.System, e.Code, e.Str}
		case TDate:
			lo, hi := LoMicros(e.Lo), HiMicros(e.Hi)
			if lo > hi {
				return nil, 0, fmt.Errorf("%w: index entry %d (%s): date range ends before it starts", store.ErrInvalid, i, e.Param)
			}
			vals = []any{lo, hi}
		case TNumber, TQuantity:
			lo, hi, err := numRange(e.Num, e.NumLo, e.NumHi)
			if err != nil {
				return nil, 0, fmt.Errorf("%w: index entry %d (%s): %v", store.ErrInvalid, i, e.Param, err)
			}
			if t == TNumber {
				vals = []any{e.Num, lo, hi}
			} else {
				vals = []any{e.System, e.Code, e.Num, lo, hi}
			}
		case TReference:
			vals = []any{e.RefType, e.RefID, e.RefVersion, e.URL, e.System, e.Code}
		case TURI:
			vals = []any{e.URL}
		}
		if e.Group < 0 {
			return nil, 0, fmt.Errorf("%w: index entry %d (%s): negative group", store.ErrInvalid, i, e.Param)
		}
		vals = append(vals, int64(e.Group))
		if t == TToken {
			vals = append(vals, e.TypeSystem, e.TypeCode)
		}
		for _, v := range vals {
			if s, ok := v.(string); ok && !validText(s) {
				return nil, 0, fmt.Errorf("%w: index entry %d (%s): text is not valid UTF-8 or contains NUL", store.ErrInvalid, i, e.Param)
			}
		}
		if !validText(e.Param) {
			return nil, 0, fmt.Errorf("%w: index entry %d: param is not valid UTF-8 or contains NUL", store.ErrInvalid, i)
		}
		rows = append(rows, Row{Table: t, Param: e.Param, Vals: vals})
		mask |= Tables[t].Bit
	}
	return rows, mask, nil
}

// numRange returns the precision range of a number, defaulting to the point
// itself when the extractor gave none.
func numRange(n, lo, hi float64) (float64, float64, error) {
	if math.IsNaN(n) || math.IsNaN(lo) || math.IsNaN(hi) || math.IsInf(n, 0) {
		return 0, 0, fmt.Errorf("number is NaN or infinite")
	}
	if lo == 0 && hi == 0 {
		return n, n, nil
	}
	if lo > hi {
		return 0, 0, fmt.Errorf("number range ends before it starts")
	}
	return lo, hi, nil
}
