package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/minsheng-project/minsheng/internal/bus"
	"github.com/minsheng-project/minsheng/internal/envelope"
	"github.com/minsheng-project/minsheng/internal/metrics"
)

// RestoreBench is the outcome of BenchRestore: the two ways of getting the dedup index back after
// a restart, at the same size.
type RestoreBench struct {
	Messages int
	// Write is the time to write the synthetic results to minsheng.triaged (setup, not restore).
	Write time.Duration
	// Rebuild is a restore with no snapshot: replay every result of minsheng.triaged through
	// engine.Remember.
	Rebuild   time.Duration
	IndexSize int
	// SnapshotSave is the time to write the snapshot; SnapshotBytes its size.
	SnapshotSave  time.Duration
	SnapshotBytes int64
	// SnapshotRestore is a restore from the snapshot: load it, then replay the results after it
	// (none here) — what a restart after a clean shutdown costs.
	SnapshotRestore time.Duration
	// TailReplay is the part of each restore spent reading the last ResultCache results into the
	// result cache; it is the same for both ways.
	TailReplay time.Duration
}

// BenchRestore measures, at n messages, rebuilding the dedup index from minsheng.triaged against
// loading a snapshot. It runs its own embedded broker in dir (which it fills with about n × 700
// bytes) and writes n synthetic valid results to minsheng.triaged; newEngine returns a fresh engine
// with an empty index. For `minsheng bench` and the opt-in test TestRestoreBench.
func BenchRestore(ctx context.Context, newEngine func() (Triager, error), n int, dir string, log *slog.Logger) (RestoreBench, error) {
	b := RestoreBench{Messages: n}
	emb, err := bus.StartEmbedded("127.0.0.1:0", filepath.Join(dir, "kafka"), log)
	if err != nil {
		return b, err
	}
	defer emb.Close()
	brokers := []string{emb.Addr()}
	topics := bus.NewTopics("")
	admin := bus.NewAdmin(brokers)
	defer admin.Close()
	if err := admin.EnsureTopics(ctx, topics.Specs(envelope.Tracks, 6)); err != nil {
		return b, err
	}
	w := bus.NewWriter(brokers)
	defer w.Close()

	t0 := time.Now()
	if err := writeSynthetic(ctx, w, topics.Triaged, n); err != nil {
		return b, err
	}
	b.Write = time.Since(t0)

	stageDir := filepath.Join(dir, "triage")
	newStage := func() (*Stage, error) {
		eng, err := newEngine()
		if err != nil {
			return nil, err
		}
		// A one-entry result cache keeps the tail read out of the comparison.
		return New(eng, w, Options{Brokers: brokers, Topics: topics, Dir: stageDir, ResultCache: 1, Logger: log, Metrics: metrics.New()}), nil
	}

	s, err := newStage()
	if err != nil {
		return b, err
	}
	t0 = time.Now()
	st, err := s.Restore(ctx)
	if err != nil {
		return b, err
	}
	b.Rebuild = time.Since(t0)
	b.IndexSize = s.eng.IndexSize()
	if st.FromSnapshot {
		return b, fmt.Errorf("bench: unexpected snapshot in %s", stageDir)
	}

	t0 = time.Now()
	if err := s.Snapshot(ctx); err != nil {
		return b, err
	}
	b.SnapshotSave = time.Since(t0)
	if fi, err := os.Stat(filepath.Join(stageDir, SnapshotFile)); err == nil {
		b.SnapshotBytes = fi.Size()
	}

	s, err = newStage()
	if err != nil {
		return b, err
	}
	t0 = time.Now()
	st, err = s.Restore(ctx)
	if err != nil {
		return b, err
	}
	b.SnapshotRestore = time.Since(t0)
	b.TailReplay = st.Replay
	if !st.FromSnapshot || s.eng.IndexSize() != b.IndexSize {
		return b, fmt.Errorf("bench: snapshot restore gave %d messages (from snapshot: %v), rebuild %d", s.eng.IndexSize(), st.FromSnapshot, b.IndexSize)
	}
	return b, nil
}

// writeSynthetic writes n distinct, valid, routed results to topic.
func writeSynthetic(ctx context.Context, w *bus.Writer, topic string, n int) error {
	const chunk = 2000
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     = make(chan int)
	)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for start := range next {
				recs := make([]bus.Record, 0, chunk)
				for i := start; i < min(start+chunk, n); i++ {
					res := SyntheticResult(i)
					val, _ := json.Marshal(res)
					recs = append(recs, bus.Record{Topic: topic, Key: res.ID, Value: val, Type: envelope.TypeTriage, Source: "bench"})
				}
				if err := w.Publish(ctx, recs...); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
				}
			}
		}()
	}
	for start := 0; start < n; start += chunk {
		next <- start
	}
	close(next)
	wg.Wait()
	return firstErr
}

var (
	synDistricts = []string{"市南区", "市北区", "李沧区", "崂山区", "黄岛区", "城阳区", "即墨区", "胶州市", "平度市", "莱西市"}
	synPlaces    = []string{"中山路", "香港中路", "延安三路", "宁夏路", "辽阳西路", "福州南路", "台东三路", "重庆南路", "黑龙江路", "长江中路", "金水路", "银川路"}
	synProblems  = []string{
		"路灯已经坏了两个星期，晚上漆黑一片，老人孩子出行很不安全",
		"工地夜间施工噪音扰民，凌晨两点还在打桩，居民无法休息",
		"小区垃圾清运不及时，垃圾桶满溢，气味难闻，招来大量蚊蝇",
		"井盖缺失，已经有电动车摔倒，希望尽快补上",
		"烧烤店油烟直排，楼上住户家里全是油烟味，多次反映无果",
		"公交站台被拆除后一直没有恢复，附近居民出行需要步行一公里",
		"物业擅自提高停车费，业主委员会不知情，要求公开收费依据",
		"学校门口占道经营严重，上下学时段交通拥堵，存在安全隐患",
		"供暖温度不达标，室内只有十四度，家里有老人和婴儿",
		"道路破损严重，坑洼积水，车辆经过溅湿行人",
		"楼道堆放杂物，消防通道被堵，物业不作为",
		"自来水发黄有异味，已经持续三天，担心饮水安全",
	}
	synAsks = []string{"请有关部门尽快处理。", "希望政府重视。", "恳请领导督促解决。", "盼复。", ""}
)

// SyntheticResult returns the i-th synthetic triage result: a valid, routed message whose text
// mixes a district, a street, a problem and a plea, varied by i so that few are exact repeats.
func SyntheticResult(i int) *envelope.Result {
	r := rand.New(rand.NewPCG(uint64(i), 7))
	body := fmt.Sprintf("我住在%s%s%d号附近，%s，已经%d天了。%s", synDistricts[r.IntN(len(synDistricts))],
		synPlaces[r.IntN(len(synPlaces))], 1+r.IntN(300), synProblems[r.IntN(len(synProblems))], 1+r.IntN(60),
		synAsks[r.IntN(len(synAsks))])
	id := fmt.Sprintf("%032x", i)
	at := time.Unix(1_700_000_000, 0).Add(time.Duration(i) * 2 * time.Second).UTC() // 1M messages ≈ 23 days
	env := &envelope.Envelope{ID: id, Channel: envelope.Channels[i%len(envelope.Channels)], Source: "bench", ReceivedAt: at,
		Sender: envelope.Sender{Phone: fmt.Sprintf("138%08d", r.IntN(1e8))}, Body: body}
	return &envelope.Result{ID: id, CaseID: id, Valid: true, Type: envelope.TypeComplaint, Track: envelope.TrackService,
		Area: envelope.Areas[0], Confidence: envelope.Confidence{Type: 0.9, Track: 0.9, Area: 0.9}, Keywords: []string{},
		Reasons: []string{}, Model: "synthetic", TriagedAt: at, Envelope: env}
}
