package phi

import (
	"context"
	"encoding/hex"

	"phix/errcode"
	"phix/fhir/search"
)

// Full-text search (_text, _content) over sealed resources: the server
// tokenizes the plaintext (search.FullTextOf) and the store indexes blind
// tokens, one keyed MAC per word, so word order survives (phrases work) and
// no word is stored in clear. docs/searchable-encryption.md states what the
// index reveals.

// ftTokenBytes is the blind token length: 80 bits, no collision in practice
// at any vocabulary size, and 20 hex characters that every full-text
// tokenizer keeps as one word.
const ftTokenBytes = 10

// ftType and ftParam name the key derivation of each document: the
// narrative and the whole content have separate keys, so their tokens cannot
// be matched with each other.
const ftType = "Resource"

func ftParam(narrative bool) string {
	if narrative {
		return "fulltext-text"
	}
	return "fulltext-content"
}

// blindWords maps each word to its blind token under key, through a bounded
// cache (clinical text repeats the same words).
func (p *Protector) blindWords(key []byte, param string, words []string) []string {
	out := make([]string, len(words))
	for i, w := range words {
		ck := param + "\x00" + w
		if v, ok := p.words.get(ck); ok {
			out[i] = v.(string)
			continue
		}
		h := p.cfg.Suite.NewMAC(key)
		h.Write([]byte("ft\x00"))
		h.Write([]byte(w))
		t := hex.EncodeToString(h.Sum(nil)[:ftTokenBytes])
		p.words.put(ck, t)
		out[i] = t
	}
	return out
}

// BlindFullText returns d with every token replaced by its blind token.
func (p *Protector) BlindFullText(ctx context.Context, d search.FullTextDoc) (search.FullTextDoc, error) {
	var out search.FullTextDoc
	for _, narrative := range []bool{true, false} {
		words := d.Content
		if narrative {
			words = d.Narrative
		}
		if len(words) == 0 {
			continue
		}
		key, err := p.blindKey(ctx, ftType, ftParam(narrative))
		if err != nil {
			return search.FullTextDoc{}, err
		}
		b := p.blindWords(key, ftParam(narrative), words)
		if narrative {
			out.Narrative = b
		} else {
			out.Content = b
		}
	}
	return out, nil
}

// BlindFullTextQuery returns a copy of q with every word blinded for the
// narrative (_text) or the content (_content) index. A prefix search cannot
// be answered from keyed tokens and is refused with PHI-6006, the code the
// server gives every search that encryption rules out.
func (p *Protector) BlindFullTextQuery(ctx context.Context, q *search.FullTextQuery, narrative bool) (*search.FullTextQuery, error) {
	key, err := p.blindKey(ctx, ftType, ftParam(narrative))
	if err != nil {
		return nil, err
	}
	var walk func(q *search.FullTextQuery) (*search.FullTextQuery, error)
	walk = func(q *search.FullTextQuery) (*search.FullTextQuery, error) {
		if q.Prefix {
			return nil, phiErr(errcode.PHIEncryptionRequired, "prefix full-text search is not available on encrypted text")
		}
		c := &search.FullTextQuery{Op: q.Op}
		if len(q.Tokens) > 0 {
			c.Tokens = p.blindWords(key, ftParam(narrative), q.Tokens)
		}
		for _, a := range q.Args {
			b, err := walk(a)
			if err != nil {
				return nil, err
			}
			c.Args = append(c.Args, b)
		}
		return c, nil
	}
	return walk(q)
}
