// Command server runs koophone-gateway: configuration from flags and KOOPHONE_* variables, then run until
// SIGINT/SIGTERM. With --check-config it validates the configuration and the files it names, and exits 0 (valid)
// or 2 (refused) without listening. --version prints the version (VERSION, embedded), the Go release and the
// revision it was built from, and exits 0.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"syscall"

	koophonegateway "github.com/koophone-gateway/koophone-gateway"
	"github.com/koophone-gateway/koophone-gateway/internal/config"
	"github.com/koophone-gateway/koophone-gateway/internal/server"
)

func main() {
	if wantsVersion(os.Args[1:]) {
		fmt.Println(versionLine())
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stderr, stop)
	stop()
	os.Exit(code)
}

// wantsVersion reports whether the arguments ask for the version (--version or -version, before any "--"), which
// is answered before the configuration is read, so that it works whatever else is set.
func wantsVersion(args []string) bool {
	if i := slices.Index(args, "--"); i >= 0 {
		args = args[:i]
	}
	return slices.Contains(args, "--version") || slices.Contains(args, "-version")
}

// versionLine is what --version prints: "koophone-gateway 0.1.0 (go1.26.8, revision 0123abc…)".
func versionLine() string {
	return fmt.Sprintf("koophone-gateway %s (%s, revision %s)", koophonegateway.Version, runtime.Version(), koophonegateway.Revision())
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
