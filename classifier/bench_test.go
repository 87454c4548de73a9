package classifier

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/minsheng-project/minsheng/internal/envelope"
)

// benchMessages returns the TipDM messages and sets the benchmark's bytes per message.
func benchMessages(b *testing.B) []Labelled {
	data, err := ReadCorpus("../testdata/corpus/tipdm.jsonl")
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for _, l := range data {
		n += int64(len(l.Title) + len(l.Body))
	}
	b.SetBytes(n / int64(len(data)))
	return data
}

// BenchmarkSegment is plain gse segmentation of the TipDM messages, the baseline of
// BenchmarkTriage. Run both with -cpu 1.
func BenchmarkSegment(b *testing.B) {
	e := newTestEngine(b)
	data := benchMessages(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l := &data[i%len(data)]
		e.an.Segment(l.Title)
		e.an.Segment(l.Body)
	}
}

// BenchmarkTriage is the whole triage — normalization, screening, dedup, three classifiers and
// explanations — of the same messages.
func BenchmarkTriage(b *testing.B) {
	e := newTestEngine(b)
	data := benchMessages(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%len(data) == 0 && i > 0 {
			b.StopTimer()
			e = e.Fresh() // each pass starts with an empty index, as the first did
			b.StartTimer()
		}
		l := &data[i%len(data)]
		e.Triage(&envelope.Envelope{ID: fmt.Sprint(i), Channel: l.Channel, Title: l.Title, Body: l.Body})
	}
	runtime.KeepAlive(e)
}

// BenchmarkLoad measures loading the dictionaries and the model.
func BenchmarkLoad(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if _, err := NewAnalyzer(); err != nil {
			b.Fatal(err)
		}
		if _, err := LoadModel(""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPaired times segmentation and triage of each message in turn (PairedBench) and
// reports the triage rate as a share of the segmentation-only rate ("triage/seg-%"). Run it
// with -cpu 1 -benchtime 5x.
func BenchmarkPaired(b *testing.B) {
	e := newTestEngine(b)
	data := benchMessages(b)
	b.SetBytes(0) // an op is a whole round; the rates are reported below
	b.ResetTimer()
	var p PairedTimes
	for i := 0; i < b.N; i++ { // one op is a round over all the messages
		r := PairedBench(e, data, 1)
		p.Messages += r.Messages
		p.Segment += r.Segment
		p.Triage += r.Triage
	}
	b.ReportMetric(100*p.Ratio(), "triage/seg-%")
	b.ReportMetric(float64(p.Messages)/p.Triage.Seconds(), "triage-msg/s")
	b.ReportMetric(float64(p.Messages)/p.Segment.Seconds(), "seg-msg/s")
}
