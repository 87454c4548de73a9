package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/minsheng-project/minsheng/classifier"
)

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// defaultCorpus is the labelled corpus shipped in the repository.
func defaultCorpus() ([]string, error) {
	paths, err := filepath.Glob("testdata/corpus/*.jsonl")
	if err != nil || len(paths) == 0 {
		return nil, errors.New("no -in given and no testdata/corpus/*.jsonl here (run from the repository root)")
	}
	return paths, nil
}

// loadSplit reads the labelled corpus (default testdata/corpus/*.jsonl) and the messages of it
// that keep selects.
func loadSplit(in []string, keep func(id string) bool) (all, kept []classifier.Labelled, err error) {
	if len(in) == 0 {
		if in, err = defaultCorpus(); err != nil {
			return nil, nil, err
		}
	}
	if all, err = classifier.ReadCorpus(in...); err != nil {
		return nil, nil, err
	}
	for _, l := range all {
		if keep(l.ID) {
			kept = append(kept, l)
		}
	}
	return all, kept, nil
}

func runTrain(args []string) error {
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	var in multiFlag
	fs.Var(&in, "in", "labelled JSON-lines file (repeatable; default testdata/corpus/*.jsonl)")
	out := fs.String("out", classifier.BuiltinModelPath, "where to write the model")
	all := fs.Bool("include-heldout", false, "train on the held-out split too (the model can then not be evaluated honestly)")
	seed := fs.Uint64("seed", 12345, "shuffling seed")
	epochs := fs.Int("epochs", 15, "passes over the data")
	if err := fs.Parse(args); err != nil {
		return err
	}
	data, train, err := loadSplit(in, func(id string) bool { return *all || !classifier.HeldOut(id) })
	if err != nil {
		return err
	}
	an, err := classifier.SharedAnalyzer()
	if err != nil {
		return err
	}
	t0 := time.Now()
	m, err := classifier.Train(an, train, classifier.TrainOptions{Seed: *seed, Epochs: *epochs, L2Grid: classifier.DefaultL2Grid, RateGrid: classifier.DefaultRateGrid, Log: os.Stderr})
	if err != nil {
		return err
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	if err := m.Save(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "train: %d of %d messages (held-out split excluded: %v), model %s written to %s in %s\n",
		len(train), len(data), !*all, m.Version, *out, time.Since(t0).Round(time.Millisecond))
	return nil
}

func runEval(args []string) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	var in, dedup multiFlag
	fs.Var(&in, "in", "labelled JSON-lines file (repeatable; default testdata/corpus/*.jsonl)")
	fs.Var(&dedup, "dedup", "dedup test set (repeatable; default testdata/dedup/*.jsonl)")
	model := fs.String("model", "", "model file (default: the built-in model)")
	all := fs.Bool("all", false, "evaluate on every message, not only the held-out split")
	verbose := fs.Bool("v", false, "list dedup errors")
	sweep := fs.Bool("dedup-sweep", false, "also sweep the dedup threshold, sender bonus, sender floor and place penalty and print precision/recall for each")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(dedup) == 0 {
		dedup, _ = filepath.Glob("testdata/dedup/*.jsonl")
	}
	eng, err := classifier.New(classifier.Options{ModelPath: *model})
	if err != nil {
		return err
	}
	data, test, err := loadSplit(in, func(id string) bool { return *all || classifier.HeldOut(id) })
	if err != nil {
		return err
	}
	fmt.Printf("model %s; evaluating %d of %d labelled messages (%s)\n\n", eng.ModelVersion(), len(test), len(data),
		map[bool]string{true: "all", false: "held-out split: fnv32a(id) % 100 < 20"}[*all])
	rep := eng.Evaluate(test)
	rep.Write(os.Stdout)
	trad, err := classifier.ToTraditional(test)
	if err != nil {
		return err
	}
	trep := eng.Evaluate(trad)
	fmt.Printf("== Traditional Chinese: the same %d messages converted with OpenCC s2t\n", len(trad))
	fmt.Printf("%-8s %11s %11s %8s\n", "task", "Simplified", "Traditional", "delta")
	for _, p := range [][2]*classifier.Confusion{{rep.Type, trep.Type}, {rep.Track, trep.Track}, {rep.Area, trep.Area}, {rep.Validity, trep.Validity}} {
		fmt.Printf("%-8s %11.3f %11.3f %+8.3f\n", p[0].Task, p[0].MacroF1(), p[1].MacroF1(), p[1].MacroF1()-p[0].MacroF1())
	}
	fmt.Println()
	if len(dedup) > 0 {
		items, err := classifier.ReadDedupSet(dedup...)
		if err != nil {
			return err
		}
		eng.EvaluateDedup(items).Write(os.Stdout, *verbose)
		if *sweep {
			dedupSweep(eng, items)
		}
	}
	return nil
}

// classifyLineLimit is the longest input line classify reads whole; longer lines get an error
// result (the engine refuses messages over 1 MiB anyway).
const classifyLineLimit = classifier.MaxInputBytes + 64<<10

func runClassify(args []string) error {
	fs := flag.NewFlagSet("classify", flag.ContinueOnError)
	model := fs.String("model", "", "model file (default: the built-in model)")
	threshold := fs.Float64("review-threshold", 0.6, "confidence under which a result needs review")
	window := fs.Duration("dedup-window", 30*24*time.Hour, "how far back a message can duplicate another")
	if err := fs.Parse(args); err != nil {
		return err
	}
	eng, err := classifier.New(classifier.Options{ModelPath: *model, ReviewThreshold: *threshold, DedupWindow: *window})
	if err != nil {
		return err
	}
	out := bufio.NewWriterSize(os.Stdout, 1<<16)
	defer out.Flush()
	return classifier.ClassifyStream(eng, os.Stdin, out, classifyLineLimit)
}

// dedupSweep prints dedup precision and recall over a grid around the default parameters, the
// measurement the defaults were chosen by.
func dedupSweep(eng *classifier.Engine, items []classifier.DedupItem) {
	fmt.Printf("\n== dedup sweep\n%9s %6s %6s %7s %9s %7s\n", "threshold", "bonus", "floor", "penalty", "precision", "recall")
	for _, th := range []float64{0.65, 0.70, 0.75, 0.80, 0.85} {
		for _, sb := range []float64{0.3, 0.4, 0.5} {
			for _, sf := range []float64{0.25, 0.35, 0.45} {
				for _, pp := range []float64{0.4, 0.6, 1} {
					p := classifier.DefaultDedupParams
					p.Threshold, p.SenderBonus, p.SenderFloor, p.PlacePenalty = th, sb, sf, pp
					r := eng.EvaluateDedupWith(items, p)
					fmt.Printf("%9.2f %6.2f %6.2f %7.2f %9.3f %7.3f\n", th, sb, sf, pp, r.Precision(), r.Recall())
				}
			}
		}
	}
}
