package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/minsheng-project/minsheng/classifier"
)

// runBench measures the triage engine on one core: load time, plain gse segmentation against
// the whole triage of the same messages, and the dedup index at scale.
func runBench(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	in := fs.String("in", "testdata/corpus/tipdm.jsonl", "messages to triage (JSON lines with title and body)")
	rounds := fs.Int("rounds", 5, "rounds over the messages")
	index := fs.Int("index", 0, "also fill a dedup index with this many synthetic messages and report its memory (e.g. 5000000)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the passes to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// Loading uses every core (the dictionaries and the model load side by side); the passes
	// below run on one.
	t0 := time.Now()
	eng, err := classifier.New(classifier.Options{})
	if err != nil {
		return err
	}
	load := time.Since(t0)
	procs := runtime.GOMAXPROCS(1)
	data, err := classifier.ReadCorpus(*in)
	if err != nil {
		return err
	}
	var bytes int
	for _, l := range data {
		bytes += len(l.Title) + len(l.Body)
	}
	fmt.Printf("load (dictionaries + model, %d cores): %s\n", procs, load.Round(time.Millisecond))
	fmt.Printf("messages: %d, %.1f KiB, GOMAXPROCS=1\n", len(data), float64(bytes)/1024)

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	// Each message is segmented and triaged in turn, the order alternating, so the two rates
	// are measured under the same conditions; see classifier.PairedBench.
	p := classifier.PairedBench(eng, data, *rounds)
	mb := float64(bytes) * float64(*rounds) / 1e6
	fmt.Printf("gse segmentation only: %8.0f msg/s  %6.2f MB/s  (%d rounds, paired with triage)\n", float64(p.Messages)/p.Segment.Seconds(), mb/p.Segment.Seconds(), *rounds)
	fmt.Printf("whole triage:          %8.0f msg/s  %6.2f MB/s  (%.0f%% of segmentation-only)\n", float64(p.Messages)/p.Triage.Seconds(), mb/p.Triage.Seconds(), 100*p.Ratio())
	if *index > 0 {
		r := classifier.BenchIndex(eng, *index)
		fmt.Printf("dedup index with %d messages: %.0f MiB heap (%.0f bytes/message), fill %s, %.1f µs per lookup\n",
			r.Messages, float64(r.HeapBytes)/(1<<20), float64(r.HeapBytes)/float64(r.Messages), r.Fill.Round(time.Millisecond), r.LookupMicros)
	}
	return nil
}
