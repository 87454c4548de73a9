// Command minsheng runs the minsheng citizen-message triage system: `serve` runs the service,
// `classify`, `train`, `eval` and `bench` work on the triage engine offline.
package main

import (
	"fmt"
	"os"
)

const usage = `minsheng — 民声 citizen message intake and triage

usage:
  minsheng serve    [-config minsheng.yaml] [-data-dir DIR] [-listen ADDR] [-embedded-kafka ADDR] [-roles intake,triage]
  minsheng classify [-model FILE]   < messages.jsonl > results.jsonl
  minsheng train    -in labelled.jsonl [-in more.jsonl] -out model-file
  minsheng eval     [-in labelled.jsonl] [-model FILE] [-dedup testdata/dedup/set1.jsonl]
  minsheng bench    [-in messages.jsonl] [-n N]
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cmds := map[string]func([]string) error{
		"serve":    runServe,
		"classify": runClassify,
		"train":    runTrain,
		"eval":     runEval,
		"bench":    runBench,
	}
	run, ok := cmds[os.Args[1]]
	if !ok {
		if os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
			fmt.Print(usage)
			return
		}
		fmt.Fprintf(os.Stderr, "minsheng: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err := run(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "minsheng %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
