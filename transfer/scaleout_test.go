package transfer_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"phix/internal/testenv"
	"phix/queue/natsq"
	"phix/transfer"
	"phix/transfer/transfersql"
)

// alternate sends each request to the next backend in turn: consecutive
// tus chunks, the HEAD, the inbox poll and the download land on different
// replicas.
type alternate struct {
	next     atomic.Uint64
	backends []*httputil.ReverseProxy
}

func (a *alternate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.backends[a.next.Add(1)%uint64(len(a.backends))].ServeHTTP(w, r)
}

// shared is the infrastructure two replicas share: PostgreSQL, S3
// (versitygw on loopback) and the machine's NATS (streams unique to the test).
type shared struct {
	pg      string
	s3      s3Gateway
	bucket  string
	natsCfg natsq.Config
}

func newShared(t *testing.T) *shared {
	pg := testenv.Postgres(t)
	nurl := testenv.NATSURL(t)
	g := startVersitygw(t)
	var b [6]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	sh := &shared{pg: pg, s3: g, bucket: "phix-scaleout-" + id, natsCfg: natsq.Config{URL: nurl,
		Stream: "PHIXTEST_SCALE_" + strings.ToUpper(id), SubjectPrefix: "phixtest." + id + ".deliveries",
		DeadLetterPrefix: "phixtest." + id + ".deadletter", AckWait: 5 * time.Second}}
	ctx := context.Background()
	c := s3.New(s3.Options{BaseEndpoint: aws.String(g.Endpoint), Region: "us-east-1", UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(g.AccessKey, g.SecretKey, "")})
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(sh.bucket)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if q, err := natsq.Open(ctx, sh.natsCfg); err == nil {
			if err := q.Destroy(ctx); err != nil {
				t.Errorf("delete test streams: %v", err)
			}
		}
	})
	return sh
}

// replica points cfg at the shared services with connections of its own.
func (sh *shared) replica(t *testing.T, cfg transfer.Config) transfer.Config {
	ctx := context.Background()
	st, err := transfersql.Open(ctx, sh.pg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	q, err := natsq.Open(ctx, sh.natsCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	cfg.Store, cfg.Queue, cfg.Blobs = st, q, newS3Blob(t, sh.s3, sh.bucket)
	return cfg
}

// newScaleOutEnv serves two coordinator replicas behind one address.
func newScaleOutEnv(t *testing.T) (*env, []*transfer.Server) {
	sh := newShared(t)
	var replicas []*transfer.Server
	e := newEnvWith(t, sh.pg, envSetup{front: func(e *env, cfg transfer.Config) http.Handler {
		// Replica 0 is e.srv (its Store is the env's); replica 1 has its own everything.
		second, err := transfer.NewServer(sh.replica(t, cfg))
		if err != nil {
			t.Fatal(err)
		}
		replicas = []*transfer.Server{e.srv, second}
		a := &alternate{}
		for _, r := range replicas {
			ts := httptest.NewServer(r)
			t.Cleanup(ts.Close)
			u, _ := url.Parse(ts.URL)
			a.backends = append(a.backends, httputil.NewSingleHostReverseProxy(u))
		}
		return a
	}}, func(c *transfer.Config) {
		q, err := natsq.Open(context.Background(), sh.natsCfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		c.Queue, c.Blobs = q, newS3Blob(t, sh.s3, sh.bucket)
	})
	return e, replicas
}

// TestScaleOut runs the whole flow through two replicas sharing
// PostgreSQL, S3 and NATS, every request alternating between them.
func TestScaleOut(t *testing.T) {
	e, _ := newScaleOutEnv(t)
	runFlow(t, e)
}

// TestScaleOutConcurrentPatch: the same chunk PATCHed at the same offset
// through both replicas at once is written exactly once.
func TestScaleOutConcurrentPatch(t *testing.T) {
	e, replicas := newScaleOutEnv(t)
	direct := make([]string, len(replicas))
	for i, r := range replicas {
		ts := httptest.NewServer(r)
		t.Cleanup(ts.Close)
		direct[i] = ts.URL
	}
	const chunk = 8 << 10
	data := randBytes(8 * chunk)
	req := e.request(e.a, e.b, map[string][]byte{"x.enc": data})
	v := e.create(e.a, req)
	path := v.Files[0].UploadURL
	for off := 0; off < len(data); off += chunk {
		var wg sync.WaitGroup
		codes := make([]int, 4)
		for i := range codes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res := e.patch(e.a, direct[i%2]+path, int64(off), data[off:off+chunk], "sha256 "+b64sum(data[off:off+chunk]))
				codes[i] = res.StatusCode
				res.Body.Close()
			}()
		}
		wg.Wait()
		won := 0
		for _, c := range codes {
			switch c {
			case 204:
				won++
			case 409, 423: // offset moved on, or another replica holds the file
			default:
				t.Fatalf("racing PATCH at %d: %v", off, codes)
			}
		}
		if won > 1 {
			t.Fatalf("chunk at %d written %d times: %v", off, won, codes)
		}
		if won == 0 { // all lost to each other's lock: write it once now
			e.upload(e.a, direct[0]+path, data[:off+chunk], off, chunk)
		}
	}
	var done transfer.TransferView
	if code, prob := e.doJSON(e.a, "POST", "/v1/transfers/"+v.ID+"/complete", nil, &done); code != 200 || done.Status != transfer.TransferReady {
		t.Fatalf("complete: %d %v", code, prob)
	}
	var rv transfer.TransferView
	e.doJSON(e.b, "GET", "/v1/transfers/"+v.ID, nil, &rv)
	res := e.do(e.b, "GET", direct[1]+rv.Files[0].DownloadURL, nil, nil)
	got := readAll(res)
	if res.StatusCode != 200 || !bytes.Equal([]byte(got), data) {
		t.Fatalf("download: %d, %d bytes", res.StatusCode, len(got))
	}
}
