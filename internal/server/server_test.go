package server_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/minsheng-project/minsheng/internal/config"
	"github.com/minsheng-project/minsheng/internal/server"
)

func TestParseRoles(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"", []string{"intake", "triage"}, false},
		{"all", []string{"intake", "triage"}, false},
		{"triage", []string{"triage"}, false},
		{"intake, triage,intake", []string{"intake", "triage"}, false},
		{"intake,forward,console", []string{"intake", "forward", "console"}, false},
		{"intake,ingest", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := server.ParseRoles(tt.in)
			if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
				t.Errorf("ParseRoles(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

// TestBusyPortsFailClearly: a taken HTTP or broker address stops start-up with an error naming it.
func TestBusyPortsFailClearly(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	free := func() string {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		defer ln.Close()
		return ln.Addr().String()
	}
	tests := []struct{ name, listen, kafka string }{
		{"http", taken.Addr().String(), free()},
		{"embedded broker", free(), taken.Addr().String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Listen, cfg.Kafka.EmbeddedListen, cfg.DataDir = tt.listen, tt.kafka, filepath.Join(t.TempDir(), "data")
			err := server.Run(context.Background(), cfg, []string{"intake"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil || !strings.Contains(err.Error(), taken.Addr().String()) {
				t.Errorf("got %v, want an error naming %s", err, taken.Addr())
			}
		})
	}
}
