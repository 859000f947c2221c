package seal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/iotest"

	"phix/suite"
)

// onlyReader hides WriteTo, so io.Copy takes the Writer's ReadFrom.
type onlyReader struct{ io.Reader }

// ReadFrom writes the same body as Write for every length and source shape
// (the body depends only on the fixed data key, salt and nonce prefix; the
// stanzas are randomised).
func TestWriterReadFromMatchesWrite(t *testing.T) {
	const seg = 128
	forSuites(t, func(t *testing.T, id suite.ID) {
		p := newParty(t, id)
		opts := Options{Suite: p.s, Recipients: []Recipient{p.recipient()}, SegmentSize: seg,
			dataKey: randBytes(DataKeySize), salt: randBytes(SaltSize), noncePrefix: randBytes(NoncePrefixSize)}
		sources := map[string]func([]byte) io.Reader{
			"plain":    func(b []byte) io.Reader { return onlyReader{bytes.NewReader(b)} },
			"one byte": func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
			"half":     func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) },
			"data+EOF": func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) },
		}
		for _, n := range []int{0, 1, seg - 1, seg, seg + 1, 2 * seg, 5*seg + 3, 40 * seg} {
			pt := randBytes(n)
			want := sealBytes(t, opts, pt)
			body := want[headerLen(t, want):]
			for name, src := range sources {
				t.Run(fmt.Sprintf("%d/%s", n, name), func(t *testing.T) {
					var buf bytes.Buffer
					w, err := NewWriter(&buf, opts)
					if err != nil {
						t.Fatal(err)
					}
					m, err := io.Copy(w, src(pt))
					if err != nil || m != int64(n) {
						t.Fatalf("copied %d of %d: %v", m, n, err)
					}
					if err := w.Close(); err != nil {
						t.Fatal(err)
					}
					got := buf.Bytes()
					if !bytes.Equal(got[headerLen(t, got):], body) {
						t.Fatal("ReadFrom body differs from Write body")
					}
					if out, err := openBytes(got, p.identity()); err != nil || !bytes.Equal(out, pt) {
						t.Fatalf("open: %v", err)
					}
				})
			}
		}
	})
}

func TestWriterReadFromErrors(t *testing.T) {
	p := newParty(t, suite.Intl)
	opts := Options{Suite: p.s, Recipients: []Recipient{p.recipient()}, SegmentSize: tseg}
	w, err := NewWriter(io.Discard, opts)
	if err != nil {
		t.Fatal(err)
	}
	// A source error is returned, not swallowed as the end of the stream.
	if _, err := w.ReadFrom(&failAfter{bytes.NewReader(randBytes(3 * tseg)), errNetwork}); !errors.Is(err, errNetwork) {
		t.Fatalf("source error: %v", err)
	}
	w.Close()
	if _, err := w.ReadFrom(bytes.NewReader([]byte("x"))); !errors.Is(err, ErrClosed) {
		t.Fatalf("ReadFrom after Close: %v", err)
	}
	// A destination error stops ReadFrom and sticks.
	w, err = NewWriter(&limitedWriter{n: 2000}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.ReadFrom(bytes.NewReader(randBytes(100 * tseg))); !errors.Is(err, errFull) {
		t.Fatalf("destination error: %v", err)
	}
	if err := w.Close(); !errors.Is(err, errFull) {
		t.Fatalf("Close after a write error: %v", err)
	}
}

var errFull = errors.New("disk full")

// limitedWriter accepts n bytes, then fails.
type limitedWriter struct{ n int }

func (l *limitedWriter) Write(p []byte) (int, error) {
	if len(p) > l.n {
		l.n = 0
		return 0, errFull
	}
	l.n -= len(p)
	return len(p), nil
}
