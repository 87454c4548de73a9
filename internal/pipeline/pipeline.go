// Package pipeline owns the triage stage: it consumes minsheng.intake as a consumer group, runs
// the triage engine, writes every result to minsheng.triaged and each routed result to its
// minsheng.track.<track> topic, and only then commits; it applies editors' decisions from
// minsheng.review; and it keeps the dedup index across restarts (a snapshot in the data directory
// plus a replay of minsheng.triaged after it). It must not classify anything itself, nor speak
// HTTP.
package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/minsheng-project/minsheng/classifier"
	"github.com/minsheng-project/minsheng/internal/bus"
	"github.com/minsheng-project/minsheng/internal/envelope"
	"github.com/minsheng-project/minsheng/internal/metrics"
)

// Triager is what the stage needs of the triage engine. Triage must be safe for concurrent use.
type Triager interface {
	Triage(env *envelope.Envelope) envelope.Result
	Remember(res *envelope.Result)
	SaveIndex(w io.Writer) error
	LoadIndex(r io.Reader) error
	IndexSize() int
	ModelVersion() string
}

var _ Triager = (*classifier.Engine)(nil)

// Consumer group names.
const (
	GroupTriage = "minsheng-triage"
	GroupReview = "minsheng-review"
)

// Options configure a Stage.
type Options struct {
	Brokers []string
	Topics  bus.Topics
	// Dir holds the dedup-index snapshot (<data_dir>/triage).
	Dir string
	// SnapshotInterval: how often to snapshot the index while running; 0 only at shutdown.
	SnapshotInterval time.Duration
	// ResultCache: how many recent results to keep for decisions and redeliveries.
	ResultCache int
	// BatchSize: most records handled per fetch-publish-commit cycle. Default 500.
	BatchSize int
	Logger    *slog.Logger
	Metrics   *metrics.Metrics
}

// Stage is the triage stage. Call Restore, then Run.
type Stage struct {
	eng    Triager
	w      *bus.Writer
	admin  *bus.Admin
	opts   Options
	log    *slog.Logger
	m      *metrics.Metrics
	cache  *resultCache
	ready  atomic.Bool
	snapMu sync.Mutex
}

// New returns a stage that triages with eng and publishes through w.
func New(eng Triager, w *bus.Writer, opts Options) *Stage {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New()
	}
	return &Stage{eng: eng, w: w, admin: bus.NewAdmin(opts.Brokers), opts: opts,
		log: opts.Logger.With("stage", "triage"), m: opts.Metrics, cache: newResultCache(opts.ResultCache)}
}

// Ready reports whether the index is restored and the stage is consuming.
func (s *Stage) Ready() bool { return s.ready.Load() }

// Run consumes minsheng.intake and minsheng.review until ctx ends. On the way out it finishes the
// batch in hand (publish, then commit), snapshots the index and leaves the groups. Delivery is
// at-least-once: a crash between publish and commit redelivers the batch, and the stage answers a
// redelivered id from its result cache instead of triaging it again.
func (s *Stage) Run(ctx context.Context) error {
	intake := bus.NewGroupReader(s.opts.Brokers, GroupTriage, s.opts.Topics.Intake)
	review := bus.NewGroupReader(s.opts.Brokers, GroupReview, s.opts.Topics.Review)
	s.ready.Store(true)
	defer s.ready.Store(false)

	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(3)
	go func() {
		defer wg.Done()
		errs <- s.consume(ctx, intake, "intake", s.handleIntake)
	}()
	go func() {
		defer wg.Done()
		errs <- s.consume(ctx, review, "review", s.handleReview)
	}()
	go func() {
		defer wg.Done()
		s.reportLag(ctx)
	}()
	wg.Wait()
	close(errs)
	err := errors.Join(<-errs, <-errs)
	intake.Close()
	review.Close()
	if serr := s.Snapshot(context.WithoutCancel(ctx)); serr != nil {
		s.log.Error("snapshot at shutdown failed; the next start replays minsheng.triaged further back", "err", serr)
	}
	return err
}

// handler turns a batch into the records to publish, and returns a function to call once they
// are published.
type handler func(batch []kafka.Message) (recs []bus.Record, done func())

// consume runs the fetch → handle → publish → commit loop of one group until ctx ends.
func (s *Stage) consume(ctx context.Context, r *bus.GroupReader, name string, h handler) error {
	lastSnap := time.Now()
	for {
		batch, err := r.FetchBatch(ctx, s.opts.BatchSize, 5*time.Millisecond)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.m.Error("kafka_fetch")
			s.log.Warn("fetching", "topic", name, "err", err)
			if !sleep(ctx, time.Second) {
				return nil
			}
			continue
		}
		recs, done := h(batch)
		// Nothing else can happen until Kafka has the results: keep trying while running.
		if !s.retry(ctx, "publishing "+name+" results", "kafka_write", 0, func(c context.Context) error { return s.w.Publish(c, recs...) }) {
			return fmt.Errorf("giving up on %d %s records at shutdown; they will be redelivered", len(batch), name)
		}
		done()
		// A commit can fail for good (the partitions moved to another member in a rebalance):
		// then the records are redelivered, and answered from the result cache.
		if !s.retry(ctx, "committing "+name, "kafka_commit", 8, func(c context.Context) error { return r.Commit(c, batch...) }) {
			s.log.Warn("offsets not committed; the records will be redelivered", "topic", name, "records", len(batch))
			if ctx.Err() != nil {
				return nil
			}
		}
		if name == "intake" && s.opts.SnapshotInterval > 0 && time.Since(lastSnap) >= s.opts.SnapshotInterval {
			if err := s.Snapshot(ctx); err != nil {
				s.m.Error("snapshot")
				s.log.Warn("snapshot failed", "err", err)
			}
			lastSnap = time.Now()
		}
	}
}

// retry calls fn until it succeeds, at most attempts times (0: no limit). While ctx is live it
// keeps trying with back-off; once ctx has ended (shutdown) it makes a last attempt. It reports
// whether fn succeeded.
func (s *Stage) retry(ctx context.Context, what, kind string, attempts int, fn func(context.Context) error) bool {
	backoff := 100 * time.Millisecond
	for n := 1; ; n++ {
		c, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		err := fn(c)
		cancel()
		if err == nil {
			return true
		}
		s.m.Error(kind)
		s.log.Warn(what+" failed", "attempt", n, "err", err)
		if attempts > 0 && n >= attempts {
			return false
		}
		if ctx.Err() != nil {
			c, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			return fn(c) == nil
		}
		sleep(ctx, backoff)
		backoff = min(2*backoff, 5*time.Second)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// deadLetter is the DLQ record of m: its key and value, with headers saying where and why.
func (s *Stage) deadLetter(m kafka.Message, stage, reason string) bus.Record {
	s.m.Message("unknown", metrics.StageDLQ, 1)
	s.m.Error("malformed_" + stage)
	s.log.Warn("dead letter", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "reason", reason)
	return bus.Record{Topic: s.opts.Topics.DLQ, Key: string(m.Key), Value: m.Value, Type: envelope.TypeDeadLetter, Source: "triage",
		Headers: []kafka.Header{
			{Key: bus.HeaderDLQStage, Value: []byte(stage)},
			{Key: bus.HeaderDLQTopic, Value: []byte(m.Topic)},
			{Key: bus.HeaderDLQPartition, Value: []byte(strconv.Itoa(m.Partition))},
			{Key: bus.HeaderDLQOffset, Value: []byte(strconv.FormatInt(m.Offset, 10))},
			{Key: bus.HeaderDLQReason, Value: []byte(reason)},
		}}
}

// resultRecords are the records of one result: minsheng.triaged always, its track topic when
// routed.
func (s *Stage) resultRecords(res *envelope.Result, val []byte) []bus.Record {
	recs := []bus.Record{{Topic: s.opts.Topics.Triaged, Key: res.ID, Value: val, Type: envelope.TypeTriage, Source: "triage"}}
	if res.Routed() {
		recs = append(recs, bus.Record{Topic: s.opts.Topics.Track(res.Track), Key: res.CaseID, Value: val, Type: envelope.TypeTriage, Source: "triage"})
	}
	return recs
}

// outcome is what handling one intake record produced.
type outcome struct {
	recs    []bus.Record
	id      string
	val     []byte // result JSON to cache
	channel string
	res     *envelope.Result
}

// handleIntake triages a batch: records of different partitions in parallel, those of one
// partition in offset order (so a resend is judged against what came before it).
func (s *Stage) handleIntake(batch []kafka.Message) ([]bus.Record, func()) {
	outs := make([]outcome, len(batch))
	byPart := map[int][]int{}
	for i, m := range batch {
		byPart[m.Partition] = append(byPart[m.Partition], i)
	}
	var wg sync.WaitGroup
	for _, idx := range byPart {
		wg.Add(1)
		go func(idx []int) {
			defer wg.Done()
			for _, i := range idx {
				outs[i] = s.triageOne(batch[i])
			}
		}(idx)
	}
	wg.Wait()
	var recs []bus.Record
	for _, o := range outs {
		recs = append(recs, o.recs...)
	}
	return recs, func() {
		for _, o := range outs {
			if o.res == nil {
				continue
			}
			s.cache.put(o.id, o.val)
			s.m.Message(o.channel, metrics.StageTriaged, 1)
			switch {
			case o.res.Routed():
				s.m.Message(o.channel, metrics.StageRouted, 1)
			case o.res.DuplicateOf != "":
				s.m.Message(o.channel, metrics.StageDuplicate, 1)
			default:
				s.m.Message(o.channel, metrics.StageInvalid, 1)
			}
		}
		s.m.DedupIndexSize.Set(float64(s.eng.IndexSize()))
	}
}

func (s *Stage) triageOne(m kafka.Message) outcome {
	var env envelope.Envelope
	if err := json.Unmarshal(m.Value, &env); err != nil {
		return outcome{recs: []bus.Record{s.deadLetter(m, "triage", "intake value is not an envelope: "+err.Error())}}
	}
	if env.ID == "" {
		return outcome{recs: []bus.Record{s.deadLetter(m, "triage", "envelope has no id")}}
	}
	// A redelivered message (a crash came between publish and commit, or a client retried with
	// the same source_id): republish what it got the first time.
	if prev := s.cache.get(env.ID); prev != nil {
		var res envelope.Result
		if err := json.Unmarshal(prev, &res); err == nil {
			return outcome{recs: s.resultRecords(&res, prev)}
		}
	}
	start := time.Now()
	res := s.eng.Triage(&env)
	s.m.ObserveTriage(time.Since(start))
	if res.Error != "" {
		s.m.Error("triage_input")
	}
	val, err := json.Marshal(&res)
	if err != nil {
		return outcome{recs: []bus.Record{s.deadLetter(m, "triage", "encoding result: "+err.Error())}}
	}
	return outcome{recs: s.resultRecords(&res, val), id: res.ID, val: val, channel: env.Channel, res: &res}
}

// reportLag updates minsheng_consumer_lag every few seconds.
func (s *Stage) reportLag(ctx context.Context) {
	for {
		for group, topic := range map[string]string{GroupTriage: s.opts.Topics.Intake, GroupReview: s.opts.Topics.Review} {
			c, cancel := context.WithTimeout(ctx, 5*time.Second)
			lag, err := s.admin.GroupLag(c, group, topic)
			cancel()
			if err != nil {
				continue
			}
			for p, l := range lag {
				s.m.ConsumerLag.WithLabelValues(group, topic, strconv.Itoa(p)).Set(float64(l))
			}
		}
		if !sleep(ctx, 5*time.Second) {
			return
		}
	}
}
