// Package sim is an embedded simulator of KooPhone, Huawei Cloud's cloud-phone REST API, and of the IAM token
// endpoint in front of it. It serves the 20 operations of the seed ("云手机服务(KooPhone) API 参考", version 06) on
// their documented methods and paths, with the seed's envelopes, error codes and HTTP statuses.
//
// It shares no code with internal/upstream on purpose: it parses every request strictly from the documented JSON,
// so it catches the client's mistakes instead of repeating them.
//
// Nothing in here runs in the background. Jobs, preparations and reboots are timestamps; their state is derived
// from the clock when somebody looks, so a fake clock drives everything and nothing can leak.
package sim

import (
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
)

// Defaults of the settings the gateway's config table shows for its embedded simulator (--sim-fleet,
// --sim-job-duration, --sim-prepare-step).
const (
	DefaultFleetSize   = 20
	DefaultJobDuration = 2 * time.Second
	DefaultPrepareStep = time.Second
)

// Config sets up a simulator. Zero fields take the defaults of DefaultConfig; where zero is a meaningful value
// (an empty fleet, an empty prepare queue) use a negative number.
type Config struct {
	Clock clock.Clock // default: the wall clock
	// FleetSize is how many on-demand phones the tenant owns at start (default DefaultFleetSize; negative: none).
	FleetSize int
	// Seed makes instance ids, task ids, tokens and fault rates reproducible.
	Seed int64
	// JobDuration is how long every asynchronous job runs before it succeeds or fails (default DefaultJobDuration).
	JobDuration time.Duration
	// PrepareStep is one tick of the prepare queue: waitingCount drops by one per step (default DefaultPrepareStep).
	PrepareStep time.Duration
	// PrepareQueue is the waitingCount a preparation starts with (default 3; negative: no queue).
	PrepareQueue int
	// RestoreDuration is how long a prepared phone restores its data after leaving the queue (default 2s).
	RestoreDuration time.Duration
	// RebootDuration is how long a rebooting phone shows running_status 4 (default 2s).
	RebootDuration time.Duration
	// TokenTTL is the lifetime of IAM tokens (default 24h, like IAM's).
	TokenTTL time.Duration
	// Project is the one project of the tenant (default: DefaultProjectID, a 32-hex id, and name "cn-north-7").
	Project Project
	// IAMUsers are the IAM users whose password the token endpoint accepts (default: DefaultConfig's one user).
	IAMUsers []IAMUser
	// AccessKeys are the AK/SK pairs whose signatures are accepted (default: DefaultConfig's one pair).
	AccessKeys []AccessKey
	// Stock is how many more phones CreateInstance may sell (default 2000; negative: none).
	Stock int
	// FailInstances are phones on which every asynchronous job, command and preparation fails.
	FailInstances []string
	// ForeignInstances are ids that exist but belong to another tenant.
	ForeignInstances []string
	// FrozenInstances are fleet phones that are frozen (frozen_status 1): AssignInstance answers 2004.
	FrozenInstances []string
	// InstallResultShape chooses InstallApp's data: "example" (data{task_id,cmd_jobs}, the seed's example, the
	// default) or "table" (data.data{...}, the seed's table). The digest tells the client to accept both.
	InstallResultShape string
	// Pools are the node groups (ListInstances' pool_name) the starting fleet is spread over, round robin
	// (default: DefaultPools, two pools: odd-numbered phones in sim-pool-1, even-numbered ones in sim-pool-2).
	Pools []string
	// Regions are the regions the starting fleet is spread over, in contiguous blocks of nearly equal size, in
	// order (default: DefaultRegions, so the first half of the fleet is in cn-north-7 and the second half in
	// cn-north-208). KooPhone refuses a batch whose phones span regions (KOOPHONE.API.1002), and so does the
	// simulator: a default fleet makes every client meet that rule.
	Regions []string
	// Unsubscribed makes ListInstanceApp answer KOOPHONE.API.1004 (the tenant has not subscribed).
	Unsubscribed bool
	// Faults are injected failures; see Fault.
	Faults []Fault
	// Logger receives one debug line per request (default: discard).
	Logger *slog.Logger
}

// Project is a tenant's IAM project.
type Project struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// IAMUser is an IAM user that may obtain tokens with its password.
type IAMUser struct {
	Domain   string `json:"domain"`
	User     string `json:"user"`
	Password string `json:"password"`
}

// AccessKey is an AK/SK pair for APIG request signing.
type AccessKey struct {
	AK string `json:"ak"`
	SK string `json:"sk"`
}

// Credentials are what a client needs to talk to the simulator (the first IAM user and AK/SK pair).
type Credentials struct {
	Domain      string
	User        string
	Password    string
	ProjectName string
	ProjectID   string
	AK          string
	SK          string
}

// Demo credentials: fixed so that demos, scripts and documentation can rely on them.
const (
	DefaultDomain    = "sim-domain"
	DefaultUser      = "sim-user"
	DefaultPassword  = "sim-password"
	DefaultAK        = "SIMAKQTWAOYTTINDUT2Q"
	DefaultSK        = "simSKMFyfvK41ba2giqM7Uio6PznpdUKGpownRZl"
	DefaultProjectID = "9d71ec45aef04d84a991c12250227b5c" // the seed's ListInstances example
	DefaultRegion    = "cn-north-7"
	DefaultPool      = "sim-pool-1"
)

// The starting fleet's default layout: DefaultRegions in contiguous blocks (sim-00001..sim-00010 in cn-north-7,
// sim-00011..sim-00020 in cn-north-208 for the default 20 phones), DefaultPools round robin (odd-numbered phones
// in sim-pool-1, even-numbered ones in sim-pool-2). The first phones, GbQj4kNO and zP2dozhs with the default
// seed, are both in cn-north-7, so they can share a batch.
var (
	DefaultRegions = []string{DefaultRegion, "cn-north-208"}
	DefaultPools   = []string{DefaultPool, "sim-pool-2"}
)

// DefaultConfig returns the configuration used when nothing is set: 20 phones in two regions and two pools (see
// DefaultRegions), the demo credentials, and the timings of the brief.
func DefaultConfig() Config {
	return Config{
		Clock:              clock.Real{},
		FleetSize:          DefaultFleetSize,
		Seed:               1,
		JobDuration:        DefaultJobDuration,
		PrepareStep:        DefaultPrepareStep,
		PrepareQueue:       3,
		RestoreDuration:    2 * time.Second,
		RebootDuration:     2 * time.Second,
		TokenTTL:           24 * time.Hour,
		Project:            Project{ID: DefaultProjectID, Name: DefaultRegion},
		IAMUsers:           []IAMUser{{Domain: DefaultDomain, User: DefaultUser, Password: DefaultPassword}},
		AccessKeys:         []AccessKey{{AK: DefaultAK, SK: DefaultSK}},
		Stock:              2000,
		InstallResultShape: "example",
		Pools:              slices.Clone(DefaultPools),
		Regions:            slices.Clone(DefaultRegions),
	}
}

// Server is the simulator; it implements http.Handler and is safe for concurrent use.
type Server struct {
	cfg   Config
	clock clock.Clock
	log   *slog.Logger
	cat   *catalogue

	calls  map[string]*atomic.Int64 // per operation; the map itself is never written after New
	load   map[string]*inFlight     // per operation: requests being served now, and the most ever at once
	lastMu sync.Mutex
	last   map[string]LastRequest // per operation: the newest request, for round-trip tests
	panics atomic.Int64           // recovered handler panics, for the fuzz test

	answersMu sync.Mutex
	answers   map[string]int64 // KooPhone error codes answered by the operations, by code

	faults faultSet

	mu        sync.Mutex // guards everything below
	rng       *rand.Rand
	phones    map[string]*phone
	fleet     []string // ids of the tenant's phones, in creation order
	foreign   map[string]bool
	tasks     map[string]*task
	taskOrder []string             // task ids, oldest first, to forget the oldest beyond maxTasks
	allocated map[string]bool      // every instance id ever handed out
	tokens    map[string]time.Time // token -> expiry
	orders    map[string]*order
	nameSeq   map[string]int // last number used per instance name prefix
	stock     int
	uploaded  float64 // MB of app packages uploaded by the tenant
	tokenSeen int     // issued tokens since the last sweep of expired ones
	serial    int     // phones made so far, for their addresses
}

// New builds a simulator from cfg, filling unset fields with DefaultConfig's values.
func New(cfg Config) *Server {
	cfg = withDefaults(cfg)
	s := &Server{
		cfg:       cfg,
		clock:     cfg.Clock,
		log:       cfg.Logger,
		cat:       loadCatalogue(),
		calls:     make(map[string]*atomic.Int64, len(operations)+1),
		load:      make(map[string]*inFlight, len(operations)),
		last:      map[string]LastRequest{},
		answers:   map[string]int64{},
		rng:       rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(cfg.Seed)^0x9e3779b97f4a7c15)), //nolint:gosec // G404: seeded, so a run repeats
		phones:    map[string]*phone{},
		foreign:   map[string]bool{},
		tasks:     map[string]*task{},
		allocated: map[string]bool{},
		tokens:    map[string]time.Time{},
		orders:    map[string]*order{},
		nameSeq:   map[string]int{},
		stock:     max(cfg.Stock, 0),
	}
	for _, op := range operations {
		s.calls[op.name] = new(atomic.Int64)
		s.load[op.name] = new(inFlight)
	}
	s.calls[OpIAM] = new(atomic.Int64)
	s.faults.init(cfg.Seed)
	if err := s.faults.set(cfg.Faults); err != nil {
		s.log.Error("sim: Config.Faults ignored", "err", err)
	}
	s.buildFleet()
	return s
}

func withDefaults(cfg Config) Config {
	d := DefaultConfig()
	if cfg.Clock == nil {
		cfg.Clock = d.Clock
	}
	if cfg.FleetSize == 0 {
		cfg.FleetSize = d.FleetSize
	}
	if cfg.JobDuration <= 0 {
		cfg.JobDuration = d.JobDuration
	}
	if cfg.PrepareStep <= 0 {
		cfg.PrepareStep = d.PrepareStep
	}
	if cfg.PrepareQueue == 0 {
		cfg.PrepareQueue = d.PrepareQueue
	}
	if cfg.RestoreDuration <= 0 {
		cfg.RestoreDuration = d.RestoreDuration
	}
	if cfg.RebootDuration <= 0 {
		cfg.RebootDuration = d.RebootDuration
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = d.TokenTTL
	}
	if cfg.Project.ID == "" {
		cfg.Project.ID = d.Project.ID
	}
	if cfg.Project.Name == "" {
		cfg.Project.Name = d.Project.Name
	}
	if len(cfg.IAMUsers) == 0 {
		cfg.IAMUsers = d.IAMUsers
	}
	if len(cfg.AccessKeys) == 0 {
		cfg.AccessKeys = d.AccessKeys
	}
	if cfg.Stock == 0 {
		cfg.Stock = d.Stock
	}
	if len(cfg.Pools) == 0 {
		cfg.Pools = d.Pools
	}
	if len(cfg.Regions) == 0 {
		cfg.Regions = d.Regions
	}
	if cfg.InstallResultShape == "" {
		cfg.InstallResultShape = d.InstallResultShape
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// Credentials returns the first IAM user and AK/SK pair the simulator accepts, and its project.
func (s *Server) Credentials() Credentials {
	u, k := s.cfg.IAMUsers[0], s.cfg.AccessKeys[0]
	return Credentials{
		Domain: u.Domain, User: u.User, Password: u.Password,
		ProjectName: s.cfg.Project.Name, ProjectID: s.cfg.Project.ID,
		AK: k.AK, SK: k.SK,
	}
}

// Calls returns how many requests operation op received (op is a seed operation name or "IAM"). Requests are
// counted before faults and authentication, so a test can count exactly what the client sent.
func (s *Server) Calls(op string) int64 {
	if c, ok := s.calls[op]; ok {
		return c.Load()
	}
	return 0
}

// AllCalls returns the counters of every operation that was called at least once.
func (s *Server) AllCalls() map[string]int64 {
	out := map[string]int64{}
	for name, c := range s.calls {
		if n := c.Load(); n > 0 {
			out[name] = n
		}
	}
	return out
}

// ResetCalls sets every counter back to zero, the answered error codes' too.
func (s *Server) ResetCalls() {
	for _, c := range s.calls {
		c.Store(0)
	}
	s.answersMu.Lock()
	clear(s.answers)
	s.answersMu.Unlock()
}

// Answered returns how many times the operations answered with the KooPhone error code (e.g. "KOOPHONE.API.1002",
// a batch whose phones span regions). Faults' answers are not counted: only the operations' own refusals.
func (s *Server) Answered(code string) int64 {
	s.answersMu.Lock()
	defer s.answersMu.Unlock()
	return s.answers[code]
}

// AllAnswered returns the operations' error answers by code.
func (s *Server) AllAnswered() map[string]int64 {
	s.answersMu.Lock()
	defer s.answersMu.Unlock()
	return maps.Clone(s.answers)
}

func (s *Server) countAnswer(code string) {
	s.answersMu.Lock()
	s.answers[code]++
	s.answersMu.Unlock()
}

// SetFaults replaces the active faults. It rejects an unknown kind or operation and leaves the faults unchanged.
func (s *Server) SetFaults(faults []Fault) error { return s.faults.set(faults) }

// Faults returns the active faults (with their remaining counts).
func (s *Server) Faults() []Fault { return s.faults.snapshot() }

// RevokeTokens invalidates every token issued so far, as an IAM-side revocation would; clients must get a new one.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// InstanceIDs returns the tenant's phones in creation order (the fleet first, then phones bought since).
func (s *Server) InstanceIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.fleet...)
}

// InstancesIn returns the tenant's phones in region, in creation order: phones a test may batch together.
func (s *Server) InstancesIn(region string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, id := range s.fleet {
		if s.phones[id].region == region {
			out = append(out, id)
		}
	}
	return out
}

// Project returns the tenant's project.
func (s *Server) Project() Project { return s.cfg.Project }

// Stock returns how many phones CreateInstance may still sell.
func (s *Server) Stock() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stock
}

// PayOrder pays an order placed with isAutoPay=0, as the tenant would in the console: its phones appear at once.
func (s *Server) PayOrder(orderID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[orderID]
	if !ok {
		return fmt.Errorf("sim: no order %q", orderID)
	}
	if o.paid {
		return nil
	}
	s.deliverLocked(o, s.clock.Now())
	return nil
}
