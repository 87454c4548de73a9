package bus_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/minsheng-project/minsheng/internal/bus"
)

var tracks = []string{"service", "petition", "discipline", "opinion"}

func startBroker(t *testing.T, dir string) *bus.Embedded {
	t.Helper()
	b, err := bus.StartEmbedded("127.0.0.1:0", dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestTopicsNames(t *testing.T) {
	tests := []struct {
		prefix, track, wantIntake, wantTrack string
	}{
		{"", "service", "minsheng.intake", "minsheng.track.service"},
		{"qd-", "petition", "qd-minsheng.intake", "qd-minsheng.track.petition"},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			tp := bus.NewTopics(tt.prefix)
			if tp.Intake != tt.wantIntake || tp.Track(tt.track) != tt.wantTrack {
				t.Errorf("got %q %q", tp.Intake, tp.Track(tt.track))
			}
			if n := len(tp.All(tracks)); n != 9 {
				t.Errorf("All has %d topics, want 9", n)
			}
		})
	}
}

func TestRecordHeaders(t *testing.T) {
	at := time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC)
	m := bus.Record{Topic: "x", Key: "k", Value: []byte(`{}`), Type: "minsheng.intake.v1", Source: "api", Time: at}.Message()
	want := map[string]string{
		"ce_specversion": "1.0", "ce_source": "minsheng/api", "ce_type": "minsheng.intake.v1",
		"ce_time": "2024-05-01T08:00:00Z", "content-type": "application/json",
	}
	for k, v := range want {
		if got := bus.Header(m, k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if len(bus.Header(m, "ce_id")) != 32 {
		t.Errorf("ce_id %q is not 32 hex characters", bus.Header(m, "ce_id"))
	}
}

// TestEmbeddedRoundTrip writes, consumes as a group, commits, restarts the broker on the same
// directory and checks that records and committed offsets survived.
func TestEmbeddedRoundTrip(t *testing.T) {
	ctx := ctxT(t)
	dir := t.TempDir()
	b := startBroker(t, dir)
	brokers := []string{b.Addr()}
	topics := bus.NewTopics("")
	if err := bus.NewAdmin(brokers).EnsureTopics(ctx, topics.Specs(tracks, 3)); err != nil {
		t.Fatal(err)
	}
	// Idempotent.
	if err := bus.NewAdmin(brokers).EnsureTopics(ctx, topics.Specs(tracks, 3)); err != nil {
		t.Fatal(err)
	}
	w := bus.NewWriter(brokers)
	const n = 50
	var recs []bus.Record
	for i := range n {
		recs = append(recs, bus.Record{Topic: topics.Intake, Key: fmt.Sprintf("k%d", i), Value: fmt.Appendf(nil, `{"i":%d}`, i), Type: "minsheng.intake.v1", Source: "test"})
	}
	if err := w.Publish(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	w.Close()

	r := bus.NewGroupReader(brokers, "g1", topics.Intake)
	seen := map[string]bool{}
	for len(seen) < n {
		batch, err := r.FetchBatch(ctx, 100, 20*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range batch {
			if bus.Header(m, "ce_source") != "minsheng/test" {
				t.Fatalf("headers lost: %v", m.Headers)
			}
			seen[string(m.Key)] = true
		}
		if err := r.Commit(ctx, batch...); err != nil {
			t.Fatal(err)
		}
	}
	r.Close()
	b.Close()

	b = startBroker(t, dir)
	defer b.Close()
	brokers = []string{b.Addr()}
	var mu sync.Mutex
	count := 0
	end, err := bus.Replay(ctx, brokers, topics.Intake, nil, func(kafka.Message) error {
		mu.Lock()
		count++
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if count != n {
		t.Fatalf("after restart replay saw %d records, want %d", count, n)
	}
	total := int64(0)
	for _, e := range end {
		total += e
	}
	if total != n {
		t.Errorf("end offsets sum to %d, want %d", total, n)
	}
	lag, err := bus.NewAdmin(brokers).GroupLag(ctx, "g1", topics.Intake)
	if err != nil {
		t.Fatal(err)
	}
	for p, l := range lag {
		if l != 0 {
			t.Errorf("partition %d: lag %d after commit and restart, want 0", p, l)
		}
	}
	// Replay from the end reads nothing.
	count = 0
	if _, err := bus.Replay(ctx, brokers, topics.Intake, end, func(kafka.Message) error { count++; return nil }); err != nil || count != 0 {
		t.Errorf("replay from end: %d records, err %v", count, err)
	}
}

func TestPublishUnavailable(t *testing.T) {
	b := startBroker(t, t.TempDir())
	addr := b.Addr()
	b.Close()
	w := bus.NewWriter([]string{addr})
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := w.Publish(ctx, bus.Record{Topic: "minsheng.intake", Key: "k", Value: []byte("{}"), Type: "t", Source: "s"})
	if !errors.Is(err, bus.ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
	if err := bus.NewAdmin([]string{addr}).Ping(ctx); !errors.Is(err, bus.ErrUnavailable) {
		t.Fatalf("ping: got %v, want ErrUnavailable", err)
	}
}
