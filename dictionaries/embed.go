// Package dictionaries holds minsheng's domain dictionaries — user words for segmentation, cue
// phrases per type and track, stop words and token patterns — embedded in the binary. It holds
// data only; the classifier package reads it.
package dictionaries

import "embed"

// FS holds every dictionary file (*.txt).
//
//go:embed *.txt
var FS embed.FS
