package classifier

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minsheng-project/minsheng/internal/envelope"
)

var update = flag.Bool("update", false, "rewrite golden files")

var (
	testEngineOnce sync.Once
	testModel      *Model
	testAnalyzer   *Analyzer
	testErr        error
)

// newTestEngine returns an engine with the built-in model and a fresh dedup index.
func newTestEngine(t testing.TB) *Engine {
	t.Helper()
	testEngineOnce.Do(func() {
		testAnalyzer, testErr = SharedAnalyzer()
		if testErr == nil {
			testModel, testErr = LoadModel("")
		}
	})
	if testErr != nil {
		t.Fatal(testErr)
	}
	return NewWithModel(testAnalyzer, testModel, Options{})
}

func TestAnalyzePatterns(t *testing.T) {
	a := newTestEngine(t).Analyzer()
	tests := []struct {
		in   string
		want map[string]TokenKind
	}{
		{"电话13812345678，地址A市A3区人民路128号", map[string]TokenKind{"13812345678": KindPhone, "a市": KindPlace, "a3区": KindPlace, "人民路128号": KindPlace}},
		{"联系电话：138****5678，被拖欠工资3.5万元", map[string]TokenKind{"138****5678": KindPhone, "3.5万元": KindAmount}},
		{"身份证430102199001011234", map[string]TokenKind{"430102199001011234": KindIDNumber}},
		{"免费直播 http://www.example.com/a?b=1 速来", map[string]TokenKind{"http://www.example.com/a?b=1": KindURL}},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got := map[string]TokenKind{}
			for _, tk := range a.Analyze(tc.in).Tokens {
				got[tk.Text] = tk.Kind
			}
			for text, kind := range tc.want {
				if k, ok := got[text]; !ok || k != kind {
					t.Errorf("token %q: got kind %v (present %v), want %v; tokens %v", text, k, ok, kind, a.Analyze(tc.in).Tokens)
				}
			}
		})
	}
}

// TestSegmentMatchesCut checks that the analyzer's offset-based words are exactly gse's Cut
// of the same normalized text, over every message of the corpus.
func TestSegmentMatchesCut(t *testing.T) {
	a := newTestEngine(t).Analyzer()
	files, _ := filepath.Glob("../testdata/corpus/*.jsonl")
	n := 0
	for _, f := range files {
		data, err := ReadCorpus(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range data {
			for _, text := range []string{l.Title, l.Body, "ABC混合Text，１２３ＸＹＺ\x00\xff尾"} {
				norm, _ := a.Normalize(text)
				var got []string
				for _, sg := range a.seg.Segment([]byte(norm)) {
					got = append(got, norm[sg.Start():sg.End()])
				}
				want := a.Segment(norm)
				if strings.Join(got, "|") != strings.Join(want, "|") {
					t.Fatalf("%s: offsets give %q, Cut gives %q", l.ID, got, want)
				}
				n++
			}
		}
	}
	if n < 10000 {
		t.Fatalf("only %d texts compared", n)
	}
}

func TestTraditionalIsNormalized(t *testing.T) {
	a := newTestEngine(t).Analyzer()
	an := a.Analyze("關於小區噪音擾民問題，請儘快處理")
	if !an.Traditional {
		t.Error("Traditional input not detected")
	}
	if !strings.Contains(an.Norm, "关于小区噪音扰民问题") {
		t.Errorf("not converted to Simplified: %q", an.Norm)
	}
	if a.Analyze("关于小区噪音扰民问题").Traditional {
		t.Error("Simplified input reported as Traditional")
	}
}

func TestTriageBasics(t *testing.T) {
	e := newTestEngine(t)
	tests := []struct {
		name  string
		title string
		body  string
		valid bool
		check func(t *testing.T, r envelope.Result)
	}{
		{"spam", "", "免费视频直播下载，蜘蛛池秒收录，加微信 abc123 http://spam.example.com", false, nil},
		{"test", "", "测试", false, nil},
		{"empty", "", "   ", false, nil},
		{"symbols", "", "1111 ???", false, nil},
		{"noise complaint", "投诉楼下烧烤店噪音扰民", "A市A3区人民路128号楼下烧烤店每天营业到凌晨两点，油烟和噪音严重影响居民休息，多次劝说无果，请相关部门尽快处理。", true,
			func(t *testing.T, r envelope.Result) {
				if r.Type != envelope.TypeComplaint {
					t.Errorf("type %s, want complaint", r.Type)
				}
			}},
		{"corruption tip", "举报村支书贪污低保金", "我实名举报B县某村村支书张某，把村里的低保名额给了自己的亲戚，还虚报冒领扶贫资金十多万元，请纪委彻查。", true,
			func(t *testing.T, r envelope.Result) {
				if r.Track != envelope.TrackDiscipline {
					t.Errorf("track %s, want discipline", r.Track)
				}
				if r.Type != envelope.TypeTipoff {
					t.Errorf("type %s, want tipoff", r.Type)
				}
			}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := &envelope.Envelope{ID: "t" + string(rune('a'+i)), Channel: "api", Title: tc.title, Body: tc.body, ReceivedAt: time.Now()}
			r := e.Triage(env)
			if r.Error != "" {
				t.Fatalf("error %s", r.Error)
			}
			if r.Valid != tc.valid {
				t.Fatalf("valid %v, want %v; reasons %v", r.Valid, tc.valid, r.Reasons)
			}
			if len(r.Reasons) == 0 {
				t.Error("no reasons")
			}
			if r.Valid {
				if r.Type == "" || r.Track == "" || r.Area == "" {
					t.Errorf("missing labels: %+v", r)
				}
				if r.Confidence.Type <= 0 || r.Confidence.Type > 1 || r.Confidence.Track <= 0 || r.Confidence.Area <= 0 {
					t.Errorf("confidence out of range: %+v", r.Confidence)
				}
				if len(r.Keywords) == 0 {
					t.Error("no keywords")
				}
			} else if r.Type != "" || r.Track != "" || r.Area != "" {
				t.Errorf("invalid result carries labels: %+v", r)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func TestTriageRefusesBadInput(t *testing.T) {
	e := newTestEngine(t)
	tests := []struct {
		name string
		body string
		want error
	}{
		{"huge", strings.Repeat("噪音扰民", MaxInputBytes/12+1), ErrTooLarge},
		{"invalid utf-8", "投诉\xff\xfe噪音", ErrInvalidUTF8},
		{"binary", string([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 14, 15, 16, 17, 0, 0, 0, 0, 0}), ErrBinary},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.Triage(&envelope.Envelope{ID: "x", Body: tc.body})
			if r.Error != tc.want.Error() {
				t.Errorf("error %q, want %q", r.Error, tc.want)
			}
		})
	}
}

func TestDedup(t *testing.T) {
	e := newTestEngine(t)
	base := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	long := "尊敬的领导：A市A3区望月湖街道枫林小区3栋后面的下水道堵塞已经两个月了，污水漫到路面，臭气熏天，蚊虫滋生，居民出行困难。我们多次向物业反映，物业说不归他们管，社区也没有回音。恳请有关部门尽快派人疏通下水道。"
	msgs := []struct {
		id, body, sender string
		at               time.Duration
		dupOf            string
	}{
		{"m1", long, "13800000001", 0, ""},
		{"m2", "投诉：B区人民路公交站台的顶棚被大风吹坏了一个多月，下雨天候车的市民都淋雨，请公交公司尽快修复。", "13800000002", time.Hour, ""},
		{"m3", "  " + strings.ReplaceAll(long, "，", ",") + "  ", "13800000003", 2 * time.Hour, "m1"}, // resend, punctuation changed
		{"m4", "尊敬的領導：A市A3區望月湖街道楓林小區3棟後面的下水道堵塞已經兩個月了，污水漫到路面，臭氣熏天，蚊蟲滋生，居民出行困難。我們多次向物業反映，物業說不歸他們管，社區也沒有回音。懇請有關部門儘快派人疏通下水道。", "", 3 * time.Hour, "m1"}, // Traditional
		{"m5", "A市A3区望月湖街道枫林小区3栋的业主反映，小区物业费从每平米1.2元涨到2元，没有开业主大会，要求物业公示收费依据。", "13800000005", 4 * time.Hour, ""},                                     // same compound, different problem
		{"m6", long, "13800000001", 40 * 24 * time.Hour, ""}, // outside the 30-day window
	}
	for _, m := range msgs {
		r := e.Triage(&envelope.Envelope{ID: m.id, Channel: "board", Body: m.body, Sender: envelope.Sender{Phone: m.sender}, ReceivedAt: base.Add(m.at)})
		if !r.Valid {
			t.Fatalf("%s screened out: %v", m.id, r.Reasons)
		}
		if (r.DuplicateOf == "") != (m.dupOf == "") {
			t.Errorf("%s: duplicate_of %q (similarity %.3f), want %q", m.id, r.DuplicateOf, r.Similarity, m.dupOf)
		}
		if m.dupOf != "" && r.CaseID != "m1" {
			t.Errorf("%s: case_id %q, want m1", m.id, r.CaseID)
		}
		if m.dupOf == "" && r.CaseID != m.id {
			t.Errorf("%s: case_id %q, want its own id", m.id, r.CaseID)
		}
	}

	// The index survives a save and load: a resend is still recognised.
	var buf bytes.Buffer
	if err := e.SaveIndex(&buf); err != nil {
		t.Fatal(err)
	}
	e2 := newTestEngine(t)
	if err := e2.LoadIndex(&buf); err != nil {
		t.Fatal(err)
	}
	if e2.IndexSize() != e.IndexSize() {
		t.Fatalf("restored index has %d messages, want %d", e2.IndexSize(), e.IndexSize())
	}
	r := e2.Triage(&envelope.Envelope{ID: "m7", Body: long, ReceivedAt: base.Add(41 * 24 * time.Hour)})
	if r.DuplicateOf != "m6" || r.CaseID != "m6" {
		t.Errorf("after restore: duplicate_of %q case %q, want m6", r.DuplicateOf, r.CaseID)
	}
	if err := e2.LoadIndex(strings.NewReader("garbage")); err == nil {
		t.Error("loading garbage succeeded")
	}
}

func TestRememberRebuildsIndex(t *testing.T) {
	e := newTestEngine(t)
	env := &envelope.Envelope{ID: "a1", Body: "A市B区建设路与解放路交叉口的红绿灯坏了三天，早晚高峰车辆乱成一团，请交警部门尽快修复。", ReceivedAt: time.Now()}
	first := e.Triage(env)
	fresh := newTestEngine(t)
	fresh.Remember(&first)
	r := fresh.Triage(&envelope.Envelope{ID: "a2", Body: env.Body, ReceivedAt: time.Now()})
	if r.DuplicateOf != "a1" {
		t.Errorf("duplicate_of %q, want a1", r.DuplicateOf)
	}
}

// TestGolden triages testdata/golden/input.jsonl as one stream and compares the decisions with
// testdata/golden/results.jsonl (run with -update after retraining the model).
func TestGolden(t *testing.T) {
	e := newTestEngine(t)
	in, err := os.ReadFile("../testdata/golden/input.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := ClassifyStream(e, bytes.NewReader(in), &out, MaxInputBytes+1024); err != nil {
		t.Fatal(err)
	}
	type decision struct {
		ID          string `json:"id"`
		CaseID      string `json:"case_id"`
		Valid       bool   `json:"valid"`
		Type        string `json:"type"`
		Track       string `json:"track"`
		Area        string `json:"area"`
		DuplicateOf string `json:"duplicate_of"`
		NeedsReview bool   `json:"needs_review"`
		Error       string `json:"error,omitempty"`
	}
	var got []decision
	for _, line := range bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n")) {
		var d decision
		if err := json.Unmarshal(line, &d); err != nil {
			t.Fatalf("result line %q: %v", line, err)
		}
		got = append(got, d)
	}
	inLines := bytes.Count(bytes.TrimSpace(in), []byte("\n")) + 1
	if len(got) != inLines {
		t.Fatalf("%d results for %d input lines", len(got), inLines)
	}
	golden := filepath.Join("..", "testdata", "golden", "results.jsonl")
	if *update {
		var b bytes.Buffer
		for _, d := range got {
			line, _ := json.Marshal(d)
			b.Write(line)
			b.WriteByte('\n')
		}
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	wl := bytes.Split(bytes.TrimSpace(want), []byte("\n"))
	if len(wl) != len(got) {
		t.Fatalf("golden has %d results, got %d", len(wl), len(got))
	}
	for i := range got {
		var w decision
		if err := json.Unmarshal(wl[i], &w); err != nil {
			t.Fatal(err)
		}
		if w != got[i] {
			t.Errorf("line %d:\n got  %+v\n want %+v", i+1, got[i], w)
		}
	}
}

// TestConcurrentTriage triages from several goroutines at once (run with -race): every message
// gets a result, and the resends of one request all join one case.
func TestConcurrentTriage(t *testing.T) {
	e := newTestEngine(t)
	body := "A市C区枫林苑3栋楼顶水箱漏水一个月了，楼道墙面长满霉斑，物业一直推说没钱修，请住建部门督促物业维修。"
	first := e.Triage(&envelope.Envelope{ID: "c0", Body: body, ReceivedAt: time.Now()})
	var wg sync.WaitGroup
	results := make([]envelope.Result, 16)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i] = e.Triage(&envelope.Envelope{ID: "c" + string(rune('a'+i)), Body: body, ReceivedAt: time.Now()})
		}(i)
	}
	wg.Wait()
	for _, r := range results {
		if r.CaseID != first.ID || r.DuplicateOf == "" {
			t.Errorf("%s: case %q duplicate_of %q, want case %s", r.ID, r.CaseID, r.DuplicateOf, first.ID)
		}
	}
	var buf bytes.Buffer
	if err := e.SaveIndex(&buf); err != nil {
		t.Fatal(err)
	}
	if e.IndexSize() != 17 {
		t.Errorf("index holds %d messages, want 17", e.IndexSize())
	}
}

func TestPairedBench(t *testing.T) {
	e := newTestEngine(t)
	data := []Labelled{
		{ID: "a", Title: "小区噪音扰民", Body: "楼下烧烤店每天营业到凌晨两点，油烟和噪音严重影响休息，请城管处理。"},
		{ID: "b", Body: "请问灵活就业人员怎么缴纳养老保险？"},
		{ID: "c", Body: "楼下烧烤店每天营业到凌晨两点，油烟和噪音严重影响休息，请城管处理。"},
	}
	p := PairedBench(e, data, 2)
	if p.Messages != 6 || p.Segment <= 0 || p.Triage <= 0 || p.Ratio() <= 0 {
		t.Fatalf("PairedBench gave %+v", p)
	}
	if e.IndexSize() != 0 {
		t.Errorf("PairedBench wrote %d messages into the engine's own index", e.IndexSize())
	}
}
