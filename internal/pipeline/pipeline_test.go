package pipeline_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/minsheng-project/minsheng/classifier"
	"github.com/minsheng-project/minsheng/internal/bus"
	"github.com/minsheng-project/minsheng/internal/envelope"
	"github.com/minsheng-project/minsheng/internal/pipeline"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type env struct {
	t       *testing.T
	brokers []string
	topics  bus.Topics
	w       *bus.Writer
	dir     string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	b, err := bus.StartEmbedded("127.0.0.1:0", t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	e := &env{t: t, brokers: []string{b.Addr()}, topics: bus.NewTopics(""), dir: t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := bus.NewAdmin(e.brokers).EnsureTopics(ctx, e.topics.Specs(envelope.Tracks, 3)); err != nil {
		t.Fatal(err)
	}
	e.w = bus.NewWriter(e.brokers)
	t.Cleanup(func() { e.w.Close() })
	return e
}

// stage is a running triage stage.
type stage struct {
	*pipeline.Stage
	cancel  context.CancelFunc
	done    chan error
	restore pipeline.RestoreStats
}

func (e *env) start(snapshotEvery time.Duration) *stage {
	e.t.Helper()
	eng, err := classifier.New(classifier.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	s := pipeline.New(eng, e.w, pipeline.Options{Brokers: e.brokers, Topics: e.topics, Dir: e.dir,
		SnapshotInterval: snapshotEvery, ResultCache: 1000, Logger: quiet})
	ctx, cancel := context.WithCancel(context.Background())
	st, err := s.Restore(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return &stage{Stage: s, cancel: cancel, done: done, restore: st}
}

func (s *stage) stop(t *testing.T) {
	s.cancel()
	if err := <-s.done; err != nil {
		t.Fatal(err)
	}
}

func (e *env) publish(topic string, recs ...any) {
	e.t.Helper()
	var out []bus.Record
	for _, r := range recs {
		var key string
		var val []byte
		switch v := r.(type) {
		case *envelope.Envelope:
			key = v.ID
			val, _ = json.Marshal(v)
		case *envelope.Decision:
			key = v.ID
			val, _ = json.Marshal(v)
		case string:
			key, val = "junk", []byte(v)
		}
		out = append(out, bus.Record{Topic: topic, Key: key, Value: val, Type: "test", Source: "test"})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.w.Publish(ctx, out...); err != nil {
		e.t.Fatal(err)
	}
}

// read returns every record of topic.
func (e *env) read(topic string) []kafka.Message {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	var out []kafka.Message
	if _, err := bus.Replay(ctx, e.brokers, topic, nil, func(m kafka.Message) error {
		mu.Lock()
		out = append(out, m)
		mu.Unlock()
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// waitResults waits until minsheng.triaged holds n records and returns the latest result per id.
func (e *env) waitResults(n int) map[string]envelope.Result {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		msgs := e.read(e.topics.Triaged)
		if len(msgs) >= n {
			out := map[string]envelope.Result{}
			for _, m := range msgs {
				var r envelope.Result
				if err := json.Unmarshal(m.Value, &r); err != nil {
					e.t.Fatal(err)
				}
				if prev, ok := out[r.ID]; !ok || r.Revision >= prev.Revision {
					out[r.ID] = r
				}
			}
			return out
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("minsheng.triaged holds %d records, want %d", len(msgs), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func msg(id, body string) *envelope.Envelope {
	return &envelope.Envelope{ID: id, Channel: "api", Source: "test", Body: body, ReceivedAt: time.Now().UTC()}
}

// Messages whose triage the model is sure of (from testdata/corpus/synthetic-tracks.jsonl).
const (
	water      = "楼上水管爆了水往我家灌，物业电话打不通，家里只有我和孩子，求助！C区枫林苑3栋" // service
	fee        = "举报C区新河街道城管中队长向摊贩收保护费，每户每月200，不给就扣三轮车。"   // discipline
	light      = "A3区实验小学门口红绿灯坏了一个月，报了四次说已转交警，至今没修，请媒体关注。" // opinion
	notRequest = "测试"
)

func TestTriageRoutesAndDeadLetters(t *testing.T) {
	e := newEnv(t)
	s := e.start(0)
	e.publish(e.topics.Intake, msg("m1", water), msg("m2", fee), msg("m3", notRequest), `{"not": "an envelope"`, `{"body": "no id"}`)
	first := e.waitResults(3)
	e.publish(e.topics.Intake, msg("m4", water)) // an exact resend under a new id
	results := e.waitResults(4)
	s.stop(t)
	_ = first

	tests := []struct {
		id, track, duplicateOf string
		valid, routed          bool
	}{
		{"m1", "service", "", true, true},
		{"m2", "discipline", "", true, true},
		{"m3", "", "", false, false},
		{"m4", "service", "m1", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			r, ok := results[tt.id]
			if !ok {
				t.Fatalf("no result for %s", tt.id)
			}
			if r.Valid != tt.valid || r.DuplicateOf != tt.duplicateOf || r.Routed() != tt.routed || (tt.track != "" && r.Track != tt.track) {
				t.Errorf("result %+v", r)
			}
			if r.Envelope == nil || r.Envelope.ID != tt.id {
				t.Errorf("result carries envelope %+v", r.Envelope)
			}
		})
	}
	if results["m4"].CaseID != "m1" {
		t.Errorf("duplicate's case is %q, want m1", results["m4"].CaseID)
	}
	// Track topics hold exactly the routed results, keyed by case id, with CloudEvents headers.
	service := e.read(e.topics.Track("service"))
	if len(service) != 1 || string(service[0].Key) != "m1" {
		t.Errorf("minsheng.track.service holds %d records: %v", len(service), service)
	}
	if d := e.read(e.topics.Track("discipline")); len(d) != 1 || string(d[0].Key) != "m2" {
		t.Errorf("minsheng.track.discipline holds %v", d)
	}
	for _, m := range append(service, e.read(e.topics.Triaged)...) {
		if bus.Header(m, "ce_type") != envelope.TypeTriage || bus.Header(m, "ce_source") != "minsheng/triage" || bus.Header(m, "ce_specversion") != "1.0" {
			t.Errorf("headers of %s/%s: %v", m.Topic, m.Key, m.Headers)
		}
	}
	// The two malformed records are dead letters saying where they came from and why.
	dlq := e.read(e.topics.DLQ)
	if len(dlq) != 2 {
		t.Fatalf("minsheng.dlq holds %d records, want 2", len(dlq))
	}
	for _, m := range dlq {
		if bus.Header(m, "dlq_topic") != e.topics.Intake || bus.Header(m, "dlq_reason") == "" || bus.Header(m, "dlq_offset") == "" || bus.Header(m, "dlq_stage") != "triage" {
			t.Errorf("dead letter headers %v", m.Headers)
		}
	}
	// Everything was committed.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lag, err := bus.NewAdmin(e.brokers).GroupLag(ctx, pipeline.GroupTriage, e.topics.Intake)
	if err != nil {
		t.Fatal(err)
	}
	for p, l := range lag {
		if l != 0 {
			t.Errorf("partition %d: %d records not committed", p, l)
		}
	}
}

func TestRestartKeepsDedupIndex(t *testing.T) {
	tests := []struct {
		name         string
		snapshot     bool // keep the snapshot written at shutdown
		wantSnapshot bool
	}{
		{"snapshot then replay", true, true},
		{"rebuild from triaged", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			s := e.start(0)
			e.publish(e.topics.Intake, msg("a1", water), msg("a2", light))
			e.waitResults(2)
			s.stop(t) // snapshots the index: a1, a2
			// While triage is down, more messages are triaged by... nobody; but results written
			// after the snapshot (by another process) must be replayed: simulate one.
			late := envelope.Result{ID: "a3", CaseID: "a3", Valid: true, Type: "complaint", Track: "service", Area: "城乡建设",
				Envelope: msg("a3", fee), TriagedAt: time.Now().UTC()}
			val, _ := json.Marshal(late)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := e.w.Publish(ctx, bus.Record{Topic: e.topics.Triaged, Key: "a3", Value: val, Type: envelope.TypeTriage, Source: "triage"}); err != nil {
				t.Fatal(err)
			}
			if !tt.snapshot {
				removeSnapshot(t, e.dir)
			}
			s = e.start(0)
			if s.restore.FromSnapshot != tt.wantSnapshot {
				t.Errorf("restore %+v", s.restore)
			}
			if tt.snapshot && (s.restore.Snapshotted != 2 || s.restore.Remembered != 1) {
				t.Errorf("want 2 from the snapshot and 1 replayed: %+v", s.restore)
			}
			if !tt.snapshot && s.restore.Remembered != 3 {
				t.Errorf("want 3 replayed: %+v", s.restore)
			}
			// Resends of a message before the snapshot and of one after it are duplicates.
			e.publish(e.topics.Intake, msg("b1", water), msg("b3", fee))
			results := e.waitResults(5)
			s.stop(t)
			if results["b1"].DuplicateOf != "a1" || results["b3"].DuplicateOf != "a3" {
				t.Errorf("after restart: b1 duplicate of %q, b3 of %q", results["b1"].DuplicateOf, results["b3"].DuplicateOf)
			}
		})
	}
}

func TestRedeliveryRepublishesFirstResult(t *testing.T) {
	e := newEnv(t)
	s := e.start(0)
	e.publish(e.topics.Intake, msg("r1", light))
	e.waitResults(1)
	e.publish(e.topics.Intake, msg("r1", light)) // same id again: a redelivery, not a duplicate
	e.waitResults(2)
	s.stop(t)
	msgs := e.read(e.topics.Triaged)
	var a, b envelope.Result
	json.Unmarshal(msgs[0].Value, &a)
	json.Unmarshal(msgs[1].Value, &b)
	if b.DuplicateOf != "" || b.CaseID != a.CaseID || b.TriagedAt != a.TriagedAt {
		t.Errorf("redelivery got a new result: %+v vs %+v", b, a)
	}
}

func TestReviewDecisions(t *testing.T) {
	e := newEnv(t)
	s := e.start(0)
	e.publish(e.topics.Intake, msg("v1", water), msg("v2", fee))
	e.waitResults(2)
	no := false
	e.publish(e.topics.Review,
		&envelope.Decision{ID: "v1", Editor: "王编辑", Track: "opinion", Note: "媒体跟进", DecidedAt: time.Now()},
		&envelope.Decision{ID: "v2", Editor: "李编辑", Valid: &no},
		&envelope.Decision{ID: "nope", Editor: "李编辑", Track: "petition"},
		&envelope.Decision{ID: "v1", Editor: "王编辑", Track: "teleport"},
	)
	results := e.waitResults(4)
	deadline := time.Now().Add(30 * time.Second)
	for len(e.read(e.topics.DLQ)) < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	s.stop(t)
	v1 := results["v1"]
	if v1.Track != "opinion" || v1.Revision != 1 || v1.ReviewedBy != "王编辑" || !v1.Routed() {
		t.Errorf("v1 after review: %+v", v1)
	}
	if op := e.read(e.topics.Track("opinion")); len(op) != 1 || string(op[0].Key) != v1.CaseID {
		t.Errorf("minsheng.track.opinion holds %v", op)
	}
	if v2 := results["v2"]; v2.Valid || v2.Revision != 1 || v2.Routed() {
		t.Errorf("v2 after review: %+v", v2)
	}
	if n := len(e.read(e.topics.Track("service"))); n != 1 {
		t.Errorf("minsheng.track.service holds %d records, want v1's machine result only", n)
	}
	if n := len(e.read(e.topics.Track("discipline"))); n != 1 {
		t.Errorf("minsheng.track.discipline holds %d records, want v2's machine result only", n)
	}
	dlq := e.read(e.topics.DLQ)
	if len(dlq) != 2 {
		t.Fatalf("dlq holds %d, want 2 (unknown id, unknown track)", len(dlq))
	}
	for _, m := range dlq {
		if bus.Header(m, "dlq_stage") != "review" || bus.Header(m, "dlq_topic") != e.topics.Review {
			t.Errorf("dead letter headers %v", m.Headers)
		}
	}
}

func TestApply(t *testing.T) {
	yes, no := true, false
	base := func() envelope.Result {
		return envelope.Result{ID: "x", CaseID: "c", Valid: true, Type: "complaint", Track: "service", Area: "城乡建设", DuplicateOf: "c", Similarity: 0.9, NeedsReview: true}
	}
	tests := []struct {
		name    string
		d       envelope.Decision
		wantErr bool
		check   func(envelope.Result) bool
	}{
		{"confirm", envelope.Decision{Editor: "e"}, false, func(r envelope.Result) bool { return r.Revision == 1 && !r.NeedsReview && r.Track == "service" }},
		{"retrack", envelope.Decision{Editor: "e", Track: "petition"}, false, func(r envelope.Result) bool { return r.Track == "petition" && r.Confidence.Track == 1 }},
		{"invalidate", envelope.Decision{Editor: "e", Valid: &no}, false, func(r envelope.Result) bool { return !r.Valid }},
		{"validate", envelope.Decision{Editor: "e", Valid: &yes, Type: "help"}, false, func(r envelope.Result) bool { return r.Valid && r.Type == "help" }},
		{"not duplicate", envelope.Decision{Editor: "e", NotDuplicate: true}, false, func(r envelope.Result) bool { return r.DuplicateOf == "" && r.CaseID == "x" && r.Routed() }},
		{"bad type", envelope.Decision{Editor: "e", Type: "praise"}, true, nil},
		{"bad track", envelope.Decision{Editor: "e", Track: "media"}, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base()
			err := pipeline.Apply(&r, &tt.d)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v", err)
			}
			if err == nil && (!tt.check(r) || r.ReviewedBy != "e") {
				t.Errorf("result %+v", r)
			}
		})
	}
}

func removeSnapshot(t *testing.T, dir string) {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, pipeline.SnapshotFile)); err != nil {
		t.Fatal(err)
	}
}
