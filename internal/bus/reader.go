package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// GroupReader consumes topics as a member of a Kafka consumer group. Offsets are committed only by
// Commit, synchronously, so a record is marked done only after the caller finished with it: a crash
// between Fetch and Commit redelivers the record (at-least-once). Not safe for concurrent Fetch.
type GroupReader struct {
	r *kafka.Reader
}

// NewGroupReader joins group on the cluster at brokers and reads topic. A group with no committed
// offset starts at the earliest record.
func NewGroupReader(brokers []string, group, topic string) *GroupReader {
	return &GroupReader{r: kafka.NewReader(kafka.ReaderConfig{
		Brokers:           brokers,
		GroupID:           group,
		Topic:             topic,
		MinBytes:          1,
		MaxBytes:          16 << 20,
		MaxWait:           250 * time.Millisecond,
		CommitInterval:    0, // synchronous commits, only of what the caller hands to Commit
		StartOffset:       kafka.FirstOffset,
		HeartbeatInterval: time.Second,
		SessionTimeout:    10 * time.Second,
		RebalanceTimeout:  10 * time.Second,
		JoinGroupBackoff:  500 * time.Millisecond,
		ReadBackoffMin:    50 * time.Millisecond,
		ReadBackoffMax:    500 * time.Millisecond,
		QueueCapacity:     1000,
	})}
}

// FetchBatch blocks until one record is available (or ctx ends), then takes up to max-1 more that
// arrive within linger. It returns ctx's error only when it has no record at all.
func (g *GroupReader) FetchBatch(ctx context.Context, max int, linger time.Duration) ([]kafka.Message, error) {
	first, err := g.r.FetchMessage(ctx)
	if err != nil {
		return nil, err
	}
	batch := []kafka.Message{first}
	if max <= 1 {
		return batch, nil
	}
	lctx, cancel := context.WithTimeout(ctx, linger)
	defer cancel()
	for len(batch) < max {
		m, err := g.r.FetchMessage(lctx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				break
			}
			return batch, nil // the next FetchBatch reports a persistent error
		}
		batch = append(batch, m)
	}
	return batch, nil
}

// Commit marks msgs (and everything before them in their partitions) as done for the group.
func (g *GroupReader) Commit(ctx context.Context, msgs ...kafka.Message) error {
	if err := g.r.CommitMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("%w: committing offsets: %v", ErrUnavailable, err)
	}
	return nil
}

// Close leaves the group. Uncommitted records are redelivered to the next member.
func (g *GroupReader) Close() error { return g.r.Close() }
