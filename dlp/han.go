package dlp

import (
	"strings"
	"unicode/utf8"
)

// The CJK Unified Ideographs block; every rune in it is 3 bytes of UTF-8.
const (
	hanLo = 0x4E00
	hanHi = 0x9FFF
)

// Per-rune flags for the Han block: one array index per rune decides what
// to try, which keeps Chinese text fast.
const (
	hSurname  uint16 = 1 << iota // any surname
	hCommon                      // common surname usable without context
	hKeyword                     // first rune of a context keyword
	hNameStop                    // ends a name
	hAddrSfx                     // ends an address segment
	hPlace                       // first rune of a province or city name
	hNumeral                     // Chinese numeral
	hCompound                    // first rune of a compound surname
	hTitle                       // first rune of a title (先生, 医生)
)

var hanFlags [hanHi - hanLo + 1]uint16

func isHan(r rune) bool { return r >= hanLo && r <= hanHi }

func hanFlag(r rune) uint16 {
	if r < hanLo || r > hanHi {
		return 0
	}
	return hanFlags[r-hanLo]
}

// decodeRune decodes at p; past the end it returns utf8.RuneError, 0.
func decodeRune(s string, p int) (rune, int) {
	if p >= len(s) {
		return utf8.RuneError, 0
	}
	c := s[p]
	if c < utf8.RuneSelf {
		return rune(c), 1
	}
	// Three-byte runes (all of CJK) inline; the rest through utf8.
	if c >= 0xE0 && c <= 0xEF && p+2 < len(s) && s[p+1]&0xC0 == 0x80 && s[p+2]&0xC0 == 0x80 {
		if r := rune(c&0x0F)<<12 | rune(s[p+1]&0x3F)<<6 | rune(s[p+2]&0x3F); r >= 0x800 && (r < 0xD800 || r > 0xDFFF) {
			return r, 3
		}
	}
	return utf8.DecodeRuneInString(s[p:])
}

// Kinds of Chinese context keywords.
const (
	zkName = iota + 1
	zkNameStrong
	zkMRN
	zkAddress
	zkPassport
	zkSSN
	zkNameWeak // a time word: a common surname right after it starts a name
	zkCNID     // 身份证: a legacy 15-digit id may follow
)

type zhKeyword struct {
	text string
	kind int
}

var zhKeywords = map[rune][]zhKeyword{}

func init() {
	mark := func(s string, f uint16) {
		for _, r := range s {
			if isHan(r) {
				hanFlags[r-hanLo] |= f
			}
		}
	}
	mark(zhSurnames, hSurname)
	mark(zhCommonSurnames, hCommon|hSurname)
	mark(zhNameStop, hNameStop)
	for _, c := range zhCompoundSurnames {
		r, _ := utf8.DecodeRuneInString(c)
		hanFlags[r-hanLo] |= hCompound
	}
	mark("省市区县旗州镇乡村路街道巷弄里胡同苑园厦场寓區縣鄉鎮園廈場", hAddrSfx)
	mark("〇零一二三四五六七八九", hNumeral)
	for _, t := range zhTitles {
		r, _ := utf8.DecodeRuneInString(t)
		hanFlags[r-hanLo] |= hTitle
	}
	for _, p := range zhPlaceStarts {
		r, _ := utf8.DecodeRuneInString(p)
		hanFlags[r-hanLo] |= hPlace
	}
	add := func(kind int, ws ...string) {
		for _, w := range ws {
			r, _ := utf8.DecodeRuneInString(w)
			zhKeywords[r] = append(zhKeywords[r], zhKeyword{w, kind})
			hanFlags[r-hanLo] |= hKeyword
		}
	}
	add(zkNameStrong, "姓名", "联系人", "签名", "家属", "监护人", "配偶", "丈夫", "妻子", "母亲", "父亲", "儿子", "女儿",
		"聯絡人", "聯繫人", "簽名", "家屬", "監護人", "母親", "父親", "兒子")
	add(zkName, "患者", "病人", "病患", "医生", "医师", "护士", "主任", "大夫", "报告人", "记录人", "审核人", "经治",
		"醫生", "醫師", "護士", "報告人", "記錄人")
	add(zkMRN, "病历号", "住院号", "门诊号", "病案号", "就诊号", "就诊卡号", "登记号", "住院编号", "病历编号", "患者编号", "病人编号",
		"病歷號", "住院號", "門診號", "病案號", "就診號", "病歷編號")
	add(zkAddress, "家住", "住址", "地址", "现住", "住在", "居住于", "居住地", "现居", "户籍地", "户籍所在地", "住所",
		"現住", "居住於", "戶籍地")
	add(zkNameWeak, "今日", "今天", "昨日", "昨天", "当日", "次日", "同日")
	add(zkPassport, "护照", "護照")
	add(zkCNID, "身份证", "证件号", "公民身份号码", "身份證", "身分證", "證件號")
	add(zkSSN, "社会安全号")
}

// han is called at every Han rune (and 〇).
func (st *state) han(i int, r rune) {
	f := hanFlag(r)
	if r == '〇' {
		f = hNumeral
	}
	if f == 0 && len(st.sc.mrnKW) == 0 {
		return
	}
	s := st.s
	if f&hNumeral != 0 {
		st.dateZhNumerals(i)
	}
	if f&hKeyword != 0 {
		for _, kw := range zhKeywords[r] {
			if !strings.HasPrefix(s[i:], kw.text) {
				continue
			}
			p := i + len(kw.text)
			switch kw.kind {
			case zkName, zkNameStrong:
				st.nameZh(skipSep(s, p), kw.kind == zkNameStrong, true)
			case zkNameWeak:
				st.nameZhAfterTime(p)
			case zkMRN:
				st.mrnAfter(p)
			case zkAddress:
				st.addressZh(skipSep(s, p), true)
			case zkPassport:
				st.passportCtx = p + 24
			case zkSSN:
				st.ssnCtx = p + 24
			case zkCNID:
				st.idCtx = p + 24
			}
		}
	}
	for _, kw := range st.sc.mrnKW {
		if strings.HasPrefix(s[i:], kw) {
			st.mrnAfter(i + len(kw))
		}
	}
	if f&(hSurname|hCompound) != 0 && (!prevHan(s, i) || titleSoon(s, i)) {
		st.nameZh(i, false, false)
	}
	if f&hPlace != 0 || (f&hNameStop == 0 && !prevHan(s, i)) {
		st.addressZh(i, false)
	}
}

// titleSoon reports whether one of the three runes after i may start a
// title, the only way a name without context may follow another Han rune.
func titleSoon(s string, i int) bool {
	for k := i + 3; k <= i+9 && k < len(s); k += 3 {
		r, _ := decodeRune(s, k)
		if hanFlag(r)&hTitle != 0 {
			return true
		}
	}
	return false
}

// prevHan reports whether the rune before i is a Han character.
func prevHan(s string, i int) bool {
	if i == 0 {
		return false
	}
	r, _ := utf8.DecodeLastRuneInString(s[:i])
	return isHan(r) || r == '〇'
}

// surnameLen returns the byte length of a surname at p (0 if none), and
// whether it is common enough to start a name without context.
func surnameLen(s string, p int) (int, bool) {
	r, _ := decodeRune(s, p)
	f := hanFlag(r)
	if f&hCompound != 0 && len(s) >= p+6 {
		for _, c := range zhCompoundSurnames {
			if strings.HasPrefix(s[p:], c) {
				return 6, true
			}
		}
	}
	if f&hSurname != 0 {
		return 3, f&hCommon != 0
	}
	return 0, false
}

// hasTitle returns the end of a title (先生, 医生, ...) at p, or 0.
func hasTitle(s string, p int) int {
	if r, _ := decodeRune(s, p); hanFlag(r)&hTitle == 0 {
		return 0
	}
	for _, t := range zhTitles {
		if strings.HasPrefix(s[p:], t) {
			return p + len(t)
		}
	}
	return 0
}

// nameZh tries a Chinese name at p. After a context word (ctx) a surname
// from the full table starts it (any Han rune after a strong context such as
// 姓名); with no context, only a common surname at a boundary, and the name
// must be followed by a non-Han rune or a title.
func (st *state) nameZh(p int, strong, ctx bool) {
	s := st.s
	sl, common := surnameLen(s, p)
	if sl == 0 {
		if !strong {
			return
		}
		r, _ := decodeRune(s, p)
		if !isHan(r) || hanFlag(r)&hNameStop != 0 {
			return
		}
		sl = 3
	}
	q := p + sl
	given := 0
	for given < 2 {
		r, _ := decodeRune(s, q)
		if !isHan(r) || hanFlag(r)&hNameStop != 0 {
			break
		}
		q += 3
		given++
	}
	// A title inside the run ends the name: 王大夫, 李老师, 陈大文医生.
	for k := 0; k < given; k++ {
		if hasTitle(s, p+sl+3*k) > 0 {
			q, given = p+sl+3*k, k
			break
		}
	}
	// A surname with a title and no given name: 李先生, 王医生.
	if given == 0 {
		if hasTitle(s, q) > 0 {
			st.add(Name, p, q, 0.75, "name-zh-title")
		}
		return
	}
	if ctx {
		score := 0.85
		if sl == 0 {
			score = 0.7
		}
		st.add(Name, p, q, score, "name-zh-context")
		return
	}
	titled := hasTitle(s, q) > 0
	if !titled && (!common || prevHan(s, p)) {
		return
	}
	if !titled && !nameEnd(s, q) {
		return
	}
	for _, w := range zhNotNames {
		if strings.HasPrefix(s[p:], w) {
			return
		}
	}
	st.add(Name, p, q, 0.7, "name-zh")
}

// nameZhAfterTime tries a name right after a time word (今日王建国来院): a
// common surname, one or two given runes, then a stop rune or non-Han.
func (st *state) nameZhAfterTime(p int) {
	s := st.s
	sl, common := surnameLen(s, p)
	if sl == 0 || !common {
		return
	}
	q := p + sl
	given := 0
	for given < 2 {
		r, _ := decodeRune(s, q)
		if !isHan(r) || hanFlag(r)&hNameStop != 0 {
			break
		}
		q += 3
		given++
	}
	if given == 0 {
		return
	}
	if !nameEnd(s, q) {
		return
	}
	for _, w := range zhNotNames {
		if strings.HasPrefix(s[p:], w) {
			return
		}
	}
	st.add(Name, p, q, 0.7, "name-zh-time")
}

// nameEnd reports whether a name without context may end at q: at the end,
// before punctuation or a blank, or before a rune that follows names (因,
// 于, 诉 …). Digits and Latin letters right after it mean a drug and a dose
// (杜冷丁50mg) or a code, not a name.
func nameEnd(s string, q int) bool {
	if q >= len(s) {
		return true
	}
	r, _ := decodeRune(s, q)
	switch {
	case isHan(r):
		return hanFlag(r)&hNameStop != 0
	case r < utf8.RuneSelf:
		return !isAlnum(byte(r))
	}
	return true // CJK punctuation and other symbols
}
