package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/minsheng-project/minsheng/connectors/api"
	"github.com/minsheng-project/minsheng/internal/bus"
	"github.com/minsheng-project/minsheng/internal/config"
	"github.com/minsheng-project/minsheng/internal/envelope"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type fixture struct {
	brokers []string
	topics  bus.Topics
	srv     *httptest.Server
	conn    *api.Connector
}

func newFixture(t *testing.T, s *api.Settings) *fixture {
	t.Helper()
	b, err := bus.StartEmbedded("127.0.0.1:0", t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	brokers := []string{b.Addr()}
	topics := bus.NewTopics("")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := bus.NewAdmin(brokers).EnsureTopics(ctx, topics.Specs(envelope.Tracks, 2)); err != nil {
		t.Fatal(err)
	}
	w := bus.NewWriter(brokers)
	t.Cleanup(func() { w.Close() })
	if s == nil {
		s = api.DefaultSettings()
	}
	c := api.New("api", s, w, topics, quiet, nil)
	mux := http.NewServeMux()
	c.Routes(mux)
	mux.Handle("POST /v1/messages", c)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &fixture{brokers: brokers, topics: topics, srv: srv, conn: c}
}

func (f *fixture) post(t *testing.T, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(f.srv.URL+"/v1/messages", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	return resp.StatusCode, out
}

// intake returns every record on minsheng.intake, by key.
func (f *fixture) intake(t *testing.T) map[string]kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	out := map[string]kafka.Message{}
	if _, err := bus.Replay(ctx, f.brokers, f.topics.Intake, nil, func(m kafka.Message) error {
		mu.Lock()
		out[string(m.Key)] = m
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestIntake(t *testing.T) {
	f := newFixture(t, &api.Settings{MaxBodyBytes: 2048, MaxMessages: 3, WriteTimeout: 5 * time.Second})
	big := strings.Repeat("噪", 1000) // 3000 bytes
	tests := []struct {
		name      string
		body      string
		status    int
		ids       int
		wantField string // field named in the first field problem
		wantError string // substring of "error"
	}{
		{"one object", `{"body":"小区门口垃圾堆放三天无人清理","channel":"sms","sender":{"phone":"13800000000"}}`, 202, 1, "", ""},
		{"array", `[{"body":"路灯不亮"},{"title":"建议","body":"增设公交站","received_at":"2024-05-01T08:00:00+08:00"}]`, 202, 2, "", ""},
		{"with source_id", `{"body":"噪音扰民","source_id":"ticket-42"}`, 202, 1, "", ""},
		{"bad json", `{"body": "x"`, 400, 0, "", "not valid JSON"},
		{"not an object", `["just a string"]`, 400, 0, "", "invalid messages"},
		{"empty request", ``, 400, 0, "", "no messages"},
		{"empty array", `[]`, 400, 0, "", "no messages"},
		{"missing body", `{"title":"无正文"}`, 400, 0, "body", ""},
		{"blank body", `{"body":"  \n "}`, 400, 0, "body", ""},
		{"body not a string", `{"body":42}`, 400, 0, "body", ""},
		{"invalid utf-8", "{\"body\":\"\xff\xfe垃圾\"}", 400, 0, "body", ""},
		{"bad channel", `{"body":"x","channel":"fax"}`, 400, 0, "channel", ""},
		{"unknown field", `{"body":"x","bodi":"y"}`, 400, 0, "bodi", ""},
		{"id given", `{"id":"mine","body":"x"}`, 400, 0, "id", ""},
		{"bad time", `{"body":"x","received_at":"yesterday"}`, 400, 0, "received_at", ""},
		{"bad attachment kind", `{"body":"x","attachments":[{"kind":"video"}]}`, 400, 0, "attachments", ""},
		{"one bad in array", `[{"body":"好的"},{"body":""}]`, 400, 0, "body", ""},
		{"oversized", `{"body":"` + big + `"}`, 413, 0, "", "too large"},
		{"too many", `[{"body":"a"},{"body":"b"},{"body":"c"},{"body":"d"}]`, 413, 0, "", "too many"},
	}
	accepted := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, out := f.post(t, tt.body)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %v", status, tt.status, out)
			}
			if tt.status == 202 {
				ids, _ := out["ids"].([]any)
				if len(ids) != tt.ids {
					t.Fatalf("ids %v, want %d", out["ids"], tt.ids)
				}
				for _, id := range ids {
					accepted[id.(string)] = true
				}
				return
			}
			errText, _ := out["error"].(string)
			if errText == "" || !strings.Contains(errText, tt.wantError) {
				t.Errorf("error %q, want it to contain %q", errText, tt.wantError)
			}
			if tt.wantField != "" {
				fields, _ := out["fields"].([]any)
				found := false
				for _, fp := range fields {
					m := fp.(map[string]any)
					if m["field"] == tt.wantField && m["reason"] != "" && strings.Contains(m["reason"].(string), "(") {
						found = true
					}
				}
				if !found {
					t.Errorf("no reason for field %q in %v", tt.wantField, out["fields"])
				}
			}
		})
	}

	// Kafka holds exactly the accepted messages: the rejected requests stored nothing.
	got := f.intake(t)
	if len(got) != len(accepted) {
		t.Errorf("intake holds %d records, want %d", len(got), len(accepted))
	}
	stable := envelope.StableID("api", "api", "ticket-42")
	if !accepted[stable] {
		t.Errorf("stable id %s not among accepted ids %v", stable, accepted)
	}
	for id, m := range got {
		if !accepted[id] {
			t.Errorf("record %s was never answered 202", id)
		}
		var env envelope.Envelope
		if err := json.Unmarshal(m.Value, &env); err != nil {
			t.Fatal(err)
		}
		if env.ID != id || env.Source != "api" || env.Body == "" || env.ReceivedAt.IsZero() {
			t.Errorf("envelope %+v", env)
		}
		for _, h := range []string{"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type"} {
			if bus.Header(m, h) == "" {
				t.Errorf("record %s lacks header %s", id, h)
			}
		}
		if bus.Header(m, "ce_type") != envelope.TypeIntake || bus.Header(m, "ce_source") != "minsheng/api" {
			t.Errorf("headers %v", m.Headers)
		}
	}
	st := f.conn.Status()
	if st.Counts.Accepted != int64(len(accepted)) || st.Counts.Rejected == 0 || st.LastSuccess == nil {
		t.Errorf("status %+v", st)
	}
}

func TestRetryIsSameMessage(t *testing.T) {
	f := newFixture(t, nil)
	body := `{"body":"同一条消息","source_id":"gw-1","channel":"sms"}`
	_, a := f.post(t, body)
	_, b := f.post(t, body)
	if a["ids"].([]any)[0] != b["ids"].([]any)[0] {
		t.Errorf("retry got a new id: %v vs %v", a, b)
	}
	if a["ids"].([]any)[0] != envelope.StableID("sms", "api", "gw-1") {
		t.Errorf("id %v is not StableID(sms, api, gw-1)", a["ids"])
	}
}

func TestUnavailable(t *testing.T) {
	b, err := bus.StartEmbedded("127.0.0.1:0", t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	b.Close()
	w := bus.NewWriter([]string{addr})
	defer w.Close()
	c := api.New("api", &api.Settings{MaxBodyBytes: 1024, MaxMessages: 10, WriteTimeout: 2 * time.Second}, w, bus.NewTopics(""), quiet, nil)
	srv := httptest.NewServer(c)
	defer srv.Close()
	resp, err := http.Post(srv.URL, "application/json", strings.NewReader(`{"body":"路面塌陷"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if st := c.Status(); st.State != "failing" || st.LastError == "" || st.Counts.Failed != 1 {
		t.Errorf("status %+v", st)
	}
}

func TestSettingsValidate(t *testing.T) {
	tests := []struct {
		name string
		s    api.Settings
		want string
	}{
		{"defaults", *api.DefaultSettings(), ""},
		{"zero body", api.Settings{MaxBodyBytes: 0, MaxMessages: 1, WriteTimeout: time.Second}, "max_body_bytes"},
		{"huge body", api.Settings{MaxBodyBytes: 10 << 20, MaxMessages: 1, WriteTimeout: time.Second}, "max_body_bytes"},
		{"no messages", api.Settings{MaxBodyBytes: 10, MaxMessages: 0, WriteTimeout: time.Second}, "max_messages"},
		{"no timeout", api.Settings{MaxBodyBytes: 10, MaxMessages: 1}, "write_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.s.Validate()
			if (err == nil) != (tt.want == "") || (err != nil && !strings.HasPrefix(err.Error(), tt.want)) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
}

func TestSampleConfigParses(t *testing.T) {
	cfg, err := config.Parse([]byte(api.SampleConfig))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := *cfg.Connectors[0].Settings.(*api.Settings); got != *api.DefaultSettings() {
		t.Errorf("sample config %+v differs from the defaults %+v", got, *api.DefaultSettings())
	}
}

// TestReadmeShowsSampleConfig keeps the README's configuration section identical to sample.yaml.
func TestReadmeShowsSampleConfig(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```yaml\n"+api.SampleConfig+"```") {
		t.Errorf("README.md does not show sample.yaml verbatim; paste it again")
	}
}
