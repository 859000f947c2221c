package fhirserver

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Benchmarks over ../shared/testdata/synthea, through real HTTP on loopback,
// against SQLite and PostgreSQL:
//
//	go test -run '^$' -bench . -benchtime 1x -count 5 ./fhirserver
//
// Each reports its figure with b.ReportMetric and a ratio to a raw loopback
// HTTP round trip measured in the same run, since machines are noisy.

func benchBackends(b *testing.B, fn func(b *testing.B, open storeFactory)) {
	for _, name := range []string{"sqlite", "postgres"} {
		open := backends[name]
		b.Run(name, func(b *testing.B) { fn(b, open) })
	}
}

func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64, DisableCompression: true}}
}

// rawServer is a trivial handler on loopback answering a 2 KiB body: the
// floor any FHIR read sits on, measured with the same client.
func rawServer(b *testing.B) *httptest.Server {
	body := bytes.Repeat([]byte("x"), 2048)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(body) }))
	b.Cleanup(srv.Close)
	return srv
}

// rawRoundTrip is the median round trip to rawServer from one client.
func rawRoundTrip(b *testing.B, c *http.Client, url string) time.Duration {
	b.Helper()
	lat := make([]time.Duration, 0, 2000)
	for i := 0; i < 2000; i++ {
		t0 := time.Now()
		res, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		lat = append(lat, time.Since(t0))
	}
	return percentile(lat, 50)
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

// BenchmarkImport imports the 24 Synthea bundles as transactions into an
// empty store, from 1 client and from 4 concurrent clients: resources/s.
func BenchmarkImport(b *testing.B) {
	bundles := syntheaBundles(b)
	names := make([]string, 0, len(bundles))
	for n := range bundles {
		names = append(names, n)
	}
	sort.Strings(names)
	benchBackends(b, func(b *testing.B, open storeFactory) {
		for _, clients := range []int{1, 4} {
			b.Run("clients="+strconv.Itoa(clients), func(b *testing.B) {
				c := benchClient()
				var resources atomic.Int64
				var elapsed time.Duration
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					e := newEnv(b, open(b))
					b.StartTimer()
					t0 := time.Now()
					var next atomic.Int64
					var wg sync.WaitGroup
					for w := 0; w < clients; w++ {
						wg.Add(1)
						go func() {
							defer wg.Done()
							for {
								k := int(next.Add(1)) - 1
								if k >= len(names) {
									return
								}
								resources.Add(int64(postBundle(b, c, e, names[k], bundles[names[k]])))
							}
						}()
					}
					wg.Wait()
					elapsed += time.Since(t0)
				}
				b.ReportMetric(float64(resources.Load())/elapsed.Seconds(), "resources/s")
			})
		}
	})
}

// postBundle posts one transaction and returns how many entries it created.
func postBundle(b *testing.B, c *http.Client, e *env, name string, data []byte) int {
	req, _ := http.NewRequest("POST", e.base, bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+e.token)
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Prefer", "return=minimal")
	res, err := c.Do(req)
	if err != nil {
		b.Error(err)
		return 0
	}
	out, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		b.Errorf("%s: %d %.300s", name, res.StatusCode, out)
		return 0
	}
	return bytes.Count(out, []byte(`"status":"201 Created"`))
}

// readFixture imports a few bundles and returns the server and every
// resource path in it.
func readFixture(b *testing.B, open storeFactory, mod ...func(*Config)) (*env, []string) {
	b.Helper()
	bundles := syntheaBundles(b)
	e := newEnv(b, open(b), mod...)
	n := 0
	var paths []string
	for _, data := range bundles {
		if n == 4 {
			break
		}
		n++
		r := e.do("POST", "", data).want(b, 200)
		for _, en := range r.entries() {
			loc := en["response"].(map[string]any)["location"].(string)
			// Type/id/_history/1 -> Type/id
			i := bytes.Index([]byte(loc), []byte("/_history/"))
			paths = append(paths, "/"+loc[:i])
		}
	}
	return e, paths
}

func getOK(b *testing.B, c *http.Client, url, token string) {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := c.Do(req)
	if err != nil {
		b.Error(err)
		return
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		b.Errorf("GET: %d", res.StatusCode)
	}
}

// benchReads runs fn per backend over one fixture, built once per
// benchmark (not per b.N round) and released when the benchmark ends.
func benchReads(b *testing.B, fn func(b *testing.B, e *env, paths []string)) {
	for _, name := range []string{"sqlite", "postgres"} {
		e, paths := readFixture(b, backends[name])
		b.Run(name, func(b *testing.B) { fn(b, e, paths) })
	}
}

// BenchmarkReadLatency reads resources one at a time from one client: p50
// and p99 in ms, and p50 as a multiple of a raw loopback round trip.
func BenchmarkReadLatency(b *testing.B) {
	raw := rawServer(b)
	benchReads(b, func(b *testing.B, e *env, paths []string) {
		c := benchClient()
		rawP50 := rawRoundTrip(b, c, raw.URL)
		n := min(max(b.N, 2000), 50000)
		lat := make([]time.Duration, 0, n)
		b.ResetTimer()
		for i := 0; i < n; i++ {
			t0 := time.Now()
			getOK(b, c, e.base+paths[i%len(paths)], e.token)
			lat = append(lat, time.Since(t0))
		}
		b.StopTimer()
		p50, p99 := percentile(lat, 50), percentile(lat, 99)
		b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(p50)/float64(rawP50), "p50/raw-http")
	})
}

// BenchmarkReadThroughput reads with 16 concurrent clients: reads/s, and the
// same rate as a fraction of raw loopback round trips at 16 clients.
func BenchmarkReadThroughput(b *testing.B) {
	raw := rawServer(b)
	benchReads(b, func(b *testing.B, e *env, paths []string) {
		c := benchClient()
		const clients = 16
		total := min(max(b.N, 20000), 200000)
		run := func(url func(i int) string) float64 {
			var next atomic.Int64
			var wg sync.WaitGroup
			t0 := time.Now()
			for w := 0; w < clients; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := int(next.Add(1)) - 1
						if i >= total {
							return
						}
						getOK(b, c, url(i), e.token)
					}
				}()
			}
			wg.Wait()
			return float64(total) / time.Since(t0).Seconds()
		}
		b.ResetTimer()
		rate := run(func(i int) string { return e.base + paths[i%len(paths)] })
		b.StopTimer()
		rawRate := run(func(int) string { return raw.URL })
		b.ReportMetric(rate, "reads/s")
		b.ReportMetric(rate/rawRate, "vs-raw-http")
	})
}
