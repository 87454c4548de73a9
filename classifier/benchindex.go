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

// BenchIndex fills a fresh dedup index with n synthetic messages (22 known words and 8 tokens
// drawn with a Zipf law from 4 million names, places and numbers; spread over 29 days so none
// expire) and measures the heap it holds and the
// time of a lookup. It is for `minsheng bench -index N`.
func BenchIndex(e *Engine, n int) IndexBench {
	rng := rand.New(rand.NewPCG(1, 2))
	vocab := e.model.IDFKeys
	zipf := rand.NewZipf(rng, 1.1, 2, 4_000_000)
	mkSig := func() *signature {
		sig := &signature{exact: rng.Uint64(), sender: rng.Uint32() | 1}
		// 22 words the training corpus knows (weighed by its IDF), 8 names, places and numbers
		// from a large long-tailed space.
		for len(sig.sketch) < 22 {
			sig.sketch = append(sig.sketch, vocab[rng.IntN(len(vocab))])
		}
		for len(sig.sketch) < 30 {
			sig.sketch = append(sig.sketch, uint32(zipf.Uint64()*2654435761)&^placeBit|1<<30)
		}
		slices.Sort(sig.sketch)
		sig.sketch = slices.Compact(sig.sketch)
		sig.weigh(e.model.IDF)
		return sig
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	d := NewDeduper(e.opts.Dedup, e.model.IDF)
	start := time.Unix(1_700_000_000, 0)
	span := 29 * 24 * time.Hour
	// Fill without lookups (the memory does not depend on them); lookups are timed below.
	t0 := time.Now()
	d.mu.Lock()
	for i := 0; i < n; i++ {
		at := start.Add(time.Duration(float64(span) * float64(i) / float64(n)))
		id := fmt.Sprintf("%032x", i)
		d.add(id, id, at, mkSig())
	}
	d.mu.Unlock()
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
