package classifier

import (
	"strconv"
	"time"

	"github.com/minsheng-project/minsheng/internal/envelope"
)

// PairedTimes is what PairedBench measured: the time plain gse segmentation and the whole
// triage took over the same messages.
type PairedTimes struct {
	Messages int
	Segment  time.Duration
	Triage   time.Duration
}

// Ratio is the triage rate as a share of the segmentation-only rate.
func (p PairedTimes) Ratio() float64 { return p.Segment.Seconds() / p.Triage.Seconds() }

// PairedBench times plain gse segmentation (Analyzer.Segment of title and body) against the
// whole triage of each message in turn, alternating which goes first, so that a busy
// neighbour, a frequency change or a GC cycle falls on both sides alike. Each round triages
// into a fresh dedup index, as the first did. Run it with GOMAXPROCS=1.
func PairedBench(e *Engine, data []Labelled, rounds int) PairedTimes {
	an := e.Analyzer()
	envs := make([]envelope.Envelope, len(data))
	var p PairedTimes
	for r := 0; r < rounds; r++ {
		for i, l := range data {
			envs[i] = envelope.Envelope{ID: "bench-" + strconv.Itoa(r) + "-" + strconv.Itoa(i), Channel: l.Channel, Title: l.Title, Body: l.Body}
		}
		fresh := e.Fresh()
		seg := func(l *Labelled) {
			t0 := time.Now()
			an.Segment(l.Title)
			an.Segment(l.Body)
			p.Segment += time.Since(t0)
		}
		tri := func(env *envelope.Envelope) {
			t0 := time.Now()
			fresh.Triage(env)
			p.Triage += time.Since(t0)
		}
		for i := range data {
			if (i+r)%2 == 0 {
				seg(&data[i])
				tri(&envs[i])
			} else {
				tri(&envs[i])
				seg(&data[i])
			}
		}
		p.Messages += len(data)
	}
	return p
}
