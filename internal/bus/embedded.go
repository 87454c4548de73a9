package bus

import (
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Embedded is a single-node Kafka-protocol broker running in this process (kfake), persisted to a
// directory. Every produce is fsynced before it is acknowledged, so a record acknowledged to a
// writer survives a crash of the process or the machine; a restart on the same directory reloads
// every record, topic and committed group offset.
//
// The broker advertises exactly the address it listens on, so independent clients (kcat, other
// services) can use it: listen on an address they can reach, not 0.0.0.0.
type Embedded struct {
	c    *kfake.Cluster
	addr string
}

// StartEmbedded starts the broker on listen ("host:port"; port 0 picks a free one) with its log in
// dir.
func StartEmbedded(listen, dir string, logger *slog.Logger) (*Embedded, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("starting embedded broker: %w", err)
	}
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.ClusterID("minsheng-embedded"),
		// kfake always binds 127.0.0.1:<port>; bind the configured address instead. The broker
		// advertises its listener's address, so clients are told the address they dialled.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, listen) }),
		kfake.DataDir(dir),
		kfake.SyncWrites(),
		kfake.WithLogger(kfakeLogger{logger}),
	)
	if err != nil {
		return nil, fmt.Errorf("starting embedded broker on %s (data %s): %w", listen, dir, err)
	}
	return &Embedded{c: c, addr: c.ListenAddrs()[0]}, nil
}

// Addr returns the address the broker listens on and advertises.
func (e *Embedded) Addr() string { return e.addr }

// Close stops the broker and writes its state to disk.
func (e *Embedded) Close() { e.c.Close() }

// kfakeLogger forwards the broker's warnings and errors to slog.
type kfakeLogger struct{ l *slog.Logger }

func (k kfakeLogger) Logf(level kfake.LogLevel, msg string, args ...any) {
	switch level {
	case kfake.LogLevelError:
		k.l.Error("embedded broker: " + fmt.Sprintf(msg, args...))
	case kfake.LogLevelWarn:
		k.l.Warn("embedded broker: " + fmt.Sprintf(msg, args...))
	}
}
