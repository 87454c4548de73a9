// Package server runs the roles of one minsheng process — intake (connectors and the HTTP
// intake), triage (the pipeline stage) — on one HTTP listener, against the configured Kafka
// cluster or an embedded broker, and shuts them down in the order that loses nothing. It wires;
// the work itself lives in connectors, pipeline and bus.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/minsheng-project/minsheng/classifier"
	"github.com/minsheng-project/minsheng/connectors"
	"github.com/minsheng-project/minsheng/internal/bus"
	"github.com/minsheng-project/minsheng/internal/config"
	"github.com/minsheng-project/minsheng/internal/envelope"
	"github.com/minsheng-project/minsheng/internal/metrics"
	"github.com/minsheng-project/minsheng/internal/pipeline"
)

// Roles a process can run.
const (
	RoleIntake  = "intake"
	RoleTriage  = "triage"
	RoleForward = "forward"
	RoleConsole = "console"
)

// AllRoles lists every role name; built lists those this version implements.
var (
	AllRoles   = []string{RoleIntake, RoleTriage, RoleForward, RoleConsole}
	builtRoles = []string{RoleIntake, RoleTriage}
)

// ParseRoles parses a comma-separated list of roles; "" or "all" means every role this version
// implements.
func ParseRoles(s string) ([]string, error) {
	if s == "" || s == "all" {
		return slices.Clone(builtRoles), nil
	}
	var roles []string
	for _, r := range strings.Split(s, ",") {
		r = strings.TrimSpace(r)
		if !slices.Contains(AllRoles, r) {
			return nil, fmt.Errorf("unknown role %q (roles: %s)", r, strings.Join(AllRoles, ","))
		}
		if !slices.Contains(roles, r) {
			roles = append(roles, r)
		}
	}
	return roles, nil
}

// ImplicitAPIName is the name of the api connector serve adds when none is configured.
const ImplicitAPIName = "api"

// Run runs roles until ctx ends, then shuts down gracefully: the HTTP listener stops accepting and
// in-flight requests finish (each answered only after Kafka holds its messages), connectors stop,
// the triage stage finishes its batch, commits and snapshots its index, and the embedded broker
// (if any) writes its state. Run returns nil after a clean shutdown.
func Run(ctx context.Context, cfg *config.Config, roles []string, log *slog.Logger) error {
	has := func(r string) bool { return slices.Contains(roles, r) }
	for _, r := range roles {
		if !slices.Contains(builtRoles, r) {
			log.Warn("role not built into this version yet; skipping", "role", r)
		}
	}
	m := metrics.New()
	topics := bus.NewTopics(cfg.Kafka.TopicPrefix)

	// The listener first: a busy port should fail before anything starts.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	defer ln.Close()

	brokers := cfg.Kafka.Brokers
	if len(brokers) == 0 {
		dir := filepath.Join(cfg.DataDir, "kafka")
		emb, err := bus.StartEmbedded(cfg.Kafka.EmbeddedListen, dir, log)
		if err != nil {
			return fmt.Errorf("%w (is another broker on %s? set kafka.embedded_listen or -embedded-kafka)", err, cfg.Kafka.EmbeddedListen)
		}
		defer func() {
			emb.Close()
			log.Info("embedded Kafka broker stopped", "data", dir)
		}()
		brokers = []string{emb.Addr()}
		log.Info("embedded Kafka broker started (no kafka.brokers configured)", "addr", emb.Addr(), "data", dir,
			"topics", strings.Join(topics.All(envelope.Tracks), ","))
	}
	admin := bus.NewAdmin(brokers)
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = admin.EnsureTopics(tctx, topics.Specs(envelope.Tracks, cfg.Kafka.Partitions))
	cancel()
	if err != nil {
		return fmt.Errorf("kafka %s: %w", strings.Join(brokers, ","), err)
	}
	w := bus.NewWriter(brokers)
	defer w.Close()

	// Connectors.
	var (
		conns   []connectors.Connector
		runners []connectors.Runner
		mux     = http.NewServeMux()
	)
	if has(RoleIntake) {
		conns, runners, err = buildConnectors(cfg, w, topics, log, m, mux)
		if err != nil {
			return err
		}
	}

	// Triage.
	var stage *pipeline.Stage
	triageFailed := make(chan error, 1)
	ops := &ops{admin: admin, conns: conns, triage: has(RoleTriage)}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	mux.HandleFunc("GET /readyz", ops.readyz)
	mux.HandleFunc("GET /v1/connectors", ops.connectors)
	mux.Handle("GET /metrics", m.Handler())

	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(ln) }()
	log.Info("minsheng serving", "listen", ln.Addr().String(), "kafka", strings.Join(brokers, ","), "roles", strings.Join(roles, ","))

	connCtx, stopConns := context.WithCancel(context.WithoutCancel(ctx))
	var connWG sync.WaitGroup
	for _, r := range runners {
		connWG.Add(1)
		go func() {
			defer connWG.Done()
			if err := r.Run(connCtx); err != nil {
				log.Error("connector stopped", "connector", r.Name(), "err", err)
			}
		}()
	}

	triageCtx, stopTriage := context.WithCancel(context.WithoutCancel(ctx))
	defer stopTriage()
	triageDone := make(chan error, 1)
	if has(RoleTriage) {
		go func() {
			eng, err := classifier.New(classifier.Options{ReviewThreshold: cfg.Triage.ReviewThreshold,
				DedupWindow: cfg.Triage.DedupWindow, ModelPath: cfg.Triage.Model})
			if err != nil {
				triageFailed <- fmt.Errorf("loading triage engine: %w", err)
				triageDone <- nil
				return
			}
			stage = pipeline.New(eng, w, pipeline.Options{Brokers: brokers, Topics: topics,
				Dir: filepath.Join(cfg.DataDir, "triage"), SnapshotInterval: cfg.Triage.SnapshotInterval,
				ResultCache: cfg.Triage.ResultCache, Logger: log, Metrics: m})
			ops.setStage(stage)
			log.Info("triage engine loaded", "model", eng.ModelVersion())
			if _, err := stage.Restore(triageCtx); err != nil {
				if triageCtx.Err() == nil {
					triageFailed <- fmt.Errorf("restoring dedup index: %w", err)
				}
				triageDone <- nil
				return
			}
			triageDone <- stage.Run(triageCtx)
		}()
	} else {
		triageDone <- nil
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down: no new requests; finishing in-flight work")
	case err := <-srvDone:
		runErr = fmt.Errorf("http server: %w", err)
	case err := <-triageFailed:
		runErr = err
	}

	// 1. Stop accepting; in-flight intake requests finish their Kafka writes.
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	cancel()
	// 2. Connectors.
	stopConns()
	connWG.Wait()
	// 3. Triage: finish the batch in hand, commit, snapshot.
	stopTriage()
	if err := <-triageDone; err != nil {
		log.Error("triage stopped with an error", "err", err)
		runErr = errors.Join(runErr, err)
	}
	log.Info("shutdown complete")
	return runErr
}

// buildConnectors builds every configured connector of a type built into this binary, adding
// the implicit api connector when none is configured, and mounts their routes.
func buildConnectors(cfg *config.Config, w *bus.Writer, topics bus.Topics, log *slog.Logger, m *metrics.Metrics, mux *http.ServeMux) ([]connectors.Connector, []connectors.Runner, error) {
	list := slices.Clone(cfg.Connectors)
	if !slices.ContainsFunc(list, func(c config.Connector) bool { return c.Type == "api" }) {
		if s := config.NewSettings("api"); s != nil {
			list = append(list, config.Connector{Name: ImplicitAPIName, Type: "api", Settings: s})
		}
	}
	var (
		conns      []connectors.Connector
		runners    []connectors.Runner
		genericSet bool
	)
	for _, c := range list {
		if !connectors.Registered(c.Type) {
			log.Warn("connector type not built into this version yet; skipping", "connector", c.Name, "type", c.Type)
			conns = append(conns, unbuilt{name: c.Name, typ: c.Type})
			continue
		}
		conn, err := connectors.New(c.Type, connectors.Deps{Name: c.Name, Settings: c.Settings, Publisher: w, Topics: topics,
			Logger: log, Metrics: m})
		if err != nil {
			return nil, nil, err
		}
		conns = append(conns, conn)
		if r, ok := conn.(connectors.Router); ok {
			r.Routes(mux)
		}
		if r, ok := conn.(connectors.Runner); ok {
			runners = append(runners, r)
		}
		if h, ok := conn.(http.Handler); ok && c.Type == "api" && !genericSet {
			mux.Handle("POST /v1/messages", h)
			genericSet = true
		}
		log.Info("connector ready", "connector", c.Name, "type", c.Type)
	}
	return conns, runners, nil
}

// unbuilt stands for a configured connector whose type this binary does not have yet.
type unbuilt struct{ name, typ string }

func (u unbuilt) Name() string { return u.name }
func (u unbuilt) Type() string { return u.typ }
func (u unbuilt) Status() connectors.Status {
	return connectors.Status{Name: u.name, Type: u.typ, State: connectors.StateStopped,
		LastError: "connector type " + u.typ + " is not built into this version yet"}
}

// ops serves the operational endpoints.
type ops struct {
	admin  *bus.Admin
	conns  []connectors.Connector
	triage bool
	mu     sync.Mutex
	stage  *pipeline.Stage
}

func (o *ops) setStage(s *pipeline.Stage) {
	o.mu.Lock()
	o.stage = s
	o.mu.Unlock()
}

// readyz answers 200 when Kafka answers and, with the triage role, the engine is loaded and the
// dedup index restored; 503 otherwise, saying which part is not ready.
func (o *ops) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{"kafka": "ok"}
	ready := true
	if err := o.admin.Ping(ctx); err != nil {
		checks["kafka"] = err.Error()
		ready = false
	}
	if o.triage {
		o.mu.Lock()
		s := o.stage
		o.mu.Unlock()
		switch {
		case s == nil:
			checks["triage"] = "loading engine"
			ready = false
		case !s.Ready():
			checks["triage"] = "restoring dedup index"
			ready = false
		default:
			checks["triage"] = "ok"
		}
	}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, checks)
}

func (o *ops) connectors(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"connectors": connectors.Sorted(o.conns)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// NewLogger returns the process logger: JSON lines, or text when w is a terminal, at level
// (debug, info, warn, error).
func NewLogger(level string, w *os.File) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: l}
	if fi, err := w.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
