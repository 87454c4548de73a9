// Package api is the generic HTTP intake connector (type "api"): clients POST one message or an
// array of messages as JSON envelope fields, and get 202 with the envelope ids only once Kafka
// holds every one of them. It owns request validation and its field-level reasons; it must not
// triage or touch any topic but minsheng.intake.
package api

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/minsheng-project/minsheng/connectors"
	"github.com/minsheng-project/minsheng/internal/bus"
	"github.com/minsheng-project/minsheng/internal/config"
	"github.com/minsheng-project/minsheng/internal/envelope"
	"github.com/minsheng-project/minsheng/internal/metrics"
)

// SampleConfig is the sample configuration shown in the README.
//
//go:embed sample.yaml
var SampleConfig string

// Type is the connector type name.
const Type = "api"

// maxKafkaRecord keeps a message within the broker's default message.max.bytes (1 MiB) with room
// for the envelope around the body.
const maxKafkaRecord = 900 << 10

// Settings are the api connector's keys.
type Settings struct {
	// MaxBodyBytes is the largest request body accepted, in bytes; larger gets 413. Default 65536.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxMessages is the most messages one request may carry. Default 100.
	MaxMessages int `yaml:"max_messages"`
	// WriteTimeout bounds the wait for Kafka before answering 503. Default 10s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
}

// DefaultSettings returns the defaults.
func DefaultSettings() *Settings {
	return &Settings{MaxBodyBytes: 64 << 10, MaxMessages: 100, WriteTimeout: 10 * time.Second}
}

// Validate implements config.Settings.
func (s *Settings) Validate() error {
	switch {
	case s.MaxBodyBytes < 1 || s.MaxBodyBytes > maxKafkaRecord:
		return config.Problem("max_body_bytes", "bad value %d: must be between 1 and %d", s.MaxBodyBytes, maxKafkaRecord)
	case s.MaxMessages < 1:
		return config.Problem("max_messages", "bad value %d: must be at least 1", s.MaxMessages)
	case s.WriteTimeout <= 0:
		return config.Problem("write_timeout", "bad value %v: must be positive", s.WriteTimeout)
	}
	return nil
}

var _ config.Settings = (*Settings)(nil)

func init() {
	connectors.Register(Type, func() config.Settings { return DefaultSettings() }, func(d connectors.Deps) (connectors.Connector, error) {
		s, ok := d.Settings.(*Settings)
		if !ok || s == nil {
			s = DefaultSettings()
		}
		return New(d.Name, s, d.Publisher, d.Topics, d.Logger, d.Metrics), nil
	})
}

// Connector is one api connector instance. Its handler is safe for concurrent use.
type Connector struct {
	name    string
	s       Settings
	pub     connectors.Publisher
	topics  bus.Topics
	log     *slog.Logger
	metrics *metrics.Metrics
	book    *connectors.StatusBook
	now     func() time.Time
}

var (
	_ connectors.Router    = (*Connector)(nil)
	_ connectors.Connector = (*Connector)(nil)
)

// New returns a connector named name that publishes to topics.Intake through pub. m may be nil.
func New(name string, s *Settings, pub connectors.Publisher, topics bus.Topics, log *slog.Logger, m *metrics.Metrics) *Connector {
	if log == nil {
		log = slog.Default()
	}
	return &Connector{name: name, s: *s, pub: pub, topics: topics, log: log.With("connector", name), metrics: m,
		book: connectors.NewStatusBook(name, Type), now: time.Now}
}

// Name implements connectors.Connector.
func (c *Connector) Name() string { return c.name }

// Type implements connectors.Connector.
func (c *Connector) Type() string { return Type }

// Status implements connectors.Connector.
func (c *Connector) Status() connectors.Status { return c.book.Status() }

// Routes registers POST /connectors/<name>/messages.
func (c *Connector) Routes(mux *http.ServeMux) {
	mux.Handle("POST /connectors/"+c.name+"/messages", c)
}

// FieldProblem is one field-level reason in a 400 answer.
type FieldProblem struct {
	Index  int    `json:"index"` // position in the request's array; 0 for a single object
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason"`
}

// ErrorBody is the JSON of every non-2xx answer.
type ErrorBody struct {
	Error  string         `json:"error"`
	Fields []FieldProblem `json:"fields,omitempty"`
}

// Accepted is the JSON of a 202 answer: the envelope ids, in request order.
type Accepted struct {
	IDs []string `json:"ids"`
}

// Reasons, in Chinese for the people who write the messages and English for operators.
const (
	reasonBadJSON     = "请求不是有效的 JSON (request body is not valid JSON)"
	reasonNotObject   = "每条消息必须是 JSON 对象 (each message must be a JSON object)"
	reasonEmpty       = "请求中没有消息 (no messages in request)"
	reasonTooMany     = "一次提交的消息过多 (too many messages in one request)"
	reasonTooLarge    = "请求过大 (request body too large)"
	reasonRequired    = "正文必填 (body is required)"
	reasonUTF8        = "不是有效的 UTF-8 文本 (not valid UTF-8)"
	reasonChannel     = "渠道无效 (invalid channel; one of " + "sms|mailbox|board|newspaper|wechat|api)"
	reasonUnknown     = "未知字段 (unknown field)"
	reasonSystemField = "由系统生成，不能指定 (set by minsheng; must not be given)"
	reasonTime        = "时间格式应为 RFC 3339 (want an RFC 3339 time, e.g. 2024-05-01T08:00:00+08:00)"
	reasonString      = "应为字符串 (want a string)"
	reasonObject      = "应为对象 (want an object)"
	reasonAttachments = "应为附件数组 (want an array of attachments)"
	reasonKind        = "附件类型应为 image|voice|file|link (attachment kind must be image|voice|file|link)"
	reasonInvalid     = "消息无效 (invalid messages)"
	reasonUnavailable = "消息暂未保存，请稍后重试 (Kafka unavailable: nothing stored, retry later)"
)

// ServeHTTP answers 202 with the ids once Kafka holds every message of the request; 400 with
// field-level reasons when any message is invalid (then none is stored); 413 when the request is
// too large; 503 when Kafka did not take the messages (some may be stored: a retry with the same
// source_id yields the same ids, so the sender can simply retry).
func (c *Connector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, c.s.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			c.fail(w, http.StatusRequestEntityTooLarge, ErrorBody{Error: fmt.Sprintf("%s: limit %d bytes", reasonTooLarge, c.s.MaxBodyBytes)}, 1)
			return
		}
		c.fail(w, http.StatusBadRequest, ErrorBody{Error: "reading request: " + err.Error()}, 1)
		return
	}
	envs, problems, status, msg := c.parse(raw)
	if status != 0 {
		c.fail(w, status, ErrorBody{Error: msg, Fields: problems}, max(len(envs), 1))
		return
	}
	recs := make([]bus.Record, len(envs))
	ids := make([]string, len(envs))
	for i, env := range envs {
		val, err := json.Marshal(env)
		if err != nil {
			c.fail(w, http.StatusInternalServerError, ErrorBody{Error: err.Error()}, len(envs))
			return
		}
		recs[i] = bus.Record{Topic: c.topics.Intake, Key: env.ID, Value: val, Type: envelope.TypeIntake, Source: c.name, ID: env.ID, Time: env.ReceivedAt}
		ids[i] = env.ID
	}
	ctx, cancel := context.WithTimeout(r.Context(), c.s.WriteTimeout)
	defer cancel()
	if err := c.pub.Publish(ctx, recs...); err != nil {
		c.book.Failed(len(recs), err)
		c.log.Warn("intake not stored", "messages", len(recs), "err", err)
		if c.metrics != nil {
			c.metrics.Error("intake_publish")
		}
		w.Header().Set("Retry-After", "5")
		c.fail(w, http.StatusServiceUnavailable, ErrorBody{Error: reasonUnavailable}, 0)
		return
	}
	c.book.Accepted(len(recs))
	if c.metrics != nil {
		for _, env := range envs {
			c.metrics.Message(env.Channel, metrics.StageIntake, 1)
		}
	}
	c.answer(w, http.StatusAccepted, Accepted{IDs: ids})
}

func (c *Connector) fail(w http.ResponseWriter, status int, body ErrorBody, rejected int) {
	if status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge {
		c.book.Rejected(rejected)
	}
	c.answer(w, status, body)
}

func (c *Connector) answer(w http.ResponseWriter, status int, body any) {
	if c.metrics != nil {
		c.metrics.HTTPRequests.WithLabelValues(c.name, strconv.Itoa(status)).Inc()
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(body)
}

// parse validates the request body. It returns the envelopes, or the problems with the HTTP status
// and error text to answer (status 0 when all is well).
func (c *Connector) parse(raw []byte) ([]*envelope.Envelope, []FieldProblem, int, string) {
	trimmed := bytes.TrimSpace(raw)
	var items []json.RawMessage
	switch {
	case len(trimmed) == 0:
		return nil, nil, http.StatusBadRequest, reasonEmpty
	case trimmed[0] == '[':
		if err := json.Unmarshal(trimmed, &items); err != nil {
			return nil, nil, http.StatusBadRequest, reasonBadJSON + ": " + jsonDetail(err)
		}
	default:
		if !json.Valid(trimmed) {
			var v any
			return nil, nil, http.StatusBadRequest, reasonBadJSON + ": " + jsonDetail(json.Unmarshal(trimmed, &v))
		}
		items = []json.RawMessage{trimmed}
	}
	if len(items) == 0 {
		return nil, nil, http.StatusBadRequest, reasonEmpty
	}
	if len(items) > c.s.MaxMessages {
		return nil, nil, http.StatusRequestEntityTooLarge, fmt.Sprintf("%s: %d > %d", reasonTooMany, len(items), c.s.MaxMessages)
	}
	var problems []FieldProblem
	envs := make([]*envelope.Envelope, 0, len(items))
	for i, item := range items {
		env, ps := c.parseOne(i, item)
		problems = append(problems, ps...)
		envs = append(envs, env)
	}
	if len(problems) > 0 {
		return envs, problems, http.StatusBadRequest, reasonInvalid
	}
	return envs, nil, 0, ""
}

func jsonDetail(err error) string {
	if err == nil {
		return "unexpected input"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// parseOne turns one JSON object into an envelope, collecting every problem of its fields.
func (c *Connector) parseOne(i int, item json.RawMessage) (*envelope.Envelope, []FieldProblem) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(item, &fields); err != nil || fields == nil {
		return nil, []FieldProblem{{Index: i, Reason: reasonNotObject}}
	}
	var (
		ps  []FieldProblem
		env = &envelope.Envelope{Channel: envelope.ChannelAPI, Source: c.name}
	)
	bad := func(field, reason string) { ps = append(ps, FieldProblem{Index: i, Field: field, Reason: reason}) }
	str := func(field string, dst *string) {
		if err := json.Unmarshal(fields[field], dst); err != nil {
			bad(field, reasonString)
		}
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := fields[k]
		// encoding/json silently replaces invalid UTF-8 with U+FFFD: check the raw bytes.
		if !utf8.Valid(v) {
			bad(k, reasonUTF8)
			continue
		}
		switch k {
		case "id", "source":
			bad(k, reasonSystemField)
		case "channel":
			var ch string
			str(k, &ch)
			if ch != "" {
				if !envelope.ValidChannel(ch) {
					bad(k, reasonChannel)
				}
				env.Channel = ch
			}
		case "source_id":
			str(k, &env.SourceID)
		case "title":
			str(k, &env.Title)
		case "body":
			str(k, &env.Body)
		case "received_at":
			var t time.Time
			if err := json.Unmarshal(v, &t); err != nil {
				bad(k, reasonTime)
			}
			env.ReceivedAt = t
		case "sent_at":
			var t *time.Time
			if err := json.Unmarshal(v, &t); err != nil {
				bad(k, reasonTime)
			}
			env.SentAt = t
		case "sender":
			if err := json.Unmarshal(v, &env.Sender); err != nil {
				bad(k, reasonObject)
			}
		case "location":
			if err := json.Unmarshal(v, &env.Location); err != nil {
				bad(k, reasonObject)
			}
		case "attachments":
			if err := json.Unmarshal(v, &env.Attachments); err != nil {
				bad(k, reasonAttachments)
			}
			for _, a := range env.Attachments {
				if !slices.Contains([]string{"image", "voice", "file", "link"}, a.Kind) {
					bad(k, reasonKind)
					break
				}
			}
		default:
			bad(k, reasonUnknown)
		}
	}
	if strings.TrimSpace(env.Body) == "" && utf8.Valid(fields["body"]) {
		bad("body", reasonRequired)
	}
	if env.ReceivedAt.IsZero() {
		env.ReceivedAt = c.now().UTC()
	}
	if env.SourceID != "" {
		env.ID = envelope.StableID(env.Channel, env.Source, env.SourceID)
	} else {
		env.ID = bus.NewID()
	}
	return env, ps
}
