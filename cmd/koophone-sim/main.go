// Command koophone-sim runs the KooPhone simulator (internal/sim) as a standalone HTTP server, for demos, for
// other teams' tests and for load tests. It prints the credentials it accepts and the KOOPHONE_* environment that
// points the gateway at it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/sim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "koophone-sim:", err)
		os.Exit(1)
	}
}

// faultFlags collects repeated --fault '{"kind":"502","ops":["GetTask"],"count":2}' flags.
type faultFlags []sim.Fault

func (f *faultFlags) String() string { return fmt.Sprint(len(*f), " faults") }

func (f *faultFlags) Set(v string) error {
	var fault sim.Fault
	if err := json.Unmarshal([]byte(v), &fault); err != nil {
		return err
	}
	if err := fault.Validate(); err != nil {
		return err
	}
	*f = append(*f, fault)
	return nil
}

// run serves until ctx ends, then shuts down gracefully.
func run(ctx context.Context, args []string, out io.Writer) error {
	cfg := sim.DefaultConfig()
	fs := flag.NewFlagSet("koophone-sim", flag.ContinueOnError)
	fs.SetOutput(out)
	addr := fs.String("addr", "127.0.0.1:8081", "listen address")
	fs.IntVar(&cfg.FleetSize, "fleet", cfg.FleetSize, "phones the tenant owns at start")
	fs.Int64Var(&cfg.Seed, "seed", cfg.Seed, "seed of ids, tokens and fault rates")
	fs.DurationVar(&cfg.JobDuration, "job-duration", cfg.JobDuration, "how long asynchronous jobs run")
	fs.DurationVar(&cfg.PrepareStep, "prepare-step", cfg.PrepareStep, "one tick of the prepare queue")
	fs.IntVar(&cfg.PrepareQueue, "prepare-queue", cfg.PrepareQueue, "waitingCount a preparation starts with")
	fs.DurationVar(&cfg.RestoreDuration, "restore-duration", cfg.RestoreDuration, "restore time after the queue")
	fs.DurationVar(&cfg.RebootDuration, "reboot-duration", cfg.RebootDuration, "how long a reboot takes")
	fs.DurationVar(&cfg.TokenTTL, "token-ttl", cfg.TokenTTL, "lifetime of IAM tokens")
	fs.IntVar(&cfg.Stock, "stock", cfg.Stock, "phones CreateInstance may still sell")
	fs.StringVar(&cfg.InstallResultShape, "install-shape", cfg.InstallResultShape, `InstallApp data shape: "example" or "table"`)
	failIDs := fs.String("fail-instances", "", "comma-separated instance ids on which every job fails")
	pools := fs.String("pools", strings.Join(cfg.Pools, ","), "comma-separated node groups (pool_name) the fleet is spread over")
	regions := fs.String("regions", strings.Join(cfg.Regions, ","), "comma-separated regions the fleet is spread over, in contiguous blocks")
	latency := fs.Duration("latency", 0, "delay every answer by this much")
	errorRate := fs.Float64("error-rate", 0, "probability of an HTTP 500 KOOPHONE.API.9999 answer")
	limitRate := fs.Float64("rate-limit-rate", 0, "probability of an HTTP 429 APIGW.0308 answer")
	retryAfter := fs.Duration("retry-after", time.Second, "Retry-After of the 429 answers")
	var faults faultFlags
	fs.Var(&faults, "fault", `a fault as JSON, repeatable: '{"kind":"502","ops":["GetTask"],"count":2}'`)
	verbose := fs.Bool("v", false, "log every request")
	if err := fs.Parse(args); err != nil {
		return err
	}

	// Zero given on the command line means zero, not "default" as it does in sim.Config.
	for _, n := range []*int{&cfg.FleetSize, &cfg.PrepareQueue, &cfg.Stock} {
		if *n == 0 {
			*n = -1
		}
	}
	if *failIDs != "" {
		cfg.FailInstances = strings.Split(*failIDs, ",")
	}
	if *pools != "" {
		cfg.Pools = strings.Split(*pools, ",")
	}
	if *regions != "" {
		cfg.Regions = strings.Split(*regions, ",")
	}
	if *latency > 0 {
		faults = append(faults, sim.Fault{Kind: sim.FaultLatency, Latency: *latency})
	}
	if *errorRate > 0 {
		faults = append(faults, sim.Fault{Kind: sim.FaultError, Rate: *errorRate})
	}
	if *limitRate > 0 {
		faults = append(faults, sim.Fault{Kind: sim.Fault429, Rate: *limitRate, RetryAfter: *retryAfter})
	}
	for _, f := range faults {
		if err := f.Validate(); err != nil {
			return err
		}
	}
	cfg.Faults = faults
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	s := sim.New(cfg)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	// Connections are counted here, outside the simulated API, so load tests can see how many the gateway opened.
	var conns connCounter
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_sim/connections", conns.serve)
	mux.HandleFunc("POST /_sim/connections/peak-reset", conns.resetPeak)
	mux.Handle("/", s)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ConnState: conns.track}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	printBanner(out, baseURL(ln.Addr()), s, cfg)

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	// ctx has ended: shutdown keeps its values but not its cancellation.
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// baseURL is the URL clients use; a wildcard listen address is reached on loopback.
func baseURL(a net.Addr) string {
	host, port, _ := net.SplitHostPort(a.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func printBanner(out io.Writer, url string, s *sim.Server, cfg sim.Config) {
	c := s.Credentials()
	_, _ = fmt.Fprintf(out, `KooPhone simulator listening on %[1]s
  fleet %[2]d phones, seed %[3]d, jobs %[4]s, prepare %[5]d x %[6]s + %[7]s restore
  admin: %[1]s/_sim/faults, /_sim/calls, /_sim/connections (+ POST .../peak-reset), /_sim/revoke-tokens

IAM endpoint  POST %[1]s/v3/auth/tokens
  domain      %[8]s
  user        %[9]s
  password    %[10]s
  project     %[11]s (id %[12]s)
AK/SK
  AK          %[13]s
  SK          %[14]s

# Point the gateway at the simulator (token auth):
KOOPHONE_ENDPOINT=%[1]s
KOOPHONE_IAM_ENDPOINT=%[1]s
KOOPHONE_IAM_DOMAIN=%[8]s
KOOPHONE_IAM_USER=%[9]s
KOOPHONE_IAM_PASSWORD=%[10]s
KOOPHONE_PROJECT=%[11]s
# or AK/SK auth instead of the IAM lines:
KOOPHONE_AK=%[13]s
KOOPHONE_SK=%[14]s
KOOPHONE_PROJECT_ID=%[12]s
`, url, len(s.InstanceIDs()), cfg.Seed, cfg.JobDuration, max(cfg.PrepareQueue, 0), cfg.PrepareStep, cfg.RestoreDuration,
		c.Domain, c.User, c.Password, c.ProjectName, c.ProjectID, c.AK, c.SK)
}
