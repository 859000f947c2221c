package dlp

import (
	"encoding/csv"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// CSV: every cell is scanned as text; findings carry the location
// "row R, col C" (1-based; the header is row 1) and, when the first row is a
// header, the column name. A column whose header names a kind of PHI
// ("name", "phone", "dob", "mrn", "姓名", "电话" …) makes every non-empty
// cell in it a finding of that kind.

// csvColumns maps lower-cased header names to the kind their cells hold.
var csvColumns = map[string]Type{
	"name": Name, "patient name": Name, "patient_name": Name, "full name": Name, "full_name": Name,
	"first name": Name, "first_name": Name, "last name": Name, "last_name": Name, "given": Name, "family": Name,
	"surname": Name, "姓名": Name, "患者姓名": Name, "联系人": Name,
	"phone": Phone, "telephone": Phone, "tel": Phone, "mobile": Phone, "cell": Phone, "phone number": Phone,
	"phone_number": Phone, "电话": Phone, "手机": Phone, "联系电话": Phone, "手机号": Phone,
	"email": Email, "e-mail": Email, "邮箱": Email, "电子邮件": Email,
	"ssn": USSSN, "social security number": USSSN,
	"mrn": MRN, "medical record number": MRN, "病历号": MRN, "住院号": MRN, "门诊号": MRN,
	"dob": Date, "birthdate": Date, "birth_date": Date, "date of birth": Date, "date_of_birth": Date, "出生日期": Date,
	"address": Address, "street": Address, "street address": Address, "地址": Address, "住址": Address, "家庭住址": Address,
	"身份证号": CNResidentID, "身份证": CNResidentID, "id number": CNResidentID,
	"ip": IPAddress, "ip address": IPAddress, "ip_address": IPAddress,
}

// ScanCSV scans CSV with the default scanner.
func ScanCSV(r io.Reader) ([]Finding, error) { return defaultScanner.ScanCSV(r) }

// ScanCSV scans CSV from r. The first row is taken as a header when none of
// its cells holds a digit or '@'. A malformed file is an *Error with
// CodeInvalidCSV (a malformed file is refused rather than half scanned).
func (sc *Scanner) ScanCSV(r io.Reader) ([]Finding, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	var (
		out    []Finding
		header []string
		kinds  []Type
	)
	for row := 1; ; row++ {
		rec, err := cr.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, errorf(CodeInvalidCSV, "line %d: %v", pe.Line, pe.Err)
			}
			return nil, errorf(CodeInvalidCSV, "read error")
		}
		if row == 1 && looksLikeHeader(rec) {
			header = rec
			kinds = make([]Type, len(rec))
			for i, h := range rec {
				kinds[i] = csvColumns[strings.ToLower(strings.TrimSpace(h))]
			}
			continue
		}
		for c, cell := range rec {
			if cell == "" {
				continue
			}
			loc := "row " + strconv.Itoa(row) + ", col " + strconv.Itoa(c+1)
			if c < len(header) {
				loc += " (" + header[c] + ")"
			}
			if c < len(kinds) && kinds[c] != "" && strings.TrimSpace(cell) != "" {
				out = append(out, Finding{Type: kinds[c], Start: 0, End: utf8.RuneCountInString(cell), Score: 0.9, Detector: "csv-column", Location: loc})
				continue
			}
			for _, f := range sc.ScanText(cell) {
				f.Location = loc
				out = append(out, f)
			}
		}
	}
}

func looksLikeHeader(rec []string) bool {
	for _, c := range rec {
		if strings.ContainsAny(c, "0123456789@") {
			return false
		}
	}
	return len(rec) > 0
}
