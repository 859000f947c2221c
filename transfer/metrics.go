package transfer

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics holds the coordinator's Prometheus series on a registry of its
// own (never the global default, so two Servers in one process do not
// collide). Label values are stable codes, reasons and event names only:
// never a patient pseudonym, a transfer id, a token or a file name.
type metrics struct {
	reg           *prometheus.Registry
	latency       *prometheus.HistogramVec // phase: ready (create→complete), receipt (complete→receipt)
	bytesIn       prometheus.Counter
	bytesOut      prometheus.Counter
	failures      *prometheus.CounterVec // code
	denials       *prometheus.CounterVec // reason
	events        *prometheus.CounterVec // event
	capRejections *prometheus.CounterVec // code
	checksumFails prometheus.Counter
	activeUploads prometheus.Gauge
}

// latencyBuckets span a small transfer on loopback (100 ms) to a large one
// waiting a day for its receiver.
var latencyBuckets = []float64{0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600}

func newMetrics(reg *prometheus.Registry) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m := &metrics{
		reg: reg,
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "phix_transfer_latency_seconds",
			Help:    "Transfer latency by phase: ready = creation to complete (all files verified and enqueued); receipt = complete to the receiver's signed receipt.",
			Buckets: latencyBuckets,
		}, []string{"phase"}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "phix_transfer_bytes_received_total", Help: "Ciphertext bytes accepted by tus uploads."}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "phix_transfer_bytes_sent_total", Help: "Ciphertext bytes served by downloads."}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phix_transfer_failures_total", Help: "Failures by stable problem code (transfers failed at finalize, rejected chunks, internal errors)."}, []string{"code"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phix_transfer_policy_denials_total", Help: "Policy denials by reason (one transfer may count under several reasons)."}, []string{"reason"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phix_transfer_transfers_total", Help: "Transfer lifecycle events (created, ready, delivered, withdrawn, expired, erased)."}, []string{"event"}),
		capRejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phix_transfer_capability_rejections_total", Help: "Capabilities refused, by code."}, []string{"code"}),
		checksumFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "phix_transfer_tus_checksum_failures_total", Help: "tus chunks refused with 460 because Upload-Checksum did not match."}),
		activeUploads: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "phix_transfer_active_uploads", Help: "tus PATCH requests streaming into this replica now."}),
	}
	reg.MustRegister(m.latency, m.bytesIn, m.bytesOut, m.failures, m.denials, m.events, m.capRejections, m.checksumFails, m.activeUploads)
	// Pre-create the phases so dashboards see zero rather than nothing.
	m.latency.WithLabelValues("ready")
	m.latency.WithLabelValues("receipt")
	return m
}

func (m *metrics) event(name string)       { m.events.WithLabelValues(name).Inc() }
func (m *metrics) failure(code string)     { m.failures.WithLabelValues(code).Inc() }
func (m *metrics) denial(reason string)    { m.denials.WithLabelValues(reason).Inc() }
func (m *metrics) capRejected(code string) { m.capRejections.WithLabelValues(code).Inc() }
func (m *metrics) observe(phase string, d time.Duration) {
	if d < 0 {
		d = 0 // a skewed clock between replicas
	}
	m.latency.WithLabelValues(phase).Observe(d.Seconds())
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Metrics returns the Server's Prometheus registry (for tests and for
// embedding in another exporter).
func (s *Server) Metrics() *prometheus.Registry { return s.metrics.reg }
