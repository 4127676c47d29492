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
	"math"
	"net"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/coord"
	"github.com/koophone-gateway/koophone-gateway/internal/fleet"
	"github.com/koophone-gateway/koophone-gateway/internal/idempotency"
	"github.com/koophone-gateway/koophone-gateway/internal/sim"
	"github.com/koophone-gateway/koophone-gateway/internal/stream"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
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
	WatchPollTimeout   time.Duration
	WatchStepTimeout   time.Duration
	WatchMaxPollers    int

	// Operating it: metrics, the limits toward KooPhone, shutdown.
	MetricsAddr           string // optional second listener for /metrics
	UpstreamReadRate      float64
	UpstreamReadBurst     int
	UpstreamWriteRate     float64
	UpstreamWriteBurst    int
	UpstreamMaxConns      int
	UpstreamMaxInFlight   int
	UpstreamRetryBudget   float64
	UpstreamRetryMin      float64
	BreakerFailures       int
	BreakerOpenFor        time.Duration
	ShutdownDrainDelay    time.Duration
	MaxConnectionAge      time.Duration
	MaxConnectionAgeGrace time.Duration

	// Callers: TLS, authentication, authorization, audit.
	TLSCertFile     string
	TLSKeyFile      string
	TLSClientCAFile string // mTLS: client certificates verified against these CAs
	AuthKeysFile    string
	AuthPolicyFile  string
	InsecureNoAuth  bool
	Reflection      string // "auto" (on only without authentication), "on" or "off"
	AuditLog        string // "stderr", "stdout", "off" or a file path

	// REST mirror and listener hardening.
	CORSOrigins           []string
	WebRPC                bool // Connect and gRPC-web on the REST port (internal/webrpc)
	HTTPAllowedHosts      []string
	HTTPReadHeaderTimeout time.Duration
	HTTPBodyTimeout       time.Duration
	MaxConnections        int    // per listener
	GRPCMaxHeaderBytes    uint32 // grpc.MaxHeaderListSize

	// Connections that have not said who they are, or say nothing: bounded per source, in time and when idle.
	MaxConnsPerSource int           // per listener, from one IPv4 address or IPv6 /64
	HandshakeTimeout  time.Duration // gRPC: TLS and HTTP/2 set-up
	IdleTimeout       time.Duration // both ports: connections with no call in progress

	// Fleet operations.
	FleetBatchSize        int
	FleetConcurrency      int
	FleetProgressInterval time.Duration

	// Operators.
	PprofAddr string // loopback address of /debug/pprof; empty = off

	// Scale-out (internal/coord). With RedisURL empty each replica works alone.
	RedisURL           string
	RedisLeaseTTL      time.Duration
	RedisTimeout       time.Duration
	QuotaReplicas      int // replicas sharing the quota: each spends 1/QuotaReplicas of it while Redis is down
	IdempotencyTTL     time.Duration
	IdempotencyMaxKeys int // in-memory store (without Redis)

	// Per-caller shares (internal/share): everyone's defaults (0: unlimited) and a file of overrides. The defaults bound
	// what one caller can hold (streams, calls, fleet runs) without slowing anyone who behaves; the rate is off, since
	// the fair queue in front of KooPhone's quota already shares the upstream among callers.
	ShareRate                float64
	ShareBurst               int
	ShareConcurrentCalls     int
	ShareOpenStreams         int
	ShareConcurrentFleetRuns int
	ShareFile                string
	UpstreamPollShare        float64 // share of the upstream quota's turns kept for watch polls under contention
	// CheckOnly is --check-config: validate the configuration and the files it names, then exit without serving.
	// A flag only, never a variable: an environment that carried it would make every container exit at once.
	CheckOnly bool
	// Env is the environment Load read (its getenv): the tracing exporter's standard OTEL_* variables are read from
	// it too, so a test's environment is the only one the server sees. Never nil after Load.
	Env func(string) string
}

// setting is one configurable value: its flag (empty for secrets), its environment variable and its help text.
type setting struct {
	flag, env, help string
	secret          bool // environment or NAME_FILE only
	boolean         bool // a flag that may stand alone (--insecure-no-auth)
	set             func(string) error
	def             string
}

// settings is the table of every setting, in the order --help lists them.
func (c *Config) settings() []setting {
	return slices.Concat(c.serverSettings(), c.upstreamSettings(), c.watchSettings(), c.operatingSettings(),
		c.callerSettings(), c.listenerSettings(), c.fleetSettings(), c.scaleSettings())
}

// serverSettings are the listeners, shutdown, logs and call limits.
func (c *Config) serverSettings() []setting {
	return []setting{
		{flag: "grpc-addr", env: "KOOPHONE_GRPC_ADDR", def: "127.0.0.1:9090", help: "gRPC listen address", set: str(&c.GRPCAddr)},
		{flag: "http-addr", env: "KOOPHONE_HTTP_ADDR", def: "127.0.0.1:8080", help: "REST/JSON mirror, /healthz and /readyz listen address", set: str(&c.HTTPAddr)},
		{flag: "shutdown-grace", env: "KOOPHONE_SHUTDOWN_GRACE", def: "10s", help: "how long in-flight calls may finish after SIGINT/SIGTERM", set: posDur(&c.ShutdownGrace)},
		{flag: "log-level", env: "KOOPHONE_LOG_LEVEL", def: "info", help: "debug, info, warn or error", set: func(v string) error { return c.LogLevel.UnmarshalText([]byte(v)) }},
		{flag: "log-format", env: "KOOPHONE_LOG_FORMAT", def: "text", help: "text or json", set: oneOf(&c.LogFormat, "text", "json")},
		{flag: "max-recv-bytes", env: "KOOPHONE_MAX_RECV_BYTES", def: "4194304", help: "largest gRPC request accepted, in bytes", set: positive(&c.MaxRecvBytes)},
		{flag: "max-concurrent-streams", env: "KOOPHONE_MAX_CONCURRENT_STREAMS", def: "10000", help: "HTTP/2 streams per gRPC connection (watchers hold one each)", set: uint32Within(&c.MaxConcurrentStreams, 1, math.MaxUint32, "must be at least 1")},
		{flag: "http-max-body-bytes", env: "KOOPHONE_HTTP_MAX_BODY_BYTES", def: "1048576", help: "largest REST request body accepted, in bytes", set: positive64(&c.HTTPMaxBodyBytes)},
		{flag: "default-call-timeout", env: "KOOPHONE_DEFAULT_CALL_TIMEOUT", def: "30s", help: "deadline given to unary calls that arrive without one", set: posDur(&c.DefaultCallTimeout)},
	}
}

// upstreamSettings are KooPhone: its address, the gateway's credential, the embedded simulator.
func (c *Config) upstreamSettings() []setting {
	return []setting{
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
		{flag: "sim-fleet", env: "KOOPHONE_SIM_FLEET", def: strconv.Itoa(sim.DefaultFleetSize), help: "embedded simulator: number of phones", set: positive(&c.SimFleet)},
		{flag: "sim-job-duration", env: "KOOPHONE_SIM_JOB_DURATION", def: durString(sim.DefaultJobDuration), help: "embedded simulator: how long async jobs run", set: dur(&c.SimJobDuration)},
		{flag: "sim-prepare-step", env: "KOOPHONE_SIM_PREPARE_STEP", def: durString(sim.DefaultPrepareStep), help: "embedded simulator: one step of the prepare queue", set: dur(&c.SimPrepareStep)},
	}
}

// watchSettings are streams: the watch hubs' polling.
func (c *Config) watchSettings() []setting {
	return []setting{
		{flag: "watch-first-interval", env: "KOOPHONE_WATCH_FIRST_INTERVAL", def: durString(stream.DefaultFirstInterval), help: "streams: first upstream poll interval, and the interval after a change", set: posDur(&c.WatchFirstInterval)},
		{flag: "watch-max-interval", env: "KOOPHONE_WATCH_MAX_INTERVAL", def: durString(stream.DefaultMaxInterval), help: "streams: longest poll interval while nothing changes", set: posDur(&c.WatchMaxInterval)},
		{flag: "watch-terminal-ttl", env: "KOOPHONE_WATCH_TERMINAL_TTL", def: durString(stream.DefaultTerminalTTL), help: "streams: how long a finished task's last state is served without polling", set: dur(&c.WatchTerminalTTL)},
		{flag: "watch-poll-timeout", env: "KOOPHONE_WATCH_POLL_TIMEOUT", def: durString(stream.DefaultPollTimeout), help: "streams: deadline of one upstream poll (GetTask, ShowProgress)", set: posDur(&c.WatchPollTimeout)},
		// service.DefaultStepTimeout, written out: config must not link the contract (config_test.go holds them equal).
		{flag: "watch-step-timeout", env: "KOOPHONE_WATCH_STEP_TIMEOUT", def: "30s", help: "streams: deadline of each other upstream call a stream makes (AsyncCommand, prepare, assign, device token)", set: posDur(&c.WatchStepTimeout)},
		{flag: "watch-max-pollers", env: "KOOPHONE_WATCH_MAX_POLLERS", def: "10000", help: "streams: distinct things polled at once per kind on this replica; beyond it a new watch gets RESOURCE_EXHAUSTED", set: positive(&c.WatchMaxPollers)},
	}
}

// operatingSettings are operating it: metrics, the limits toward KooPhone, shutdown, connection age.
func (c *Config) operatingSettings() []setting {
	return []setting{
		{flag: "metrics-addr", env: "KOOPHONE_METRICS_ADDR", help: "optional extra listen address serving only /metrics (it is always on the HTTP port too)", set: str(&c.MetricsAddr)},
		{flag: "upstream-read-rate", env: "KOOPHONE_UPSTREAM_READ_RATE", def: "50", help: "KooPhone reads sent per second at most (0: unlimited)", set: float(&c.UpstreamReadRate, 0, 1e6)},
		{flag: "upstream-read-burst", env: "KOOPHONE_UPSTREAM_READ_BURST", def: "100", help: "KooPhone reads sent at once above the rate", set: positive(&c.UpstreamReadBurst)},
		{flag: "upstream-write-rate", env: "KOOPHONE_UPSTREAM_WRITE_RATE", def: "20", help: "KooPhone writes sent per second at most (0: unlimited)", set: float(&c.UpstreamWriteRate, 0, 1e6)},
		{flag: "upstream-write-burst", env: "KOOPHONE_UPSTREAM_WRITE_BURST", def: "40", help: "KooPhone writes sent at once above the rate", set: positive(&c.UpstreamWriteBurst)},
		{flag: "upstream-max-conns", env: "KOOPHONE_UPSTREAM_MAX_CONNS", def: strconv.Itoa(upstream.DefaultMaxConnsPerHost), help: "connections to KooPhone at most (HTTP/2 multiplexes over fewer)", set: positive(&c.UpstreamMaxConns)},
		{flag: "upstream-max-in-flight", env: "KOOPHONE_UPSTREAM_MAX_IN_FLIGHT", def: strconv.Itoa(upstream.DefaultMaxInFlight), help: "KooPhone requests in flight at most; more wait inside their deadline", set: positive(&c.UpstreamMaxInFlight)},
		{flag: "upstream-retry-budget", env: "KOOPHONE_UPSTREAM_RETRY_BUDGET", def: floatString(upstream.DefaultRetryRatio), help: "retries of reads allowed per call, over all calls (0.2: at most 20% more requests)", set: float(&c.UpstreamRetryBudget, 0, 10)},
		{flag: "upstream-retry-min", env: "KOOPHONE_UPSTREAM_RETRY_MIN", def: floatString(upstream.DefaultRetryMinPerSec), help: "retries per second always allowed, whatever the budget", set: float(&c.UpstreamRetryMin, 0, 1e6)},
		{flag: "breaker-failures", env: "KOOPHONE_BREAKER_FAILURES", def: strconv.Itoa(upstream.DefaultBreakerFailures), help: "consecutive KooPhone failures (no answer, 5xx) that open the circuit breaker", set: within(&c.BreakerFailures, 1, 1_000_000)},
		{flag: "breaker-open-for", env: "KOOPHONE_BREAKER_OPEN_FOR", def: durString(upstream.DefaultBreakerOpenFor), help: "how long the open breaker fails calls fast before probing KooPhone again", set: posDur(&c.BreakerOpenFor)},
		{flag: "shutdown-drain-delay", env: "KOOPHONE_SHUTDOWN_DRAIN_DELAY", def: "0s", help: "after SIGTERM, how long health says NOT_SERVING while calls are still taken, so load balancers notice (5s behind Kubernetes)", set: dur(&c.ShutdownDrainDelay)},
		{flag: "max-connection-age", env: "KOOPHONE_MAX_CONNECTION_AGE", def: "30m", help: "gRPC connections are asked to reconnect after this long, so clients rebalance across replicas", set: posDur(&c.MaxConnectionAge)},
		{flag: "max-connection-age-grace", env: "KOOPHONE_MAX_CONNECTION_AGE_GRACE", def: "1m", help: "how long calls on an aged connection may finish before it is closed (watch streams then reconnect)", set: posDur(&c.MaxConnectionAgeGrace)},
	}
}

// callerSettings are callers: TLS, authentication, authorization, audit.
func (c *Config) callerSettings() []setting {
	return []setting{
		{flag: "tls-cert-file", env: "KOOPHONE_TLS_CERT_FILE", help: "TLS certificate (PEM) for both listeners; reloaded when the file changes", set: str(&c.TLSCertFile)},
		{flag: "tls-key-file", env: "KOOPHONE_TLS_KEY_FILE", help: "TLS private key (PEM) for --tls-cert-file; reloaded when the file changes", set: str(&c.TLSKeyFile)},
		{flag: "tls-client-ca", env: "KOOPHONE_TLS_CLIENT_CA_FILE", help: "CA certificates (PEM) for client certificates (mTLS): a verified certificate's SAN or CN authenticates its caller", set: str(&c.TLSClientCAFile)},
		{flag: "auth-keys-file", env: "KOOPHONE_AUTH_KEYS_FILE", help: "API keys file (YAML or JSON: SHA-256 of each key, principal, groups, expiry); reloaded when it changes", set: str(&c.AuthKeysFile)},
		{flag: "auth-policy-file", env: "KOOPHONE_AUTH_POLICY_FILE", help: "policy file granting KooPhone IAM actions to principals and groups; reloaded when it changes; empty: authenticated callers may do everything", set: str(&c.AuthPolicyFile)},
		{flag: "insecure-no-auth", env: "KOOPHONE_INSECURE_NO_AUTH", boolean: true, def: "false", help: "serve a non-loopback address without authentication (anyone who reaches the port can buy, reset and delete phones)", set: boolean(&c.InsecureNoAuth)},
		{flag: "reflection", env: "KOOPHONE_REFLECTION", def: "auto", help: "gRPC reflection: auto (on only without authentication), on or off", set: oneOf(&c.Reflection, "auto", "on", "off")},
		{flag: "audit-log", env: "KOOPHONE_AUDIT_LOG", def: "stderr", help: "where the audit log (one line per write call) goes: stderr, stdout, off, or a file path (appended)", set: str(&c.AuditLog)},
	}
}

// listenerSettings are the REST mirror and the listeners' hardening.
func (c *Config) listenerSettings() []setting {
	return []setting{
		{flag: "cors-origins", env: "KOOPHONE_CORS_ORIGINS", help: "comma-separated browser origins allowed to call the REST mirror (CORS); empty: none, cross-origin writes refused", set: list(&c.CORSOrigins)},
		{flag: "web-rpc", env: "KOOPHONE_WEB_RPC", boolean: true, def: "true", help: "serve the Connect protocol and gRPC-web on the REST port at /koophone.v1.<Service>/<Method> (browsers' Connect clients); false: the REST mirror only", set: boolean(&c.WebRPC)},
		{flag: "http-allowed-hosts", env: "KOOPHONE_HTTP_ALLOWED_HOSTS", help: "comma-separated Host names the REST mirror answers (421 otherwise); empty: any", set: list(&c.HTTPAllowedHosts)},
		{flag: "http-read-header-timeout", env: "KOOPHONE_HTTP_READ_HEADER_TIMEOUT", def: "10s", help: "REST: how long a client may take to send request headers", set: posDur(&c.HTTPReadHeaderTimeout)},
		{flag: "http-body-timeout", env: "KOOPHONE_HTTP_BODY_TIMEOUT", def: "30s", help: "REST: how long a client may take to send a whole request body", set: posDur(&c.HTTPBodyTimeout)},
		{flag: "max-connections", env: "KOOPHONE_MAX_CONNECTIONS", def: "4096", help: "open connections accepted per listener (gRPC and REST each); more wait for one to close", set: within(&c.MaxConnections, 1, 1_000_000)},
		{flag: "max-connections-per-source", env: "KOOPHONE_MAX_CONNECTIONS_PER_SOURCE", def: "256", help: "open connections accepted per listener from one source (an IPv4 address or an IPv6 /64); more are closed at once, so one client cannot hold the port; at most --max-connections", set: within(&c.MaxConnsPerSource, 1, 1_000_000)},
		{flag: "handshake-timeout", env: "KOOPHONE_HANDSHAKE_TIMEOUT", def: "10s", help: "gRPC: how long a new connection may take to finish its TLS and HTTP/2 handshake (on the REST port --http-read-header-timeout bounds the handshake and the first request's headers)", set: posDur(&c.HandshakeTimeout)},
		{flag: "idle-timeout", env: "KOOPHONE_IDLE_TIMEOUT", def: "2m", help: "both ports: a connection with no call in progress (none made yet included) is closed after this long; clients reconnect on their next call", set: posDur(&c.IdleTimeout)},
		{flag: "grpc-max-header-bytes", env: "KOOPHONE_GRPC_MAX_HEADER_BYTES", def: "65536", help: "largest gRPC header (metadata) list accepted, in bytes", set: uint32Within(&c.GRPCMaxHeaderBytes, 1024, 16<<20)},
	}
}

// fleetSettings are fleet operations and the operators' pprof.
func (c *Config) fleetSettings() []setting {
	return []setting{
		{flag: "fleet-batch-size", env: "KOOPHONE_FLEET_BATCH_SIZE", def: strconv.Itoa(fleet.MaxBatch), help: "fleet RPCs: most phones per KooPhone call (1..100)", set: within(&c.FleetBatchSize, 1, fleet.MaxBatch, "must be 1..100 (KooPhone takes at most 100 phones per call)")},
		{flag: "fleet-concurrency", env: "KOOPHONE_FLEET_CONCURRENCY", def: strconv.Itoa(fleet.DefaultConcurrency), help: "fleet RPCs: most batches in progress at once per call", set: within(&c.FleetConcurrency, 1, 64)},
		{flag: "fleet-progress-interval", env: "KOOPHONE_FLEET_PROGRESS_INTERVAL", def: durString(fleet.DefaultProgressInterval), help: "fleet RPCs: time between progress messages", set: posDur(&c.FleetProgressInterval)},
		{flag: "pprof-addr", env: "KOOPHONE_PPROF_ADDR", help: "serve /debug/pprof on this loopback address, e.g. 127.0.0.1:6060; empty (default) = off", set: str(&c.PprofAddr)},
	}
}

// scaleSettings are scale-out (Redis), idempotency, per-caller shares.
func (c *Config) scaleSettings() []setting {
	return []setting{
		{env: "KOOPHONE_REDIS_URL", secret: true, help: "Redis shared by the replicas (pollers, quota, idempotency keys): redis://[:password@]host:port/db, rediss:// for TLS, ?master_name=NAME for Sentinel, redis+cluster:// for a Cluster; empty: each replica alone", set: str(&c.RedisURL)},
		{flag: "redis-lease-ttl", env: "KOOPHONE_REDIS_LEASE_TTL", def: durString(coord.DefaultLeaseTTL), help: "scale-out: how long a dead replica's pollers stay unclaimed (the failover time)", set: atLeast(&c.RedisLeaseTTL, 300*time.Millisecond)},
		{flag: "redis-timeout", env: "KOOPHONE_REDIS_TIMEOUT", def: durString(coord.DefaultOpTimeout), help: "scale-out: most time one Redis operation may take before Redis counts as down (later calls skip it until a background probe answers)", set: durWithin(&c.RedisTimeout, 10*time.Millisecond, 30*time.Second)},
		{flag: "quota-replicas", env: "KOOPHONE_QUOTA_REPLICAS", def: "1", help: "replicas sharing the --upstream-*-rate budget and the callers' rate shares through Redis; while Redis is down each spends its 1/N share", set: positive(&c.QuotaReplicas)},
		{flag: "idempotency-ttl", env: "KOOPHONE_IDEMPOTENCY_TTL", def: durString(idempotency.DefaultTTL), help: "how long a write's request_id (Idempotency-Key) is remembered", set: dur(&c.IdempotencyTTL)},
		{flag: "share-rate", env: "KOOPHONE_SHARE_RATE", def: "0", help: "per caller (principal): calls started per second (unary calls and stream opens), for all replicas together with Redis; 0: unlimited", set: float(&c.ShareRate, 0, 1e6)},
		{flag: "share-burst", env: "KOOPHONE_SHARE_BURST", def: "0", help: "per caller: calls started at once above --share-rate; 0: the rate rounded up", set: num(&c.ShareBurst)},
		{flag: "share-concurrent-calls", env: "KOOPHONE_SHARE_CONCURRENT_CALLS", def: "256", help: "per caller and replica: unary calls in flight at once; 0: unlimited", set: num(&c.ShareConcurrentCalls)},
		{flag: "share-open-streams", env: "KOOPHONE_SHARE_OPEN_STREAMS", def: "2000", help: "per caller and replica: streams open at once (watches, sessions, ListAllInstances); 0: unlimited", set: num(&c.ShareOpenStreams)},
		{flag: "share-concurrent-fleet-runs", env: "KOOPHONE_SHARE_CONCURRENT_FLEET_RUNS", def: "4", help: "per caller and replica: fleet runs (RunFleetCommand, ResetFleet…) in flight at once; 0: unlimited", set: num(&c.ShareConcurrentFleetRuns)},
		{flag: "share-file", env: "KOOPHONE_SHARE_FILE", help: "YAML file of per-group and per-principal shares overriding the --share-* defaults (see docs/shares.md); read at start", set: str(&c.ShareFile)},
		{flag: "upstream-poll-share", env: "KOOPHONE_UPSTREAM_POLL_SHARE", def: floatString(upstream.DefaultPollShare), help: "share of the KooPhone quota's turns kept for watch polls while callers contend for it (the rest goes round-robin over the callers)", set: float(&c.UpstreamPollShare, 0.01, 0.99)},
		{flag: "idempotency-max-keys", env: "KOOPHONE_IDEMPOTENCY_MAX_KEYS", def: strconv.Itoa(idempotency.DefaultMaxKeys), help: "without Redis: most request_ids kept in memory (oldest dropped first)", set: num(&c.IdempotencyMaxKeys)},
	}
}

const checkConfigHelp = "load and validate the configuration (settings, the files they name: secrets, TLS, keys, policy), " +
	"print the result and exit 0 (valid) or 2 (refused) without listening"

// ErrHelp is returned by Load when --help was asked for; the usage has been written.
var ErrHelp = flag.ErrHelp

// Load reads args (without the program name) and the environment through getenv; usage and errors go to out. Each
// setting takes its flag, else its variable (for a secret, else its variable's file), else its default; then the
// combinations are checked. Every bad setting is reported, not only the first.
func Load(args []string, getenv func(string) string, out io.Writer) (*Config, error) {
	c := &Config{Env: getenv}
	ss := c.settings()
	flags, err := parseFlags(args, ss, out)
	if err != nil {
		return nil, err
	}
	c.CheckOnly = flags.checkOnly
	errs := applySettings(ss, flags, getenv)
	if err := c.check(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// flagValues are what the command line said.
type flagValues struct {
	vals      map[string]*string // every setting's flag
	explicit  map[string]bool    // the flags given, even as ""
	checkOnly bool               // --check-config
}

// parseFlags parses args with one flag per setting that has one, and --check-config.
func parseFlags(args []string, ss []setting, out io.Writer) (*flagValues, error) {
	fs := flag.NewFlagSet("koophone-gateway", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() { usage(out, fs, ss) }
	f := &flagValues{vals: map[string]*string{}, explicit: map[string]bool{}}
	for _, s := range ss {
		switch {
		case s.boolean:
			v := new(string)
			fs.Var(boolFlag{v}, s.flag, s.help)
			f.vals[s.flag] = v
		case s.flag != "":
			f.vals[s.flag] = fs.String(s.flag, "", s.help)
		}
	}
	checkOnly := fs.Bool("check-config", false, checkConfigHelp)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q (settings are flags or KOOPHONE_* variables)", fs.Args())
	}
	f.checkOnly = *checkOnly
	fs.Visit(func(fl *flag.Flag) { f.explicit[fl.Name] = true })
	return f, nil
}

// applySettings gives each setting its value (flag, variable, file or default) and returns every refusal.
func applySettings(ss []setting, flags *flagValues, getenv func(string) string) []error {
	var errs []error
	for _, s := range ss {
		v, from, err := lookup(s, flags, getenv)
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
	return errs
}

// lookup finds a setting's value and says where it came from: the flag, the variable, or the variable's file.
func lookup(s setting, flags *flagValues, getenv func(string) string) (string, string, error) {
	if s.flag != "" && flags.explicit[s.flag] {
		return *flags.vals[s.flag], "--" + s.flag, nil
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
	b, err := os.ReadFile(path) //nolint:gosec // G304: the operator names the secret's file; reading it is the point
	if err != nil {
		return "", "", fmt.Errorf("%s_FILE: %w", s.env, err)
	}
	return strings.TrimSpace(string(b)), s.env + "_FILE", nil
}

// check rejects combinations of settings that cannot work, naming the settings involved (each value's own range
// is its setter's, parse.go).
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
	return c.checkCallers()
}

// checkCallers rejects caller settings that cannot work, and refuses an open gateway on a network.
func (c *Config) checkCallers() error {
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("TLS needs both --tls-cert-file and --tls-key-file (KOOPHONE_TLS_CERT_FILE, KOOPHONE_TLS_KEY_FILE)")
	}
	if c.TLSClientCAFile != "" && c.TLSCertFile == "" {
		return errors.New("--tls-client-ca needs TLS: set --tls-cert-file and --tls-key-file too")
	}
	if c.AuthPolicyFile != "" && !c.Authenticated() {
		return errors.New("--auth-policy-file needs authentication: set --auth-keys-file or --tls-client-ca too")
	}
	if c.Authenticated() || c.InsecureNoAuth {
		return nil
	}
	for _, l := range []struct{ flag, addr string }{{"--grpc-addr", c.GRPCAddr}, {"--http-addr", c.HTTPAddr}} {
		if !IsLoopback(l.addr) {
			return fmt.Errorf("%s %s is not a loopback address and no caller authentication is configured: set --auth-keys-file "+
				"(KOOPHONE_AUTH_KEYS_FILE) or --tls-client-ca (KOOPHONE_TLS_CLIENT_CA_FILE), or accept an open gateway with "+
				"--insecure-no-auth (KOOPHONE_INSECURE_NO_AUTH=true)", l.flag, l.addr)
		}
	}
	return nil
}

// Authenticated reports whether callers must authenticate (API keys or client certificates).
func (c *Config) Authenticated() bool { return c.AuthKeysFile != "" || c.TLSClientCAFile != "" }

// IsLoopback reports whether a listen address (host:port) accepts loopback connections only. An empty or
// unspecified host listens everywhere; a name other than localhost may resolve anywhere.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// boolFlag is a string flag that may stand alone: --name means --name=true.
type boolFlag struct{ v *string }

func (b boolFlag) String() string {
	if b.v == nil {
		return ""
	}
	return *b.v
}
func (b boolFlag) Set(v string) error { *b.v = v; return nil }
func (b boolFlag) IsBoolFlag() bool   { return true }

// Simulated reports whether the server runs on the embedded simulator.
func (c *Config) Simulated() bool { return c.Endpoint == "" }

func usage(out io.Writer, fs *flag.FlagSet, ss []setting) {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s [flags]\n\n", fs.Name())
	fmt.Fprintln(&b, "koophone-gateway serves KooPhone cloud phones over gRPC (with reflection and health) and a REST/JSON")
	fmt.Fprintln(&b, "mirror. Without KOOPHONE_ENDPOINT it runs on an embedded KooPhone simulator.")
	fmt.Fprintln(&b, "\nEvery setting is a flag or a KOOPHONE_* environment variable (the flag wins). Secrets are environment")
	fmt.Fprintln(&b, "only, or NAME_FILE pointing at a file that holds the value.")
	fmt.Fprintln(&b)
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
		fmt.Fprintf(&b, "  %-26s %s\n      %s%s\n", name, env, s.help, def)
	}
	fmt.Fprintf(&b, "\n  %-26s (flag only)\n      %s\n", "--check-config", checkConfigHelp)
	_, _ = io.WriteString(out, b.String()) // help text: nothing to do if the terminal is gone
}
