package s3blob

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"phix/blob"
	"phix/blob/blobtest"
)

func TestContract(t *testing.T) {
	g := startVersitygw(t)
	blobtest.Run(t, func(t *testing.T) blob.Store { return g.newStore(t, 0) })
}

// TestSmallChunksBufferedDurably: small appends become segment objects (no
// part yet); a new Store instance (another replica, or after a crash) resumes
// from the manifest; the state objects are gone after Seal.
func TestSmallChunksBufferedDurably(t *testing.T) {
	g := startVersitygw(t)
	ctx := context.Background()
	s := g.newStore(t, MinPartSize)
	if s.Region() != "test-region" {
		t.Fatalf("Region = %q", s.Region())
	}
	data := blobtest.Random(MinPartSize + 3<<20)
	if _, err := s.Create(ctx, "t/f"); err != nil {
		t.Fatal(err)
	}
	off, err := s.Append(ctx, "t/f", 0, bytes.NewReader(data[:2<<20]))
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.loadManifest(ctx, "t/f")
	if err != nil || len(m.Parts) != 0 || len(m.Segments) != 1 || m.size() != 2<<20 {
		t.Fatalf("manifest after a small append = %+v, %v", m, err)
	}
	// A second replica with its own Store sees the durable state.
	s2, _ := New(ctx, s.cfg)
	off, err = s2.Append(ctx, "t/f", off, bytes.NewReader(data[off:]))
	if err != nil || off != int64(len(data)) {
		t.Fatalf("append on the second replica = %d, %v", off, err)
	}
	m, _ = s2.loadManifest(ctx, "t/f")
	if len(m.Parts) != 1 || m.Parts[0].Size != MinPartSize || m.tail() != 3<<20 {
		t.Fatalf("manifest after crossing a part = parts %+v tail %d", m.Parts, m.tail())
	}
	if _, err := s.Seal(ctx, "t/f"); err != nil {
		t.Fatal(err)
	}
	var names []string
	s.listNames(ctx, s.prefix, func(n string, _ types.Object) error { names = append(names, n); return nil })
	if len(names) != 1 || !strings.HasSuffix(names[0], "/.data") {
		t.Fatalf("objects after Seal = %v, want only the data object", names)
	}
	rc, err := s.ReadRange(ctx, "t/f", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
	// Deleting an unsealed object aborts its upload.
	s.Create(ctx, "t/g")
	s.Append(ctx, "t/g", 0, bytes.NewReader(data[:MinPartSize+1]))
	if err := s.Delete(ctx, "t/g"); err != nil {
		t.Fatal(err)
	}
	ups, err := s.c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(s.cfg.Bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Fatalf("%d multipart uploads left after Delete", len(ups.Uploads))
	}
}

func TestConfig(t *testing.T) {
	ctx := context.Background()
	for _, c := range []Config{
		{},
		{Endpoint: "http://127.0.0.1:1"},
		{Endpoint: "http://127.0.0.1:1", Bucket: "b", Prefix: "x"},
		{Endpoint: "http://127.0.0.1:1", Bucket: "b", PartSize: 1 << 20, AccessKey: "a"},
	} {
		if _, err := New(ctx, c); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
}
