package dlp

import "time"

// Chinese resident identity numbers, GB 11643-1999: 6-digit area code (the
// first two digits a province-level code, GB/T 2260), 8-digit birth date
// YYYYMMDD, 3-digit sequence, and a check character computed with ISO 7064
// MOD 11-2. The legacy 15-digit form (before 1999) has a 6-digit YYMMDD date
// (19YY) and no check character.

// provinceCodes are the GB/T 2260 province-level codes (first two digits).
var provinceCodes = map[int]string{
	11: "北京", 12: "天津", 13: "河北", 14: "山西", 15: "内蒙古",
	21: "辽宁", 22: "吉林", 23: "黑龙江",
	31: "上海", 32: "江苏", 33: "浙江", 34: "安徽", 35: "福建", 36: "江西", 37: "山东",
	41: "河南", 42: "湖北", 43: "湖南", 44: "广东", 45: "广西", 46: "海南",
	50: "重庆", 51: "四川", 52: "贵州", 53: "云南", 54: "西藏",
	61: "陕西", 62: "甘肃", 63: "青海", 64: "宁夏", 65: "新疆",
	71: "台湾", 81: "香港", 82: "澳门",
}

var gbWeights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}

const gbCheck = "10X98765432"

// ValidCNResidentID reports whether id is a valid 18-digit (check character
// included, 'X' or 'x' for ten) or legacy 15-digit resident identity number
// with a known province code and a real birth date.
func ValidCNResidentID(id string) bool {
	switch len(id) {
	case 18:
		for i := 0; i < 17; i++ {
			if !isDigit(id[i]) {
				return false
			}
		}
		if !isDigit(id[17]) && id[17] != 'X' && id[17] != 'x' {
			return false
		}
		if _, ok := provinceCodes[atoi(id[:2])]; !ok {
			return false
		}
		if !plausibleBirth(atoi(id[6:10]), atoi(id[10:12]), atoi(id[12:14])) {
			return false
		}
		sum := 0
		for i := 0; i < 17; i++ {
			sum += int(id[i]-'0') * gbWeights[i]
		}
		c := id[17]
		if c == 'x' {
			c = 'X'
		}
		return gbCheck[sum%11] == c
	case 15:
		for i := 0; i < 15; i++ {
			if !isDigit(id[i]) {
				return false
			}
		}
		if _, ok := provinceCodes[atoi(id[:2])]; !ok {
			return false
		}
		return plausibleBirth(1900+atoi(id[6:8]), atoi(id[8:10]), atoi(id[10:12]))
	}
	return false
}

// plausibleBirth reports a real calendar date from 1880 up to today.
func plausibleBirth(y, m, d int) bool {
	if y < 1880 || !validDate(y, m, d) {
		return false
	}
	now := time.Now()
	ny, nm, nd := now.Date()
	return y*10000+m*100+d <= ny*10000+int(nm)*100+nd
}

// cnID tries a resident id on the digit run [i, j).
func (st *state) cnID(i, j int) {
	s := st.s
	switch n := j - i; {
	case n == 17 && j < len(s) && (s[j] == 'X' || s[j] == 'x') && endsClean(s, j+1):
		if ValidCNResidentID(s[i : j+1]) {
			st.add(CNResidentID, i, j+1, 0.99, "cn-id-gb11643")
		}
	case n == 18 && endsClean(s, j):
		if ValidCNResidentID(s[i:j]) {
			st.add(CNResidentID, i, j, 0.99, "cn-id-gb11643")
		}
	case n == 15 && endsClean(s, j):
		// No check digit: a plausible area and date match about one random
		// 15-digit number in a hundred (SNOMED CT ids, for one), so the
		// legacy form counts only after an id keyword (身份证, ID No).
		if ValidCNResidentID(s[i:j]) && i <= st.idCtx {
			st.add(CNResidentID, i, j, 0.7, "cn-id-15")
		}
	}
}
