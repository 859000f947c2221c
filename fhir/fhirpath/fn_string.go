package fhirpath

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"html"
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"
)

// inputString applies the singleton rule to the input of a string function
// and requires a String.
func (st *state) inputString(f *funcNode, in Collection) (string, bool, error) {
	it, ok, err := st.singleton(f, in)
	if err != nil || !ok {
		return "", false, err
	}
	v, has := it.sys()
	if !has {
		return "", false, nil
	}
	s, isStr := v.(string)
	if !isStr {
		return "", false, st.errAt(f, KindExecution, CodeType, "%s() needs a String input, found %s", f.name, it.Type())
	}
	return s, true, nil
}

// strFn builds a function of a string input and string arguments; any
// empty argument makes the result empty.
func strFn(nargs int, body func(s string, args []string) (any, bool)) funcImpl {
	return func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		s, ok, err := st.inputString(f, in)
		if err != nil || !ok {
			return nil, err
		}
		args := make([]string, len(f.args))
		for i := range f.args {
			a, has, err := st.argString(f, i, sc)
			if err != nil || !has {
				return nil, err
			}
			args[i] = a
		}
		r, ok := body(s, args)
		if !ok {
			return nil, nil
		}
		return Collection{sysItem(r)}, nil
	}
}

var htmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#39;")

var regexCache sync.Map // pattern -> *regexp.Regexp

const maxRegexCache = 1024

var regexCount int

var regexMu sync.Mutex

func compileRegex(pattern string) (*regexp.Regexp, error) {
	if r, ok := regexCache.Load(pattern); ok {
		return r.(*regexp.Regexp), nil
	}
	re, err := regexp.Compile("(?s)" + pattern)
	if err != nil {
		return nil, err
	}
	regexMu.Lock()
	if regexCount < maxRegexCache {
		regexCache.Store(pattern, re)
		regexCount++
	}
	regexMu.Unlock()
	return re, nil
}

func runeIndex(s string, byteIdx int) int { return utf8.RuneCountInString(s[:byteIdx]) }

func registerStrings() {
	reg("indexOf", 1, 1, strFn(1, func(s string, a []string) (any, bool) {
		i := strings.Index(s, a[0])
		if i < 0 {
			return int64(-1), true
		}
		return int64(runeIndex(s, i)), true
	}))
	reg("substring", 1, 2, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		s, ok, err := st.inputString(f, in)
		if err != nil || !ok {
			return nil, err
		}
		start, ok, err := st.argInt(f, 0, sc)
		if err != nil || !ok {
			return nil, err
		}
		r := []rune(s)
		if start < 0 || start >= int64(len(r)) {
			return nil, nil
		}
		end := int64(len(r))
		if len(f.args) > 1 {
			n, has, err := st.argInt(f, 1, sc)
			if err != nil {
				return nil, err
			}
			if has {
				if n < 0 {
					n = 0
				}
				end = min(end, start+n)
			}
		}
		return Collection{sysItem(string(r[start:end]))}, nil
	})
	reg("startsWith", 1, 1, strFn(1, func(s string, a []string) (any, bool) { return strings.HasPrefix(s, a[0]), true }))
	reg("endsWith", 1, 1, strFn(1, func(s string, a []string) (any, bool) { return strings.HasSuffix(s, a[0]), true }))
	reg("contains", 1, 1, strFn(1, func(s string, a []string) (any, bool) { return strings.Contains(s, a[0]), true }))
	reg("upper", 0, 0, strFn(0, func(s string, a []string) (any, bool) { return strings.ToUpper(s), true }))
	reg("lower", 0, 0, strFn(0, func(s string, a []string) (any, bool) { return strings.ToLower(s), true }))
	reg("replace", 2, 2, strFn(2, func(s string, a []string) (any, bool) {
		if len(a[0]) == 0 && len(s)+len(a[1])*(len(s)+1) > MaxStringLength ||
			len(a[0]) > 0 && len(a[1]) > len(a[0]) && len(s)/len(a[0])*len(a[1])+len(s) > MaxStringLength {
			return nil, false
		}
		return strings.ReplaceAll(s, a[0], a[1]), true
	}))
	reg("length", 0, 0, strFn(0, func(s string, a []string) (any, bool) { return int64(utf8.RuneCountInString(s)), true }))
	reg("trim", 0, 0, strFn(0, func(s string, a []string) (any, bool) { return strings.TrimSpace(s), true }))
	regexFn := func(full bool) funcImpl {
		return func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
			s, ok, err := st.inputString(f, in)
			if err != nil || !ok {
				return nil, err
			}
			p, ok, err := st.argString(f, 0, sc)
			if err != nil || !ok {
				return nil, err
			}
			if full {
				p = "^(?:" + p + ")$"
			}
			re, err := compileRegex(p)
			if err != nil {
				return nil, st.errAt(f.args[0], KindExecution, CodeRegex, "invalid regular expression")
			}
			return boolColl(re.MatchString(s)), nil
		}
	}
	reg("matches", 1, 1, regexFn(false))
	reg("matchesFull", 1, 1, regexFn(true))
	reg("replaceMatches", 2, 2, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		s, ok, err := st.inputString(f, in)
		if err != nil || !ok {
			return nil, err
		}
		p, ok, err := st.argString(f, 0, sc)
		if err != nil || !ok {
			return nil, err
		}
		repl, ok, err := st.argString(f, 1, sc)
		if err != nil || !ok {
			return nil, err
		}
		if p == "" {
			return Collection{sysItem(s)}, nil
		}
		re, err := compileRegex(p)
		if err != nil {
			return nil, st.errAt(f.args[0], KindExecution, CodeRegex, "invalid regular expression")
		}
		var b []byte
		last := 0
		const maxMatches = 100000
		matches := re.FindAllStringSubmatchIndex(s, maxMatches+1)
		if len(matches) > maxMatches {
			return nil, st.errAt(f, KindLimit, CodeSizeLimit, "replaceMatches() found more than %d matches", maxMatches)
		}
		for _, m := range matches {
			b = append(b, s[last:m[0]]...)
			b = re.ExpandString(b, repl, s, m)
			last = m[1]
			if len(b) > MaxStringLength {
				return nil, st.errAt(f, KindLimit, CodeSizeLimit, "string longer than %d bytes", MaxStringLength)
			}
		}
		b = append(b, s[last:]...)
		return Collection{sysItem(string(b))}, nil
	})
	reg("toChars", 0, 0, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		s, ok, err := st.inputString(f, in)
		if err != nil || !ok {
			return nil, err
		}
		var out Collection
		for _, r := range s {
			out = append(out, sysItem(string(r)))
		}
		return out, nil
	})
	reg("split", 1, 1, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		s, ok, err := st.inputString(f, in)
		if err != nil || !ok {
			return nil, err
		}
		sep, ok, err := st.argString(f, 0, sc)
		if err != nil || !ok {
			return nil, err
		}
		parts := strings.Split(s, sep)
		if len(parts) > st.maxColl {
			return nil, st.errAt(f, KindLimit, CodeSizeLimit, "collection larger than %d items", st.maxColl)
		}
		out := make(Collection, len(parts))
		for i, p := range parts {
			out[i] = sysItem(p)
		}
		return out, nil
	})
	reg("join", 0, 1, func(st *state, f *funcNode, in Collection, sc *scope) (Collection, error) {
		sep := ""
		if len(f.args) == 1 {
			s, ok, err := st.argString(f, 0, sc)
			if err != nil {
				return nil, err
			}
			if ok {
				sep = s
			}
		}
		parts := make([]string, 0, len(in))
		total := 0
		for _, it := range in {
			v, has := it.sys()
			if !has {
				continue // a primitive with only extensions
			}
			s, ok := v.(string)
			if !ok {
				return nil, st.errAt(f, KindExecution, CodeType, "join() needs String items")
			}
			parts = append(parts, s)
			total += len(s) + len(sep)
			if total > MaxStringLength {
				return nil, st.errAt(f, KindLimit, CodeSizeLimit, "string longer than %d bytes", MaxStringLength)
			}
		}
		return Collection{sysItem(strings.Join(parts, sep))}, nil
	})
	reg("encode", 1, 1, strFn(1, func(s string, a []string) (any, bool) {
		switch a[0] {
		case "base64":
			return base64.StdEncoding.EncodeToString([]byte(s)), true
		case "urlbase64":
			return base64.URLEncoding.EncodeToString([]byte(s)), true
		case "hex":
			return hex.EncodeToString([]byte(s)), true
		}
		return nil, false
	}))
	reg("decode", 1, 1, strFn(1, func(s string, a []string) (any, bool) {
		var b []byte
		var err error
		switch a[0] {
		case "base64":
			b, err = base64.StdEncoding.DecodeString(s)
		case "urlbase64":
			b, err = base64.URLEncoding.DecodeString(s)
		case "hex":
			b, err = hex.DecodeString(s)
		default:
			return nil, false
		}
		if err != nil || !utf8.Valid(b) {
			return nil, false
		}
		return string(b), true
	}))
	reg("escape", 1, 1, strFn(1, func(s string, a []string) (any, bool) {
		switch a[0] {
		case "html":
			return htmlEscaper.Replace(s), true
		case "json":
			b, _ := json.Marshal(s)
			r := string(b[1 : len(b)-1])
			r = strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(r)
			return r, true
		}
		return nil, false
	}))
	reg("unescape", 1, 1, strFn(1, func(s string, a []string) (any, bool) {
		switch a[0] {
		case "html":
			return html.UnescapeString(s), true
		case "json":
			return jsonUnescape(s)
		}
		return nil, false
	}))
}

// jsonUnescape resolves JSON string escapes and leaves everything else.
func jsonUnescape(s string) (any, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i+1 >= len(s) {
			return nil, false
		}
		j := i + 2
		if s[i+1] == 'u' {
			if i+6 > len(s) {
				return nil, false
			}
			j = i + 6
		}
		var r string
		if err := json.Unmarshal([]byte(`"`+s[i:j]+`"`), &r); err != nil {
			return nil, false
		}
		b.WriteString(r)
		i = j - 1
	}
	return b.String(), true
}
