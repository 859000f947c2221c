package gateway_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	dcm "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"phix/devnet"
	"phix/gateway"
	"phix/internal/testenv"
)

// pydicomCT is a real CT image from Debian's python3-pydicom test files
// (explicit little endian, native pixel data, patient and institution
// identifiers, private tags, a nested Other Patient IDs sequence).
const pydicomCT = "/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm"

// TestEndToEndDICOM: a real DICOM file goes A → B with de-identification
// (research purpose, safe-harbor): B's copy carries the PS3.15 de-identified
// header (Patient Identity Removed YES, the method and the Basic Profile's
// code), the same pixel data byte for byte, and none of the original's
// identifying values (names, ids, UIDs, institution, station).
func TestEndToEndDICOM(t *testing.T) { inModes(t, testEndToEndDICOM) }

func testEndToEndDICOM(t *testing.T, base devnet.Options) {
	if _, err := os.Stat(pydicomCT); err != nil {
		testenv.Missing(t, "pydicom test files not installed (Debian package python3-pydicom)")
	}
	orig, err := os.ReadFile(pydicomCT)
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "ct.dcm")
	if err := os.WriteFile(src, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	n := startNet(t, base)
	job, err := n.Hospitals[0].Gateway.Send(context.Background(), gateway.SendRequest{To: "hospital-b", Purpose: "HRESCH",
		Consent: n.Demo.Consent, Deidentify: "safe-harbor", Files: []gateway.SourceFile{{Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, n.Hospitals[0].Gateway, job.ID, gateway.JobSent)
	rec := receiveUntil(t, n.Hospitals[1].Gateway, job.ID)
	if rec.Status != gateway.InDelivered {
		t.Fatalf("inbound %+v", rec)
	}
	got := deliveredFile(t, n, rec)
	if bytes.Equal(got, orig) {
		t.Fatal("B received the original file")
	}

	// The header, read by the DICOM library the project's de-identifier uses.
	out := filepath.Join(t.TempDir(), "out.dcm")
	if err := os.WriteFile(out, got, 0o600); err != nil {
		t.Fatal(err)
	}
	ods, err := dcm.ParseFile(pydicomCT, nil, dcm.SkipPixelData())
	if err != nil {
		t.Fatal(err)
	}
	ds, err := dcm.ParseFile(out, nil, dcm.SkipPixelData())
	if err != nil {
		t.Fatalf("B's copy does not parse as DICOM: %v", err)
	}
	str := func(d dcm.Dataset, tg tag.Tag) string {
		e, err := d.FindElementByTag(tg)
		if err != nil {
			return ""
		}
		if v, ok := e.Value.GetValue().([]string); ok {
			return strings.TrimRight(strings.Join(v, `\`), " \x00")
		}
		return ""
	}
	if v := str(ds, tag.PatientIdentityRemoved); v != "YES" {
		t.Errorf("Patient Identity Removed = %q, want YES", v)
	}
	if v := str(ds, tag.DeidentificationMethod); v == "" {
		t.Error("no De-identification Method")
	}
	if _, err := ds.FindElementByTag(tag.DeidentificationMethodCodeSequence); err != nil || !bytes.Contains(got, []byte("113100")) {
		t.Error("no De-identification Method Code Sequence with the Basic Application Confidentiality Profile (113100)")
	}

	// Pixel data: the top-level Pixel Data element, byte for byte.
	if a, b := pixelElement(t, orig), pixelElement(t, got); !bytes.Equal(a, b) {
		t.Fatalf("pixel data differs: %d bytes sent, %d received", len(a), len(b))
	}

	// No identifying value of the original is left anywhere in the file.
	var ids []string
	for _, tg := range []tag.Tag{tag.PatientName, tag.PatientID, tag.SOPInstanceUID, tag.StudyInstanceUID,
		tag.SeriesInstanceUID, tag.FrameOfReferenceUID, tag.MediaStorageSOPInstanceUID, tag.InstitutionName,
		tag.StationName, tag.StudyID} {
		if v := str(ods, tg); len(v) >= 4 {
			ids = append(ids, v)
		}
	}
	for it := ods.FlatStatefulIterator(); it.HasNext(); {
		e := it.Next()
		if e.Tag == tag.PatientID || e.Tag == tag.OtherPatientIDs {
			if v, ok := e.Value.GetValue().([]string); ok {
				for _, s := range v {
					if s = strings.TrimSpace(s); len(s) >= 4 {
						ids = append(ids, s)
					}
				}
			}
		}
	}
	if len(ids) < 8 {
		t.Fatalf("only %d identifying values found in the original: %q", len(ids), ids)
	}
	for _, v := range ids {
		if bytes.Contains(got, []byte(v)) {
			t.Errorf("an original identifier (%d bytes) is left in B's copy", len(v))
		}
		for _, part := range strings.Split(v, "^") {
			if len(part) >= 4 && bytes.Contains(got, []byte(part)) {
				t.Errorf("a component of an original name (%d bytes) is left in B's copy", len(part))
			}
		}
	}
}

// pixelElement returns the top-level Pixel Data element (tag, VR, length
// and value) of an explicit little endian file with native pixel data: the
// first (7FE0,0010) tag, which no header value of these files contains.
func pixelElement(t *testing.T, b []byte) []byte {
	t.Helper()
	i := bytes.Index(b, []byte{0xE0, 0x7F, 0x10, 0x00})
	if i < 0 || i+12 > len(b) {
		t.Fatal("no Pixel Data element")
	}
	vr := string(b[i+4 : i+6])
	if vr != "OW" && vr != "OB" {
		t.Fatalf("Pixel Data VR %q", vr)
	}
	n := int(b[i+8]) | int(b[i+9])<<8 | int(b[i+10])<<16 | int(b[i+11])<<24
	if n == 0 || i+12+n > len(b) {
		t.Fatalf("Pixel Data of %d bytes in a file of %d", n, len(b))
	}
	return b[i : i+12+n]
}
