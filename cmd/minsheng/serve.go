package main

import (
	"context"
	"errors"
	"flag"
	"os"
	"os/signal"
	"syscall"

	_ "github.com/minsheng-project/minsheng/connectors/all" // every connector type
	"github.com/minsheng-project/minsheng/internal/config"
	"github.com/minsheng-project/minsheng/internal/server"
)

// runServe runs `minsheng serve`: flags override the configuration file, then server.Run runs the
// roles until SIGINT or SIGTERM.
func runServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	configPath := fs.String("config", "", "YAML configuration `file` (default "+config.DefaultFile+" if present, else built-in defaults)")
	listen := fs.String("listen", "", "HTTP listen `addr`ess for API, webhooks, console, metrics (overrides listen; default 127.0.0.1:8080)")
	embedded := fs.String("embedded-kafka", "", "`addr`ess of the embedded broker, used when kafka.brokers is empty (overrides kafka.embedded_listen; default 127.0.0.1:9092)")
	dataDir := fs.String("data-dir", "", "data `dir`ectory: embedded broker log, dedup snapshot (overrides data_dir; default ./data)")
	roles := fs.String("roles", "all", "comma-separated `roles` to run: intake,triage,forward,console")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *embedded != "" {
		cfg.Kafka.EmbeddedListen = *embedded
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	rs, err := server.ParseRoles(*roles)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return server.Run(ctx, cfg, rs, server.NewLogger(cfg.LogLevel, os.Stderr))
}
