package bus

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// Replay reads every record of topic from the offsets in from (per partition; a partition that is
// missing starts at its first offset) up to the end offsets the topic has when Replay starts, and
// calls fn for each. fn is called from one goroutine per partition, concurrently across partitions
// and in offset order within one. Replay returns the end offsets it read up to (exclusive), the
// first error of fn or of reading, or ctx's error.
func Replay(ctx context.Context, brokers []string, topic string, from map[int]int64, fn func(kafka.Message) error) (map[int]int64, error) {
	admin := NewAdmin(brokers)
	defer admin.Close()
	first, end, err := admin.Offsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	for p, stop := range end {
		start, ok := from[p]
		if !ok || start < first[p] {
			start = first[p]
		}
		if start >= stop {
			continue
		}
		wg.Add(1)
		go func(p int, start, stop int64) {
			defer wg.Done()
			r := kafka.NewReader(kafka.ReaderConfig{
				Brokers:   brokers,
				Topic:     topic,
				Partition: p,
				MinBytes:  1,
				MaxBytes:  16 << 20,
				MaxWait:   100 * time.Millisecond,
				// Prefetch generously: replay is a bulk read.
				QueueCapacity: 10000,
			})
			defer r.Close()
			if err := r.SetOffset(start); err != nil {
				fail(fmt.Errorf("replaying %s/%d: %w", topic, p, err))
				return
			}
			for {
				m, err := r.FetchMessage(ctx)
				if err != nil {
					fail(fmt.Errorf("%w: replaying %s/%d at offset %d: %v", ErrUnavailable, topic, p, start, err))
					return
				}
				if m.Offset >= stop {
					return
				}
				if err := fn(m); err != nil {
					fail(err)
					return
				}
				if m.Offset+1 >= stop {
					return
				}
			}
		}(p, start, stop)
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return end, nil
}
