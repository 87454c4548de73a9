package classifier

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/minsheng-project/minsheng/dictionaries"
	"github.com/minsheng-project/minsheng/internal/envelope"
)

// Labelled is one line of a training corpus (testdata/corpus/*.jsonl).
type Labelled struct {
	ID      string `json:"id"`
	Title   string `json:"title"`
	Body    string `json:"body"`
	Channel string `json:"channel"`
	Valid   bool   `json:"valid"`
	Type    string `json:"type"`
	Track   string `json:"track"`
	Area    string `json:"area"`
	Source  string `json:"source"`
}

// ReadCorpus reads labelled messages from JSON-lines files, checking every label.
func ReadCorpus(paths ...string) ([]Labelled, error) {
	return readJSONL(paths, (*Labelled).check)
}

func (l *Labelled) check() error {
	if l.ID == "" {
		return fmt.Errorf("id missing")
	}
	if !l.Valid {
		return nil
	}
	if !slices.Contains(envelope.RequestTypes, l.Type) {
		return fmt.Errorf("id %s: bad type %q", l.ID, l.Type)
	}
	if !slices.Contains(envelope.Tracks, l.Track) {
		return fmt.Errorf("id %s: bad track %q", l.ID, l.Track)
	}
	if !slices.Contains(envelope.Areas, l.Area) {
		return fmt.Errorf("id %s: bad area %q", l.ID, l.Area)
	}
	return nil
}

// label returns the gold label of l for a task, or "" when the task does not apply.
func (l *Labelled) label(t Task) string {
	switch t {
	case TaskValidity:
		if l.Valid {
			return "valid"
		}
		return "invalid"
	case TaskType:
		if l.Valid {
			return l.Type
		}
	case TaskTrack:
		if l.Valid {
			return l.Track
		}
	case TaskArea:
		if l.Valid {
			return l.Area
		}
	}
	return ""
}

// HeldOut reports whether a message belongs to the held-out evaluation split: one in five,
// chosen by a hash of its id, so the split is stable as the corpus grows and training never sees
// it.
func HeldOut(id string) bool { return bucket(id, "") < 20 }

// calibration selects, inside the training split, the messages that fit temperatures and the
// invalid threshold before the final fit on the whole training split.
func calibration(id string) bool { return bucket(id, "cal") < 15 }

func bucket(id, salt string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(salt))
	h.Write([]byte(id))
	return h.Sum32() % 100
}

// TrainOptions tune training.
type TrainOptions struct {
	Epochs int     // passes over the data; default 15
	L2     float64 // L2 penalty per example; default 1e-5
	// L2Grid and RateGrid, when set, list penalties and learning rates to choose from per task
	// by calibration macro-F1.
	L2Grid, RateGrid []float64
	Rate             float64 // AdaGrad learning rate; default 0.4
	Seed             uint64  // shuffling seed; default 12345
	MinDF            int     // features seen in fewer documents are dropped; default 2
	Log              io.Writer
}

func (o *TrainOptions) defaults() {
	if o.Epochs == 0 {
		o.Epochs = 15
	}
	if o.L2 == 0 {
		o.L2 = 1e-5
	}
	if o.Rate == 0 {
		o.Rate = 0.4
	}
	if o.Seed == 0 {
		o.Seed = 12345
	}
	if o.MinDF == 0 {
		o.MinDF = 2
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

type example struct {
	feats []uint64
	words []uint32
	lab   *Labelled
	x     sparse
}

// Train fits a model on the given messages. It is deterministic: the same data and options give
// the same model, byte for byte.
func Train(a *Analyzer, data []Labelled, opts TrainOptions) (*Model, error) {
	opts.defaults()
	if len(data) == 0 {
		return nil, fmt.Errorf("training: no data")
	}
	exs := make([]example, len(data))
	df := map[uint64]int{}
	wdf := map[uint32]int{}
	for i := range data {
		x := a.extract(Message{Title: data[i].Title, Body: data[i].Body, Channel: data[i].Channel})
		exs[i] = example{feats: x.features, lab: &data[i]}
		for _, h := range x.features {
			df[h]++
		}
		for _, w := range x.words {
			exs[i].words = append(exs[i].words, w.dhash)
		}
		slices.Sort(exs[i].words)
		exs[i].words = slices.Compact(exs[i].words)
		for _, h := range exs[i].words {
			wdf[h]++
		}
	}
	m := &Model{TrainedOn: len(data)}
	for h, n := range df {
		if n >= opts.MinDF {
			m.Features = append(m.Features, h)
		}
	}
	slices.Sort(m.Features)
	n := float64(len(data))
	for _, h := range m.Features {
		m.FeatureIDF = append(m.FeatureIDF, float32(math.Log((n+1)/(float64(df[h])+1))+1))
	}
	for h, c := range wdf {
		if c >= 2 {
			m.IDFKeys = append(m.IDFKeys, h)
		}
	}
	slices.Sort(m.IDFKeys)
	for _, h := range m.IDFKeys {
		m.IDFVals = append(m.IDFVals, float32(math.Log((n+1)/(float64(wdf[h])+1))+1))
	}
	m.DefaultIDF = float32(math.Log(n+1) + 1)
	m.indexVocab()
	for i := range exs {
		exs[i].x = m.vectorize(exs[i].feats)
	}

	labelsOf := [numTasks][]string{{"valid", "invalid"}, envelope.RequestTypes, envelope.Tracks, envelope.Areas}
	var fitSet, calSet []*example
	for i := range exs {
		if calibration(exs[i].lab.ID) {
			calSet = append(calSet, &exs[i])
		} else {
			fitSet = append(fitSet, &exs[i])
		}
	}
	all := make([]*example, len(exs))
	for i := range exs {
		all[i] = &exs[i]
	}
	for t := Task(0); t < numTasks; t++ {
		// Choose the L2 penalty and the learning rate by macro-F1 on the calibration part, fit
		// the temperature there, then refit on all the training data.
		var probe *Linear
		bestF1, best := -1.0, opts
		l2s, rates := opts.L2Grid, opts.RateGrid
		if len(l2s) == 0 {
			l2s = []float64{opts.L2}
		}
		if len(rates) == 0 {
			rates = []float64{opts.Rate}
		}
		for _, rate := range rates {
			for _, l2 := range l2s {
				o := opts
				o.L2, o.Rate = l2, rate
				cand := fitLinear(len(m.Features), labelsOf[t], fitSet, t, o)
				f1 := macroF1(cand, calSet, t)
				fmt.Fprintf(opts.Log, "train: %s: L2 %g rate %g: calibration macro-F1 %.3f\n", t, l2, rate, f1)
				if f1 > bestF1 {
					bestF1, best, probe = f1, o, cand
				}
			}
		}
		probe.Temp = fitTemperature(probe, calSet, t)
		if t == TaskValidity {
			// The calibration slice holds too few invalid messages to place a 97 % point: the
			// threshold is chosen on out-of-fold scores of the whole training split.
			scores := outOfFold(len(m.Features), labelsOf[t], all, best, probe.Temp)
			m.InvalidThreshold = chooseInvalidThreshold(scores)
			logScreening(opts.Log, scores)
		}
		final := fitLinear(len(m.Features), labelsOf[t], all, t, best)
		final.Temp = probe.Temp
		m.Tasks[t] = final
		fmt.Fprintf(opts.Log, "train: %s: L2 %g, rate %g, temperature %.2f\n", t, best.L2, best.Rate, final.Temp)
	}
	fmt.Fprintf(opts.Log, "train: %d examples, %d features, invalid threshold %.2f\n", len(data), len(m.Features), m.InvalidThreshold)
	m.Version = modelVersion(data, opts)
	m.pack()
	return m, nil
}

func (m *Model) indexVocab() {
	m.vocab = newRowTable(m.Features)
	m.idf = newIDFTable(m.IDFKeys, m.IDFVals)
}

// trainMethod names the training code's behaviour: change it when Train would make a different
// model from the same data and options (features, hashing, threshold rule), so the version does.
const trainMethod = "features-2 threshold-oof-1"

// modelVersion names a model by what it was made from: the training method, the training data,
// the dictionaries and the training options.
func modelVersion(data []Labelled, opts TrainOptions) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", trainMethod)
	fmt.Fprintf(h, "%d %g %g %d %d %v %v\n", opts.Epochs, opts.L2, opts.Rate, opts.Seed, opts.MinDF, opts.L2Grid, opts.RateGrid)
	if entries, err := dictionaries.FS.ReadDir("."); err == nil {
		for _, e := range entries {
			b, _ := dictionaries.FS.ReadFile(e.Name())
			fmt.Fprintf(h, "%s\x00%d\x00", e.Name(), len(b))
			h.Write(b)
		}
	}
	for _, l := range data {
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00%v\x00%s\x00%s\x00%s\n", l.ID, l.Title, l.Body, l.Valid, l.Type, l.Track, l.Area)
	}
	return "minsheng-lr-" + hex.EncodeToString(h.Sum(nil)[:6])
}

// fitLinear trains a softmax classifier with AdaGrad and class weights that balance the classes
// (square root of inverse frequency), which favours macro-F1 on rare tracks and types.
func fitLinear(rows int, labels []string, set []*example, t Task, opts TrainOptions) *Linear {
	k := len(labels)
	l := &Linear{Labels: labels, W: make([]float32, rows*k), B: make([]float32, k), Temp: 1}
	idx := map[string]int{}
	for i, s := range labels {
		idx[s] = i
	}
	type item struct {
		x sparse
		y int
	}
	var items []item
	count := make([]float64, k)
	for _, e := range set {
		lab := e.lab.label(t)
		if lab == "" {
			continue
		}
		y := idx[lab]
		items = append(items, item{e.x, y})
		count[y]++
	}
	if len(items) == 0 {
		return l
	}
	cw := make([]float64, k)
	for c := range cw {
		if count[c] > 0 {
			cw[c] = math.Pow(float64(len(items))/(float64(k)*count[c]), classWeightPower)
		}
	}
	g2 := make([]float32, rows*k)
	gb := make([]float64, k)
	p := make([]float64, k)
	rng := rand.New(rand.NewPCG(opts.Seed, uint64(t)))
	order := make([]int, len(items))
	for i := range order {
		order[i] = i
	}
	for ep := 0; ep < opts.Epochs; ep++ {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, oi := range order {
			it := items[oi]
			l.probs(it.x, p)
			for c := 0; c < k; c++ {
				g := p[c]
				if c == it.y {
					g -= 1
				}
				g *= cw[it.y]
				gb[c] += g * g
				l.B[c] -= float32(opts.Rate * g / (math.Sqrt(gb[c]) + 1e-8))
				for ri, r := range it.x.rows {
					j := int(r)*k + c
					gw := g*float64(it.x.vals[ri]) + opts.L2*float64(l.W[j])
					g2[j] += float32(gw * gw)
					l.W[j] -= float32(opts.Rate * gw / (math.Sqrt(float64(g2[j])) + 1e-8))
				}
			}
		}
	}
	return l
}

// fitTemperature picks the softmax temperature that minimises log-loss on held-aside data.
func fitTemperature(l *Linear, set []*example, t Task) float64 {
	idx := map[string]int{}
	for i, s := range l.Labels {
		idx[s] = i
	}
	best, bestLoss := 1.0, math.Inf(1)
	p := make([]float64, l.K())
	for temp := 0.3; temp <= 3.01; temp += 0.05 {
		l.Temp = temp
		var loss float64
		n := 0
		for _, e := range set {
			lab := e.lab.label(t)
			if lab == "" {
				continue
			}
			l.probs(e.x, p)
			loss -= math.Log(math.Max(p[idx[lab]], 1e-12))
			n++
		}
		if n > 0 && loss < bestLoss {
			best, bestLoss = temp, loss
		}
	}
	return math.Round(best*100) / 100
}

// screenScore is a message's P(invalid) from a model that did not train on it.
type screenScore struct {
	p     float64
	valid bool
}

// outOfFold scores every example's P(invalid) with a validity model fitted on the other four
// fifths of the set (folds by fnv32a("fold"+id)).
func outOfFold(rows int, labels []string, set []*example, opts TrainOptions, temp float64) []screenScore {
	var out []screenScore
	p := make([]float64, 2)
	for k := uint32(0); k < 5; k++ {
		var fit, held []*example
		for _, e := range set {
			if bucket(e.lab.ID, "fold")%5 == k {
				held = append(held, e)
			} else {
				fit = append(fit, e)
			}
		}
		l := fitLinear(rows, labels, fit, TaskValidity, opts)
		l.Temp = temp
		for _, e := range held {
			l.probs(e.x, p)
			out = append(out, screenScore{p[1], e.lab.Valid})
		}
	}
	return out
}

// chooseInvalidThreshold picks the P(invalid) threshold, between 0.2 and 0.5: screening must
// catch 97 % of the invalid messages, and beyond that a valid request wrongly screened out is the
// costlier error. So the threshold is the highest that still catches 97 % of them — or, when no
// threshold in range does, as many as the lowest one does: lowering it further would only screen
// out more valid requests.
func chooseInvalidThreshold(scores []screenScore) float64 {
	caught := func(th float64) (n, of int) {
		for _, s := range scores {
			if !s.valid {
				of++
				if s.p >= th {
					n++
				}
			}
		}
		return n, of
	}
	floor, of := caught(0.2)
	if of == 0 {
		return 0.5
	}
	want := min(int(math.Ceil(0.97*float64(of))), floor)
	for th := 50; th > 20; th-- {
		if n, _ := caught(float64(th) / 100); n >= want {
			return float64(th) / 100
		}
	}
	return 0.2
}

// macroF1 of a classifier on a labelled set.
func macroF1(l *Linear, set []*example, t Task) float64 {
	c := NewConfusion(t.String(), l.Labels)
	p := make([]float64, l.K())
	for _, e := range set {
		gold := e.lab.label(t)
		if gold == "" {
			continue
		}
		l.probs(e.x, p)
		best := 0
		for i := range p {
			if p[i] > p[best] {
				best = i
			}
		}
		c.Add(gold, l.Labels[best])
	}
	return c.MacroF1()
}

// DefaultL2Grid and DefaultRateGrid are the penalties and learning rates `minsheng train`
// chooses from.
var (
	DefaultL2Grid   = []float64{1e-5, 1e-4, 3e-4, 1e-3, 3e-3}
	DefaultRateGrid = []float64{0.2, 0.4}
)

// classWeightPower: class weights are (N / (K·n_c))^power; 0.5 balances rare classes without
// letting a handful of examples dominate.
var classWeightPower = 0.5

// logScreening prints, for a few P(invalid) thresholds, the share of invalid messages caught
// and of valid messages kept.
func logScreening(w io.Writer, scores []screenScore) {
	for _, th := range []float64{0.2, 0.25, 0.3, 0.35, 0.4, 0.5} {
		var caught, inv, kept, val int
		for _, s := range scores {
			if s.valid {
				val++
				if s.p < th {
					kept++
				}
			} else {
				inv++
				if s.p >= th {
					caught++
				}
			}
		}
		fmt.Fprintf(w, "train: screening, out of fold, at %.2f: invalid caught %d/%d, valid kept %d/%d\n", th, caught, inv, kept, val)
	}
}
