// Package metrics owns minsheng's Prometheus metrics (all prefixed minsheng_) and their registry.
// Stages record into it; it must not import any stage.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Stages a message passes, the values of the stage label of minsheng_messages_total.
const (
	StageIntake    = "intake"    // accepted by a connector and held by Kafka
	StageTriaged   = "triaged"   // triage result written to minsheng.triaged
	StageRouted    = "routed"    // written to its minsheng.track.<track> topic
	StageDuplicate = "duplicate" // held off the track topics as a duplicate
	StageInvalid   = "invalid"   // screened out as not a valid request
	StageReviewed  = "reviewed"  // corrected by an editor's decision and republished
	StageDLQ       = "dlq"       // written to minsheng.dlq
)

// Metrics holds every collector. All methods of the collectors are safe for concurrent use.
type Metrics struct {
	Registry *prometheus.Registry
	// Messages counts messages per channel and stage (minsheng_messages_total).
	Messages *prometheus.CounterVec
	// TriageSeconds is the latency of one engine.Triage call (minsheng_triage_duration_seconds).
	TriageSeconds prometheus.Histogram
	// ConsumerLag is the records a consumer group has not yet committed, per topic and partition
	// (minsheng_consumer_lag).
	ConsumerLag *prometheus.GaugeVec
	// Errors counts errors by kind (minsheng_errors_total).
	Errors *prometheus.CounterVec
	// DedupIndexSize is the number of messages in the dedup index (minsheng_dedup_index_size).
	DedupIndexSize prometheus.Gauge
	// HTTPRequests counts intake HTTP answers by connector and status code (minsheng_http_requests_total).
	HTTPRequests *prometheus.CounterVec
}

// New returns a fresh registry with minsheng's collectors and the Go and process collectors.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "minsheng_messages_total", Help: "Messages per channel and stage.",
		}, []string{"channel", "stage"}),
		TriageSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "minsheng_triage_duration_seconds",
			Help:    "Latency of triaging one message.",
			Buckets: []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3},
		}),
		ConsumerLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "minsheng_consumer_lag", Help: "Records not yet committed by a consumer group.",
		}, []string{"group", "topic", "partition"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "minsheng_errors_total", Help: "Errors by kind.",
		}, []string{"kind"}),
		DedupIndexSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "minsheng_dedup_index_size", Help: "Messages in the dedup index.",
		}),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "minsheng_http_requests_total", Help: "Intake HTTP answers by connector and status code.",
		}, []string{"connector", "code"}),
	}
	m.Registry.MustRegister(m.Messages, m.TriageSeconds, m.ConsumerLag, m.Errors, m.DedupIndexSize, m.HTTPRequests,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveTriage records one triage latency.
func (m *Metrics) ObserveTriage(d time.Duration) { m.TriageSeconds.Observe(d.Seconds()) }

// Error counts one error of kind.
func (m *Metrics) Error(kind string) { m.Errors.WithLabelValues(kind).Inc() }

// Message counts n messages of channel reaching stage.
func (m *Metrics) Message(channel, stage string, n int) {
	m.Messages.WithLabelValues(channel, stage).Add(float64(n))
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}
