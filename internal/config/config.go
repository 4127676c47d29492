// Package config reads the server's settings from flags and KOOPHONE_* environment variables. A flag beats its
// environment variable, which beats the default. Credentials are read from the environment or from files only
// (NAME_FILE holding the value), never from flags, so they do not show in process listings or shell history.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Config is every setting of the server.
type Config struct {
	GRPCAddr      string
	HTTPAddr      string
	ShutdownGrace time.Duration
	LogLevel      slog.Level
	LogFormat     string // "text" or "json"

	// Limits.
	MaxRecvBytes         int
	MaxConcurrentStreams uint32
	HTTPMaxBodyBytes     int64
	DefaultCallTimeout   time.Duration // for unary calls that arrive without a deadline

	// KooPhone. With Endpoint empty the server embeds the simulator.
	Endpoint    string
	AuthToken   string // static token
	IAMEndpoint string
	IAMDomain   string
	IAMUser     string
	IAMPassword string
	Project     string // IAM scope: project name or id
	AK, SK      string
	ProjectID   string // X-Project-Id with AK/SK

	// Embedded simulator (only without Endpoint).
	SimFleet       int
	SimJobDuration time.Duration
	SimPrepareStep time.Duration

	// Streams.
	WatchFirstInterval time.Duration
	WatchMaxInterval   time.Duration
	WatchTerminalTTL   time.Duration

	// Scale-out (internal/coord). With RedisURL empty each replica works alone.
	RedisURL           string
	RedisLeaseTTL      time.Duration
	QuotaReadRate      int // upstream reads per second for all replicas together; 0: unlimited
	QuotaWriteRate     int // upstream writes per second for all replicas together; 0: unlimited
	QuotaReplicas      int // replicas sharing the quota: each spends 1/QuotaReplicas of it while Redis is down
	IdempotencyTTL     time.Duration
	IdempotencyMaxKeys int // in-memory store (without Redis)
}

// setting is one configurable value: its flag (empty for secrets), its environment variable and its help text.
type setting struct {
	flag, env, help string
	secret          bool // environment or NAME_FILE only
	set             func(string) error
	def             string
}

func (c *Config) settings() []setting {
	str := func(p *string) func(string) error { return func(v string) error { *p = v; return nil } }
	dur := func(p *time.Duration) func(string) error {
		return func(v string) error {
			d, err := time.ParseDuration(v)
			if err == nil && d < 0 {
				err = errors.New("must not be negative")
			}
			*p = d
			return err
		}
	}
	num := func(p *int) func(string) error {
		return func(v string) error {
			n, err := strconv.Atoi(v)
			if err == nil && n < 0 {
				err = errors.New("must not be negative")
			}
			*p = n
			return err
		}
	}
	return []setting{
		{flag: "grpc-addr", env: "KOOPHONE_GRPC_ADDR", def: "127.0.0.1:9090", help: "gRPC listen address", set: str(&c.GRPCAddr)},
		{flag: "http-addr", env: "KOOPHONE_HTTP_ADDR", def: "127.0.0.1:8080", help: "REST/JSON mirror, /healthz and /readyz listen address", set: str(&c.HTTPAddr)},
		{flag: "shutdown-grace", env: "KOOPHONE_SHUTDOWN_GRACE", def: "10s", help: "how long in-flight calls may finish after SIGINT/SIGTERM", set: dur(&c.ShutdownGrace)},
		{flag: "log-level", env: "KOOPHONE_LOG_LEVEL", def: "info", help: "debug, info, warn or error", set: func(v string) error { return c.LogLevel.UnmarshalText([]byte(v)) }},
		{flag: "log-format", env: "KOOPHONE_LOG_FORMAT", def: "text", help: "text or json", set: func(v string) error {
			if v != "text" && v != "json" {
				return errors.New(`must be "text" or "json"`)
			}
			c.LogFormat = v
			return nil
		}},
		{flag: "max-recv-bytes", env: "KOOPHONE_MAX_RECV_BYTES", def: "4194304", help: "largest gRPC request accepted, in bytes", set: num(&c.MaxRecvBytes)},
		{flag: "max-concurrent-streams", env: "KOOPHONE_MAX_CONCURRENT_STREAMS", def: "10000", help: "HTTP/2 streams per gRPC connection (watchers hold one each)", set: func(v string) error {
			n, err := strconv.ParseUint(v, 10, 32)
			c.MaxConcurrentStreams = uint32(n)
			return err
		}},
		{flag: "http-max-body-bytes", env: "KOOPHONE_HTTP_MAX_BODY_BYTES", def: "1048576", help: "largest REST request body accepted, in bytes", set: func(v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err == nil && n <= 0 {
				err = errors.New("must be positive")
			}
			c.HTTPMaxBodyBytes = n
			return err
		}},
		{flag: "default-call-timeout", env: "KOOPHONE_DEFAULT_CALL_TIMEOUT", def: "30s", help: "deadline given to unary calls that arrive without one", set: dur(&c.DefaultCallTimeout)},
		{flag: "endpoint", env: "KOOPHONE_ENDPOINT", help: "KooPhone base URL, e.g. https://koophone.myhuaweicloud.com; empty runs the embedded simulator", set: str(&c.Endpoint)},
		{env: "KOOPHONE_AUTH_TOKEN", secret: true, help: "static project-scoped IAM token (X-Auth-Token)", set: str(&c.AuthToken)},
		{flag: "iam-endpoint", env: "KOOPHONE_IAM_ENDPOINT", help: "IAM base URL for the password flow, e.g. https://iam.cn-north-4.myhuaweicloud.com", set: str(&c.IAMEndpoint)},
		{flag: "iam-domain", env: "KOOPHONE_IAM_DOMAIN", help: "IAM account (domain) name", set: str(&c.IAMDomain)},
		{flag: "iam-user", env: "KOOPHONE_IAM_USER", help: "IAM user name", set: str(&c.IAMUser)},
		{env: "KOOPHONE_IAM_PASSWORD", secret: true, help: "IAM user's password", set: str(&c.IAMPassword)},
		{flag: "project", env: "KOOPHONE_PROJECT", help: "IAM token scope: project name (e.g. cn-north-4) or 32-hex project id", set: str(&c.Project)},
		{env: "KOOPHONE_AK", secret: true, help: "access key id for AK/SK signing", set: str(&c.AK)},
		{env: "KOOPHONE_SK", secret: true, help: "secret access key for AK/SK signing", set: str(&c.SK)},
		{flag: "project-id", env: "KOOPHONE_PROJECT_ID", help: "project id sent as X-Project-Id with AK/SK signing (optional)", set: str(&c.ProjectID)},
		{flag: "sim-fleet", env: "KOOPHONE_SIM_FLEET", def: "20", help: "embedded simulator: number of phones", set: num(&c.SimFleet)},
		{flag: "sim-job-duration", env: "KOOPHONE_SIM_JOB_DURATION", def: "2s", help: "embedded simulator: how long async jobs run", set: dur(&c.SimJobDuration)},
		{flag: "sim-prepare-step", env: "KOOPHONE_SIM_PREPARE_STEP", def: "1s", help: "embedded simulator: one step of the prepare queue", set: dur(&c.SimPrepareStep)},
		{flag: "watch-first-interval", env: "KOOPHONE_WATCH_FIRST_INTERVAL", def: "500ms", help: "streams: first upstream poll interval, and the interval after a change", set: dur(&c.WatchFirstInterval)},
		{flag: "watch-max-interval", env: "KOOPHONE_WATCH_MAX_INTERVAL", def: "10s", help: "streams: longest poll interval while nothing changes", set: dur(&c.WatchMaxInterval)},
		{flag: "watch-terminal-ttl", env: "KOOPHONE_WATCH_TERMINAL_TTL", def: "1m", help: "streams: how long a finished task's last state is served without polling", set: dur(&c.WatchTerminalTTL)},
		{env: "KOOPHONE_REDIS_URL", secret: true, help: "Redis shared by the replicas (pollers, quota, idempotency keys): redis://[:password@]host:port/db, rediss:// for TLS, ?master_name=NAME for Sentinel, redis+cluster:// for a Cluster; empty: each replica alone", set: str(&c.RedisURL)},
		{flag: "redis-lease-ttl", env: "KOOPHONE_REDIS_LEASE_TTL", def: "5s", help: "scale-out: how long a dead replica's pollers stay unclaimed (the failover time)", set: dur(&c.RedisLeaseTTL)},
		{flag: "quota-read-rate", env: "KOOPHONE_QUOTA_READ_RATE", def: "0", help: "upstream read calls per second, all replicas together (0: unlimited)", set: num(&c.QuotaReadRate)},
		{flag: "quota-write-rate", env: "KOOPHONE_QUOTA_WRITE_RATE", def: "0", help: "upstream write calls per second, all replicas together (0: unlimited)", set: num(&c.QuotaWriteRate)},
		{flag: "quota-replicas", env: "KOOPHONE_QUOTA_REPLICAS", def: "1", help: "replicas sharing the quota; while Redis is down each spends its 1/N share", set: num(&c.QuotaReplicas)},
		{flag: "idempotency-ttl", env: "KOOPHONE_IDEMPOTENCY_TTL", def: "24h", help: "how long a write's request_id (Idempotency-Key) is remembered", set: dur(&c.IdempotencyTTL)},
		{flag: "idempotency-max-keys", env: "KOOPHONE_IDEMPOTENCY_MAX_KEYS", def: "100000", help: "without Redis: most request_ids kept in memory (oldest dropped first)", set: num(&c.IdempotencyMaxKeys)},
	}
}

// ErrHelp is returned by Load when --help was asked for; the usage has been written.
var ErrHelp = flag.ErrHelp

// Load reads args (without the program name) and the environment through getenv; usage and errors go to out.
func Load(args []string, getenv func(string) string, out io.Writer) (*Config, error) {
	c := &Config{}
	ss := c.settings()
	fs := flag.NewFlagSet("koophone-gateway", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() { usage(out, fs, ss) }
	flagVals := map[string]*string{}
	for _, s := range ss {
		if s.flag != "" {
			flagVals[s.flag] = fs.String(s.flag, "", s.help)
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q (settings are flags or KOOPHONE_* variables)", fs.Args())
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })

	var errs []error
	for _, s := range ss {
		v, from, err := lookup(s, explicit, flagVals, getenv)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if v == "" && s.def == "" {
			continue
		}
		if v == "" {
			v, from = s.def, "default"
		}
		if err := s.set(v); err != nil {
			// Never echo a secret's value.
			shown := strconv.Quote(v)
			if s.secret {
				shown = "(hidden)"
			}
			errs = append(errs, fmt.Errorf("%s %s: %w", from, shown, err))
		}
	}
	if err := c.check(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// lookup finds a setting's value and says where it came from: the flag, the variable, or the variable's file.
func lookup(s setting, explicit map[string]bool, flagVals map[string]*string, getenv func(string) string) (string, string, error) {
	if s.flag != "" && explicit[s.flag] {
		return *flagVals[s.flag], "--" + s.flag, nil
	}
	if v := getenv(s.env); v != "" {
		return v, s.env, nil
	}
	if !s.secret {
		return "", "", nil
	}
	path := getenv(s.env + "_FILE")
	if path == "" {
		return "", "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("%s_FILE: %w", s.env, err)
	}
	return strings.TrimSpace(string(b)), s.env + "_FILE", nil
}

// check rejects combinations that cannot work, naming the settings involved.
func (c *Config) check() error {
	methods := 0
	if c.AuthToken != "" {
		methods++
	}
	iam := c.IAMEndpoint != "" || c.IAMDomain != "" || c.IAMUser != "" || c.IAMPassword != ""
	if iam {
		methods++
		var missing []string
		for name, v := range map[string]string{
			"KOOPHONE_IAM_ENDPOINT": c.IAMEndpoint, "KOOPHONE_IAM_DOMAIN": c.IAMDomain, "KOOPHONE_IAM_USER": c.IAMUser,
			"KOOPHONE_IAM_PASSWORD": c.IAMPassword, "KOOPHONE_PROJECT": c.Project,
		} {
			if v == "" {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			sort.Strings(missing)
			return fmt.Errorf("the IAM password flow needs %s", strings.Join(missing, ", "))
		}
	}
	if c.AK != "" || c.SK != "" {
		methods++
		if c.AK == "" || c.SK == "" {
			return errors.New("AK/SK signing needs both KOOPHONE_AK and KOOPHONE_SK")
		}
	}
	if methods > 1 {
		return errors.New("choose one KooPhone credential: KOOPHONE_AUTH_TOKEN, the KOOPHONE_IAM_* password flow, or KOOPHONE_AK/KOOPHONE_SK")
	}
	if c.Endpoint != "" && methods == 0 {
		return errors.New("KOOPHONE_ENDPOINT is set but no credential is: set KOOPHONE_AUTH_TOKEN, the KOOPHONE_IAM_* variables, or KOOPHONE_AK and KOOPHONE_SK")
	}
	if c.Endpoint == "" && methods > 0 {
		return errors.New("credentials are set but KOOPHONE_ENDPOINT is not: set it, or unset the credentials to run on the embedded simulator")
	}
	if c.WatchMaxInterval < c.WatchFirstInterval {
		return errors.New("--watch-max-interval must not be shorter than --watch-first-interval")
	}
	if c.QuotaReplicas < 1 {
		return errors.New("--quota-replicas must be at least 1")
	}
	if c.RedisURL != "" && c.RedisLeaseTTL < 300*time.Millisecond {
		return errors.New("--redis-lease-ttl must be at least 300ms")
	}
	if c.SimFleet < 1 && c.Endpoint == "" {
		return errors.New("--sim-fleet must be at least 1")
	}
	return nil
}

// Simulated reports whether the server runs on the embedded simulator.
func (c *Config) Simulated() bool { return c.Endpoint == "" }

func usage(out io.Writer, fs *flag.FlagSet, ss []setting) {
	fmt.Fprintf(out, "Usage: %s [flags]\n\n", fs.Name())
	fmt.Fprintln(out, "koophone-gateway serves KooPhone cloud phones over gRPC (with reflection and health) and a REST/JSON")
	fmt.Fprintln(out, "mirror. Without KOOPHONE_ENDPOINT it runs on an embedded KooPhone simulator.")
	fmt.Fprintln(out, "\nEvery setting is a flag or a KOOPHONE_* environment variable (the flag wins). Secrets are environment")
	fmt.Fprintln(out, "only, or NAME_FILE pointing at a file that holds the value.")
	fmt.Fprintln(out)
	for _, s := range ss {
		name := "(env only)"
		if s.flag != "" {
			name = "--" + s.flag
		}
		def := ""
		if s.def != "" {
			def = " (default " + s.def + ")"
		}
		env := s.env
		if s.secret {
			env += ", " + s.env + "_FILE"
		}
		fmt.Fprintf(out, "  %-26s %s\n      %s%s\n", name, env, s.help, def)
	}
}
