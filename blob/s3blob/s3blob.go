// Package s3blob is the S3-compatible blob.Store (AWS S3, Alibaba OSS,
// Tencent COS, Ceph RGW, versitygw). An unsealed object is a multipart
// upload plus a manifest; small appends are buffered durably as segment
// objects until they add up to a part. See docs/blob.md.
package s3blob

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"phix/blob"
	"phix/blob/internal/keylock"
)

// MinPartSize is S3's minimum size of every part but the last.
const MinPartSize = 5 << 20

// Config configures the store.
type Config struct {
	// Endpoint is the S3 endpoint URL (path-style addressing is used).
	Endpoint string
	// Bucket must exist.
	Bucket string
	// Prefix is prepended to every object name ("" or ending in "/").
	Prefix string
	// SigningRegion is the S3 region used for request signing (default
	// us-east-1).
	SigningRegion string
	// Residency is the data-residency label reported by Region (e.g.
	// "cn-north"); the coordinator checks it.
	Residency string
	// AccessKey and SecretKey; empty uses the AWS default credential chain.
	AccessKey, SecretKey string
	// PartSize is the multipart part size (default 8 MiB, minimum 5 MiB).
	// Appends are buffered in memory up to one part per concurrent append.
	PartSize int64
	// HTTPClient overrides the HTTP client.
	HTTPClient *http.Client
}

// Store is an S3 blob.Store.
type Store struct {
	c      *s3.Client
	cfg    Config
	locks  keylock.Map
	prefix string
}

var _ blob.Store = (*Store)(nil)

// New builds a store. It does not contact the endpoint.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, errors.New("s3blob: Endpoint and Bucket are required")
	}
	if cfg.Prefix != "" && !strings.HasSuffix(cfg.Prefix, "/") {
		return nil, errors.New("s3blob: Prefix must end in /")
	}
	if cfg.SigningRegion == "" {
		cfg.SigningRegion = "us-east-1"
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = 8 << 20
	}
	if cfg.PartSize < MinPartSize || cfg.PartSize > 512<<20 {
		return nil, fmt.Errorf("s3blob: PartSize must be between 5 MiB and 512 MiB")
	}
	var creds aws.CredentialsProvider
	if cfg.AccessKey != "" {
		creds = credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")
	} else {
		ac, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("s3blob: credentials: %w", err)
		}
		creds = ac.Credentials
	}
	o := s3.Options{
		Region:                     cfg.SigningRegion,
		BaseEndpoint:               aws.String(cfg.Endpoint),
		UsePathStyle:               true,
		Credentials:                creds,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	if cfg.HTTPClient != nil {
		o.HTTPClient = cfg.HTTPClient
	}
	return &Store{c: s3.New(o), cfg: cfg, prefix: cfg.Prefix}, nil
}

// Region implements blob.Store.
func (s *Store) Region() string { return s.cfg.Residency }

// Object names. Key segments never start with ".", so the private names
// below cannot collide with a key, and no object name is a directory of
// another (file-backed gateways such as versitygw's posix need that).
func (s *Store) dataName(key string) string     { return s.prefix + "d/" + key + "/.data" }
func (s *Store) stateDir(key string) string     { return s.prefix + "u/" + key + "/" }
func (s *Store) manifestName(key string) string { return s.stateDir(key) + ".manifest" }

type part struct {
	N    int32  `json:"n"`
	ETag string `json:"etag"`
	Size int64  `json:"size"`
}

type segment struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// manifest is the durable state of an unsealed object; writing it is the
// commit point of every append.
type manifest struct {
	V        int       `json:"v"`
	Created  time.Time `json:"created"`
	UploadID string    `json:"upload_id"`
	Parts    []part    `json:"parts"`
	Segments []segment `json:"segments"`
}

func (m *manifest) size() int64 {
	var n int64
	for _, p := range m.Parts {
		n += p.Size
	}
	for _, sg := range m.Segments {
		n += sg.Size
	}
	return n
}

func (m *manifest) tail() int64 {
	var n int64
	for _, sg := range m.Segments {
		n += sg.Size
	}
	return n
}

func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	var nsu *types.NoSuchUpload
	if errors.As(err, &nsk) || errors.As(err, &nf) || errors.As(err, &nsu) {
		return true
	}
	var ae smithy.APIError
	return errors.As(err, &ae) && (ae.ErrorCode() == "NotFound" || ae.ErrorCode() == "NoSuchKey")
}

// wrap hides object names (they contain keys) from error messages.
func wrap(op string, err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return fmt.Errorf("s3blob: %s: %s", op, ae.ErrorCode())
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("s3blob: %s: %w", op, err)
	}
	return fmt.Errorf("s3blob: %s failed", op)
}

func md5b64(b []byte) *string {
	h := md5.Sum(b)
	return aws.String(base64.StdEncoding.EncodeToString(h[:]))
}

func (s *Store) loadManifest(ctx context.Context, key string) (*manifest, error) {
	out, err := s.c.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.cfg.Bucket, Key: aws.String(s.manifestName(key))})
	if err != nil {
		if isNotFound(err) {
			return nil, blob.ErrNotFound
		}
		return nil, wrap("get manifest", err)
	}
	defer out.Body.Close()
	var m manifest
	if err := json.NewDecoder(io.LimitReader(out.Body, 16<<20)).Decode(&m); err != nil || m.V != 1 {
		return nil, fmt.Errorf("%w: unreadable manifest", blob.ErrCorrupt)
	}
	return &m, nil
}

func (s *Store) saveManifest(ctx context.Context, key string, m *manifest) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = s.c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &s.cfg.Bucket, Key: aws.String(s.manifestName(key)),
		Body: bytes.NewReader(b), ContentLength: aws.Int64(int64(len(b))), ContentMD5: md5b64(b),
		ContentType: aws.String("application/json"),
	})
	if err != nil {
		return wrap("put manifest", err)
	}
	return nil
}

// head returns the sealed object's info, or ErrNotFound.
func (s *Store) head(ctx context.Context, key string) (blob.Info, error) {
	out, err := s.c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.cfg.Bucket, Key: aws.String(s.dataName(key))})
	if err != nil {
		if isNotFound(err) {
			return blob.Info{}, blob.ErrNotFound
		}
		return blob.Info{}, wrap("head", err)
	}
	info := blob.Info{Key: key, Size: aws.ToInt64(out.ContentLength), Sealed: true}
	if c, ok := out.Metadata["phix-created"]; ok {
		info.Created, _ = time.Parse(time.RFC3339Nano, c)
	}
	if info.Created.IsZero() {
		info.Created = aws.ToTime(out.LastModified)
	}
	return info, nil
}

// Create implements blob.Store. It starts the multipart upload right away so
// the manifest always names one.
func (s *Store) Create(ctx context.Context, key string) (blob.Info, error) {
	if err := blob.ValidateKey(key); err != nil {
		return blob.Info{}, err
	}
	defer s.locks.Lock(key)()
	if _, err := s.stat(ctx, key); err == nil {
		return blob.Info{}, blob.ErrExists
	} else if !errors.Is(err, blob.ErrNotFound) {
		return blob.Info{}, err
	}
	created := time.Now().UTC().Truncate(time.Microsecond)
	up, err := s.c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: &s.cfg.Bucket, Key: aws.String(s.dataName(key)),
		Metadata:    map[string]string{"phix-created": created.Format(time.RFC3339Nano)},
		ContentType: aws.String("application/octet-stream"),
	})
	if err != nil {
		return blob.Info{}, wrap("create multipart upload", err)
	}
	m := &manifest{V: 1, Created: created, UploadID: aws.ToString(up.UploadId)}
	if err := s.saveManifest(ctx, key, m); err != nil {
		s.abort(ctx, key, m.UploadID)
		return blob.Info{}, err
	}
	return blob.Info{Key: key, Created: created}, nil
}

func (s *Store) abort(ctx context.Context, key, uploadID string) {
	_, _ = s.c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &s.cfg.Bucket, Key: aws.String(s.dataName(key)), UploadId: &uploadID})
}

// Append implements blob.Store. Bytes are read a part at a time; whenever
// the buffered tail plus new bytes reach PartSize a part is uploaded, and a
// remainder becomes a new segment object. Nothing counts until the manifest
// naming the new parts and segments is written.
func (s *Store) Append(ctx context.Context, key string, offset int64, r io.Reader) (int64, error) {
	if err := blob.ValidateKey(key); err != nil {
		return 0, err
	}
	defer s.locks.Lock(key)()
	m, err := s.loadManifest(ctx, key)
	if errors.Is(err, blob.ErrNotFound) {
		if info, herr := s.head(ctx, key); herr == nil {
			return info.Size, blob.ErrSealed
		}
	}
	if err != nil {
		return 0, err
	}
	size := m.size()
	if offset != size {
		return size, fmt.Errorf("%w: got %d, size %d", blob.ErrOffsetMismatch, offset, size)
	}
	var obsolete []segment
	var created []segment
	fail := func(err error) (int64, error) {
		s.deleteSegments(ctx, created)
		return size, err
	}
	buf := make([]byte, s.cfg.PartSize)
	for {
		need := s.cfg.PartSize - m.tail()
		n, rerr := io.ReadFull(r, buf[:need])
		if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
			return fail(fmt.Errorf("s3blob: append: read chunk: %w", rerr))
		}
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		if int64(n) == need {
			body, err := s.partBody(ctx, m.Segments, buf[:n])
			if err != nil {
				return fail(err)
			}
			p, err := s.uploadPart(ctx, key, m, body)
			if err != nil {
				return fail(err)
			}
			m.Parts = append(m.Parts, p)
			obsolete = append(obsolete, m.Segments...)
			m.Segments = nil
			continue
		}
		if n > 0 {
			sg, err := s.putSegment(ctx, key, offset, buf[:n])
			if err != nil {
				return fail(err)
			}
			created = append(created, sg)
			m.Segments = append(m.Segments, sg)
		}
		break
	}
	newSize := m.size()
	if newSize == size {
		return size, nil
	}
	if err := s.saveManifest(ctx, key, m); err != nil {
		return fail(err)
	}
	s.deleteSegments(ctx, obsolete)
	return newSize, nil
}

// partBody concatenates the buffered segments and the new bytes.
func (s *Store) partBody(ctx context.Context, segs []segment, rest []byte) ([]byte, error) {
	if len(segs) == 0 {
		return rest, nil
	}
	var b bytes.Buffer
	for _, sg := range segs {
		out, err := s.c.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.cfg.Bucket, Key: aws.String(sg.Name)})
		if err != nil {
			if isNotFound(err) {
				return nil, fmt.Errorf("%w: buffered segment missing", blob.ErrCorrupt)
			}
			return nil, wrap("get segment", err)
		}
		n, err := b.ReadFrom(out.Body)
		out.Body.Close()
		if err != nil {
			return nil, wrap("read segment", err)
		}
		if n != sg.Size {
			return nil, fmt.Errorf("%w: buffered segment has the wrong size", blob.ErrCorrupt)
		}
	}
	b.Write(rest)
	return b.Bytes(), nil
}

func (s *Store) uploadPart(ctx context.Context, key string, m *manifest, body []byte) (part, error) {
	n := int32(len(m.Parts) + 1)
	out, err := s.c.UploadPart(ctx, &s3.UploadPartInput{
		Bucket: &s.cfg.Bucket, Key: aws.String(s.dataName(key)), UploadId: &m.UploadID, PartNumber: aws.Int32(n),
		Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))), ContentMD5: md5b64(body),
	})
	if err != nil {
		return part{}, wrap("upload part", err)
	}
	return part{N: n, ETag: aws.ToString(out.ETag), Size: int64(len(body))}, nil
}

func (s *Store) putSegment(ctx context.Context, key string, offset int64, b []byte) (segment, error) {
	var rb [6]byte
	_, _ = rand.Read(rb[:])
	name := fmt.Sprintf("%s.seg-%016x-%s", s.stateDir(key), offset, hex.EncodeToString(rb[:]))
	_, err := s.c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &s.cfg.Bucket, Key: aws.String(name),
		Body: bytes.NewReader(b), ContentLength: aws.Int64(int64(len(b))), ContentMD5: md5b64(b),
	})
	if err != nil {
		return segment{}, wrap("put segment", err)
	}
	return segment{Name: name, Size: int64(len(b))}, nil
}

func (s *Store) deleteSegments(ctx context.Context, segs []segment) {
	for _, sg := range segs {
		_, _ = s.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.cfg.Bucket, Key: aws.String(sg.Name)})
	}
}

// Stat implements blob.Store.
func (s *Store) Stat(ctx context.Context, key string) (blob.Info, error) {
	if err := blob.ValidateKey(key); err != nil {
		return blob.Info{}, err
	}
	return s.stat(ctx, key)
}

func (s *Store) stat(ctx context.Context, key string) (blob.Info, error) {
	info, err := s.head(ctx, key)
	if !errors.Is(err, blob.ErrNotFound) {
		return info, err
	}
	m, err := s.loadManifest(ctx, key)
	if err != nil {
		return blob.Info{}, err
	}
	return blob.Info{Key: key, Size: m.size(), Created: m.Created}, nil
}

// Seal implements blob.Store: the buffered segments become the last part and
// the multipart upload is completed (or, with no full part, the object is
// written with one PUT). A crash after completion leaves a sealed object
// whose leftover state the next Seal or Delete removes.
func (s *Store) Seal(ctx context.Context, key string) (blob.Info, error) {
	if err := blob.ValidateKey(key); err != nil {
		return blob.Info{}, err
	}
	defer s.locks.Lock(key)()
	if info, err := s.head(ctx, key); err == nil {
		s.removeState(ctx, key, "")
		return info, nil
	} else if !errors.Is(err, blob.ErrNotFound) {
		return blob.Info{}, err
	}
	m, err := s.loadManifest(ctx, key)
	if err != nil {
		return blob.Info{}, err
	}
	want := m.size()
	tail, err := s.partBody(ctx, m.Segments, nil)
	if err != nil {
		return blob.Info{}, err
	}
	if len(m.Parts) == 0 {
		_, err = s.c.PutObject(ctx, &s3.PutObjectInput{
			Bucket: &s.cfg.Bucket, Key: aws.String(s.dataName(key)),
			Body: bytes.NewReader(tail), ContentLength: aws.Int64(int64(len(tail))), ContentMD5: md5b64(tail),
			Metadata:    map[string]string{"phix-created": m.Created.Format(time.RFC3339Nano)},
			ContentType: aws.String("application/octet-stream"),
		})
		if err != nil {
			return blob.Info{}, wrap("put object", err)
		}
	} else {
		if len(tail) > 0 {
			p, err := s.uploadPart(ctx, key, m, tail)
			if err != nil {
				return blob.Info{}, err
			}
			m.Parts = append(m.Parts, p)
		}
		var cp []types.CompletedPart
		for _, p := range m.Parts {
			cp = append(cp, types.CompletedPart{PartNumber: aws.Int32(p.N), ETag: aws.String(p.ETag)})
		}
		_, err = s.c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket: &s.cfg.Bucket, Key: aws.String(s.dataName(key)), UploadId: &m.UploadID,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: cp},
		})
		if err != nil {
			return blob.Info{}, wrap("complete multipart upload", err)
		}
	}
	s.removeState(ctx, key, m.UploadID)
	info, err := s.head(ctx, key)
	if err != nil {
		return blob.Info{}, err
	}
	if info.Size != want {
		return blob.Info{}, fmt.Errorf("%w: sealed size %d differs from the appended size %d", blob.ErrCorrupt, info.Size, want)
	}
	return info, nil
}

// removeState deletes the manifest and segments of key (and aborts its
// upload when it is still open).
func (s *Store) removeState(ctx context.Context, key, uploadID string) {
	if uploadID != "" {
		s.abort(ctx, key, uploadID)
	}
	_ = s.listNames(ctx, s.stateDir(key), func(name string, _ types.Object) error {
		rest := strings.TrimPrefix(name, s.stateDir(key))
		if !strings.Contains(rest, "/") { // this key's own state, not a longer key's
			_, _ = s.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.cfg.Bucket, Key: aws.String(name)})
		}
		return nil
	})
}

// ReadRange implements blob.Store.
func (s *Store) ReadRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := blob.ValidateKey(key); err != nil {
		return nil, err
	}
	info, err := s.head(ctx, key)
	if errors.Is(err, blob.ErrNotFound) {
		if _, merr := s.loadManifest(ctx, key); merr == nil {
			return nil, blob.ErrNotSealed
		}
	}
	if err != nil {
		return nil, err
	}
	n, err := blob.CheckRange(info.Size, off, length)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	out, err := s.c.GetObject(ctx, &s3.GetObjectInput{
		Bucket: &s.cfg.Bucket, Key: aws.String(s.dataName(key)),
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1)),
	})
	if err != nil {
		if isNotFound(err) {
			return nil, blob.ErrNotFound
		}
		return nil, wrap("get range", err)
	}
	return out.Body, nil
}

// Delete implements blob.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := blob.ValidateKey(key); err != nil {
		return err
	}
	defer s.locks.Lock(key)()
	return s.deleteLocked(ctx, key)
}

func (s *Store) deleteLocked(ctx context.Context, key string) error {
	found := false
	if m, err := s.loadManifest(ctx, key); err == nil {
		found = true
		s.abort(ctx, key, m.UploadID)
		for _, sg := range m.Segments {
			_, _ = s.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.cfg.Bucket, Key: aws.String(sg.Name)})
		}
		if _, err := s.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.cfg.Bucket, Key: aws.String(s.manifestName(key))}); err != nil {
			return wrap("delete manifest", err)
		}
	} else if !errors.Is(err, blob.ErrNotFound) && !errors.Is(err, blob.ErrCorrupt) {
		return err
	}
	if _, err := s.head(ctx, key); err == nil {
		found = true
		if _, err := s.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.cfg.Bucket, Key: aws.String(s.dataName(key))}); err != nil {
			return wrap("delete object", err)
		}
	}
	if !found {
		return blob.ErrNotFound
	}
	s.removeState(ctx, key, "")
	return nil
}

// DeletePrefix implements blob.Store.
func (s *Store) DeletePrefix(ctx context.Context, prefix string) (int, error) {
	return blob.DeletePrefix(ctx, prefix, s.keys, func(ctx context.Context, k string) error {
		defer s.locks.Lock(k)()
		return s.deleteLocked(ctx, k)
	})
}

// List implements blob.Store. It costs one listing plus one HEAD or GET per
// object.
func (s *Store) List(ctx context.Context, prefix string, fn func(blob.Info) error) error {
	keys, err := s.keys(ctx, prefix)
	if err != nil {
		return err
	}
	for _, k := range keys {
		info, err := s.stat(ctx, k)
		if errors.Is(err, blob.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) keys(ctx context.Context, prefix string) ([]string, error) {
	if err := blob.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, ns := range []struct{ dir, suffix string }{{"d/", "/.data"}, {"u/", "/.manifest"}} {
		base := s.prefix + ns.dir
		err := s.listNames(ctx, base+prefix, func(name string, _ types.Object) error {
			k, ok := strings.CutSuffix(strings.TrimPrefix(name, base), ns.suffix)
			if ok && blob.ValidateKey(k) == nil {
				seen[k] = true
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys, nil
}

func (s *Store) listNames(ctx context.Context, prefix string, fn func(string, types.Object) error) error {
	p := s3.NewListObjectsV2Paginator(s.c, &s3.ListObjectsV2Input{Bucket: &s.cfg.Bucket, Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return wrap("list", err)
		}
		for _, o := range page.Contents {
			if err := fn(aws.ToString(o.Key), o); err != nil {
				return err
			}
		}
	}
	return nil
}
