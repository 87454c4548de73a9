package classifier

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"time"
)

// Dedup tuning. The figures were chosen on testdata/dedup and the corpus (see README).
const (
	// sketchMax is the most tokens kept per message: its rarest ones, by IDF.
	sketchMax = 40
	// anchorMax is how many of a message's rarest tokens are indexed for candidate lookup.
	anchorMax = 8
	// postingMax bounds one token's posting list; the oldest half is dropped past it.
	postingMax = 512
	// commonPosting: an anchor with this many recent messages is too common to look up.
	commonPosting = postingMax / 2
	// maxCandidates bounds the messages scored per lookup.
	maxCandidates = 128
	// minAnchorIDFShare: tokens whose IDF is under this share of the message's rarest token's
	// never serve as anchors.
	minAnchorIDFShare = 0.45
)

// DedupParams decide when two messages are the same request.
type DedupParams struct {
	// Threshold on the similarity score (0..1) at and above which a message is a duplicate.
	Threshold float64
	// SenderBonus is added to the score when both messages come from the same sender and their
	// similarity is at least SenderFloor (a grid worker's reports share a sender, not a problem).
	SenderBonus, SenderFloor float64
	// Window is how far apart in time two duplicates can be.
	Window time.Duration
	// ContainWeight weighs containment against Dice in the similarity.
	ContainWeight float64
	// PlacePenalty multiplies the similarity of messages naming different places.
	PlacePenalty float64
}

// DefaultDedupParams are the tuned defaults.
var DefaultDedupParams = DedupParams{Threshold: 0.80, SenderBonus: 0.50, SenderFloor: 0.35, Window: 30 * 24 * time.Hour, ContainWeight: 0.5, PlacePenalty: 0.4}

// signature is what the index keeps of a message.
type signature struct {
	exact  uint64
	sender uint32
	sketch []uint32 // distinct token hashes, sorted ascending
	// places counts the place tokens in the sketch.
	places int
	// weights are the sketch tokens' IDF, aligned with sketch; total is their sum.
	weights []float32
	total   float64
	// anchors are the rarest sketch tokens, indexed for candidate lookup.
	anchors []uint32
}

// Match is a duplicate found in the index.
type Match struct {
	ID, CaseID string
	Similarity float64
	SameSender bool
}

// Deduper is the near-duplicate index: exact hashes of the normalized text, plus an inverted
// index over each message's rarest tokens that finds candidates, scored by IDF-weighted
// overlap. Memory is bounded by the window and by postingMax; see Stats. It is safe for
// concurrent use.
type Deduper struct {
	mu     sync.Mutex
	params DedupParams
	idf    func(uint32) float32

	// Per-document columns, indexed by doc number - base.
	ids     []string
	cases   []string
	times   []int64
	senders []uint32
	exacts  []uint64
	skOff   []uint32
	skLen   []uint8
	totals  []float32 // the sketch's summed IDF
	arena   []uint32  // sketches back to back
	base    int       // doc number of ids[0]

	exact    map[uint64]int32 // exact hash → newest doc number - base
	postings map[uint32][]int32
	latest   int64 // newest message time seen (unix seconds)
}

// NewDeduper returns an empty index that weighs tokens with idf.
func NewDeduper(params DedupParams, idf func(uint32) float32) *Deduper {
	d := &Deduper{params: params, idf: idf}
	d.reset()
	return d
}

func (d *Deduper) reset() {
	d.ids, d.cases, d.times, d.senders, d.exacts, d.skOff, d.skLen, d.totals, d.arena = nil, nil, nil, nil, nil, nil, nil, nil, nil
	d.base = 0
	d.exact = map[uint64]int32{}
	d.postings = map[uint32][]int32{}
}

// Len is the number of messages in the index.
func (d *Deduper) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.ids)
}

func (d *Deduper) sketchOf(i int) []uint32 {
	return d.arena[d.skOff[i] : d.skOff[i]+uint32(d.skLen[i])]
}

// Observe looks for an earlier duplicate of a message and then records the message. It returns
// the case the message belongs to (its own id when it is new) and the match, if any.
func (d *Deduper) Observe(id string, at time.Time, sig *signature) (caseID string, m *Match) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m = d.find(id, at, sig)
	caseID = id
	if m != nil {
		caseID = m.CaseID
	}
	d.add(id, caseID, at, sig)
	return caseID, m
}

// find returns the best earlier duplicate of sig within the window, or nil.
func (d *Deduper) find(id string, at time.Time, sig *signature) *Match {
	now := at.Unix()
	minTime := now - int64(d.params.Window/time.Second)
	var best *Match
	bestScore := 0.0
	// consider keeps the candidate with the best decision score; the match reports the content
	// similarity alone, so a same-sender bonus never shows as text similarity.
	consider := func(i int, score, sim float64, sameSender bool) {
		if d.ids[i] == id || d.times[i] < minTime || d.times[i] > now+int64(d.params.Window/time.Second) {
			return
		}
		if best == nil || score > bestScore {
			best, bestScore = &Match{ID: d.ids[i], CaseID: d.cases[i], Similarity: sim, SameSender: sameSender}, score
		}
	}
	if i, ok := d.exact[sig.exact]; ok && sig.exact != 0 {
		consider(int(i), 1, 1, sig.sender != 0 && d.senders[i] == sig.sender)
		if best != nil {
			return best
		}
	}
	// Candidates: earlier messages sharing an anchor token, newest first, at most maxCandidates.
	var seenBuf [maxCandidates]int32
	seen := seenBuf[:0] // the candidates scored so far (at most maxCandidates)
	scored := 0
	for _, a := range sig.anchors {
		p := d.postings[a]
		// A token in hundreds of recent messages names nothing in particular (the trained IDF
		// did not know it was common): it is skipped as long as another anchor is left.
		if len(p) >= commonPosting && len(sig.anchors) > 1 {
			continue
		}
		for k := len(p) - 1; k >= 0 && scored < maxCandidates; k-- {
			i := p[k] - int32(d.base)
			if i < 0 || slices.Contains(seen, i) {
				continue
			}
			seen = append(seen, i)
			scored++
			sameSender := sig.sender != 0 && d.senders[i] == sig.sender
			sim := d.similarity(sig, d.sketchOf(int(i)), float64(d.totals[i]))
			score := sim
			if sameSender && sim >= d.params.SenderFloor {
				score += d.params.SenderBonus
			}
			if score >= d.params.Threshold {
				consider(int(i), score, min(sim, 1), sameSender)
			}
		}
	}
	if best != nil {
		best.Similarity = float64(int(best.Similarity*1000+0.5)) / 1000
	}
	return best
}

// similarity scores two token sketches: the mean of the IDF-weighted containment of the lighter
// one in the heavier one (a shortened SMS of a letter scores high) and their weighted Dice
// coefficient (a different problem on the same street scores low).
// b is an indexed sketch and wb its summed IDF; a shared token weighs its IDF, which a's
// weights hold.
func (d *Deduper) similarity(a *signature, b []uint32, wb float64) float64 {
	var inter float64
	wa := a.total
	i := 0
	placesB, shared := 0, 0
	for _, h := range b {
		if h&placeBit != 0 {
			placesB++
		}
		for i < len(a.sketch) && a.sketch[i] < h {
			i++
		}
		if i < len(a.sketch) && a.sketch[i] == h {
			inter += float64(a.weights[i])
			if h&placeBit != 0 {
				shared++
			}
		}
	}
	if wa == 0 || wb == 0 {
		return 0
	}
	contain := inter / min(wa, wb)
	dice := 2 * inter / (wa + wb)
	sim := d.params.ContainWeight*contain + (1-d.params.ContainWeight)*dice
	// Two messages that both name places but share none are about different places, however
	// alike their wording (the same template at another address).
	if placesB > 0 && a.places > 0 && shared == 0 {
		sim *= d.params.PlacePenalty
	}
	return sim
}

func (d *Deduper) add(id, caseID string, at time.Time, sig *signature) {
	n := len(d.ids)
	d.ids = append(d.ids, id)
	if caseID == id {
		caseID = id // share the string
	}
	d.cases = append(d.cases, caseID)
	d.times = append(d.times, at.Unix())
	d.senders = append(d.senders, sig.sender)
	d.exacts = append(d.exacts, sig.exact)
	d.skOff = append(d.skOff, uint32(len(d.arena)))
	d.skLen = append(d.skLen, uint8(len(sig.sketch)))
	d.totals = append(d.totals, float32(sig.total))
	d.arena = append(d.arena, sig.sketch...)
	doc := int32(n + d.base)
	if sig.exact != 0 {
		d.exact[sig.exact] = int32(n)
	}
	for _, a := range sig.anchors {
		p := append(d.postings[a], doc)
		if len(p) > postingMax {
			p = append(p[:0:0], p[len(p)/2:]...)
		}
		d.postings[a] = p
	}
	if at.Unix() > d.latest {
		d.latest = at.Unix()
		d.maybeCompact()
	}
}

// maybeCompact drops messages older than the window once they are half the index.
func (d *Deduper) maybeCompact() {
	if len(d.ids) < 1024 {
		return
	}
	minTime := d.latest - int64(d.params.Window/time.Second)
	old := 0
	for old < len(d.times) && d.times[old] < minTime {
		old++
	}
	if old < len(d.ids)/2 {
		return
	}
	keep := make([]int, 0, len(d.ids)-old)
	for i := old; i < len(d.ids); i++ {
		keep = append(keep, i)
	}
	d.rebuild(keep)
}

// rebuild keeps only the given documents (in order) and rebuilds the lookup tables.
func (d *Deduper) rebuild(keep []int) {
	ids, cases, times, senders, exacts := d.ids, d.cases, d.times, d.senders, d.exacts
	sketches := make([][]uint32, len(keep))
	for k, i := range keep {
		sketches[k] = slices.Clone(d.sketchOf(i))
	}
	newBase := d.base + len(d.ids)
	d.reset()
	d.base = newBase
	for k, i := range keep {
		sig := &signature{exact: exacts[i], sender: senders[i], sketch: sketches[k]}
		sig.weigh(d.idf)
		d.add(ids[i], cases[i], time.Unix(times[i], 0), sig)
	}
}

// weigh fills in what a signature derives from its sketch: the tokens' IDF, their sum, the
// anchors and the place count.
func (s *signature) weigh(idf func(uint32) float32) {
	s.weights = make([]float32, len(s.sketch))
	ranks := make([]uint64, len(s.sketch))
	s.total = 0
	for i, h := range s.sketch {
		w := idf(h)
		s.weights[i], ranks[i] = w, rankKey(h, w)
		s.total += float64(w)
	}
	slices.Sort(ranks)
	s.anchors = anchorsOfRanked(ranks)
	s.countPlaces()
}

// rankKey orders tokens rarest first, ties by hash, so every choice made from the order is
// stable: sorted ascending, the keys of positive IDFs run from the highest IDF down.
func rankKey(h uint32, w float32) uint64 { return uint64(^math.Float32bits(w))<<32 | uint64(h) }

// unrank returns the token and IDF of a rank key.
func unrank(k uint64) (h uint32, w float32) { return uint32(k), math.Float32frombits(^uint32(k >> 32)) }

// anchorsOfRanked picks the anchors from sorted, distinct rank keys.
func anchorsOfRanked(ranks []uint64) []uint32 {
	var out []uint32
	var top float32
	for i, k := range ranks {
		h, w := unrank(k)
		if i == 0 {
			top = w
		}
		if len(out) == anchorMax || w < top*minAnchorIDFShare {
			break
		}
		out = append(out, h)
	}
	return out
}

const snapshotMagic = "minsheng-dedup-v1\n"

// Save writes the index: one record per message, oldest first.
func (d *Deduper) Save(w io.Writer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	bw := bufio.NewWriterSize(w, 1<<16)
	bw.WriteString(snapshotMagic)
	var buf [binary.MaxVarintLen64]byte
	putU := func(v uint64) { bw.Write(buf[:binary.PutUvarint(buf[:], v)]) }
	putS := func(s string) { putU(uint64(len(s))); bw.WriteString(s) }
	putU(uint64(len(d.ids)))
	for i := range d.ids {
		putS(d.ids[i])
		if d.cases[i] == d.ids[i] {
			putS("")
		} else {
			putS(d.cases[i])
		}
		putU(uint64(d.times[i]))
		putU(uint64(d.senders[i]))
		binary.Write(bw, binary.LittleEndian, d.exacts[i])
		sk := d.sketchOf(i)
		putU(uint64(len(sk)))
		for _, h := range sk {
			putU(uint64(h))
		}
	}
	return bw.Flush()
}

// ErrBadSnapshot is returned by Load for data that is not a dedup snapshot.
var ErrBadSnapshot = errors.New("not a minsheng dedup snapshot")

// Load replaces the index with a snapshot written by Save.
func (d *Deduper) Load(r io.Reader) error {
	br := bufio.NewReaderSize(r, 1<<16)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != snapshotMagic {
		return ErrBadSnapshot
	}
	getS := func() (string, error) {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return "", err
		}
		if n > 1<<16 {
			return "", ErrBadSnapshot
		}
		b := make([]byte, n)
		_, err = io.ReadFull(br, b)
		return string(b), err
	}
	count, err := binary.ReadUvarint(br)
	if err != nil {
		return fmt.Errorf("reading dedup snapshot: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reset()
	for k := uint64(0); k < count; k++ {
		id, err := getS()
		if err != nil {
			return fmt.Errorf("reading dedup snapshot: %w", err)
		}
		caseID, err := getS()
		if err != nil {
			return fmt.Errorf("reading dedup snapshot: %w", err)
		}
		if caseID == "" {
			caseID = id
		}
		t, err1 := binary.ReadUvarint(br)
		sender, err2 := binary.ReadUvarint(br)
		var exact uint64
		err3 := binary.Read(br, binary.LittleEndian, &exact)
		n, err4 := binary.ReadUvarint(br)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return fmt.Errorf("reading dedup snapshot: %w", err)
		}
		if n > sketchMax {
			return ErrBadSnapshot
		}
		sig := &signature{exact: exact, sender: uint32(sender), sketch: make([]uint32, n)}
		for j := range sig.sketch {
			h, err := binary.ReadUvarint(br)
			if err != nil {
				return fmt.Errorf("reading dedup snapshot: %w", err)
			}
			sig.sketch[j] = uint32(h)
		}
		sig.weigh(d.idf)
		d.add(id, caseID, time.Unix(int64(t), 0), sig)
	}
	return nil
}

func (s *signature) countPlaces() {
	s.places = 0
	for _, h := range s.sketch {
		if h&placeBit != 0 {
			s.places++
		}
	}
}

// selectSmallest reorders v so that its k smallest values come first, in no particular order
// (quickselect, median-of-three pivots): the sketch needs the rarest tokens, not all of them
// sorted.
func selectSmallest(v []uint64, k int) {
	lo, hi := 0, len(v)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		// Median of three to v[hi].
		if v[mid] < v[lo] {
			v[mid], v[lo] = v[lo], v[mid]
		}
		if v[hi] < v[lo] {
			v[hi], v[lo] = v[lo], v[hi]
		}
		if v[mid] < v[hi] {
			v[mid], v[hi] = v[hi], v[mid]
		}
		pivot := v[hi]
		p := lo
		for i := lo; i < hi; i++ {
			if v[i] < pivot {
				v[i], v[p] = v[p], v[i]
				p++
			}
		}
		v[p], v[hi] = v[hi], v[p]
		switch {
		case p == k || p == k-1:
			return
		case p < k:
			lo = p + 1
		default:
			hi = p - 1
		}
	}
}
