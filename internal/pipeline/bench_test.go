package pipeline_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/minsheng-project/minsheng/classifier"
	"github.com/minsheng-project/minsheng/internal/pipeline"
)

// TestRestoreBench compares the two ways of restoring the dedup index. By default it runs at 500
// messages as a smoke test; MINSHENG_BENCH_RESTORE=1000000 runs the real measurement (minutes, and
// about 1 GB of disk under the test's temporary directory).
func TestRestoreBench(t *testing.T) {
	n := 500
	if v := os.Getenv("MINSHENG_BENCH_RESTORE"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	b, err := pipeline.BenchRestore(ctx, func() (pipeline.Triager, error) { return classifier.New(classifier.Options{}) }, n, t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	if b.IndexSize == 0 {
		t.Fatalf("the index is empty after the rebuild: %+v", b)
	}
	t.Logf("messages %d (index %d): write %v | rebuild from minsheng.triaged %v | snapshot save %v, %.1f MB | restore from snapshot %v",
		b.Messages, b.IndexSize, b.Write.Round(time.Millisecond), b.Rebuild.Round(time.Millisecond),
		b.SnapshotSave.Round(time.Millisecond), float64(b.SnapshotBytes)/1e6, b.SnapshotRestore.Round(time.Millisecond))
}
