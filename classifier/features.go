package classifier

import (
	"fmt"
	"math"
	"strconv"
	"sync"
)

// Feature prefixes. A feature is the FNV-1a hash of its prefix byte and its text.
const (
	fWord    = 'w' // a word of title or body (pattern tokens by their placeholder)
	fBigram  = 'b' // two consecutive words
	fTitle   = 't' // a word of the title
	fCue     = 'q' // a cue phrase's label
	fChannel = 'h' // the channel
	fShape   = 's' // length, script mix, repetition
)

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// fnvMix folds the bytes of s into an FNV-1a hash.
func fnvMix(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// textHash is the FNV-1a hash of a text. A token's is computed once, at segmentation; the
// hashes of its features derive from it without reading the text again.
func textHash(s string) uint64 { return fnvMix(fnvOffset, s) }

// mix64 is a 64-bit finalizer (MurmurHash3's fmix64): every input bit reaches every output bit.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// featureOf is the feature hash of a text hash under a prefix.
func featureOf(prefix byte, th uint64) uint64 { return mix64(th ^ uint64(prefix)*0x9E3779B97F4A7C15) }

// hashFeature is the feature hash of a text under a prefix.
func hashFeature(prefix byte, s string) uint64 { return featureOf(prefix, textHash(s)) }

// pairOf is the feature hash of two text hashes in order, as one feature.
func pairOf(prefix byte, a, b uint64) uint64 { return featureOf(prefix, mix64(a)^b) }

// Message is the input the engine analyses: the parts of an envelope that matter for triage.
type Message struct {
	Title, Body, Channel string
}

// analysed is a message with everything the classifiers, the screen, dedup and explanations need.
type analysed struct {
	title, body Analysis
	features    []uint64 // sorted, unique feature hashes
	// words are the distinct content words with their feature hash, for keywords and dedup.
	words []wordRef
	cues  []cueHit
	// Reused buffers.
	seen  hashSet
	set   []uint64
	ranks []uint64
	rows  []int32 // model rows of words
	vec   sparse
}

type wordRef struct {
	text  string
	kind  TokenKind
	hash  uint64 // hash of the word feature
	dhash uint32 // hash of the literal token, for IDF and dedup
}

// dedupHash is the hash de-duplication and IDF know a token by, from its text hash.
func dedupHash(th uint64) uint32 { return uint32(featureOf('d', th)) &^ placeBit }

// placeBit marks, in dedup sketches, the tokens that name a place (an address, road or
// numbered place); IDF look-ups mask it off.
const placeBit = 1 << 31

type cueHit struct {
	phrase, label string
}

// wordFeature is the text hash of a token's feature text: the token itself, or its
// placeholder.
func wordFeature(t Token) uint64 {
	if int(t.Kind) < len(placeholderHashes) && placeholderHashes[t.Kind] != 0 {
		return placeholderHashes[t.Kind]
	}
	return t.h
}

// placeholderHashes are the text hashes of the placeholders, by token kind.
var placeholderHashes = func() (out [KindPunct + 1]uint64) {
	for k, p := range placeholders {
		if p != "" {
			out[k] = textHash(p)
		}
	}
	out[KindPlace] = textHash("<PLACE>")
	return out
}()

// extract builds the feature set of a message.
func (a *Analyzer) extract(m Message) *analysed {
	x := &analysed{}
	a.extractInto(x, m)
	return x
}

// scratchPool recycles analysed messages on the triage hot path: their slices keep their
// capacity from one message to the next.
var scratchPool = sync.Pool{New: func() any { return new(analysed) }}

// extractInto builds the feature set of a message into x, reusing x's buffers.
func (a *Analyzer) extractInto(x *analysed, m Message) {
	x.title = a.analyzeInto(x.title.Tokens[:0], m.Title)
	x.body = a.analyzeInto(x.body.Tokens[:0], m.Body)
	x.words, x.cues = x.words[:0], x.cues[:0]
	feats := x.features[:0]
	x.seen = resetHashSet(x.seen, len(x.title.Tokens)+len(x.body.Tokens))
	seen := x.seen
	addTokens := func(toks []Token, title bool) {
		var prev uint64
		havePrev := false
		for _, t := range toks {
			if t.Kind == KindPunct {
				havePrev = false
				continue
			}
			wf := wordFeature(t)
			h := featureOf(fWord, wf)
			feats = append(feats, h)
			if title {
				feats = append(feats, featureOf(fTitle, wf))
			}
			if havePrev {
				feats = append(feats, pairOf(fBigram, prev, wf))
			}
			prev, havePrev = wf, true
			lex := &a.lexTab[t.lex]
			if lex.cues != nil {
				for _, l := range lex.cues {
					feats = append(feats, hashFeature(fCue, l))
					x.cues = append(x.cues, cueHit{t.Text, l})
				}
			}
			if dh := dedupHash(t.h); seen.add(dh) && !lex.stop {
				x.words = append(x.words, wordRef{text: t.Text, kind: t.Kind, hash: h, dhash: dh})
			}
		}
	}
	addTokens(x.title.Tokens, true)
	addTokens(x.body.Tokens, false)
	if m.Channel != "" {
		feats = append(feats, hashFeature(fChannel, m.Channel))
	}
	feats = append(feats, shapeFeatures(x)...)
	// Features are binary: each counts once however often it occurs.
	x.features, x.set = uniqueFeatures(feats, x.set)
}

// shapeFeatures describe the form of a message: length, script mix and repetition, which
// separate spam, gibberish and tests from real requests.
func shapeFeatures(x *analysed) []uint64 {
	runes := x.title.Runes + x.body.Runes
	cjk := x.title.CJK + x.body.CJK
	out := []uint64{hashFeature(fShape, "bias")}
	lenLabel := "len>=600"
	for _, b := range [...]int{6, 15, 40, 70, 200, 600} {
		if runes < b {
			lenLabel = fmt.Sprintf("len<%d", b)
			break
		}
	}
	out = append(out, hashFeature(fShape, lenLabel))
	if runes > 0 {
		r := float64(cjk) / float64(runes)
		for _, b := range [...]string{"0.2", "0.5", "0.8"} {
			if limit, _ := strconv.ParseFloat(b, 64); r < limit {
				out = append(out, hashFeature(fShape, "cjk<"+b))
				break
			}
		}
	} else {
		out = append(out, hashFeature(fShape, "empty"))
	}
	if d := distinctRatio(x.body.Norm); d < 0.35 && x.body.Runes >= 6 {
		out = append(out, hashFeature(fShape, "repetitive"))
	}
	if x.title.Runes == 0 {
		out = append(out, hashFeature(fShape, "notitle"))
	}
	return out
}

// distinctRatio is the share of distinct runes among the first 200 runes of s.
func distinctRatio(s string) float64 {
	var seen [256]uint8
	distinct, n := 0, 0
	for _, r := range s {
		if n == 200 {
			break
		}
		n++
		i := uint32(r) * 2654435761 >> 24
		if seen[i] == 0 {
			distinct++
		}
		seen[i] = 1
	}
	if n == 0 {
		return 1
	}
	return float64(distinct) / float64(n)
}

// sparse is a feature vector over model rows: each present feature weighs its IDF, and the
// vector has unit length.
type sparse struct {
	rows []int32
	vals []float32
}

func (m *Model) vectorize(feats []uint64) sparse {
	return m.vectorizeInto(sparse{rows: make([]int32, 0, len(feats)), vals: make([]float32, 0, len(feats))}, feats)
}

// vectorizeInto is vectorize reusing x's memory.
func (m *Model) vectorizeInto(x sparse, feats []uint64) sparse {
	x.rows, x.vals = x.rows[:0], x.vals[:0]
	var norm float64
	for _, h := range feats {
		r := m.vocab.get(h)
		if r < 0 {
			continue
		}
		var w float32
		if m.packed != nil {
			w = m.packed[int(r)*m.stride+m.offset[numTasks]] // the IDF, beside the weights
		} else {
			w = m.FeatureIDF[r] // training, before the weights exist
		}
		x.rows = append(x.rows, r)
		x.vals = append(x.vals, w)
		norm += float64(w * w)
	}
	if norm > 0 {
		inv := float32(1 / math.Sqrt(norm))
		for i := range x.vals {
			x.vals[i] *= inv
		}
	}
	return x
}

// hashSet is a small open-addressing set of non-zero 32-bit hashes.
type hashSet []uint32

// resetHashSet empties s for n entries, reusing its memory when it is large enough.
func resetHashSet(s hashSet, n int) hashSet {
	size := 16
	for size < 2*n {
		size *= 2
	}
	if cap(s) < size {
		return make(hashSet, size)
	}
	s = s[:size]
	clear(s)
	return s
}

// add inserts h and reports whether it was new.
func (s hashSet) add(h uint32) bool {
	if h == 0 {
		h = 1
	}
	mask := uint32(len(s) - 1)
	for i := (h * 2654435761) & mask; ; i = (i + 1) & mask {
		switch s[i] {
		case 0:
			s[i] = h
			return true
		case h:
			return false
		}
	}
}

// uniqueFeatures removes repeated hashes in place, keeping first occurrences (a hash set is
// cheaper than sorting on the hot path).
func uniqueFeatures(feats, set []uint64) ([]uint64, []uint64) {
	size := 64
	for size < 2*len(feats) {
		size *= 2
	}
	if cap(set) < size {
		set = make([]uint64, size)
	}
	set = set[:size]
	clear(set)
	mask := uint64(size - 1)
	out := feats[:0]
	for _, h := range feats {
		if h == 0 {
			h = 1
		}
		for j := (h * 0x9E3779B97F4A7C15) >> 40 & mask; ; j = (j + 1) & mask {
			if set[j] == 0 {
				set[j] = h
				out = append(out, h)
				break
			}
			if set[j] == h {
				break
			}
		}
	}
	return out, set
}
