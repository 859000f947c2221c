package transfer

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// metrics is a small Prometheus text-format (0.0.4) registry. It avoids a
// client_golang dependency for the handful of series the coordinator needs;
// label values are codes only (never PHI, never tokens).
type metrics struct {
	bytesIn, bytesOut atomic.Int64
	mu                sync.Mutex
	counters          map[string]map[string]float64 // name -> label set -> value
	help              map[string]string
	latency           histogram
}

var latencyBuckets = []float64{0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600}

type histogram struct {
	counts []uint64
	sum    float64
	n      uint64
}

func newMetrics() *metrics {
	return &metrics{
		counters: map[string]map[string]float64{},
		help: map[string]string{
			"phix_transfer_failures_total":        "Transfers that failed, by code.",
			"phix_transfer_policy_denials_total":  "Policy denials, by reason.",
			"phix_transfer_transfers_total":       "Transfers by final event (created, ready, delivered).",
			"phix_transfer_capability_rejections": "Capabilities refused, by code.",
		},
		latency: histogram{counts: make([]uint64, len(latencyBuckets))},
	}
}

func (m *metrics) inc(name, label, value string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.counters[name]
	if c == nil {
		c = map[string]float64{}
		m.counters[name] = c
	}
	c[label+`="`+value+`"`]++
}

// observeLatency records creation-to-ready time of a transfer.
func (m *metrics) observeLatency(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := d.Seconds()
	for i, b := range latencyBuckets {
		if v <= b {
			m.latency.counts[i]++
		}
	}
	m.latency.sum += v
	m.latency.n++
}

func (m *metrics) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		var b strings.Builder
		fmt.Fprintf(&b, "# HELP phix_transfer_bytes_received_total Ciphertext bytes accepted by uploads.\n# TYPE phix_transfer_bytes_received_total counter\nphix_transfer_bytes_received_total %d\n", m.bytesIn.Load())
		fmt.Fprintf(&b, "# HELP phix_transfer_bytes_sent_total Ciphertext bytes served by downloads.\n# TYPE phix_transfer_bytes_sent_total counter\nphix_transfer_bytes_sent_total %d\n", m.bytesOut.Load())
		m.mu.Lock()
		names := make([]string, 0, len(m.counters))
		for n := range m.counters {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s counter\n", n, m.help[n], n)
			labels := make([]string, 0, len(m.counters[n]))
			for l := range m.counters[n] {
				labels = append(labels, l)
			}
			sort.Strings(labels)
			for _, l := range labels {
				fmt.Fprintf(&b, "%s{%s} %g\n", n, l, m.counters[n][l])
			}
		}
		const h = "phix_transfer_latency_seconds"
		fmt.Fprintf(&b, "# HELP %s Time from transfer creation to ready (all files verified and enqueued).\n# TYPE %s histogram\n", h, h)
		for i, le := range latencyBuckets {
			fmt.Fprintf(&b, "%s_bucket{le=\"%g\"} %d\n", h, le, m.latency.counts[i])
		}
		fmt.Fprintf(&b, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %g\n%s_count %d\n", h, m.latency.n, h, m.latency.sum, h, m.latency.n)
		m.mu.Unlock()
		w.Write([]byte(b.String()))
	})
}
