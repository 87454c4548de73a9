package pipeline

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/minsheng-project/minsheng/internal/bus"
	"github.com/minsheng-project/minsheng/internal/envelope"
)

// SnapshotFile is the name of the dedup-index snapshot in the stage's directory.
const SnapshotFile = "dedup.snapshot"

// snapshotHeader is the first line of a snapshot: what the index that follows covers.
type snapshotHeader struct {
	Version int    `json:"version"`
	Model   string `json:"model"`
	Topic   string `json:"topic"`
	// Offsets are, per partition of Topic, the end offset when the snapshot was taken: every
	// result before it is in the index (or was not meant to be), none after it.
	Offsets   map[string]int64 `json:"offsets"`
	IndexSize int              `json:"index_size"`
	SavedAt   time.Time        `json:"saved_at"`
}

// Snapshot writes the dedup index to <Dir>/dedup.snapshot, atomically (write, fsync, rename),
// with the minsheng.triaged offsets it covers. Call it only while no Triage runs (Run calls it
// between batches and at shutdown).
func (s *Stage) Snapshot(ctx context.Context) error {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	_, end, err := s.admin.Offsets(ctx, s.opts.Topics.Triaged)
	if err != nil {
		return fmt.Errorf("snapshotting dedup index: %w", err)
	}
	return writeSnapshot(s.opts.Dir, s.eng, s.opts.Topics.Triaged, end)
}

func writeSnapshot(dir string, eng Triager, topic string, end map[int]int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("snapshotting dedup index: %w", err)
	}
	h := snapshotHeader{Version: 1, Model: eng.ModelVersion(), Topic: topic, Offsets: map[string]int64{},
		IndexSize: eng.IndexSize(), SavedAt: time.Now().UTC()}
	for p, o := range end {
		h.Offsets[strconv.Itoa(p)] = o
	}
	path := filepath.Join(dir, SnapshotFile)
	tmp, err := os.CreateTemp(dir, SnapshotFile+".*")
	if err != nil {
		return fmt.Errorf("snapshotting dedup index: %w", err)
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriterSize(tmp, 1<<20)
	line, _ := json.Marshal(h)
	bw.Write(append(line, '\n'))
	if err := eng.SaveIndex(bw); err != nil {
		tmp.Close()
		return fmt.Errorf("snapshotting dedup index: %w", err)
	}
	if err := errors.Join(bw.Flush(), tmp.Sync(), tmp.Close()); err != nil {
		return fmt.Errorf("snapshotting dedup index: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("snapshotting dedup index: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// loadSnapshot loads the snapshot in dir into eng and returns the offsets it covers. ok is false,
// with the reason, when there is no usable snapshot: none, an unreadable header, another model or
// topic, or offsets ahead of the topic's end (a new broker, a deleted topic: the snapshot then
// describes records that no longer exist). In those cases eng is untouched. err is set only when
// the index data itself is corrupt, after which eng's index is not trustworthy.
func loadSnapshot(dir string, eng Triager, topic string, end map[int]int64) (offsets map[int]int64, h snapshotHeader, ok bool, reason string, err error) {
	path := filepath.Join(dir, SnapshotFile)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, h, false, "no snapshot", nil
	}
	if err != nil {
		return nil, h, false, err.Error(), nil
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	line, err := br.ReadBytes('\n')
	if err != nil || json.Unmarshal(line, &h) != nil || h.Version != 1 {
		return nil, h, false, "unreadable snapshot header", nil
	}
	if h.Model != eng.ModelVersion() || h.Topic != topic {
		return nil, h, false, fmt.Sprintf("snapshot is of model %q and topic %s, not %q and %s", h.Model, h.Topic, eng.ModelVersion(), topic), nil
	}
	offsets = map[int]int64{}
	for p, o := range h.Offsets {
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, h, false, fmt.Sprintf("bad partition %q in snapshot header", p), nil
		}
		if e, has := end[n]; !has || o > e {
			return nil, h, false, fmt.Sprintf("snapshot covers %s/%d up to offset %d but the topic ends at %d", topic, n, o, e), nil
		}
		offsets[n] = o
	}
	if err := eng.LoadIndex(br); err != nil {
		return nil, h, false, "", fmt.Errorf("dedup snapshot %s is corrupt (%v): move it aside and restart to rebuild the index from %s", path, err, topic)
	}
	return offsets, h, true, "", nil
}

// RestoreStats tells what Restore did.
type RestoreStats struct {
	FromSnapshot bool          // a snapshot was loaded
	Snapshotted  int           // messages in the index after loading the snapshot
	Replayed     int           // results of minsheng.triaged read after the snapshot
	Remembered   int           // of those, recorded in the index
	Cached       int           // results kept for decisions and redeliveries
	Load, Replay time.Duration // time spent on each part
}

// Restore rebuilds the dedup index and the result cache: it loads the snapshot (if any, for this
// model and topic), then replays minsheng.triaged from the offsets the snapshot covers (from the
// start without one), recording each machine result in the index; it also reads the last
// ResultCache results into the cache. Run it before Run.
func (s *Stage) Restore(ctx context.Context) (RestoreStats, error) {
	var st RestoreStats
	t0 := time.Now()
	first, end, err := s.admin.Offsets(ctx, s.opts.Topics.Triaged)
	if err != nil {
		return st, err
	}
	covered, h, ok, reason, err := loadSnapshot(s.opts.Dir, s.eng, s.opts.Topics.Triaged, end)
	if err != nil {
		return st, err
	}
	if !ok {
		s.log.Info("rebuilding dedup index from minsheng.triaged", "why", reason)
		covered = map[int]int64{}
	}
	st.FromSnapshot = ok
	st.Snapshotted = s.eng.IndexSize()
	st.Load = time.Since(t0)
	if !ok {
		covered = first
	} else {
		s.log.Info("dedup snapshot loaded", "messages", h.IndexSize, "saved_at", h.SavedAt, "took", st.Load.Round(time.Millisecond).String())
	}

	// Read from the earlier of what the index needs and what the cache wants.
	tail := map[int]int64{}
	nparts := max(len(end), 1)
	for p, e := range end {
		tail[p] = max(first[p], e-int64(s.opts.ResultCache/nparts+1))
	}
	from := map[int]int64{}
	for p := range end {
		from[p] = min(covered[p], tail[p])
		if _, has := covered[p]; !has {
			from[p] = first[p]
			covered[p] = first[p]
		}
	}
	t1 := time.Now()
	var (
		mu         sync.Mutex
		replayed   int
		remembered int
		seen       = map[string]bool{}
	)
	_, err = bus.Replay(ctx, s.opts.Brokers, s.opts.Topics.Triaged, from, func(m kafka.Message) error {
		inIndex := m.Offset >= covered[m.Partition]
		inTail := m.Offset >= tail[m.Partition]
		if !inIndex && !inTail {
			return nil
		}
		var res envelope.Result
		if err := json.Unmarshal(m.Value, &res); err != nil {
			return nil // not ours to judge here; triage never wrote it
		}
		if inTail {
			s.cache.put(res.ID, m.Value)
		}
		if !inIndex || res.Revision > 0 || res.Error != "" {
			return nil
		}
		mu.Lock()
		replayed++
		dup := seen[res.ID]
		seen[res.ID] = true
		mu.Unlock()
		if dup {
			return nil
		}
		s.eng.Remember(&res)
		mu.Lock()
		remembered++
		mu.Unlock()
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("replaying minsheng.triaged: %w", err)
	}
	st.Replayed, st.Remembered, st.Cached = replayed, remembered, s.cache.len()
	st.Replay = time.Since(t1)
	s.m.DedupIndexSize.Set(float64(s.eng.IndexSize()))
	s.log.Info("dedup index restored", "from_snapshot", st.FromSnapshot, "snapshot_messages", st.Snapshotted,
		"replayed", st.Replayed, "index_size", s.eng.IndexSize(), "cached_results", st.Cached,
		"load", st.Load.Round(time.Millisecond).String(), "replay", st.Replay.Round(time.Millisecond).String())
	return st, nil
}
