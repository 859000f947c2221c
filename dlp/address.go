package dlp

import (
	"strings"
	"unicode/utf8"
)

// Addresses.
//
// Chinese: a sequence of segments, each a few Han characters ending in an
// administrative or street suffix (省 市 区 县 镇 乡 村 路 街 道 巷 弄 胡同 …)
// or a number with a unit (号 栋 单元 楼 层 室 …). After a context word
// (家住, 地址, 住址 …) one segment is enough; otherwise two administrative
// levels, or one level with a street or number, or a street with a number.
//
// US: a house number, one to four capitalised words and a street suffix from
// USPS Publication 28, then optionally a unit (Apt, Suite, Unit, #), a city,
// a state code and a ZIP or ZIP+4.

const (
	segAdmin = iota + 1
	segRoad
	segBuilding
)

var zhAddrSuffixes = []struct {
	text string
	kind int
}{
	{"自治区", segAdmin}, {"自治州", segAdmin}, {"自治县", segAdmin}, {"街道", segAdmin},
	{"胡同", segRoad}, {"大道", segRoad}, {"大街", segRoad},
	{"小区", segBuilding}, {"花园", segBuilding}, {"大厦", segBuilding}, {"广场", segBuilding}, {"公寓", segBuilding}, {"新村", segBuilding},
	{"社區", segBuilding}, {"花園", segBuilding}, {"大廈", segBuilding}, {"廣場", segBuilding},
	{"區", segAdmin}, {"縣", segAdmin}, {"鄉", segAdmin}, {"鎮", segAdmin},
	{"省", segAdmin}, {"市", segAdmin}, {"区", segAdmin}, {"县", segAdmin}, {"旗", segAdmin}, {"镇", segAdmin}, {"乡", segAdmin}, {"村", segAdmin},
	{"路", segRoad}, {"街", segRoad}, {"道", segRoad}, {"巷", segRoad}, {"弄", segRoad}, {"里", segRoad},
	{"苑", segBuilding},
}

// zhSuffixesByRune indexes zhAddrSuffixes by their first rune, longest
// first within a rune as in the table.
var zhSuffixesByRune = func() map[rune][]struct {
	text string
	kind int
} {
	m := map[rune][]struct {
		text string
		kind int
	}{}
	for _, sx := range zhAddrSuffixes {
		r, _ := utf8.DecodeRuneInString(sx.text)
		m[r] = append(m[r], sx)
	}
	return m
}()

var zhUnits = []string{"号楼", "号院", "号", "栋", "幢", "单元", "楼", "层", "室", "户", "號樓", "號", "棟", "單元", "樓", "層", "戶"}

// zhPlaceSeg matches 1–8 Han characters ending in an address suffix at p.
func zhPlaceSeg(s string, p int) (int, int) {
	q := p
	for n := 0; n < 9; n++ {
		r, w := decodeRune(s, q)
		if !isHan(r) {
			return 0, 0
		}
		f := hanFlag(r)
		if n >= 1 && f&hAddrSfx != 0 {
			for _, sx := range zhSuffixesByRune[r] {
				if strings.HasPrefix(s[q:], sx.text) {
					return q + len(sx.text), sx.kind
				}
			}
		}
		if f&hNameStop != 0 && f&hAddrSfx == 0 && !strings.ContainsRune("天东南西北中新前后", r) {
			return 0, 0
		}
		q += w
	}
	return 0, 0
}

// zhNumberUnit matches "385号", "3栋2单元", "1201室", "5-2号" at p.
func zhNumberUnit(s string, p int) (int, bool) {
	q := p
	e := digitsAt(s, q)
	if e == q {
		// Chinese numerals: 三号楼 (a house number has a few at most).
		for k := 0; k < 8; k++ {
			r, w := decodeRune(s, e)
			if hanFlag(r)&hNumeral == 0 && r != '十' && r != '〇' {
				break
			}
			e += w
		}
		if e == q {
			return 0, false
		}
	} else if e+1 < len(s) && s[e] == '-' && isDigit(s[e+1]) {
		e = digitsAt(s, e+1)
	}
	for _, u := range zhUnits {
		if strings.HasPrefix(s[e:], u) {
			return e + len(u), true
		}
	}
	return 0, false
}

// addressZh tries a Chinese address at p.
func (st *state) addressZh(p int, anchored bool) {
	s := st.s
	if p < st.addrEnd {
		return // inside an address already found
	}
	q := p
	var admin, road, num, bldg int
	// Bounded: a long chain of place-like segments must not make every
	// place name in it rescan the rest of the text.
	for segs := 0; segs < maxAddrSegments; segs++ {
		if e, ok := zhNumberUnit(s, q); ok {
			q = e
			num++
			continue
		}
		e, kind := zhPlaceSeg(s, q)
		if kind == 0 {
			break
		}
		q = e
		switch kind {
		case segAdmin:
			admin++
		case segRoad:
			road++
		case segBuilding:
			bldg++
		}
	}
	segs := admin + road + num + bldg
	ok := admin >= 2 || (admin >= 1 && road+num+bldg >= 1) || (road >= 1 && num >= 1) || (anchored && segs >= 1)
	if !ok || q-p < 9 {
		return
	}
	score := 0.7
	if anchored || hanFlag(firstRune(s, p))&hPlace != 0 {
		score = 0.85
	}
	st.add(Address, p, q, score, "address-zh")
	st.addrEnd = q
}

// maxAddrSegments bounds the segments of one Chinese address (省 市 区 街道
// 路 号 栋 单元 室 and a few more fit easily).
const maxAddrSegments = 12

func firstRune(s string, p int) rune {
	r, _ := decodeRune(s, p)
	return r
}

// streetWord matches a street name word at p: capitalised, or an ordinal
// ("5th", "42nd"). It returns the end and the word's flags.
func streetWord(s string, p int) (int, uint16, bool) {
	if p >= len(s) {
		return 0, 0, false
	}
	if isDigit(s[p]) {
		e := digitsAt(s, p)
		for _, suf := range [...]string{"st", "nd", "rd", "th"} {
			if hasPrefixFold(s, e, suf) && endsClean(s, e+2) {
				return e + 2, 0, true
			}
		}
		return 0, 0, false
	}
	if !isUpper(s[p]) {
		return 0, 0, false
	}
	e := p + 1
	for e < len(s) && (isLetter(s[e]) || s[e] == '\'') {
		e++
	}
	if e < len(s) && isDigit(s[e]) {
		return 0, 0, false
	}
	return e, lookupWord(s, p, e), true
}

// usAddress tries a US street address at the house number [i, j).
func (st *state) usAddress(i, j int) {
	s := st.s
	p := j + 1
	end := 0
	for n := 0; n < 5; n++ {
		e, f, ok := streetWord(s, p)
		if !ok {
			return
		}
		if n >= 1 && f&wStreet != 0 {
			end = e
			if end < len(s) && s[end] == '.' {
				end++
			}
			break
		}
		if e >= len(s) || s[e] != ' ' {
			return
		}
		p = e + 1
	}
	if end == 0 {
		return
	}
	end = usUnit(s, end)
	end = usCityStateZip(s, end)
	st.add(Address, i, end, 0.85, "address-us")
}

// usUnit extends over ", Apt 4B", " Suite 200", " Unit 3", " #12".
func usUnit(s string, p int) int {
	q := p
	if q < len(s) && s[q] == ',' {
		q++
	}
	q = skipSpaces(s, q)
	for _, u := range [...]string{"apartment", "apt", "suite", "ste", "unit", "room", "rm", "fl", "floor", "#"} {
		if !hasPrefixFold(s, q, u) {
			continue
		}
		k := q + len(u)
		if u != "#" && !endsClean(s, k) {
			continue
		}
		if k < len(s) && s[k] == '.' {
			k++
		}
		k = skipSpaces(s, k)
		e := k
		for e < len(s) && (isAlnum(s[e]) || s[e] == '-') && e-k < 8 {
			e++
		}
		if e > k && isDigit(s[k]) || e > k && e-k <= 2 {
			return e
		}
	}
	return p
}

// usCityStateZip extends over ", City, ST 12345" (or "City ST 12345-6789").
func usCityStateZip(s string, p int) int {
	q := p
	if q+2 >= len(s) || s[q] != ',' || s[q+1] != ' ' {
		return p
	}
	q += 2
	words := 0
	for words < 3 {
		e, _, ok := streetWord(s, q)
		if !ok || isDigit(s[q]) || e-q < 2 || !isLower(s[q+1]) {
			break
		}
		q = e
		words++
		if q+1 < len(s) && s[q] == ' ' && isUpper(s[q+1]) && !(q+3 <= len(s) && usStates[s[q+1:min(q+3, len(s))]] && endsClean(s, q+3)) {
			q++
			continue
		}
		break
	}
	if words == 0 {
		return p
	}
	k := q
	if k < len(s) && s[k] == ',' {
		k++
	}
	k = skipSpaces(s, k)
	if k+2 > len(s) || !usStates[s[k:k+2]] || !endsClean(s, k+2) {
		return p
	}
	e := k + 2
	if z := skipSpaces(s, e); z > e {
		if ze := digitsAt(s, z); ze-z == 5 {
			e = ze
			if e+5 <= len(s) && s[e] == '-' {
				if z4 := digitsAt(s, e+1); z4-(e+1) == 4 {
					e = z4
				}
			}
		}
	}
	return e
}
