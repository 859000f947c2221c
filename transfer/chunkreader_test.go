package transfer

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"

	"phix/internal/asynchash"
)

// trickle returns at most n bytes per Read (a TLS record, an h2 frame).
type trickle struct {
	r io.Reader
	n int
}

func (t trickle) Read(p []byte) (int, error) { return t.r.Read(p[:min(len(p), t.n)]) }

func testBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// copyChunk runs one chunk through chunkReader the way fsblob does: its
// WriteTo when withWriteTo, else io.Copy over Read alone.
func copyChunk(body io.Reader, left int64, want []byte, withWriteTo bool) (got []byte, running []byte, err error) {
	run := sha256.New()
	cr := &chunkReader{r: body, left: left, want: want}
	if want != nil {
		cr.sum = sha256.New()
	}
	cr.hasher = asynchash.New(run, cr.sum)
	defer cr.hasher.Close()
	var out bytes.Buffer
	if withWriteTo {
		_, err = cr.WriteTo(&out)
	} else {
		_, err = io.Copy(&out, struct{ io.Reader }{cr})
	}
	cr.hasher.Wait()
	return out.Bytes(), run.Sum(nil), err
}

// TestChunkReaderWriteToSameAsRead: both copy paths store the same bytes,
// feed the same hashes and give the same verdicts (complete, checksum
// mismatch, past the declared length, body cut short), whatever the read
// sizes of the body.
func TestChunkReaderWriteToSameAsRead(t *testing.T) {
	data := testBytes(3<<20 + 12345)
	good := sha256.Sum256(data)
	bad := sha256.Sum256(data[1:])
	cut := errors.New("cut")
	cases := []struct {
		name string
		body func() io.Reader
		left int64
		want []byte
		err  error
	}{
		{"exact", func() io.Reader { return bytes.NewReader(data) }, int64(len(data)), good[:], nil},
		{"no checksum", func() io.Reader { return bytes.NewReader(data) }, int64(len(data)), nil, nil},
		{"shorter than left", func() io.Reader { return bytes.NewReader(data) }, int64(len(data)) + 99, good[:], nil},
		{"records", func() io.Reader { return trickle{bytes.NewReader(data), 16 << 10} }, int64(len(data)), good[:], nil},
		{"one byte reads", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data[:70000])) }, 70000, nil, nil},
		{"data and EOF together", func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) }, int64(len(data)), good[:], nil},
		{"checksum mismatch", func() io.Reader { return bytes.NewReader(data) }, int64(len(data)), bad[:], errChecksum},
		{"past the length", func() io.Reader { return bytes.NewReader(data) }, int64(len(data)) - 1, nil, errTooLong},
		{"cut short", func() io.Reader { return io.MultiReader(bytes.NewReader(data[:1<<20+5]), iotest.ErrReader(cut)) }, int64(len(data)), good[:], cut},
		{"unexpected EOF", func() io.Reader {
			return io.MultiReader(bytes.NewReader(data[:2<<20]), iotest.ErrReader(io.ErrUnexpectedEOF))
		}, int64(len(data)), good[:], io.ErrUnexpectedEOF},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			gotW, runW, errW := copyChunk(c.body(), c.left, c.want, true)
			gotR, runR, errR := copyChunk(c.body(), c.left, c.want, false)
			if !errors.Is(errW, c.err) || !errors.Is(errR, c.err) {
				t.Fatalf("errors: WriteTo %v, Read %v, want %v", errW, errR, c.err)
			}
			if c.err != nil {
				return // the store cuts whatever was written
			}
			n := min(int(c.left), len(data))
			if !bytes.Equal(gotW, data[:n]) || !bytes.Equal(gotR, data[:n]) {
				t.Fatalf("stored %d and %d bytes, want the %d sent", len(gotW), len(gotR), n)
			}
			want := sha256.Sum256(data[:n])
			if !bytes.Equal(runW, want[:]) || !bytes.Equal(runR, want[:]) {
				t.Fatal("running hash differs from the bytes stored")
			}
		})
	}
}

// TestSameHash: the offset-0 shortcut only shares a hash between equal
// algorithms.
func TestSameHash(t *testing.T) {
	if !sameHash("sha256", "sha256") || !sameHash("sm3", "sm3") || sameHash("sha256", "sm3") || sameHash("sm3", "sha256") {
		t.Fatal("sameHash")
	}
}

// FuzzChunkReader: for any body, declared remainder and read size, the
// WriteTo and Read paths store the same bytes, keep the same running hash
// and agree on the verdict.
func FuzzChunkReader(f *testing.F) {
	f.Add([]byte("hello tus"), uint32(9), uint16(3), false)
	f.Add([]byte("hello tus"), uint32(4), uint16(1), true)
	f.Add(make([]byte, 70000), uint32(80000), uint16(16384), true)
	f.Fuzz(func(t *testing.T, data []byte, left uint32, step uint16, withSum bool) {
		if step == 0 {
			step = 1
		}
		var want []byte
		if withSum {
			s := sha256.Sum256(data)
			want = s[:]
		}
		body := func() io.Reader { return trickle{bytes.NewReader(data), int(step)} }
		gotW, runW, errW := copyChunk(body(), int64(left), want, true)
		gotR, runR, errR := copyChunk(body(), int64(left), want, false)
		if (errW == nil) != (errR == nil) || (errW != nil && !errors.Is(errW, errR)) {
			t.Fatalf("verdicts differ: WriteTo %v, Read %v", errW, errR)
		}
		switch {
		case int64(len(data)) > int64(left):
			if !errors.Is(errW, errTooLong) {
				t.Fatalf("body past the remainder: %v", errW)
			}
		case errW == nil:
			if !bytes.Equal(gotW, data) || !bytes.Equal(gotR, data) || !bytes.Equal(runW, runR) {
				t.Fatal("stored bytes or running hashes differ")
			}
		}
	})
}

// TestChunkReaderReadAfterEnd: a chunk whose body ends short of the file's
// remaining length (every chunk but the last) with its EOF delivered
// together with the last bytes (an HTTP/1.1 body does that) may be read
// again by a reader that dropped that EOF because its buffer was full
// (s3blob's io.ReadFull of a part that ends exactly at the chunk's end):
// the next Read returns io.EOF again, and the hashes hold the chunk once.
// The first Read after the end used to panic ("Write after Wait").
func TestChunkReaderReadAfterEnd(t *testing.T) {
	data := testBytes(1 << 20)
	good := sha256.Sum256(data)
	for _, tc := range []struct {
		name string
		sum  []byte
		want error
	}{
		{"checksum ok", good[:], io.EOF},
		{"no checksum", nil, io.EOF},
		{"checksum mismatch", make([]byte, 32), errChecksum},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := sha256.New()
			cr := &chunkReader{r: iotest.DataErrReader(bytes.NewReader(data)), left: 5 << 20, want: tc.sum}
			if tc.sum != nil {
				cr.sum = sha256.New()
			}
			cr.hasher = asynchash.New(run, cr.sum)
			defer cr.hasher.Close()
			buf := make([]byte, len(data))
			n, err := io.ReadFull(cr, buf)
			if n != len(data) || (err != nil && tc.want == io.EOF) {
				t.Fatalf("first part: %d bytes, %v", n, err)
			}
			for range 2 {
				k, err := io.ReadFull(cr, buf)
				if k != 0 || !errors.Is(err, tc.want) {
					t.Fatalf("read after the end: %d bytes, %v; want 0, %v", k, err, tc.want)
				}
			}
			cr.hasher.Wait()
			if got := run.Sum(nil); !bytes.Equal(got, good[:]) {
				t.Fatal("running hash differs from the chunk's")
			}
		})
	}
}
