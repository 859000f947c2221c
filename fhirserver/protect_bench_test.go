package fhirserver

import (
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Protection on versus off, SQLite, in the same run (issue #5 "Speed"):
//
//	go test -run '^$' -bench Protect -benchtime 1x -count 5 ./fhirserver
//
// "on" is the default server (field encryption, blind indexes, HMAC,
// search index); "off" is Config.Protector nil (phix fhir --no-protect).
// Each figure is reported for both and as on/off.

var protectModes = []struct {
	name string
	mod  func(*Config)
}{{"off", noProtect}, {"on", func(*Config) {}}}

// BenchmarkProtectImport imports every Synthea bundle as a transaction into
// an empty SQLite store from 4 clients: resources/s with protection off and
// on, and their ratio.
func BenchmarkProtectImport(b *testing.B) {
	bundles := syntheaBundles(b)
	names := make([]string, 0, len(bundles))
	for n := range bundles {
		names = append(names, n)
	}
	sort.Strings(names)
	c := benchClient()
	rate := map[string]float64{}
	for i := 0; i < b.N; i++ {
		for _, m := range protectModes {
			b.StopTimer()
			e := newEnv(b, openSQLite(b), m.mod)
			b.StartTimer()
			var resources atomic.Int64
			var next atomic.Int64
			var wg sync.WaitGroup
			t0 := time.Now()
			for w := 0; w < 4; w++ {
				wg.Go(func() {
					for {
						k := int(next.Add(1)) - 1
						if k >= len(names) {
							return
						}
						resources.Add(int64(postBundle(b, c, e, names[k], bundles[names[k]])))
					}
				})
			}
			wg.Wait()
			rate[m.name] += float64(resources.Load()) / time.Since(t0).Seconds() / float64(b.N)
		}
	}
	b.ReportMetric(rate["on"], "on-resources/s")
	b.ReportMetric(rate["off"], "off-resources/s")
	b.ReportMetric(rate["on"]/rate["off"], "on/off")
}

// protectFixtures builds one read fixture per mode (four Synthea bundles).
func protectFixtures(b *testing.B) (map[string]*env, map[string][]string) {
	envs, paths := map[string]*env{}, map[string][]string{}
	for _, m := range protectModes {
		e, p := readFixture(b, backends["sqlite"], m.mod)
		envs[m.name], paths[m.name] = e, p
	}
	return envs, paths
}

// BenchmarkProtectReadLatency reads resources one at a time from one client,
// alternating protection off and on: p50 and p99 of each and the on/off
// ratios. On includes parse, HMAC verification, decryption and re-encoding.
func BenchmarkProtectReadLatency(b *testing.B) {
	envs, paths := protectFixtures(b)
	c := benchClient()
	n := min(max(b.N, 3000), 50000)
	lat := map[string][]time.Duration{}
	b.ResetTimer()
	for i := 0; i < n; i++ {
		for _, m := range protectModes {
			e, p := envs[m.name], paths[m.name]
			t0 := time.Now()
			getOK(b, c, e.base+p[i%len(p)], e.token)
			lat[m.name] = append(lat[m.name], time.Since(t0))
		}
	}
	b.StopTimer()
	for _, m := range protectModes {
		b.ReportMetric(float64(percentile(lat[m.name], 50).Microseconds())/1000, m.name+"-p50-ms")
		b.ReportMetric(float64(percentile(lat[m.name], 99).Microseconds())/1000, m.name+"-p99-ms")
	}
	b.ReportMetric(float64(percentile(lat["on"], 50))/float64(percentile(lat["off"], 50)), "p50-on/off")
	b.ReportMetric(float64(percentile(lat["on"], 99))/float64(percentile(lat["off"], 99)), "p99-on/off")
}

// BenchmarkProtectReadThroughput reads with 16 concurrent clients, protection
// off then on: reads/s of each and the ratio.
func BenchmarkProtectReadThroughput(b *testing.B) {
	envs, paths := protectFixtures(b)
	c := benchClient()
	const clients = 16
	total := min(max(b.N, 20000), 200000)
	rate := map[string]float64{}
	b.ResetTimer()
	for _, m := range protectModes {
		e, p := envs[m.name], paths[m.name]
		var next atomic.Int64
		var wg sync.WaitGroup
		t0 := time.Now()
		for w := 0; w < clients; w++ {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= total {
						return
					}
					getOK(b, c, e.base+p[i%len(p)], e.token)
				}
			})
		}
		wg.Wait()
		rate[m.name] = float64(total) / time.Since(t0).Seconds()
	}
	b.StopTimer()
	b.ReportMetric(rate["on"], "on-reads/s")
	b.ReportMetric(rate["off"], "off-reads/s")
	b.ReportMetric(rate["on"]/rate["off"], "on/off")
}
