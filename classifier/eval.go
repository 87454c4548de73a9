package classifier

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/minsheng-project/minsheng/internal/envelope"
)

// Confusion is a confusion matrix with per-class precision, recall and F1.
type Confusion struct {
	Task   string
	Labels []string
	// Counts[gold][predicted].
	Counts [][]int
	// Missed[gold] counts decisions that gave no label at all (a valid message screened out):
	// a miss for the gold class, and a false positive for none.
	Missed []int
}

// NewConfusion returns an empty matrix over labels.
func NewConfusion(task string, labels []string) *Confusion {
	c := &Confusion{Task: task, Labels: labels, Counts: make([][]int, len(labels)), Missed: make([]int, len(labels))}
	for i := range c.Counts {
		c.Counts[i] = make([]int, len(labels))
	}
	return c
}

// Add counts one decision; an empty pred is a decision that gave no label.
func (c *Confusion) Add(gold, pred string) {
	g := slices.Index(c.Labels, gold)
	if g < 0 {
		return
	}
	if pred == "" {
		c.Missed[g]++
		return
	}
	if p := slices.Index(c.Labels, pred); p >= 0 {
		c.Counts[g][p]++
	}
}

// PRF returns precision, recall, F1 and support of class i.
func (c *Confusion) PRF(i int) (p, r, f float64, support int) {
	tp := c.Counts[i][i]
	predicted, actual := 0, c.Missed[i]
	for j := range c.Labels {
		predicted += c.Counts[j][i]
		actual += c.Counts[i][j]
	}
	if predicted > 0 {
		p = float64(tp) / float64(predicted)
	}
	if actual > 0 {
		r = float64(tp) / float64(actual)
	}
	if p+r > 0 {
		f = 2 * p * r / (p + r)
	}
	return p, r, f, actual
}

// MacroF1 averages F1 over the classes that occur in the gold labels.
func (c *Confusion) MacroF1() float64 {
	var s float64
	n := 0
	for i := range c.Labels {
		_, _, f, sup := c.PRF(i)
		if sup > 0 {
			s += f
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return s / float64(n)
}

// Accuracy is the share of correct decisions.
func (c *Confusion) Accuracy() float64 {
	ok, n := 0, 0
	for i := range c.Labels {
		n += c.Missed[i]
		for j := range c.Labels {
			n += c.Counts[i][j]
			if i == j {
				ok += c.Counts[i][j]
			}
		}
	}
	if n == 0 {
		return 0
	}
	return float64(ok) / float64(n)
}

// Write prints the per-class table and the matrix.
func (c *Confusion) Write(w io.Writer) {
	fmt.Fprintf(w, "== %s  macro-F1 %.3f  accuracy %.3f\n", c.Task, c.MacroF1(), c.Accuracy())
	fmt.Fprintf(w, "%-16s %9s %9s %9s %8s\n", "class", "precision", "recall", "F1", "support")
	for i, l := range c.Labels {
		p, r, f, s := c.PRF(i)
		fmt.Fprintf(w, "%-16s %9.3f %9.3f %9.3f %8d\n", l, p, r, f, s)
	}
	fmt.Fprintf(w, "confusion (rows gold, columns predicted):\n%-16s", "")
	for i := range c.Labels {
		fmt.Fprintf(w, " %6s", abbrev(c.Labels[i]))
	}
	fmt.Fprintf(w, " %6s\n", "(none)")
	for i, l := range c.Labels {
		fmt.Fprintf(w, "%-16s", l)
		for j := range c.Labels {
			fmt.Fprintf(w, " %6d", c.Counts[i][j])
		}
		fmt.Fprintf(w, " %6d\n", c.Missed[i])
	}
}

func abbrev(s string) string {
	r := []rune(s)
	if len(r) > 6 {
		return string(r[:6])
	}
	return s
}

// Report is the outcome of an evaluation.
type Report struct {
	Examples int
	Validity *Confusion
	Type     *Confusion
	Track    *Confusion
	Area     *Confusion
	// InvalidRecall and ValidPrecision are the screening figures the acceptance bar names.
	InvalidRecall, ValidPrecision float64
	// Review is how the needs_review flag splits the valid messages the engine kept.
	Review ReviewSplit
}

// ReviewSplit counts, for confident and flagged (needs_review) messages apart, how many there
// are and how many of them got type, track and area right: the flag is worth an editor's time
// when the flagged ones are where the errors are.
type ReviewSplit struct {
	Confident, Flagged           int
	ConfidentRight, FlaggedRight [3]int // type, track, area
}

func (s *ReviewSplit) add(flagged bool, right [3]bool) {
	n, r := &s.Confident, &s.ConfidentRight
	if flagged {
		n, r = &s.Flagged, &s.FlaggedRight
	}
	*n++
	for i, ok := range right {
		if ok {
			r[i]++
		}
	}
}

// Evaluate triages each labelled message with a fresh dedup index per message (so classification
// is measured alone) and compares with the gold labels.
func (e *Engine) Evaluate(data []Labelled) *Report {
	rep := &Report{
		Validity: NewConfusion("validity", []string{"valid", "invalid"}),
		Type:     NewConfusion("type", envelope.RequestTypes),
		Track:    NewConfusion("track", envelope.Tracks),
		Area:     NewConfusion("area", envelope.Areas),
	}
	for i := range data {
		l := &data[i]
		res := e.Classify(Message{Title: l.Title, Body: l.Body, Channel: l.Channel})
		rep.Examples++
		rep.Validity.Add(l.label(TaskValidity), map[bool]string{true: "valid", false: "invalid"}[res.Valid])
		if l.Valid && res.Valid {
			rep.Type.Add(l.Type, res.Type)
			rep.Track.Add(l.Track, res.Track)
			rep.Area.Add(l.Area, res.Area)
			rep.Review.add(res.NeedsReview, [3]bool{l.Type == res.Type, l.Track == res.Track, l.Area == res.Area})
		} else if l.Valid {
			// A valid message screened out is a miss for its gold label of every task (the
			// "(none)" column), and a false positive for no class: it was given none.
			rep.Type.Add(l.Type, "")
			rep.Track.Add(l.Track, "")
			rep.Area.Add(l.Area, "")
		}
	}
	_, rep.InvalidRecall, _, _ = rep.Validity.PRF(1)
	rep.ValidPrecision, _, _, _ = rep.Validity.PRF(0)
	return rep
}

// Classify screens and classifies a message without touching the dedup index.
func (e *Engine) Classify(m Message) envelope.Result {
	res := envelope.Result{Keywords: []string{}, Reasons: []string{}, Model: e.model.Version}
	if err := checkInput(m.Title, m.Body); err != nil {
		res.Error = err.Error()
		return res
	}
	e.classify(e.an.extract(m), &res)
	return res
}

// Write prints the report.
func (r *Report) Write(w io.Writer) {
	fmt.Fprintf(w, "examples: %d\n", r.Examples)
	fmt.Fprintf(w, "screening: invalid recall %.3f, valid precision %.3f\n\n", r.InvalidRecall, r.ValidPrecision)
	for _, c := range []*Confusion{r.Validity, r.Type, r.Track, r.Area} {
		c.Write(w)
		fmt.Fprintln(w)
	}
	s := r.Review
	if total := s.Confident + s.Flagged; total > 0 {
		share := func(k, n int) float64 {
			if n == 0 {
				return 0
			}
			return float64(k) / float64(n)
		}
		fmt.Fprintf(w, "== needs_review: %d of %d valid messages flagged (%.0f %%)\n", s.Flagged, total, 100*share(s.Flagged, total))
		fmt.Fprintf(w, "%-10s %10s %10s\n", "right", "confident", "flagged")
		for i, task := range []string{"type", "track", "area"} {
			fmt.Fprintf(w, "%-10s %10.3f %10.3f\n", task, share(s.ConfidentRight[i], s.Confident), share(s.FlaggedRight[i], s.Flagged))
		}
		fmt.Fprintln(w)
	}
}

// DedupItem is one line of a dedup test set (testdata/dedup/*.jsonl), in arrival order.
// Messages with the same Cluster are the same request.
type DedupItem struct {
	ID         string          `json:"id"`
	Cluster    string          `json:"cluster"`
	Kind       string          `json:"kind"`
	Channel    string          `json:"channel"`
	Sender     envelope.Sender `json:"sender"`
	ReceivedAt time.Time       `json:"received_at"`
	Title      string          `json:"title"`
	Body       string          `json:"body"`
}

// ReadDedupSet reads dedup test files.
func ReadDedupSet(paths ...string) ([]DedupItem, error) {
	return readJSONL[DedupItem](paths, nil)
}

// readJSONL reads JSON-lines files into values of T, skipping blank lines; check, when given,
// vets each value. Errors name the file and line.
func readJSONL[T any](paths []string, check func(*T) error) ([]T, error) {
	var out []T
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("opening %s: %w", p, err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 4<<20)
		n := 0
		for sc.Scan() {
			n++
			if strings.TrimSpace(sc.Text()) == "" {
				continue
			}
			var v T
			err := json.Unmarshal(sc.Bytes(), &v)
			if err == nil && check != nil {
				err = check(&v)
			}
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("%s:%d: %w", p, n, err)
			}
			out = append(out, v)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
	}
	return out, nil
}

// DedupReport holds pairwise-decision figures of de-duplication.
type DedupReport struct {
	Messages int
	// TP: flagged as duplicate of a message of its own cluster; FP: flagged as duplicate of
	// another cluster's message (or flagged when its cluster had no earlier message);
	// FN: not flagged though its cluster had an earlier message.
	TP, FP, FN int
	// ByKind counts, per variation kind, [caught, missed] for duplicates and [false alarms, total]
	// for negatives.
	ByKind map[string][2]int
	Errors []string
}

// Precision of duplicate flags.
func (r *DedupReport) Precision() float64 {
	if r.TP+r.FP == 0 {
		return 1
	}
	return float64(r.TP) / float64(r.TP+r.FP)
}

// Recall of duplicates.
func (r *DedupReport) Recall() float64 {
	if r.TP+r.FN == 0 {
		return 1
	}
	return float64(r.TP) / float64(r.TP+r.FN)
}

// EvaluateDedup streams a dedup set through a fresh index in arrival order. Screening is
// bypassed: every message is treated as valid, so the figures measure de-duplication alone.
func (e *Engine) EvaluateDedup(items []DedupItem) *DedupReport {
	return e.EvaluateDedupWith(items, e.opts.Dedup)
}

// EvaluateDedupWith is EvaluateDedup with other de-duplication parameters.
func (e *Engine) EvaluateDedupWith(items []DedupItem, params DedupParams) *DedupReport {
	d := NewDeduper(params, e.model.IDF)
	rep := &DedupReport{ByKind: map[string][2]int{}}
	clusterOf := map[string]string{} // message id → cluster
	seen := map[string]bool{}        // clusters with an earlier message
	for _, it := range items {
		rep.Messages++
		x := e.an.extract(Message{Title: it.Title, Body: it.Body, Channel: it.Channel})
		sig := e.signatureOf(x, it.Sender.Key())
		_, m := d.Observe(it.ID, it.ReceivedAt, sig)
		seenCluster := seen[it.Cluster]
		k := rep.ByKind[it.Kind]
		switch {
		case m != nil && clusterOf[m.ID] == it.Cluster:
			rep.TP++
			k[0]++
		case m != nil:
			rep.FP++
			if seenCluster {
				k[1]++
			} else {
				k[0]++ // a negative falsely flagged
			}
			rep.Errors = append(rep.Errors, fmt.Sprintf("FP %s (%s) flagged as duplicate of %s (cluster %s) sim %.3f", it.ID, it.Kind, m.ID, clusterOf[m.ID], m.Similarity))
		case seenCluster:
			rep.FN++
			k[1]++
			rep.Errors = append(rep.Errors, fmt.Sprintf("FN %s (%s) missed, cluster %s", it.ID, it.Kind, it.Cluster))
		default:
			k[1]++
		}
		rep.ByKind[it.Kind] = k
		clusterOf[it.ID] = it.Cluster
		seen[it.Cluster] = true
	}
	return rep
}

// Write prints the dedup report.
func (r *DedupReport) Write(w io.Writer, verbose bool) {
	fmt.Fprintf(w, "== dedup  messages %d  precision %.3f  recall %.3f  (TP %d, FP %d, FN %d)\n", r.Messages, r.Precision(), r.Recall(), r.TP, r.FP, r.FN)
	kinds := make([]string, 0, len(r.ByKind))
	for k := range r.ByKind {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		v := r.ByKind[k]
		if strings.HasPrefix(k, "hard-negative") || k == "unrelated" || k == "original" {
			fmt.Fprintf(w, "  %-24s false alarms %d of %d\n", k, v[0], v[0]+v[1])
		} else {
			fmt.Fprintf(w, "  %-24s caught %d of %d\n", k, v[0], v[0]+v[1])
		}
	}
	if verbose {
		for _, e := range r.Errors {
			fmt.Fprintln(w, "  ", e)
		}
	}
}
