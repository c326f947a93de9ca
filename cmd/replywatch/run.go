package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/replywatch/replywatch/app"
	"github.com/replywatch/replywatch/config"
)

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file (YAML); environment overrides apply after it")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *path == "" {
		fmt.Fprintln(stderr, "replywatch run: --config FILE is required")
		return exitUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "replywatch run: %v\n", err)
		return exitUsage
	}
	log, err := app.NewLogger(cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		fmt.Fprintf(stderr, "replywatch run: %v\n", err)
		return exitUsage
	}
	defer func() { _ = log.Sync() }()
	setBuildInfo()
	a, err := app.New(cfg, app.Options{Log: log})
	if err != nil {
		log.Error("cannot start", zap.Error(err))
		return exitFailed
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log.Info("replywatch starting", zap.String("version", app.Version), zap.Strings("brokers", cfg.Kafka.Brokers),
		zap.String("group", cfg.Kafka.GroupID), zap.String("http", cfg.HTTP.Addr))
	if err := a.Run(ctx); err != nil {
		log.Error("replywatch stopped with an error", zap.Error(err))
		return exitFailed
	}
	log.Info("replywatch stopped")
	return exitOK
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file (YAML) to check")
	skipSecrets := fs.Bool("skip-secrets", false, "do not read the receivers' secret files and variables (checking a config away from where it runs)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *path == "" {
		fmt.Fprintln(stderr, "replywatch validate: --config FILE is required")
		return exitUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		var ve *config.ValidationError
		if errors.As(err, &ve) {
			fmt.Fprintf(stderr, "%s: %d error(s):\n", *path, len(ve.Errors))
			for _, e := range ve.Errors {
				fmt.Fprintf(stderr, "  %s\n", e)
			}
		} else {
			fmt.Fprintf(stderr, "%s: %v\n", *path, err)
		}
		return exitUsage
	}
	if err := cfg.CheckSecrets(os.Getenv); err != nil && !*skipSecrets {
		var ve *config.ValidationError
		if errors.As(err, &ve) {
			fmt.Fprintf(stderr, "%s: %d error(s):\n", *path, len(ve.Errors))
			for _, e := range ve.Errors {
				fmt.Fprintf(stderr, "  %s\n", e)
			}
		}
		return exitUsage
	}
	out, err := cfg.YAML()
	if err != nil {
		fmt.Fprintf(stderr, "replywatch validate: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "# %s is valid; effective configuration:\n%s", *path, out)
	return exitOK
}

func cmdHealthcheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:8080/healthz", "URL to check")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(*url)
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return exitFailed
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "healthcheck: %s answered %s\n", *url, resp.Status)
		return exitFailed
	}
	return exitOK
}

func cmdVersion(stdout io.Writer) int {
	setBuildInfo()
	fmt.Fprintf(stdout, "replywatch %s (revision %s)\n", app.Version, app.Revision)
	return exitOK
}

// setBuildInfo fills version and revision from the module and VCS data Go
// embeds, unless the linker set them.
func setBuildInfo() {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	if app.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		app.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && app.Revision == "unknown" {
			app.Revision = s.Value
		}
	}
}
