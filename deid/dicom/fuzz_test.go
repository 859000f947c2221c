package dicom

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDeidentify: arbitrary bytes give a PHI-6008 error or a valid output,
// never a panic and never the input passed through.
func FuzzDeidentify(f *testing.F) {
	for _, p := range []string{"test_files/CT_small.dcm", "charset_files/chrX2.dcm", "charset_files/chrH32.dcm", "test_files/no_meta.dcm", "test_files/image_dfl.dcm"} {
		if b, err := os.ReadFile(filepath.Join(pydicomData, p)); err == nil && len(b) < 64<<10 {
			f.Add(b)
		}
	}
	f.Add([]byte{})
	f.Add(append(make([]byte, 128), "DICM\x02\x00\x10\x00UI\x14\x001.2.840.10008.1.2.1\x00"...))
	f.Add([]byte("\x08\x00\x05\x00CS\x0a\x00ISO_IR 100\x10\x00\x10\x00PN\x04\x00A^B "))
	d := newTestDeid(f, "basic,clean-descriptors")
	f.Fuzz(func(t *testing.T, data []byte) {
		in := append([]byte(nil), data...)
		res, err := d.Deidentify(data)
		if !bytes.Equal(in, data) {
			t.Fatal("input modified")
		}
		if err != nil {
			if e, ok := err.(*Error); !ok || e.Code != CodeDeidFailed {
				t.Fatalf("error %v is not PHI-6008", err)
			}
			return
		}
		if bytes.Equal(res.Data, data) {
			t.Fatal("input passed through")
		}
		if _, err := d.Deidentify(res.Data); err != nil {
			t.Fatalf("output does not re-read: %v", err)
		}
	})
}
