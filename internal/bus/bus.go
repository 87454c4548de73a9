// Package bus owns all of minsheng's Kafka I/O: topic names, CloudEvents headers, synchronous
// writers, consumer-group readers, partition replay, topic creation and the embedded broker. Every
// Kafka byte goes through github.com/segmentio/kafka-go; nothing outside this package imports it
// except to read a kafka.Message handed out here. It knows nothing of triage or HTTP.
package bus

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	"github.com/segmentio/kafka-go"
)

// Topic base names (without the configurable prefix).
const (
	TopicIntake      = "minsheng.intake"
	TopicTriaged     = "minsheng.triaged"
	TopicTrackPrefix = "minsheng.track."
	TopicReview      = "minsheng.review"
	TopicDLQ         = "minsheng.dlq"
	TopicState       = "minsheng.state"
)

// CloudEvents 1.0 binary-mode header names (Kafka protocol binding) and the headers minsheng adds
// to dead letters.
const (
	HeaderSpecVersion = "ce_specversion"
	HeaderID          = "ce_id"
	HeaderSource      = "ce_source"
	HeaderType        = "ce_type"
	HeaderTime        = "ce_time"
	HeaderContentType = "content-type"

	HeaderDLQStage     = "dlq_stage"
	HeaderDLQTopic     = "dlq_topic"
	HeaderDLQPartition = "dlq_partition"
	HeaderDLQOffset    = "dlq_offset"
	HeaderDLQReason    = "dlq_reason"
)

// ErrUnavailable wraps every error that means Kafka could not be reached or did not acknowledge in
// time; callers answer 503 (or retry) on it. Test with errors.Is.
var ErrUnavailable = errors.New("kafka unavailable")

// Topics holds the full names of minsheng's topics, prefix included. The zero value is not useful;
// use NewTopics.
type Topics struct {
	Intake  string
	Triaged string
	Review  string
	DLQ     string
	State   string
	prefix  string
}

// NewTopics returns the topic names with prefix prepended to each ("" for none).
func NewTopics(prefix string) Topics {
	return Topics{
		Intake:  prefix + TopicIntake,
		Triaged: prefix + TopicTriaged,
		Review:  prefix + TopicReview,
		DLQ:     prefix + TopicDLQ,
		State:   prefix + TopicState,
		prefix:  prefix,
	}
}

// Track returns the topic of one track (service, petition, discipline, opinion).
func (t Topics) Track(track string) string { return t.prefix + TopicTrackPrefix + track }

// All lists every topic minsheng uses, given the track names.
func (t Topics) All(tracks []string) []string {
	all := []string{t.Intake, t.Triaged}
	for _, tr := range tracks {
		all = append(all, t.Track(tr))
	}
	return append(all, t.Review, t.DLQ, t.State)
}

// Record is one record to publish. Topic, Key, Value, Type and Source are required; ID and Time
// default to a random id and the current time.
type Record struct {
	Topic  string
	Key    string
	Value  []byte
	Type   string // ce_type, e.g. envelope.TypeIntake
	Source string // connector or stage name; ce_source becomes "minsheng/<Source>"
	ID     string // ce_id; random when empty
	// Time is when the event happened (ce_time); now when zero. The Kafka timestamp is always
	// the time of writing, so retention never drops a record early for carrying an old ce_time.
	Time time.Time
	// Extra headers, after the CloudEvents ones.
	Headers []kafka.Header
}

// Message converts r to a kafka-go message carrying the CloudEvents binary-mode headers.
func (r Record) Message() kafka.Message {
	id := r.ID
	if id == "" {
		id = NewID()
	}
	now := time.Now()
	at := r.Time
	if at.IsZero() {
		at = now
	}
	h := make([]kafka.Header, 0, 6+len(r.Headers))
	h = append(h,
		kafka.Header{Key: HeaderSpecVersion, Value: []byte("1.0")},
		kafka.Header{Key: HeaderID, Value: []byte(id)},
		kafka.Header{Key: HeaderSource, Value: []byte("minsheng/" + r.Source)},
		kafka.Header{Key: HeaderType, Value: []byte(r.Type)},
		kafka.Header{Key: HeaderTime, Value: []byte(at.UTC().Format(time.RFC3339Nano))},
		kafka.Header{Key: HeaderContentType, Value: []byte("application/json")},
	)
	h = append(h, r.Headers...)
	return kafka.Message{Topic: r.Topic, Key: []byte(r.Key), Value: r.Value, Headers: h, Time: now}
}

// Header returns the value of the first header named key in m, or "".
func Header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// NewID returns 32 random hex characters, the form of envelope ids that have no native id.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("bus: reading random bytes: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}
