package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/replywatch/replywatch/app"
	"github.com/replywatch/replywatch/config"
)

// cmdNotify runs the notifier alone, to scale it apart from the processor.
func cmdNotify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("notify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file (YAML); environment overrides apply after it")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *path == "" {
		fmt.Fprintln(stderr, "replywatch notify: --config FILE is required")
		return exitUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "replywatch notify: %v\n", err)
		return exitUsage
	}
	log, err := app.NewLogger(cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		fmt.Fprintf(stderr, "replywatch notify: %v\n", err)
		return exitUsage
	}
	defer func() { _ = log.Sync() }()
	setBuildInfo()
	a, err := app.New(cfg, app.Options{Log: log, NotifyOnly: true})
	if err != nil {
		log.Error("cannot start", zap.Error(err))
		return exitFailed
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log.Info("replywatch notifier starting", zap.String("version", app.Version), zap.Strings("brokers", cfg.Kafka.Brokers),
		zap.String("group", cfg.Notify.GroupID), zap.String("topic", cfg.Kafka.Topics.Alerts), zap.Int("receivers", len(cfg.Notify.Receivers)))
	if err := a.Run(ctx); err != nil {
		log.Error("replywatch notifier stopped with an error", zap.Error(err))
		return exitFailed
	}
	log.Info("replywatch notifier stopped")
	return exitOK
}
