// Package classifier owns minsheng's triage engine: segmentation, screening (初筛), type / track /
// area classification, de-duplication and explanations. It has no Kafka and no HTTP.
package classifier

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/minsheng-project/minsheng/internal/envelope"
)

// MaxInputBytes is the largest title plus body the engine triages; larger input gets an error
// result.
const MaxInputBytes = 1 << 20

// Options tune an Engine.
type Options struct {
	// ReviewThreshold: a result whose type, track or area confidence is below it needs review. Default 0.6.
	ReviewThreshold float64
	// DedupWindow: how far back a message can be a duplicate of another. Default 30 days.
	DedupWindow time.Duration
	// ModelPath: a model file written by `minsheng train`; empty uses the model built into the binary.
	ModelPath string
	// Dedup overrides the de-duplication parameters (zero: DefaultDedupParams, with DedupWindow).
	Dedup DedupParams
}

// Engine triages envelopes. Triage is safe for concurrent use; concurrent calls are
// de-duplicated against each other in the order they reach the index.
type Engine struct {
	opts  Options
	an    *Analyzer
	model *Model
	dedup *Deduper
}

var (
	analyzerOnce sync.Once
	analyzer     *Analyzer
	analyzerErr  error
)

// SharedAnalyzer returns the process-wide Analyzer, loading the dictionaries on first use.
func SharedAnalyzer() (*Analyzer, error) {
	analyzerOnce.Do(func() { analyzer, analyzerErr = NewAnalyzer() })
	return analyzer, analyzerErr
}

// New loads the dictionaries and the model and returns a ready Engine. The dictionaries load in
// parallel with the model.
func New(opts Options) (*Engine, error) {
	if opts.ReviewThreshold == 0 {
		opts.ReviewThreshold = 0.6
	}
	if opts.DedupWindow == 0 {
		opts.DedupWindow = 30 * 24 * time.Hour
	}
	if opts.Dedup.Threshold == 0 {
		opts.Dedup = DefaultDedupParams
	}
	opts.Dedup.Window = opts.DedupWindow
	var (
		an    *Analyzer
		anErr error
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		an, anErr = SharedAnalyzer()
	}()
	model, err := LoadModel(opts.ModelPath)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if anErr != nil {
		return nil, fmt.Errorf("loading dictionaries: %w", anErr)
	}
	return NewWithModel(an, model, opts), nil
}

// NewWithModel builds an Engine from loaded parts.
func NewWithModel(an *Analyzer, model *Model, opts Options) *Engine {
	if opts.ReviewThreshold == 0 {
		opts.ReviewThreshold = 0.6
	}
	if opts.Dedup.Threshold == 0 {
		opts.Dedup = DefaultDedupParams
	}
	if opts.DedupWindow != 0 {
		opts.Dedup.Window = opts.DedupWindow
	}
	e := &Engine{opts: opts, an: an, model: model}
	e.dedup = NewDeduper(opts.Dedup, model.IDF)
	return e
}

// Fresh returns an engine that shares e's dictionaries and model but has an empty dedup index.
func (e *Engine) Fresh() *Engine { return NewWithModel(e.an, e.model, e.opts) }

// ModelVersion names the loaded model.
func (e *Engine) ModelVersion() string { return e.model.Version }

// Analyzer returns the engine's analyzer.
func (e *Engine) Analyzer() *Analyzer { return e.an }

// Errors of input the engine refuses.
var (
	ErrTooLarge    = errors.New("消息过大 / message larger than 1 MiB")
	ErrInvalidUTF8 = errors.New("文本不是有效的 UTF-8 / text is not valid UTF-8")
	ErrBinary      = errors.New("文本含二进制控制字符 / text contains binary data")
)

// checkInput refuses input the engine cannot read as text.
func checkInput(title, body string) error {
	if len(title)+len(body) > MaxInputBytes {
		return ErrTooLarge
	}
	if !utf8.ValidString(title) || !utf8.ValidString(body) {
		return ErrInvalidUTF8
	}
	ctl := 0
	for i := 0; i < len(body); i++ {
		if c := body[i]; c < 0x20 && c != '\n' && c != '\r' && c != '\t' {
			ctl++
		}
	}
	if ctl > 8 && ctl*20 > len(body) {
		return ErrBinary
	}
	return nil
}

// Triage screens, de-duplicates and classifies one envelope and records it in the dedup index.
// Input that is not text gets a result with Error set; it never panics on any input.
func (e *Engine) Triage(env *envelope.Envelope) envelope.Result {
	res := envelope.Result{ID: env.ID, CaseID: env.ID, Model: e.model.Version, TriagedAt: time.Now().UTC(), Envelope: env,
		Keywords: []string{}, Reasons: []string{}}
	if err := checkInput(env.Title, env.Body); err != nil {
		res.Error = err.Error()
		res.Reasons = append(res.Reasons, "无法分析："+err.Error())
		res.NeedsReview = true
		return res
	}
	x := scratchPool.Get().(*analysed)
	defer scratchPool.Put(x)
	e.an.extractInto(x, Message{Title: env.Title, Body: env.Body, Channel: env.Channel})
	e.classify(x, &res)
	if res.Valid {
		at := env.ReceivedAt
		if at.IsZero() {
			at = res.TriagedAt
		}
		sig := e.signatureOf(x, env.Sender.Key())
		caseID, m := e.dedup.Observe(env.ID, at, sig)
		res.CaseID = caseID
		if m != nil {
			res.DuplicateOf = m.ID
			res.Similarity = m.Similarity
			why := fmt.Sprintf("与消息 %s 高度相似（相似度 %.2f），判为重复，并入案件 %s", m.ID, m.Similarity, m.CaseID)
			if m.SameSender {
				why = fmt.Sprintf("同一发件人再次反映，与消息 %s 内容相近（相似度 %.2f），判为重复，并入案件 %s", m.ID, m.Similarity, m.CaseID)
			}
			res.Reasons = append(res.Reasons, why)
		}
	}
	return res
}

// Remember records an already triaged result in the dedup index without classifying it again
// (used to rebuild the index from minsheng.triaged after a restart). Invalid, failed and
// envelope-less results are ignored.
func (e *Engine) Remember(res *envelope.Result) {
	if res.Envelope == nil || !res.Valid || res.Error != "" {
		return
	}
	env := res.Envelope
	if checkInput(env.Title, env.Body) != nil {
		return
	}
	x := e.an.extract(Message{Title: env.Title, Body: env.Body, Channel: env.Channel})
	at := env.ReceivedAt
	if at.IsZero() {
		at = res.TriagedAt
	}
	caseID := res.CaseID
	if caseID == "" {
		caseID = res.ID
	}
	e.dedup.mu.Lock()
	defer e.dedup.mu.Unlock()
	e.dedup.add(res.ID, caseID, at, e.signatureOf(x, env.Sender.Key()))
}

// SaveIndex writes a snapshot of the dedup index.
func (e *Engine) SaveIndex(w io.Writer) error { return e.dedup.Save(w) }

// LoadIndex replaces the dedup index with a snapshot written by SaveIndex.
func (e *Engine) LoadIndex(r io.Reader) error { return e.dedup.Load(r) }

// IndexSize is the number of messages in the dedup index.
func (e *Engine) IndexSize() int { return e.dedup.Len() }

// signatureOf builds the dedup signature of an analysed message.
func (e *Engine) signatureOf(x *analysed, sender string) *signature {
	sig := &signature{}
	if sender != "" {
		sig.sender = uint32(hashFeature('u', sender)) | 1
	}
	// Exact: the body's tokens without punctuation, so spacing and punctuation changes match.
	h := uint64(fnvOffset)
	n := 0
	for _, t := range x.body.Tokens {
		if t.Kind == KindPunct {
			continue
		}
		n++
		h = fnvMix(h, t.Text)
	}
	if n > 0 {
		sig.exact = h
	}
	ranks := x.ranks[:0]
	for _, w := range x.words {
		if w.kind == KindNumber && len(w.text) < 3 || w.kind == KindURL {
			continue
		}
		if w.kind == KindWord && utf8.RuneCountInString(w.text) < 2 {
			continue
		}
		h := w.dhash
		if w.kind == KindPlace && !CoarsePlace(w.text) {
			h |= placeBit
		}
		ranks = append(ranks, rankKey(h, e.model.IDF(h)))
	}
	// Keep the rarest tokens; the anchors are the rarest of those.
	if len(ranks) > sketchMax {
		selectSmallest(ranks, sketchMax)
		ranks = ranks[:sketchMax]
	}
	slices.Sort(ranks)
	ranks = slices.Compact(ranks)
	sig.anchors = anchorsOfRanked(ranks)
	// The sketch is in hash order: re-key by hash and sort again.
	for i, k := range ranks {
		ranks[i] = k<<32 | k>>32
	}
	slices.Sort(ranks)
	sig.sketch = make([]uint32, len(ranks))
	sig.weights = make([]float32, len(ranks))
	for i, k := range ranks {
		h, w := unrank(k<<32 | k>>32)
		sig.sketch[i], sig.weights[i] = h, w
		sig.total += float64(w)
	}
	x.ranks = ranks
	sig.countPlaces()
	return sig
}

// classify fills validity, labels, confidences, keywords and reasons.
func (e *Engine) classify(x *analysed, res *envelope.Result) {
	m := e.model
	x.vec = m.vectorizeInto(x.vec, x.features)
	v := x.vec
	var probs [numTasks][]float64
	m.scores(v, &probs)
	pInvalid := probs[TaskValidity][1]
	rows := e.wordRows(x)
	x.rows = rows
	if why := screenRule(x); why != "" {
		res.Valid = false
		res.Reasons = append(res.Reasons, "初筛：无效——"+why)
		return
	}
	if pInvalid >= m.InvalidThreshold {
		res.Valid = false
		res.Reasons = append(res.Reasons, fmt.Sprintf("初筛：无效（无效概率 %.2f ≥ 阈值 %.2f）%s", pInvalid, m.InvalidThreshold, e.cueNote(x, "invalid:", "")))
		res.Keywords = e.keywords(x, rows, TaskValidity, 1, 5)
		res.NeedsReview = pInvalid < m.InvalidThreshold+0.15
		return
	}
	res.Valid = true
	res.Reasons = append(res.Reasons, "初筛：有效诉求（无效概率 "+fixed2(pInvalid)+"）")
	if pInvalid > m.InvalidThreshold*0.6 {
		res.NeedsReview = true
		res.Reasons = append(res.Reasons, "初筛结果接近阈值，建议人工复核")
	}
	var kw []string
	for _, t := range []Task{TaskType, TaskTrack, TaskArea} {
		l := m.Tasks[t]
		p := probs[t]
		best := 0
		for c := range p {
			if p[c] > p[best] {
				best = c
			}
		}
		label, conf := l.Labels[best], round3(p[best])
		words := e.keywords(x, rows, t, best, 3)
		kw = append(kw, words...)
		var name, cue string
		switch t {
		case TaskType:
			res.Type, res.Confidence.Type = label, conf
			name = "类型：" + envelope.TypeNames[label]
			cue = e.cueNote(x, "type:"+label, "")
		case TaskTrack:
			res.Track, res.Confidence.Track = label, conf
			name = "办理渠道：" + envelope.TrackNames[label]
			cue = e.cueNote(x, "track:"+label, "")
		case TaskArea:
			res.Area, res.Confidence.Area = label, conf
			name = "领域：" + label
		}
		why := name + "（置信度 " + fixed2(conf) + "）"
		if len(words) > 0 {
			why += "，依据「" + strings.Join(words, "」「") + "」"
		}
		why += cue
		if conf < e.opts.ReviewThreshold {
			res.NeedsReview = true
			second := 0
			for c := range p {
				if c != best && (second == best || p[c] > p[second]) {
					second = c
				}
			}
			why += fmt.Sprintf("；置信度低于 %.2f，亦可能为「%s」", e.opts.ReviewThreshold, displayLabel(t, l.Labels[second]))
		}
		res.Reasons = append(res.Reasons, why)
	}
	res.Keywords = uniqueStrings(kw, 8)
}

func displayLabel(t Task, label string) string {
	switch t {
	case TaskType:
		return envelope.TypeNames[label]
	case TaskTrack:
		return envelope.TrackNames[label]
	}
	return label
}

func round3(f float64) float64 { return float64(int(f*1000+0.5)) / 1000 }

// cueNote quotes the cue phrases of the message that carry a label (prefix match).
func (e *Engine) cueNote(x *analysed, label, _ string) string {
	var hits []string
	for _, c := range x.cues {
		if strings.HasPrefix(c.label, label) {
			hits = append(hits, c.phrase)
		}
	}
	hits = uniqueStrings(hits, 4)
	if len(hits) == 0 {
		return ""
	}
	return "；出现提示用语「" + strings.Join(hits, "」「") + "」"
}

// wordRows returns the model row of each of the message's words (-1 when it has none or is not
// a keyword candidate).
func (e *Engine) wordRows(x *analysed) []int32 {
	rows := slices.Grow(x.rows[:0], len(x.words))[:len(x.words)]
	for i, w := range x.words {
		rows[i] = -1
		if w.kind == KindWord && len(w.text) > 3 { // two or more CJK runes, or a longer word
			rows[i] = e.model.vocab.get(w.hash)
		}
	}
	return rows
}

// keywords returns the message's words that pushed hardest towards class c of task t: the
// largest weights of the class over the mean of the task's classes.
func (e *Engine) keywords(x *analysed, rows []int32, t Task, c int, n int) []string {
	m := e.model
	type kv struct {
		w string
		s float32
	}
	var buf [8]kv
	top := buf[:0]
	if n+1 > len(buf) {
		top = make([]kv, 0, n+1)
	}
	for i, r := range rows {
		if r < 0 {
			continue
		}
		s := m.weight(r, t, c) // centred: for c over the other classes
		if s <= 0 || len(top) == n && s <= top[n-1].s {
			continue
		}
		// Insert in order; ties keep the earlier word.
		j := len(top)
		top = append(top, kv{})
		for j > 0 && top[j-1].s < s {
			top[j] = top[j-1]
			j--
		}
		top[j] = kv{x.words[i].text, s}
		if len(top) > n {
			top = top[:n]
		}
	}
	out := make([]string, len(top))
	for i := range top {
		out[i] = top[i].w
	}
	return out
}

func uniqueStrings(in []string, n int) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
		if len(out) == n {
			break
		}
	}
	return out
}

// screenRule applies the high-precision screening rules that need no model: nothing to read,
// test messages and bare symbols. It returns the reason, or "" when the model decides.
func screenRule(x *analysed) string {
	content := 0
	for _, toks := range [][]Token{x.title.Tokens, x.body.Tokens} {
		for _, t := range toks {
			if t.Kind != KindPunct {
				content++
			}
		}
	}
	switch {
	case content == 0:
		return "正文为空或只有标点符号"
	case x.title.CJK+x.body.CJK == 0 && x.title.Letters+x.body.Letters == 0:
		return "只有数字或符号，没有文字"
	case content > 4:
		return ""
	}
	var b strings.Builder
	for _, toks := range [][]Token{x.title.Tokens, x.body.Tokens} {
		for _, t := range toks {
			if t.Kind != KindPunct {
				b.WriteString(t.Text)
			}
		}
	}
	if s := b.String(); testMessages[s] {
		return "测试消息「" + s + "」"
	}
	return ""
}

var testMessages = map[string]bool{
	"测试": true, "测试一下": true, "测试测试": true, "test": true, "testing": true, "test123": true, "ceshi": true,
	"你好": true, "您好": true, "在吗": true, "hello": true, "hi": true,
}

// fixed2 formats a probability with two decimals, as the reasons show it.
func fixed2(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) }
