package config_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/minsheng-project/minsheng/internal/config"
)

// wechatSettings stands in for the wechat connector's settings until that package exists.
type wechatSettings struct {
	AppID  string        `yaml:"app_id"`
	Token  config.Secret `yaml:"token"`
	Retry  int           `yaml:"retry"`
	Nested struct {
		Mode string `yaml:"mode"`
	} `yaml:"nested"`
}

func (s *wechatSettings) Validate() error {
	if s.Token == "" {
		return config.Problem("token", "missing required key")
	}
	if s.Retry < 0 {
		return config.Problem("retry", "bad value %d: must not be negative", s.Retry)
	}
	return nil
}

func init() {
	config.RegisterConnectorType("wechat", func() config.Settings { return &wechatSettings{Retry: 3} })
}

func TestDefaults(t *testing.T) {
	for _, src := range []string{"", "# nothing\n", "listen: 127.0.0.1:8080\n"} {
		cfg, err := config.Parse([]byte(src))
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		want := config.Default()
		if cfg.Listen != want.Listen || cfg.DataDir != "./data" || cfg.Kafka.EmbeddedListen != "127.0.0.1:9092" ||
			cfg.Kafka.Partitions != 6 || cfg.Triage.ReviewThreshold != 0.6 || cfg.Triage.DedupWindow != 720*time.Hour {
			t.Errorf("%q: defaults not kept: %+v", src, cfg)
		}
	}
}

func TestParseFull(t *testing.T) {
	t.Setenv("WX_TOKEN", "s3cret-value")
	t.Setenv("NPART", "12")
	src := `
listen: 0.0.0.0:9000
data_dir: /var/lib/minsheng
kafka:
  brokers: [k1:9092, k2:9092]
  topic_prefix: qd-
  partitions: ${NPART}
triage:
  review_threshold: 0.7
  dedup_window: 48h
connectors:
  - name: wx-main
    type: wechat
    app_id: wx123
    token: "${WX_TOKEN}"
  - name: hotline-sms
    type: sms
    gateway: https://sms.example/api
`
	cfg, err := config.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Kafka.Partitions != 12 || cfg.Kafka.TopicPrefix != "qd-" || len(cfg.Kafka.Brokers) != 2 {
		t.Errorf("kafka: %+v", cfg.Kafka)
	}
	if cfg.Triage.ReviewThreshold != 0.7 || cfg.Triage.DedupWindow != 48*time.Hour || cfg.Triage.ResultCache != 50000 {
		t.Errorf("triage: %+v", cfg.Triage)
	}
	wx := cfg.Connectors[0].Settings.(*wechatSettings)
	if wx.Token.Reveal() != "s3cret-value" || wx.AppID != "wx123" || wx.Retry != 3 {
		t.Errorf("wechat settings: %+v", wx)
	}
	if sms := cfg.Connectors[1]; sms.Settings != nil || sms.Raw["gateway"] != "https://sms.example/api" {
		t.Errorf("unregistered type not kept raw: %+v", sms)
	}

	// The secret never shows in logs, fmt or JSON.
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("cfg", "token", wx.Token, "settings", wx)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("cfg", "token", wx.Token, "settings", wx)
	fmt.Fprintf(&buf, "%v %+v %#v %s", wx, wx, wx, wx.Token)
	j, _ := json.Marshal(wx)
	buf.Write(j)
	if strings.Contains(buf.String(), "s3cret") {
		t.Errorf("secret leaked: %s", buf.String())
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"unknown top key", "lisen: x:1\n", "config: lisen: unknown key"},
		{"unknown kafka key", "kafka:\n  brokerz: [a:1]\n", "config: kafka.brokerz: unknown key"},
		{"unknown triage key", "triage:\n  threshold: 0.5\n", "config: triage.threshold: unknown key"},
		{"bad number", "kafka:\n  partitions: many\n", "config: line 2: bad value"},
		{"bad duration", "triage:\n  dedup_window: 30 days\n", "config: line 2: bad value"},
		{"zero partitions", "kafka:\n  partitions: 0\n", "config: kafka.partitions: bad value 0: must be at least 1"},
		{"threshold range", "triage:\n  review_threshold: 1.5\n", "config: triage.review_threshold: bad value 1.5"},
		{"listen", "listen: localhost\n", `config: listen: bad value "localhost": want host:port`},
		{"broker", "kafka:\n  brokers: [k1]\n", `config: kafka.brokers[0]: bad value "k1"`},
		{"prefix", "kafka:\n  topic_prefix: 'a b'\n", "config: kafka.topic_prefix: bad value"},
		{"log level", "log_level: loud\n", "config: log_level: bad value"},
		{"missing secret", "connectors:\n  - name: wx-main\n    type: wechat\n", "config: connectors[wx-main].token: missing required key"},
		{"unset env", "connectors:\n  - name: wx-main\n    type: wechat\n    token: ${MINSHENG_TEST_UNSET}\n", "config: connectors[wx-main].token: environment variable MINSHENG_TEST_UNSET is not set"},
		{"unknown connector key", "connectors:\n  - name: wx-main\n    type: wechat\n    token: t\n    tokn: t\n", "config: connectors[wx-main].tokn: unknown key"},
		{"unknown nested connector key", "connectors:\n  - name: wx-main\n    type: wechat\n    token: t\n    nested: {mood: x}\n", "config: connectors[wx-main].mood: unknown key"},
		{"bad connector value", "connectors:\n  - name: wx-main\n    type: wechat\n    token: t\n    retry: -1\n", "config: connectors[wx-main].retry: bad value -1"},
		{"connector value type", "connectors:\n  - name: wx-main\n    type: wechat\n    token: t\n    retry: often\n", "config: connectors[wx-main]: bad value"},
		{"missing type", "connectors:\n  - name: a\n", "config: connectors[a].type: missing required key"},
		{"unknown type", "connectors:\n  - name: a\n    type: fax\n", `config: connectors[a].type: unknown type "fax"`},
		{"missing name", "connectors:\n  - type: sms\n", "config: connectors[0].name: missing required key"},
		{"bad name", "connectors:\n  - name: Main Box\n    type: sms\n", `config: connectors[Main Box].name: bad value`},
		{"duplicate name", "connectors:\n  - name: a\n    type: sms\n  - name: a\n    type: board\n", "config: connectors[a].name: duplicate name"},
		{"connector not a map", "connectors:\n  - sms\n", "config: connectors[0]: must be a mapping"},
		{"bad yaml", "listen: [\n", "config: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(tt.src))
			if err == nil {
				err = cfg.Validate()
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tt.want) {
				t.Errorf("got  %q\nwant prefix %q", msg, tt.want)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans lines: %q", msg)
			}
		})
	}
}
