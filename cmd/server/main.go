// Command server runs koophone-gateway: configuration from flags and KOOPHONE_* variables, then run until
// SIGINT/SIGTERM. With --check-config it validates the configuration and the files it names, and exits 0 (valid)
// or 2 (refused) without listening.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/koophone-gateway/koophone-gateway/internal/config"
	"github.com/koophone-gateway/koophone-gateway/internal/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stderr, stop)
	stop()
	os.Exit(code)
}

// run serves until ctx ends, then shuts down within the grace period. stopSignals is called once shutdown begins,
// so a second signal kills the process at once.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, stopSignals func()) int {
	cfg, err := config.Load(args, getenv, stderr)
	if errors.Is(err, config.ErrHelp) {
		return 0
	}
	if err != nil {
		_, _ = fmt.Fprintln(stderr, "configuration:", err) // stderr: nowhere else to tell
		return 2
	}
	if cfg.CheckOnly {
		// --check-config: everything Start would refuse before listening, and nothing more.
		if err := server.Check(cfg); err != nil {
			_, _ = fmt.Fprintln(stderr, "configuration:", err)
			return 2
		}
		_, _ = fmt.Fprintln(stderr, "configuration OK")
		return 0
	}
	log := server.NewLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	srv, err := server.Start(ctx, cfg, log)
	if err != nil {
		log.Error("start", "err", err)
		return 1
	}
	<-ctx.Done()
	stopSignals()
	// The drain delay comes first (health NOT_SERVING, calls still taken), then the grace period.
	// ctx has ended: shutdown keeps its values but not its cancellation.
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownDrainDelay+cfg.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Error("shutdown", "err", err)
		return 1
	}
	return 0
}
