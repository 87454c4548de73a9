// Package connectors defines what a channel connector is to minsheng — its lifecycle, how it
// publishes envelopes, how it reports its status — and keeps the registry of connector types.
// One sub-folder per channel implements a type and registers it from init; connectors/all imports
// every one. This package must not import any connector.
package connectors

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/minsheng-project/minsheng/internal/bus"
	"github.com/minsheng-project/minsheng/internal/config"
	"github.com/minsheng-project/minsheng/internal/metrics"
)

// Publisher stores records in Kafka. Publish returns nil only once Kafka holds every record;
// *bus.Writer implements it.
type Publisher interface {
	Publish(ctx context.Context, recs ...bus.Record) error
}

var _ Publisher = (*bus.Writer)(nil)

// Deps is what a connector is built from.
type Deps struct {
	Name      string          // the connector instance name (envelope source)
	Settings  config.Settings // the type's settings, decoded and validated
	Publisher Publisher
	Topics    bus.Topics
	Logger    *slog.Logger
	Metrics   *metrics.Metrics
}

// Connector is one running connector instance.
type Connector interface {
	Name() string
	Type() string
	// Status reports the connector's state; safe for concurrent use.
	Status() Status
}

// Runner is a connector that works on its own (polls a mailbox, a board, a gateway). Run blocks
// until ctx ends or the connector fails for good; it acknowledges a source message only after
// Publish returned nil for it.
type Runner interface {
	Connector
	Run(ctx context.Context) error
}

// Router is a connector that is called over HTTP. Routes registers its handlers on mux, under
// /connectors/<name>/. A handler answers 2xx only once Kafka holds the message.
type Router interface {
	Connector
	Routes(mux *http.ServeMux)
}

// Factory builds a connector. It must not start work: that is Run's or the handlers' job.
type Factory func(Deps) (Connector, error)

var (
	mu        sync.RWMutex
	factories = map[string]Factory{}
)

// Register makes connector type typ available: newSettings gives its default settings (see
// config.RegisterConnectorType) and f builds an instance. Call it from the package's init.
func Register(typ string, newSettings func() config.Settings, f Factory) {
	config.RegisterConnectorType(typ, newSettings)
	mu.Lock()
	defer mu.Unlock()
	factories[typ] = f
}

// Registered reports whether connector type typ is built into this binary.
func Registered(typ string) bool {
	mu.RLock()
	defer mu.RUnlock()
	return factories[typ] != nil
}

// New builds a connector of type typ.
func New(typ string, d Deps) (Connector, error) {
	mu.RLock()
	f := factories[typ]
	mu.RUnlock()
	if f == nil {
		return nil, fmt.Errorf("connector type %s is not built into this binary", typ)
	}
	c, err := f(d)
	if err != nil {
		return nil, fmt.Errorf("building connector %s: %w", d.Name, err)
	}
	return c, nil
}

// States of a connector.
const (
	StateStarting = "starting"
	StateRunning  = "running"
	StateFailing  = "failing" // the last attempt failed; it keeps trying
	StateStopped  = "stopped"
)

// Status is what GET /v1/connectors shows of one connector.
type Status struct {
	Name        string     `json:"name"`
	Type        string     `json:"type"`
	State       string     `json:"state"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	Counts      Counts     `json:"counts"`
	// Cursor is where a polling connector will resume (e.g. an IMAP uid); empty for webhooks.
	Cursor string `json:"cursor,omitempty"`
}

// Counts are message counts since the process started.
type Counts struct {
	Accepted int64 `json:"accepted"` // held by Kafka
	Rejected int64 `json:"rejected"` // refused as invalid input
	Failed   int64 `json:"failed"`   // valid, but Kafka did not take them (the sender retries)
}

// StatusBook keeps a connector's Status up to date. It is safe for concurrent use.
type StatusBook struct {
	mu sync.Mutex
	s  Status
}

// NewStatusBook returns a book for the named connector, in state running.
func NewStatusBook(name, typ string) *StatusBook {
	return &StatusBook{s: Status{Name: name, Type: typ, State: StateRunning}}
}

// Accepted records n messages held by Kafka.
func (b *StatusBook) Accepted(n int) {
	now := time.Now().UTC()
	b.mu.Lock()
	b.s.Counts.Accepted += int64(n)
	b.s.LastSuccess = &now
	if b.s.State == StateFailing {
		b.s.State = StateRunning
	}
	b.mu.Unlock()
}

// Rejected records n messages refused as invalid.
func (b *StatusBook) Rejected(n int) {
	b.mu.Lock()
	b.s.Counts.Rejected += int64(n)
	b.mu.Unlock()
}

// Failed records n messages Kafka did not take, and the error.
func (b *StatusBook) Failed(n int, err error) {
	now := time.Now().UTC()
	b.mu.Lock()
	b.s.Counts.Failed += int64(n)
	b.s.LastError = err.Error()
	b.s.LastErrorAt = &now
	b.s.State = StateFailing
	b.mu.Unlock()
}

// SetState sets the state.
func (b *StatusBook) SetState(state string) {
	b.mu.Lock()
	b.s.State = state
	b.mu.Unlock()
}

// SetCursor sets the cursor.
func (b *StatusBook) SetCursor(cursor string) {
	b.mu.Lock()
	b.s.Cursor = cursor
	b.mu.Unlock()
}

// Status returns a copy of the status.
func (b *StatusBook) Status() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.s
}

// Sorted returns the statuses of cs sorted by name.
func Sorted(cs []Connector) []Status {
	out := make([]Status, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.Status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
