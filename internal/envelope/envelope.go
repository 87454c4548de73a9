// Package envelope owns minsheng's record types — the intake Envelope, the triage Result and the
// editor Decision — and their JSON. It is the contract between connectors, triage, forwarders and
// the console; it must not import Kafka, HTTP or the classifier.
package envelope

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Channels a message can arrive through.
const (
	ChannelSMS       = "sms"
	ChannelMailbox   = "mailbox"
	ChannelBoard     = "board"
	ChannelNewspaper = "newspaper"
	ChannelWeChat    = "wechat"
	ChannelAPI       = "api"
)

// Channels lists every valid channel value.
var Channels = []string{ChannelSMS, ChannelMailbox, ChannelBoard, ChannelNewspaper, ChannelWeChat, ChannelAPI}

// ValidChannel reports whether c is one of Channels.
func ValidChannel(c string) bool {
	for _, x := range Channels {
		if x == c {
			return true
		}
	}
	return false
}

// CloudEvents types of the records minsheng writes.
const (
	TypeIntake     = "minsheng.intake.v1"
	TypeTriage     = "minsheng.triage.v1"
	TypeReview     = "minsheng.review.v1"
	TypeDeadLetter = "minsheng.dlq.v1"
)

// Sender is who wrote the message, as far as the channel tells.
type Sender struct {
	Name         string `json:"name,omitempty"`
	Phone        string `json:"phone,omitempty"`
	Email        string `json:"email,omitempty"`
	WeChatOpenID string `json:"wechat_openid,omitempty"`
	ID           string `json:"id,omitempty"`
}

// Key returns a stable identifier of the sender (phone, e-mail, openid or id, in that order), or "".
func (s Sender) Key() string {
	switch {
	case s.Phone != "":
		return "phone:" + s.Phone
	case s.Email != "":
		return "email:" + s.Email
	case s.WeChatOpenID != "":
		return "wechat:" + s.WeChatOpenID
	case s.ID != "":
		return "id:" + s.ID
	}
	return ""
}

// Location is where the problem is, if the channel tells.
type Location struct {
	Address string  `json:"address,omitempty"`
	Lat     float64 `json:"lat,omitempty"`
	Lon     float64 `json:"lon,omitempty"`
}

// Attachment is a file, image, voice note or link that came with a message.
type Attachment struct {
	Kind string `json:"kind"` // image | voice | file | link
	Name string `json:"name,omitempty"`
	URL  string `json:"url,omitempty"`
	Size int64  `json:"size,omitempty"`
}

// Envelope is one citizen message, normalized by a connector (topic minsheng.intake).
// The same source message always yields the same ID.
type Envelope struct {
	ID          string       `json:"id"`
	Channel     string       `json:"channel"`
	Source      string       `json:"source"`
	SourceID    string       `json:"source_id,omitempty"`
	ReceivedAt  time.Time    `json:"received_at"`
	SentAt      *time.Time   `json:"sent_at,omitempty"`
	Sender      Sender       `json:"sender"`
	Title       string       `json:"title,omitempty"`
	Body        string       `json:"body"`
	Location    *Location    `json:"location,omitempty"`
	Attachments []Attachment `json:"attachments,omitempty"`
}

// StableID derives an envelope id from the channel, the connector instance and the native id, so
// that a redelivered or retried message gets the same id. The result is 32 hex characters.
func StableID(channel, source, sourceID string) string {
	h := sha256.New()
	h.Write([]byte(channel))
	h.Write([]byte{0})
	h.Write([]byte(source))
	h.Write([]byte{0})
	h.Write([]byte(sourceID))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Types of request (诉求类型).
const (
	TypeConsultation = "consultation"
	TypeComplaint    = "complaint"
	TypeSuggestion   = "suggestion"
	TypeHelp         = "help"
	TypeTipoff       = "tipoff"
)

// Tracks (办理渠道), the four classes of the first screening.
const (
	TrackService    = "service"
	TrackPetition   = "petition"
	TrackDiscipline = "discipline"
	TrackOpinion    = "opinion"
)

// RequestTypes, Tracks and Areas list the label values in a fixed order.
var (
	RequestTypes = []string{TypeConsultation, TypeComplaint, TypeSuggestion, TypeHelp, TypeTipoff}
	Tracks       = []string{TrackService, TrackPetition, TrackDiscipline, TrackOpinion}
	Areas        = []string{"城乡建设", "环境保护", "交通运输", "教育文体", "劳动和社会保障", "商贸旅游", "卫生计生"}
)

// Chinese names of types and tracks, for the console and explanations.
var (
	TypeNames  = map[string]string{TypeConsultation: "咨询", TypeComplaint: "投诉", TypeSuggestion: "建议", TypeHelp: "求助", TypeTipoff: "举报"}
	TrackNames = map[string]string{TrackService: "政务服务", TrackPetition: "信访事项", TrackDiscipline: "纪检监察", TrackOpinion: "舆论监督"}
)

// Confidence holds the calibrated probability of each chosen label.
type Confidence struct {
	Type  float64 `json:"type"`
	Track float64 `json:"track"`
	Area  float64 `json:"area"`
}

// Result is the triage of one envelope (topic minsheng.triaged, and minsheng.track.<track> when
// valid and not a duplicate).
type Result struct {
	ID          string     `json:"id"`
	CaseID      string     `json:"case_id"`
	Valid       bool       `json:"valid"`
	Type        string     `json:"type"`
	Track       string     `json:"track"`
	Area        string     `json:"area"`
	Confidence  Confidence `json:"confidence"`
	NeedsReview bool       `json:"needs_review"`
	DuplicateOf string     `json:"duplicate_of"`
	Similarity  float64    `json:"similarity"`
	Keywords    []string   `json:"keywords"`
	Reasons     []string   `json:"reasons"`
	Model       string     `json:"model"`
	TriagedAt   time.Time  `json:"triaged_at"`
	Envelope    *Envelope  `json:"envelope,omitempty"`
	// Error is set, and nothing else but ID, when the input could not be triaged.
	Error string `json:"error,omitempty"`
	// ReviewedBy is set when an editor's decision corrected this result.
	ReviewedBy string `json:"reviewed_by,omitempty"`
	// Revision counts editor corrections applied to this result (0 for the machine's triage).
	Revision int `json:"revision,omitempty"`
}

// Routed reports whether the result belongs on a track topic: valid, not a duplicate, no error.
func (r *Result) Routed() bool {
	return r.Error == "" && r.Valid && r.DuplicateOf == "" && r.Track != ""
}

// Decision is an editor's correction of a triage result (topic minsheng.review). Empty fields keep
// the machine's value; Valid, when set, overrides validity.
type Decision struct {
	ID           string    `json:"id"`
	Editor       string    `json:"editor"`
	Valid        *bool     `json:"valid,omitempty"`
	Type         string    `json:"type,omitempty"`
	Track        string    `json:"track,omitempty"`
	Area         string    `json:"area,omitempty"`
	NotDuplicate bool      `json:"not_duplicate,omitempty"`
	Note         string    `json:"note,omitempty"`
	DecidedAt    time.Time `json:"decided_at"`
}
