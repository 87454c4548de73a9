package classifier

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/go-ego/gse"
	"github.com/longbridgeapp/opencc"

	"github.com/minsheng-project/minsheng/dictionaries"
)

// TokenKind says what a token is: a plain word or one of the patterns kept whole.
type TokenKind uint8

// Token kinds.
const (
	KindWord TokenKind = iota
	KindNumber
	KindPhone
	KindIDNumber
	KindAmount
	KindPlace // an address, road or numbered place ("人民路128号", "a3区")
	KindURL
	KindPunct
)

// placeholders stand for the value of a pattern token in classification features, so that
// "13812345678" and "139****0000" weigh the same.
var placeholders = [...]string{KindNumber: "<NUM>", KindPhone: "<PHONE>", KindIDNumber: "<IDNO>", KindAmount: "<AMOUNT>", KindURL: "<URL>"}

// Token is one segment of an analysed text.
type Token struct {
	Text string
	Kind TokenKind
	lex  int32  // index of the token's entry in the analyzer's lexicon; 0 for none
	h    uint64 // textHash(Text): every feature and dedup hash of the token derives from it
}

// Analysis is a message after normalization and segmentation.
type Analysis struct {
	// Norm is the text in Simplified Chinese, width-folded and lower-cased.
	Norm string
	// Traditional reports whether the input held Traditional characters that were converted.
	Traditional bool
	Tokens      []Token
	// Runes, CJK and Letters count the characters of Norm.
	Runes, CJK, Letters, Digits int
}

// Analyzer normalizes and segments text. It is safe for concurrent use once built.
type Analyzer struct {
	seg       gse.Segmenter
	t2s       *opencc.OpenCC
	tradRunes []uint64 // bitset over the CJK Unified Ideographs block: runes t2s changes
	// The lexicon: stop words, cue phrases and pattern suffixes, looked up once per gse word.
	lexIdx  map[string]int32 // while loading
	lexTab  []lexEntry       // lexTab[0] is the empty entry
	lexHash lexTable         // look-up by the token's text hash, built once loaded
	// placeEnds marks the runes (of the Basic Multilingual Plane) that end a road or
	// administrative suffix, so most words fail isPlaceWord without a look-up.
	placeEnds [1024]uint64
}

const cjkFirst, cjkLast = 0x4E00, 0x9FFF

// NewAnalyzer loads gse's embedded Simplified dictionary plus the project dictionaries.
func NewAnalyzer() (*Analyzer, error) {
	a := &Analyzer{lexIdx: map[string]int32{}, lexTab: []lexEntry{{}}}
	var wg sync.WaitGroup
	var ccErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		ccErr = a.loadConverter()
	}()
	err := a.loadSegmenter()
	a.lexHash = newLexTable(a.lexIdx)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if ccErr != nil {
		return nil, fmt.Errorf("loading Traditional-to-Simplified converter: %w", ccErr)
	}
	return a, nil
}

func (a *Analyzer) loadConverter() error {
	cc, err := opencc.New("t2s")
	if err != nil {
		return err
	}
	a.t2s = cc
	// Learn which ideographs the converter changes, so Simplified text (nearly all traffic)
	// skips the comparatively slow conversion.
	a.tradRunes = make([]uint64, (cjkLast-cjkFirst)/64+1)
	var b strings.Builder
	for r := rune(cjkFirst); r <= cjkLast; r++ {
		b.Reset()
		b.WriteRune(r)
		out, err := cc.Convert(b.String())
		if err != nil {
			return err
		}
		if out != b.String() {
			i := r - cjkFirst
			a.tradRunes[i/64] |= 1 << (i % 64)
		}
	}
	return nil
}

func (a *Analyzer) loadSegmenter() error {
	a.seg.SkipLog = true
	a.seg.NotLoadHMM = true // the HMM is for Cut(text, true), which nothing here uses
	a.seg.Dict = gse.NewDict()
	a.seg.Init()
	// Project words first; the embedded dictionary's LoadDictStr then computes the token
	// distances once for all of them.
	addWord := func(w string, freq float64, pos string) {
		a.seg.Dict.AddToken(a.seg.ToToken(w, freq, pos))
	}
	if err := eachLine("userwords.txt", func(f []string) error {
		if len(f) < 2 {
			return fmt.Errorf("want word and frequency")
		}
		freq, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return err
		}
		pos := ""
		if len(f) > 2 {
			pos = f[2]
		}
		addWord(strings.ToLower(f[0]), freq, pos)
		return nil
	}); err != nil {
		return err
	}
	if err := eachLine("cues.txt", func(f []string) error {
		if len(f) != 2 {
			return fmt.Errorf("want phrase<TAB>label")
		}
		p := strings.ToLower(f[0])
		e := a.entry(p)
		e.cues = append(e.cues, f[1])
		addWord(p, 1000, "cue")
		return nil
	}); err != nil {
		return err
	}
	if err := eachLine("stopwords.txt", func(f []string) error {
		a.entry(f[0]).stop = true
		return nil
	}); err != nil {
		return err
	}
	if err := eachLine("patterns.txt", func(f []string) error {
		if len(f) != 2 {
			return fmt.Errorf("want kind<TAB>suffix")
		}
		k, ok := suffixKinds[f[0]]
		if !ok {
			return fmt.Errorf("unknown pattern kind %q", f[0])
		}
		a.entry(f[1]).suffix = k
		if r, _ := utf8.DecodeLastRuneInString(f[1]); (k == sufRoad || k == sufAdmin) && r < 0x10000 {
			a.placeEnds[r/64] |= 1 << (r % 64)
		}
		return nil
	}); err != nil {
		return err
	}
	return a.seg.LoadDictEmbed("zh_s")
}

// entry returns the lexicon entry of w, adding an empty one if there is none.
func (a *Analyzer) entry(w string) *lexEntry {
	i, ok := a.lexIdx[w]
	if !ok {
		i = int32(len(a.lexTab))
		a.lexIdx[w] = i
		a.lexTab = append(a.lexTab, lexEntry{word: w})
	}
	return &a.lexTab[i]
}

// lookup returns the lexicon index of w, whose text hash is h (0 when the dictionaries say
// nothing of it).
func (a *Analyzer) lookup(w string, h uint64) int32 {
	if i := a.lexHash.get(h); i > 0 && a.lexTab[i].word == w {
		return i
	}
	return 0
}

// lexTable maps text hashes to lexicon indexes: open addressing, at most half full.
type lexTable struct {
	hashes []uint64
	idx    []int32
}

func newLexTable(words map[string]int32) lexTable {
	size := 16
	for size < 2*len(words) {
		size *= 2
	}
	t := lexTable{hashes: make([]uint64, size), idx: make([]int32, size)}
	for w, i := range words {
		h := textHash(w)
		j := mix64(h) & uint64(size-1)
		for t.idx[j] != 0 {
			j = (j + 1) & uint64(size-1)
		}
		t.hashes[j], t.idx[j] = h, i
	}
	return t
}

// get returns the index stored under h, or 0.
func (t *lexTable) get(h uint64) int32 {
	mask := uint64(len(t.hashes) - 1)
	for j := mix64(h) & mask; ; j = (j + 1) & mask {
		if t.idx[j] == 0 || t.hashes[j] == h {
			return t.idx[j]
		}
	}
}

// eachLine calls fn with the tab- or space-separated fields of each non-comment line of a
// dictionary file.
func eachLine(name string, fn func([]string) error) error {
	f, err := dictionaries.FS.Open(name)
	if err != nil {
		return fmt.Errorf("opening dictionary %s: %w", name, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var fields []string
		if strings.Contains(line, "\t") {
			fields = strings.Split(line, "\t")
		} else {
			fields = strings.Fields(line)
		}
		if err := fn(fields); err != nil {
			return fmt.Errorf("dictionary %s line %d: %w", name, n, err)
		}
	}
	return sc.Err()
}

// isTrad reports whether r is a character the converter would change.
func (a *Analyzer) isTrad(r rune) bool {
	if r < cjkFirst || r > cjkLast {
		return false
	}
	i := r - cjkFirst
	return a.tradRunes[i/64]&(1<<(i%64)) != 0
}

// Normalize folds width and case and converts Traditional characters to Simplified.
func (a *Analyzer) Normalize(s string) (norm string, traditional bool) {
	if a.count(&Analysis{Norm: s}, true) {
		return s, false // the common case: nothing to change, no copy
	}
	return a.normalize(s)
}

// normalize is Normalize of a text known to need it.
func (a *Analyzer) normalize(s string) (norm string, traditional bool) {
	var b strings.Builder
	b.Grow(len(s))
	trad := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf { // ASCII: fold case, blank out controls
			switch {
			case 'A' <= c && c <= 'Z':
				c += 'a' - 'A'
			case c < ' ' && c != '\n' || c == 0x7f:
				c = ' '
			}
			b.WriteByte(c)
			i++
			continue
		}
		r, size := decodeRune(s, i)
		switch {
		case r == utf8.RuneError: // invalid bytes and U+FFFD are dropped
		case r >= 0xFF01 && r <= 0xFF5E: // full-width ASCII
			r -= 0xFEE0
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
			b.WriteByte(byte(r))
		case r == 0x3000:
			b.WriteByte(' ')
		case r < 0xA0: // C1 controls
			b.WriteByte(' ')
		default:
			if a.isTrad(r) {
				trad++
			}
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	norm = b.String()
	// A few variant characters turn up in Simplified text too (著, 乾 …); convert only text in
	// which Traditional characters are not rare.
	if trad > 0 && trad*50 >= utf8.RuneCountInString(norm)/2 {
		if out, err := a.t2s.Convert(norm); err == nil {
			norm = out
		}
	}
	return norm, trad > 0 && trad*50 >= utf8.RuneCountInString(norm)/2
}

// decodeRune is utf8.DecodeRuneInString(s[i:]) with the common case of Chinese text, a
// three-byte sequence, decoded inline.
func decodeRune(s string, i int) (rune, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	} else if c&0xF0 == 0xE0 && i+2 < len(s) && s[i+1]&0xC0 == 0x80 && s[i+2]&0xC0 == 0x80 {
		if r := rune(c&0x0F)<<12 | rune(s[i+1]&0x3F)<<6 | rune(s[i+2]&0x3F); r >= 0x800 && (r < 0xD800 || r > 0xDFFF) {
			return r, 3
		}
	}
	return utf8.DecodeRuneInString(s[i:])
}

// Analyze normalizes and segments a text.
func (a *Analyzer) Analyze(s string) Analysis { return a.analyzeInto(nil, s) }

// analyzeInto is Analyze appending the tokens to toks.
func (a *Analyzer) analyzeInto(toks []Token, s string) Analysis {
	an := Analysis{Norm: s}
	if !a.count(&an, true) { // one pass for the common case: nothing to normalize
		norm, trad := a.normalize(s)
		an = Analysis{Norm: norm, Traditional: trad}
		a.count(&an, false)
	}
	an.Tokens = a.tokenize(an.Norm, toks)
	return an
}

// count counts the characters of an.Norm. With check, it stops and reports false at the first
// character Normalize would change.
func (a *Analyzer) count(an *Analysis, check bool) bool {
	s := an.Norm
	for i := 0; i < len(s); {
		r, size := decodeRune(s, i)
		i += size
		switch {
		case r >= cjkFirst && r <= cjkLast:
			if check && a.isTrad(r) {
				return false
			}
			an.CJK++
		case 'a' <= r && r <= 'z':
			an.Letters++
		case '0' <= r && r <= '9':
			an.Digits++
		case r < utf8.RuneSelf:
			if check && ('A' <= r && r <= 'Z' || r < ' ' && r != '\n' || r == 0x7f) {
				return false
			}
		case check && (r == utf8.RuneError || r >= 0xFF01 && r <= 0xFF5E || r == 0x3000 || r < 0xA0):
			return false
		}
		an.Runes++
	}
	return true
}

// tokenize splits out URLs, segments the rest with gse and merges pattern tokens.
func (a *Analyzer) tokenize(s string, out []Token) []Token {
	for len(s) > 0 {
		i := urlStart(s)
		if i < 0 {
			return a.segment(s, out)
		}
		out = a.segment(s[:i], out)
		j := i
		for j < len(s) && s[j] > ' ' && s[j] < utf8.RuneSelf {
			j++
		}
		out = append(out, Token{Text: s[i:j], Kind: KindURL, h: textHash(s[i:j])})
		s = s[j:]
	}
	return out
}

func urlStart(s string) int {
	best := -1
	for _, p := range [...]string{"http://", "https://", "www."} {
		if i := strings.Index(s, p); i >= 0 && (best < 0 || i < best) {
			best = i
		}
	}
	return best
}

func (a *Analyzer) segment(s string, out []Token) []Token {
	if s == "" {
		return out
	}
	start := len(out)
	// Segment gives byte offsets into s, so each word is a substring of s: Cut would join each
	// word's characters into a new string. s is lower-cased already, as Cut's words are.
	for _, sg := range a.seg.Segment([]byte(s)) {
		w := s[sg.Start():sg.End()]
		if w == "" || w[0] <= ' ' && strings.TrimSpace(w) == "" {
			continue
		}
		h := textHash(w)
		out = append(out, Token{Text: w, Kind: classify(w), lex: a.lookup(w, h), h: h})
	}
	return a.mergePatterns(out, start)
}

// classify gives the kind of a raw gse segment.
func classify(w string) TokenKind {
	r, _ := utf8.DecodeRuneInString(w)
	switch {
	case r >= cjkFirst && r <= cjkLast:
		return KindWord // the common case, without the Unicode table look-ups
	case r >= 0x3000 && r <= 0x303F, r >= 0xFF01 && r <= 0xFF0F, r >= 0xFF1A && r <= 0xFF20, r >= 0x2010 && r <= 0x2027:
		return KindPunct // CJK and general punctuation
	}
	if unicode.IsPunct(r) || unicode.IsSymbol(r) {
		if w == "*" || strings.Trim(w, "*") == "" {
			return KindNumber // masking stars glue into numbers
		}
		return KindPunct
	}
	if isDigits(w) {
		return KindNumber
	}
	return KindWord
}

func isDigits(w string) bool {
	if w == "" {
		return false
	}
	for i := 0; i < len(w); i++ {
		if (w[i] < '0' || w[i] > '9') && w[i] != '*' && w[i] != '.' && w[i] != 'x' {
			return false
		}
	}
	return true
}

func isASCIIAlnum(w string) bool {
	for i := 0; i < len(w); i++ {
		c := w[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c == '-') {
			return false
		}
	}
	return w != ""
}

// mergePatterns glues number runs into phones, id numbers and amounts, and names or codes with
// place suffixes into single place tokens.
func (a *Analyzer) mergePatterns(toks []Token, start int) []Token {
	w := start
	for i := start; i < len(toks); i++ {
		t := toks[i]
		// Numbers with masking stars, dashes or dots: "138", "****", "5678" → one number.
		if t.Kind == KindNumber {
			j := i + 1
			text := t.Text
			for j < len(toks) && (toks[j].Kind == KindNumber || (toks[j].Text == "-" || toks[j].Text == ".") && j+1 < len(toks) && toks[j+1].Kind == KindNumber) {
				text += toks[j].Text
				j++
			}
			if j > i+1 {
				t = a.joined(text, numberKind(text))
			} else {
				t.Kind = numberKind(text)
			}
			i = j - 1
			if t.Kind == KindNumber && i+1 < len(toks) {
				switch a.lexTab[toks[i+1].lex].suffix {
				case sufAmount:
					t = a.joined(t.Text+toks[i+1].Text, KindAmount)
					i++
				case sufNumber, sufAdmin:
					t = a.joined(t.Text+toks[i+1].Text, KindPlace)
					i++
				}
			}
		} else if t.Kind == KindWord && i+1 < len(toks) {
			next := toks[i+1]
			switch a.lexTab[next.lex].suffix {
			case sufAdmin:
				if isASCIIAlnum(t.Text) { // anonymised "a 市", "a3 区"
					t = a.joined(t.Text+next.Text, KindPlace)
					i++
				}
			case sufRoad:
				if utf8.RuneCountInString(t.Text) >= 2 && !a.lexTab[t.lex].stop {
					t = a.joined(t.Text+next.Text, KindPlace)
					i++
				}
			}
		}
		// A dictionary word that already ends in a road or place suffix: "德雅路", "雨花新村".
		if t.Kind == KindWord && a.isPlaceWord(t.Text) {
			t.Kind = KindPlace
		}
		// A place followed by a house number: "人民路" "128号".
		if t.Kind == KindPlace && w > start && toks[w-1].Kind == KindPlace && strings.HasSuffix(t.Text, "号") {
			toks[w-1] = a.joined(toks[w-1].Text+t.Text, KindPlace)
			continue
		}
		toks[w] = t
		w++
	}
	return toks[:w]
}

// isPlaceWord reports whether a word of three or more runes ends in a road or place suffix.
func (a *Analyzer) isPlaceWord(w string) bool {
	last, n1 := utf8.DecodeLastRuneInString(w)
	if last >= 0x10000 || a.placeEnds[last/64]&(1<<(last%64)) == 0 {
		return false
	}
	runes := utf8.RuneCountInString(w)
	if runes < 3 {
		return false
	}
	if s := w[len(w)-n1:]; a.lexTab[a.lookup(s, textHash(s))].suffix == sufRoad {
		return true
	}
	if runes < 4 {
		return false
	}
	_, n2 := utf8.DecodeLastRuneInString(w[:len(w)-n1])
	s := w[len(w)-n1-n2:]
	k := a.lexTab[a.lookup(s, textHash(s))].suffix
	return k == sufRoad || k == sufAdmin
}

// joined is a token made of merged segments, with its own lexicon entry.
func (a *Analyzer) joined(text string, kind TokenKind) Token {
	h := textHash(text)
	return Token{Text: text, Kind: kind, lex: a.lookup(text, h), h: h}
}

// CoarsePlace reports whether a place token names a whole province, city, district or county,
// which many unrelated messages share.
func CoarsePlace(w string) bool {
	r, _ := utf8.DecodeLastRuneInString(w)
	return r == '省' || r == '市' || r == '区' || r == '县'
}

// numberKind tells phones, id numbers and plain numbers apart.
func numberKind(s string) TokenKind {
	d := strings.ReplaceAll(s, "-", "")
	switch {
	case len(d) == 11 && d[0] == '1':
		return KindPhone
	case len(d) >= 11 && len(d) <= 12 && d[0] == '0':
		return KindPhone // landline with area code
	case len(d) == 18 || len(d) == 15:
		return KindIDNumber
	}
	return KindNumber
}

// lexEntry is what the dictionaries say of a token.
type lexEntry struct {
	word   string
	stop   bool
	suffix suffixKind
	cues   []string // labels of the cue phrase
}

// suffixKind says what a pattern suffix (patterns.txt) makes of the token before it.
type suffixKind uint8

const (
	sufNone   suffixKind = iota
	sufAmount            // 元, 万元: a number before it is an amount
	sufNumber            // 号, 栋, 室: a number before it is a numbered place
	sufAdmin             // 市, 区, 县: an administrative area
	sufRoad              // 路, 街, 小区: a road or estate
)

var suffixKinds = map[string]suffixKind{"amount": sufAmount, "number": sufNumber, "admin": sufAdmin, "road": sufRoad}

// Segment is plain gse segmentation of s, the baseline the triage benchmark compares against.
func (a *Analyzer) Segment(s string) []string { return a.seg.Cut(s) }
