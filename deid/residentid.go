package deid

import "errors"

// GB 11643-1999 citizen identity numbers: 17 body digits and a MOD 11-2
// check character.
var (
	residentIDWeights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	residentIDCheck   = "10X98765432"
)

// ResidentIDCheckDigit returns the GB 11643 check character for 17 body
// digits.
func ResidentIDCheckDigit(body string) (byte, error) {
	if len(body) != 17 {
		return 0, errors.New("deid: resident ID body must be 17 digits")
	}
	sum := 0
	for i := 0; i < 17; i++ {
		c := body[i]
		if c < '0' || c > '9' {
			return 0, errors.New("deid: resident ID body must be digits")
		}
		sum += int(c-'0') * residentIDWeights[i]
	}
	return residentIDCheck[sum%11], nil
}

// ValidResidentID reports whether id is an 18-character GB 11643 number with
// a correct check character (upper- or lower-case X accepted).
func ValidResidentID(id string) bool {
	if len(id) != 18 {
		return false
	}
	c, err := ResidentIDCheckDigit(id[:17])
	if err != nil {
		return false
	}
	last := id[17]
	if last == 'x' {
		last = 'X'
	}
	return last == c
}

// residentIDFF1 enciphers (or deciphers) the 17 body digits of a resident ID
// with FF1 and recomputes the check character, so the output is again 18
// characters with a valid check digit. The area and birth-date structure is
// not kept on purpose: they are quasi-identifiers.
func residentIDFF1(f *FF1, id string, tweak []byte, encrypt bool) (string, error) {
	if len(id) != 18 {
		return "", errors.New("deid: not a resident ID")
	}
	x, ok := toNumerals(id[:17], 10)
	if !ok {
		return "", errors.New("deid: not a resident ID")
	}
	var (
		y   []byte
		err error
	)
	if encrypt {
		y, err = f.Encrypt(x, tweak)
	} else {
		y, err = f.Decrypt(x, tweak)
	}
	if err != nil {
		return "", err
	}
	body := fromNumerals(y)
	c, err := ResidentIDCheckDigit(body)
	if err != nil {
		return "", err
	}
	return body + string(c), nil
}
