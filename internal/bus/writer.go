package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// Writer publishes records to any of minsheng's topics. Publish is synchronous: it returns nil
// only after every in-sync replica of each record's partition has it (acks=all). Records with the
// same key go to the same partition (murmur2, like the Java client), so per-key order holds.
// Writer is safe for concurrent use; concurrent Publish calls share batches.
type Writer struct {
	w *kafka.Writer
}

// NewWriter returns a Writer for the cluster reachable at brokers. It dials lazily.
func NewWriter(brokers []string) *Writer {
	return &Writer{w: &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Balancer:     kafka.Murmur2Balancer{Consistent: true},
		RequiredAcks: kafka.RequireAll,
		Async:        false,
		// Callers wait for their own records, so keep the batch linger short: concurrent
		// callers still share a batch, a lone caller is not held up.
		BatchTimeout:    2 * time.Millisecond,
		BatchSize:       1000,
		MaxAttempts:     3,
		WriteBackoffMin: 50 * time.Millisecond,
		WriteBackoffMax: 500 * time.Millisecond,
		ReadTimeout:     10 * time.Second,
		WriteTimeout:    10 * time.Second,
	}}
}

// Publish writes recs and waits until Kafka acknowledges all of them. On error some records may
// have been stored and others not; callers retry the whole call, and stable ids absorb the
// repeats (at-least-once). Every error wraps ErrUnavailable.
func (w *Writer) Publish(ctx context.Context, recs ...Record) error {
	if len(recs) == 0 {
		return nil
	}
	msgs := make([]kafka.Message, len(recs))
	for i, r := range recs {
		msgs[i] = r.Message()
	}
	return w.PublishMessages(ctx, msgs...)
}

// PublishMessages is Publish for messages already carrying their headers (dead letters, replays).
func (w *Writer) PublishMessages(ctx context.Context, msgs ...kafka.Message) error {
	if err := w.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("%w: writing %d record(s) to %s: %v", ErrUnavailable, len(msgs), msgs[0].Topic, err)
	}
	return nil
}

// Close flushes nothing (writes are synchronous) and releases connections.
func (w *Writer) Close() error { return w.w.Close() }
