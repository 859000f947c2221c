package fhirpath

import (
	"strconv"
	"strings"
)

// MaxExpressionLength is the longest expression Compile accepts, in bytes.
const MaxExpressionLength = 64 << 10

// maxParseDepth bounds nesting so hostile input cannot exhaust the stack.
const maxParseDepth = 200

type parser struct {
	src   string
	toks  []token
	i     int
	depth int
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) isOp(s string) bool {
	t := p.toks[p.i]
	return t.kind == tOp && t.text == s
}

func (p *parser) errAt(off int, format string, args ...any) *Error {
	return newErr(KindSyntax, CodeSyntax, positionOf(p.src, off), format, args...)
}

func (p *parser) semErr(off int, code, format string, args ...any) *Error {
	return newErr(KindSemantic, code, positionOf(p.src, off), format, args...)
}

func (p *parser) expectOp(s string) error {
	t := p.peek()
	if t.kind != tOp || t.text != s {
		return p.errAt(t.pos, "expected '%s' but found %s", s, describe(t))
	}
	p.next()
	return nil
}

// describe names a token for an error message without echoing literal
// values (string literals may hold PHI).
func describe(t token) string {
	switch t.kind {
	case tEOF:
		return "end of expression"
	case tIdent:
		return "identifier '" + t.text + "'"
	case tDelim:
		return "delimited identifier"
	case tString:
		return "string literal"
	case tNumber:
		return "number"
	case tDateTime:
		return "date/time literal"
	case tExtConst:
		return "external constant"
	case tSpecial:
		return "$" + t.text
	case tOp:
		return "'" + t.text + "'"
	}
	return "token"
}

func parse(src string) (node, error) {
	if len(src) > MaxExpressionLength {
		return nil, newErr(KindSyntax, CodeExprTooLong, Position{Line: 1, Column: 1}, "expression longer than %d bytes", MaxExpressionLength)
	}
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{src: src, toks: toks}
	if p.peek().kind == tEOF {
		return nil, p.errAt(0, "empty expression")
	}
	n, err := p.expr(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.errAt(t.pos, "unexpected %s", describe(t))
	}
	markRoot(n)
	return n, nil
}

// binary operator precedence; higher binds tighter.
func binPrec(t token) int {
	switch t.kind {
	case tIdent:
		switch t.text {
		case "implies":
			return 1
		case "or", "xor":
			return 2
		case "and":
			return 3
		case "in", "contains":
			return 4
		case "is", "as":
			return 8
		case "div", "mod":
			return 10
		}
	case tOp:
		switch t.text {
		case "=", "~", "!=", "!~":
			return 5
		case "<", "<=", ">", ">=":
			return 6
		case "|":
			return 7
		case "+", "-", "&":
			return 9
		case "*", "/":
			return 10
		}
	}
	return 0
}

func (p *parser) expr(minPrec int) (node, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxParseDepth {
		return nil, p.errAt(p.peek().pos, "expression nested too deeply")
	}
	left, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		prec := binPrec(t)
		if prec == 0 || prec <= minPrec {
			return left, nil
		}
		p.next()
		if t.text == "is" || t.text == "as" {
			ts, err := p.typeSpecifier()
			if err != nil {
				return nil, err
			}
			left = &typeOpNode{base: base{t.pos}, op: t.text, operand: left, typ: ts}
			continue
		}
		right, err := p.expr(prec)
		if err != nil {
			return nil, err
		}
		left = &binaryNode{base: base{t.pos}, op: t.text, left: left, right: right}
	}
}

func (p *parser) typeSpecifier() (typeSpec, error) {
	start := p.peek().pos
	var parts []string
	for {
		t := p.next()
		if t.kind != tIdent && t.kind != tDelim {
			return typeSpec{}, p.errAt(t.pos, "expected a type name but found %s", describe(t))
		}
		parts = append(parts, t.text)
		if !p.isOp(".") {
			break
		}
		p.next()
	}
	return p.makeTypeSpec(start, parts)
}

func (p *parser) makeTypeSpec(off int, parts []string) (typeSpec, error) {
	var ts typeSpec
	switch len(parts) {
	case 1:
		ts = typeSpec{name: parts[0]}
	case 2:
		ts = typeSpec{ns: parts[0], name: parts[1]}
	default:
		return ts, p.semErr(off, CodeUnknownType, "type specifier has too many parts")
	}
	if !knownType(ts) {
		return ts, p.semErr(off, CodeUnknownType, "unknown type %s", ts)
	}
	return ts, nil
}

func (p *parser) unary() (node, error) {
	t := p.peek()
	if t.kind == tOp && (t.text == "+" || t.text == "-") {
		p.next()
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > maxParseDepth {
			return nil, p.errAt(t.pos, "expression nested too deeply")
		}
		operand, err := p.unary()
		if err != nil {
			return nil, err
		}
		return &unaryNode{base: base{t.pos}, op: t.text, operand: operand}, nil
	}
	return p.postfix()
}

func (p *parser) postfix() (node, error) {
	n, err := p.term()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		switch {
		case t.kind == tOp && t.text == ".":
			p.next()
			right, err := p.invocation(false)
			if err != nil {
				return nil, err
			}
			n = &invokeNode{base: base{t.pos}, left: n, right: right}
		case t.kind == tOp && t.text == "[":
			p.next()
			idx, err := p.expr(0)
			if err != nil {
				return nil, err
			}
			if err := p.expectOp("]"); err != nil {
				return nil, err
			}
			n = &indexNode{base: base{t.pos}, left: n, index: idx}
		default:
			return n, nil
		}
	}
}

var calendarUnits = map[string]string{
	"year": "year", "years": "year", "month": "month", "months": "month",
	"week": "week", "weeks": "week", "day": "day", "days": "day",
	"hour": "hour", "hours": "hour", "minute": "minute", "minutes": "minute",
	"second": "second", "seconds": "second", "millisecond": "millisecond", "milliseconds": "millisecond",
}

func (p *parser) term() (node, error) {
	t := p.peek()
	switch t.kind {
	case tNumber:
		p.next()
		nt := p.peek()
		if nt.kind == tString {
			p.next()
			d, err := parseDecimal(t.text)
			if err != nil {
				return nil, p.errAt(t.pos, "invalid number")
			}
			return &literalNode{base: base{t.pos}, val: Collection{sysItem(Quantity{Value: d, Unit: nt.text})}}, nil
		}
		if nt.kind == tIdent {
			if _, ok := calendarUnits[nt.text]; ok {
				p.next()
				d, err := parseDecimal(t.text)
				if err != nil {
					return nil, p.errAt(t.pos, "invalid number")
				}
				return &literalNode{base: base{t.pos}, val: Collection{sysItem(Quantity{Value: d, Unit: nt.text, Calendar: true})}}, nil
			}
		}
		if strings.Contains(t.text, ".") {
			d, err := parseDecimal(t.text)
			if err != nil {
				return nil, p.errAt(t.pos, "invalid number")
			}
			return &literalNode{base: base{t.pos}, val: Collection{sysItem(d)}}, nil
		}
		v, err := strconv.ParseInt(t.text, 10, 64)
		if err != nil {
			return nil, p.errAt(t.pos, "integer literal out of range")
		}
		return &literalNode{base: base{t.pos}, val: Collection{sysItem(v)}}, nil
	case tString:
		p.next()
		return &literalNode{base: base{t.pos}, val: Collection{sysItem(t.text)}}, nil
	case tDateTime:
		p.next()
		v, err := parseDateTimeLiteral(t.text)
		if err != nil {
			return nil, p.errAt(t.pos, "invalid date/time literal")
		}
		return &literalNode{base: base{t.pos}, val: Collection{sysItem(v)}}, nil
	case tExtConst:
		p.next()
		return &varNode{base: base{t.pos}, name: t.text}, nil
	case tSpecial:
		p.next()
		switch t.text {
		case "this":
			return &thisNode{base{t.pos}}, nil
		case "index":
			return &indexVarNode{base{t.pos}}, nil
		default:
			return &totalNode{base{t.pos}}, nil
		}
	case tOp:
		switch t.text {
		case "(":
			p.next()
			n, err := p.expr(0)
			if err != nil {
				return nil, err
			}
			if err := p.expectOp(")"); err != nil {
				return nil, err
			}
			return n, nil
		case "{":
			p.next()
			if err := p.expectOp("}"); err != nil {
				return nil, err
			}
			return &literalNode{base: base{t.pos}, val: nil}, nil
		}
	case tIdent:
		switch t.text {
		case "true", "false":
			p.next()
			return &literalNode{base: base{t.pos}, val: Collection{sysItem(t.text == "true")}}, nil
		case "and", "or", "xor", "implies", "div", "mod":
			return nil, p.errAt(t.pos, "unexpected operator '%s'", t.text)
		}
		return p.invocation(true)
	case tDelim:
		return p.invocation(true)
	}
	return nil, p.errAt(t.pos, "unexpected %s", describe(t))
}

// invocation parses an identifier or a function call, at term position or
// after '.'.
func (p *parser) invocation(term bool) (node, error) {
	t := p.next()
	switch t.kind {
	case tSpecial:
		if !term {
			switch t.text {
			case "this":
				return &thisNode{base{t.pos}}, nil
			case "index":
				return &indexVarNode{base{t.pos}}, nil
			default:
				return &totalNode{base{t.pos}}, nil
			}
		}
	case tDelim:
		return &identNode{base: base{t.pos}, name: t.text, term: term}, nil
	case tIdent:
		if p.isOp("(") {
			return p.function(t, term)
		}
		return &identNode{base: base{t.pos}, name: t.text, term: term}, nil
	}
	return nil, p.errAt(t.pos, "expected an identifier or function call but found %s", describe(t))
}

func (p *parser) function(name token, term bool) (node, error) {
	p.next() // (
	fn := &funcNode{base: base{name.pos}, name: name.text, term: term}
	if !p.isOp(")") {
		for {
			a, err := p.expr(0)
			if err != nil {
				return nil, err
			}
			fn.args = append(fn.args, a)
			if p.isOp(",") {
				p.next()
				continue
			}
			break
		}
	}
	if err := p.expectOp(")"); err != nil {
		return nil, err
	}
	def, ok := lookupFunc(fn.name)
	if !ok {
		return nil, p.semErr(name.pos, CodeUnknownFunc, "unknown function '%s'", fn.name)
	}
	if len(fn.args) < def.minArgs || (def.maxArgs >= 0 && len(fn.args) > def.maxArgs) {
		return nil, p.semErr(name.pos, CodeArity, "function '%s' called with %d arguments", fn.name, len(fn.args))
	}
	fn.def = def
	if def.typeArg {
		parts, ok := qualifiedName(fn.args[0])
		if !ok {
			return nil, p.semErr(fn.args[0].pos(), CodeUnknownType, "function '%s' expects a type specifier", fn.name)
		}
		ts, err := p.makeTypeSpec(fn.args[0].pos(), parts)
		if err != nil {
			return nil, err
		}
		fn.typeArg = ts
	}
	return fn, nil
}

// qualifiedName turns an argument like FHIR.Patient or `Patient` into its
// parts, when the argument is such a path.
func qualifiedName(n node) ([]string, bool) {
	switch x := n.(type) {
	case *identNode:
		return []string{x.name}, true
	case *invokeNode:
		left, ok := qualifiedName(x.left)
		if !ok {
			return nil, false
		}
		r, ok := x.right.(*identNode)
		if !ok {
			return nil, false
		}
		return append(left, r.name), true
	}
	return nil, false
}
