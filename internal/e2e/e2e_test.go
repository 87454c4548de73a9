// Package e2e holds the end-to-end tests: they build the real minsheng binary, run `serve` on the
// embedded broker, and talk to it as clients do — HTTP in, kafka-go and kcat out.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/minsheng-project/minsheng/internal/bus"
	"github.com/minsheng-project/minsheng/internal/envelope"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds cmd/minsheng once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "minsheng-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "minsheng")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/minsheng-project/minsheng/cmd/minsheng").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// server is one `minsheng serve` process and the addresses it uses.
type server struct {
	t       *testing.T
	dir     string // working and data directory
	http    string
	kafka   string
	cmd     *exec.Cmd
	log     *os.File
	exited  chan struct{}
	exitErr error
}

func newServer(t *testing.T) *server {
	dir := t.TempDir()
	return &server{t: t, dir: dir, http: freeAddr(t), kafka: freeAddr(t)}
}

// start runs serve and waits until /readyz says ready.
func (s *server) start() {
	s.t.Helper()
	log, err := os.OpenFile(filepath.Join(s.dir, "serve.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	s.log = log
	s.cmd = exec.Command(binary(s.t), "serve", "-listen", s.http, "-embedded-kafka", s.kafka, "-data-dir", filepath.Join(s.dir, "data"))
	s.cmd.Dir = s.dir // no minsheng.yaml here: built-in defaults
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.exited = make(chan struct{})
	go func() { s.exitErr = s.cmd.Wait(); close(s.exited) }()
	s.t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			s.cmd.Process.Kill()
			<-s.exited
		}
	})
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-s.exited:
			s.t.Fatalf("serve exited before it was ready: %v\n%s", s.exitErr, s.logText())
		default:
		}
		resp, err := http.Get("http://" + s.http + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("serve not ready after 90s\n%s", s.logText())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *server) logText() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "serve.log"))
	return string(b)
}

// stop sends sig and waits for the process to exit.
func (s *server) stop(sig syscall.Signal) error {
	s.t.Helper()
	s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
	case <-time.After(60 * time.Second):
		s.t.Fatalf("serve did not exit within 60s of %v", sig)
	}
	s.log.Close()
	return s.exitErr
}

type answer struct {
	status int
	IDs    []string `json:"ids"`
	Error  string   `json:"error"`
	Fields []struct {
		Index  int    `json:"index"`
		Field  string `json:"field"`
		Reason string `json:"reason"`
	} `json:"fields"`
}

func (s *server) post(body []byte) (answer, error) {
	resp, err := http.Post("http://"+s.http+"/v1/messages", "application/json", bytes.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	var a answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return answer{}, fmt.Errorf("answer %d is not JSON: %v", resp.StatusCode, err)
	}
	a.status = resp.StatusCode
	return a, nil
}

func (s *server) mustPost(body string, want int) answer {
	s.t.Helper()
	a, err := s.post([]byte(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if a.status != want {
		s.t.Fatalf("POST %s: status %d (%s %v), want %d", body, a.status, a.Error, a.Fields, want)
	}
	return a
}

// read returns every record of topic, read with kafka-go.
func (s *server) read(topic string) []kafka.Message {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	var out []kafka.Message
	if _, err := bus.Replay(ctx, []string{s.kafka}, topic, nil, func(m kafka.Message) error {
		mu.Lock()
		out = append(out, m)
		mu.Unlock()
		return nil
	}); err != nil {
		s.t.Fatal(err)
	}
	return out
}

// results waits until minsheng.triaged holds a result for every id and returns them by id.
func (s *server) results(ids ...string) map[string]envelope.Result {
	s.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		out := map[string]envelope.Result{}
		for _, m := range s.read("minsheng.triaged") {
			var r envelope.Result
			if err := json.Unmarshal(m.Value, &r); err != nil {
				s.t.Fatalf("minsheng.triaged holds a non-result: %v", err)
			}
			out[r.ID] = r
		}
		missing := 0
		for _, id := range ids {
			if _, ok := out[id]; !ok {
				missing++
			}
		}
		if missing == 0 {
			return out
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%d of %d ids never reached minsheng.triaged\n%s", missing, len(ids), s.logText())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kcatRecord is one record as kcat prints it.
type kcatRecord struct {
	key     string
	headers map[string]string
	value   string
}

// kcat reads topic with kcat, an independent Kafka client. It fails the test when kcat is not
// installed, unless MINSHENG_SKIP_KCAT=1 (then it returns nil, false).
func (s *server) kcat(topic string) ([]kcatRecord, bool) {
	s.t.Helper()
	path, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("MINSHENG_SKIP_KCAT") == "1" {
			s.t.Logf("kcat not installed; skipping the kcat checks (MINSHENG_SKIP_KCAT=1)")
			return nil, false
		}
		s.t.Fatalf("kcat is not installed: the end-to-end test reads the broker with it. Install it (apt-get install -y kcat) or set MINSHENG_SKIP_KCAT=1 to skip these checks")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-b", s.kafka, "-C", "-t", topic, "-f", "%k\t%h\t%s\n", "-e", "-q")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("kcat: %v\n%s", err, stderr.String())
	}
	var recs []kcatRecord
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), "\t", 3)
		if len(parts) != 3 {
			s.t.Fatalf("kcat printed %q", sc.Text())
		}
		h := map[string]string{}
		for _, kv := range strings.Split(parts[1], ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				h[k] = v
			}
		}
		recs = append(recs, kcatRecord{key: parts[0], headers: h, value: parts[2]})
	}
	return recs, true
}

var ceHeaders = []string{"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type"}

// Messages whose triage the model is sure of (from testdata/corpus/synthetic-tracks.jsonl).
const (
	water = "楼上水管爆了水往我家灌，物业电话打不通，家里只有我和孩子，求助！C区枫林苑3栋"
	fee   = "举报C区新河街道城管中队长向摊贩收保护费，每户每月200，不给就扣三轮车。"
	house = "我家房子在E区棚改范围，前天收到区政府的房屋征收补偿决定书，补偿金额我不认可。请问我现在可以申请行政复议还是直接起诉？期限是多少天？复议期间会不会被强拆？"
	light = "A3区实验小学门口红绿灯坏了一个月，报了四次说已转交警，至今没修，请媒体关注。"
	junk  = "测试"
)

func body(text string, extra ...string) string {
	b, _ := json.Marshal(text)
	return `{"body":` + string(b) + strings.Join(extra, "") + `}`
}

func TestIntegrationServe(t *testing.T) {
	s := newServer(t)
	s.start()

	// Health endpoints.
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/v1/connectors"} {
		resp, err := http.Get("http://" + s.http + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %v %v", path, err, resp)
		}
		resp.Body.Close()
	}

	// Bad input gets its documented status and a reason, and stores nothing.
	bad := []struct {
		name, body string
		status     int
		field      string
	}{
		{"malformed json", `{"body": "垃圾`, 400, ""},
		{"missing body", `{"title":"无正文"}`, 400, "body"},
		{"invalid utf-8", "{\"body\":\"\xff\xfe\"}", 400, "body"},
		{"oversized", body(strings.Repeat("很长的信", 6000)), 413, ""},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			a := s.mustPost(tt.body, tt.status)
			if a.Error == "" {
				t.Errorf("no reason given")
			}
			if tt.field != "" && (len(a.Fields) == 0 || a.Fields[0].Field != tt.field || a.Fields[0].Reason == "") {
				t.Errorf("fields %+v, want a reason for %q", a.Fields, tt.field)
			}
		})
	}

	// Valid messages; the first is from an SMS gateway with its own id.
	ids := map[string]string{}
	ids["water"] = s.mustPost(body(water, `,"channel":"sms","source_id":"gw-1","sender":{"phone":"13800000000"}`), 202).IDs[0]
	ids["fee"] = s.mustPost(body(fee, `,"channel":"mailbox"`), 202).IDs[0]
	ids["house"] = s.mustPost(body(house, `,"channel":"board"`), 202).IDs[0]
	ids["light"] = s.mustPost(body(light, `,"channel":"newspaper"`), 202).IDs[0]
	ids["junk"] = s.mustPost(body(junk), 202).IDs[0]
	if ids["water"] != envelope.StableID("sms", "api", "gw-1") {
		t.Errorf("id %s is not the stable id of (sms, api, gw-1)", ids["water"])
	}
	all := []string{ids["water"], ids["fee"], ids["house"], ids["light"], ids["junk"]}
	s.results(all...)
	// An exact resend of the first message, without the gateway id: a new message, a duplicate.
	ids["resend"] = s.mustPost(body(water), 202).IDs[0]
	res := s.results(append(all, ids["resend"])...)

	wantTrack := map[string]string{"water": "service", "fee": "discipline", "house": "petition", "light": "opinion"}
	for name, track := range wantTrack {
		r := res[ids[name]]
		if !r.Routed() || r.Track != track {
			t.Errorf("%s: routed %v to %q, want %q (%+v)", name, r.Routed(), r.Track, track, r)
		}
	}
	if r := res[ids["junk"]]; r.Valid || r.Routed() {
		t.Errorf("junk is valid: %+v", r)
	}
	dup := res[ids["resend"]]
	if dup.DuplicateOf != ids["water"] || dup.CaseID != ids["water"] || dup.Routed() {
		t.Errorf("resend: duplicate_of %q case %q routed %v; want a duplicate of %s", dup.DuplicateOf, dup.CaseID, dup.Routed(), ids["water"])
	}

	// The track topics, read with kafka-go: the routed results, keyed by case id, with headers;
	// the duplicate and the junk nowhere.
	onTrack := map[string]string{}
	for _, track := range envelope.Tracks {
		for _, m := range s.read("minsheng.track." + track) {
			var r envelope.Result
			json.Unmarshal(m.Value, &r)
			onTrack[r.ID] = track
			if string(m.Key) != r.CaseID {
				t.Errorf("track record key %s, want case id %s", m.Key, r.CaseID)
			}
			for _, h := range ceHeaders {
				if bus.Header(m, h) == "" {
					t.Errorf("track record %s lacks %s", m.Key, h)
				}
			}
			if bus.Header(m, "ce_type") != "minsheng.triage.v1" || bus.Header(m, "ce_specversion") != "1.0" || bus.Header(m, "content-type") != "application/json" {
				t.Errorf("headers %v", m.Headers)
			}
		}
	}
	for name, track := range wantTrack {
		if onTrack[ids[name]] != track {
			t.Errorf("%s on track topic %q, want %q", name, onTrack[ids[name]], track)
		}
	}
	for _, name := range []string{"resend", "junk"} {
		if tr, ok := onTrack[ids[name]]; ok {
			t.Errorf("%s is on minsheng.track.%s", name, tr)
		}
	}
	// Nothing but the six accepted messages reached intake.
	if n := len(s.read("minsheng.intake")); n != 6 {
		t.Errorf("minsheng.intake holds %d records, want 6", n)
	}

	// The same, read by an independent client.
	if recs, ok := s.kcat("minsheng.track.service"); ok {
		seen := map[string]bool{}
		for _, r := range recs {
			for _, h := range ceHeaders {
				if r.headers[h] == "" {
					t.Errorf("kcat: record %s lacks header %s (headers %v)", r.key, h, r.headers)
				}
			}
			if r.headers["ce_source"] != "minsheng/triage" {
				t.Errorf("kcat: ce_source %q", r.headers["ce_source"])
			}
			var res envelope.Result
			if err := json.Unmarshal([]byte(r.value), &res); err != nil {
				t.Fatalf("kcat value: %v", err)
			}
			seen[res.ID] = true
		}
		if !seen[ids["water"]] || seen[ids["resend"]] || len(recs) != 1 {
			t.Errorf("kcat read %d records from minsheng.track.service: %v", len(recs), seen)
		}
		triaged, _ := s.kcat("minsheng.triaged")
		found := false
		for _, r := range triaged {
			var res envelope.Result
			json.Unmarshal([]byte(r.value), &res)
			if res.ID == ids["resend"] && res.DuplicateOf == ids["water"] && r.key == ids["resend"] {
				found = true
			}
		}
		if !found {
			t.Errorf("kcat: the duplicate is not on minsheng.triaged with duplicate_of")
		}

		// Another service can write to the embedded broker too: kcat produces an envelope
		// straight into minsheng.intake, and triage picks it up.
		env := envelope.Envelope{ID: "kcat-1", Channel: "board", Source: "kcat", Body: light, ReceivedAt: time.Now().UTC()}
		line, _ := json.Marshal(env)
		cmd := exec.Command("kcat", "-b", s.kafka, "-P", "-t", "minsheng.intake", "-k", "kcat-1")
		cmd.Stdin = bytes.NewReader(line)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kcat -P: %v\n%s", err, out)
		}
		if r := s.results("kcat-1")["kcat-1"]; r.Envelope == nil || r.Envelope.Source != "kcat" {
			t.Errorf("the record kcat wrote was triaged as %+v", r)
		}
	}

	// Connector status and metrics reflect the traffic.
	resp, err := http.Get("http://" + s.http + "/v1/connectors")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Connectors []struct {
			Name   string
			State  string
			Counts struct{ Accepted, Rejected int }
		}
	}
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if len(st.Connectors) != 1 || st.Connectors[0].Counts.Accepted != 6 || st.Connectors[0].Counts.Rejected != 4 {
		t.Errorf("connector status %+v", st)
	}
	resp, err = http.Get("http://" + s.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`minsheng_messages_total{channel="sms",stage="routed"} 1`, `minsheng_messages_total{channel="api",stage="duplicate"} 1`, "minsheng_triage_duration_seconds_count", "minsheng_consumer_lag"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	if err := s.stop(syscall.SIGTERM); err != nil {
		t.Errorf("serve exited with %v after SIGTERM\n%s", err, s.logText())
	}
	if !strings.Contains(s.logText(), "shutdown complete") {
		t.Errorf("no clean shutdown in the log:\n%s", s.logText())
	}
}

func TestIntegrationCrash(t *testing.T) {
	s := newServer(t)
	s.start()
	first := s.mustPost(body(water), 202).IDs[0]
	s.results(first)

	// A stream of posts from four clients; SIGKILL lands in the middle of it.
	var (
		mu       sync.Mutex
		accepted []string
		wg       sync.WaitGroup
	)
	streets := []string{"中山路", "人民路", "解放路", "建设路", "和平路", "长江路"}
	problems := []string{"路灯不亮，晚上行人容易摔倒", "井盖破损，车辆经过很危险", "人行道被占用，只能走机动车道", "下水道堵塞，雨后积水严重"}
	stop := make(chan struct{})
	for c := 0; c < 4; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				text := fmt.Sprintf("%s%d号附近%s（客户端%d第%d条）", streets[(i+c)%len(streets)], 10*c+i, problems[i%len(problems)], c, i)
				a, err := s.post([]byte(body(text)))
				if err != nil {
					return // the server is gone
				}
				if a.status == 202 {
					mu.Lock()
					accepted = append(accepted, a.IDs...)
					mu.Unlock()
				}
			}
		}(c)
	}
	for {
		mu.Lock()
		n := len(accepted)
		mu.Unlock()
		if n >= 60 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.stop(syscall.SIGKILL)
	close(stop)
	wg.Wait()
	t.Logf("%d messages got 202 before SIGKILL", len(accepted))

	s.start()
	// Every message that got a 202 reaches minsheng.triaged (results fails the test otherwise).
	s.results(append([]string{first}, accepted...)...)
	// A resend after the restart is still a duplicate of the message from before the crash.
	again := s.mustPost(body(water), 202).IDs[0]
	res := s.results(again)
	if r := res[again]; r.DuplicateOf != first {
		t.Errorf("resend after restart: duplicate_of %q, want %s\n%s", r.DuplicateOf, first, s.logText())
	}
	if err := s.stop(syscall.SIGTERM); err != nil {
		t.Errorf("serve exited with %v after SIGTERM", err)
	}
}

// TestIntegrationBadConfig: a configuration error stops serve with one line naming the connector,
// the key and the problem, and a non-zero exit.
func TestIntegrationBadConfig(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"unknown key", "connectors:\n  - name: web\n    type: api\n    max_body: 10\n", "config: connectors[web].max_body: unknown key"},
		{"bad value", "connectors:\n  - name: web\n    type: api\n    max_body_bytes: 0\n", "config: connectors[web].max_body_bytes: bad value 0"},
		{"unset secret", "connectors:\n  - name: wx-main\n    type: wechat\n    token: ${MINSHENG_E2E_UNSET_TOKEN}\n", "config: connectors[wx-main].token: environment variable MINSHENG_E2E_UNSET_TOKEN is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "minsheng.yaml"), []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(binary(t), "serve", "-listen", freeAddr(t), "-embedded-kafka", freeAddr(t))
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("serve started with a bad config")
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tt.want) {
				t.Errorf("output %q, want one line containing %q", out, tt.want)
			}
		})
	}
}
