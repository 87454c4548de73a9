// Package classifier owns minsheng's triage engine: segmentation, screening (初筛), type / track /
// area classification, de-duplication and explanations. It has no Kafka and no HTTP.
package classifier

import (
	"io"
	"time"

	"github.com/minsheng-project/minsheng/internal/envelope"
)

// Options tune an Engine.
type Options struct {
	// ReviewThreshold: a result whose type, track or area confidence is below it needs review. Default 0.6.
	ReviewThreshold float64
	// DedupWindow: how far back a message can be a duplicate of another. Default 30 days.
	DedupWindow time.Duration
	// ModelPath: a model file written by `minsheng train`; empty uses the model built into the binary.
	ModelPath string
}

// Engine triages envelopes. Triage is safe for concurrent use; results of concurrent calls are
// de-duplicated against each other in the order the calls take the index lock.
type Engine struct {
	opts Options
}

// New loads the model and dictionaries and returns a ready Engine.
func New(opts Options) (*Engine, error) {
	// PLACEHOLDER until the real engine lands (issue 2).
	return &Engine{opts: opts}, nil
}

// ModelVersion names the loaded model.
func (e *Engine) ModelVersion() string { return "placeholder" }

// Triage screens, de-duplicates and classifies one envelope and records it in the dedup index.
func (e *Engine) Triage(env *envelope.Envelope) envelope.Result {
	return envelope.Result{ID: env.ID, CaseID: env.ID, Valid: true, Type: "complaint", Track: "service", Area: "城乡建设", Model: "placeholder", TriagedAt: time.Now().UTC(), Envelope: env}
}

// Remember records an already triaged result in the dedup index without classifying it again
// (used to rebuild the index from minsheng.triaged after a restart).
func (e *Engine) Remember(res *envelope.Result) {}

// SaveIndex writes a snapshot of the dedup index.
func (e *Engine) SaveIndex(w io.Writer) error { return nil }

// LoadIndex replaces the dedup index with a snapshot written by SaveIndex.
func (e *Engine) LoadIndex(r io.Reader) error { return nil }

// IndexSize is the number of messages in the dedup index.
func (e *Engine) IndexSize() int { return 0 }
