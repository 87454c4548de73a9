package classifier

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"time"
)

// IndexBench is the outcome of BenchIndex.
type IndexBench struct {
	Messages     int
	HeapBytes    uint64
	Fill         time.Duration
	LookupMicros float64
}

// BenchIndex fills a fresh dedup index with n synthetic messages (25 tokens each, drawn from the
// model's vocabulary, spread over 29 days so none expire) and measures the heap it holds and the
// time of a lookup. It is for `minsheng bench -index N`.
func BenchIndex(e *Engine, n int) IndexBench {
	rng := rand.New(rand.NewPCG(1, 2))
	vocab := e.model.IDFKeys
	mkSig := func() *signature {
		sig := &signature{exact: rng.Uint64(), sender: rng.Uint32() | 1}
		for len(sig.sketch) < 25 {
			// Skewed draw: most tokens are common ones, a few are rare.
			i := int(float64(len(vocab)) * rng.Float64() * rng.Float64())
			sig.sketch = append(sig.sketch, vocab[i])
		}
		slices.Sort(sig.sketch)
		sig.sketch = slices.Compact(sig.sketch)
		for _, h := range sig.sketch {
			w := e.model.IDF(h)
			sig.weights = append(sig.weights, w)
			sig.total += float64(w)
		}
		sig.anchors = anchorsOf(sig.sketch, e.model.IDF)
		return sig
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	d := NewDeduper(e.opts.Dedup, e.model.IDF)
	start := time.Unix(1_700_000_000, 0)
	span := 29 * 24 * time.Hour
	t0 := time.Now()
	for i := 0; i < n; i++ {
		at := start.Add(time.Duration(float64(span) * float64(i) / float64(n)))
		d.Observe(fmt.Sprintf("%032x", i), at, mkSig())
	}
	fill := time.Since(t0)
	runtime.GC()
	runtime.ReadMemStats(&after)
	const lookups = 2000
	sigs := make([]*signature, lookups)
	for i := range sigs {
		sigs[i] = mkSig()
	}
	t0 = time.Now()
	end := start.Add(span)
	d.mu.Lock()
	for _, s := range sigs {
		d.find("probe", end, s)
	}
	d.mu.Unlock()
	look := time.Since(t0)
	runtime.KeepAlive(d)
	return IndexBench{Messages: d.Len(), HeapBytes: after.HeapAlloc - before.HeapAlloc, Fill: fill, LookupMicros: float64(look.Microseconds()) / lookups}
}
