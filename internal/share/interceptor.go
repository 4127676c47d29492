package share

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
	"github.com/koophone-gateway/koophone-gateway/internal/auth"
	"github.com/koophone-gateway/koophone-gateway/internal/clock"
	"github.com/koophone-gateway/koophone-gateway/internal/errcat"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// The limit names of refusals (ErrorInfo metadata "limit", the refusals metric's label): the settings' names.
const (
	LimitRate    = "requests_per_second"
	LimitCalls   = "concurrent_calls"
	LimitStreams = "open_streams"
	LimitFleet   = "concurrent_fleet_runs"
)

// ErrorInfo metadata keys of a refusal.
const (
	KeyPrincipal = "principal"
	KeyLimit     = "limit"
	KeyValue     = "value"
)

// How long a caller refused for concurrency is told to wait (RetryInfo): a slot frees when one of its own calls
// ends, which the gateway cannot foresee; streams last longer than calls.
const (
	callRetry   = 250 * time.Millisecond
	streamRetry = time.Second
)

// Other is the metrics' principal label of every principal the shares file does not name, so the series stay
// bounded whoever calls.
const Other = "other"

// fleetRuns are the RPCs that count as fleet runs (the other streams count as open streams).
var fleetRuns = map[string]bool{
	pb.FleetService_RunFleetCommand_FullMethodName:   true,
	pb.FleetService_ResetFleet_FullMethodName:        true,
	pb.FleetService_RebootFleet_FullMethodName:       true,
	pb.FleetService_BackupFleet_FullMethodName:       true,
	pb.FleetService_InstallAppOnFleet_FullMethodName: true,
	pb.FleetService_ListFleetApps_FullMethodName:     true,
}

// Shares holds every caller's share and what each is using. It is safe for concurrent use.
type Shares struct {
	t    *table
	on   bool        // someone has a limit; false: the interceptors only mark the fairness key
	rate RateLimiter // the requests_per_second buckets: this replica's, or shared through Redis

	mu     sync.Mutex
	states map[string]*state // by principal and groups

	refused *prometheus.CounterVec // principal, limit
	inUse   *prometheus.GaugeVec   // principal, limit (concurrency limits only)
}

// state is one caller's use of its share.
type state struct {
	name   string
	limits Limits
	label  string // the metrics' principal label
	calls  atomic.Int64
	open   atomic.Int64
	fleet  atomic.Int64
	inUse  map[string]prometheus.Gauge // by limit: looked up once, not per call
}

// New reads cfg (the shares file once: restart to change it) and registers the metrics on reg (nil: none). clk
// times the default Local limiter (nil: the real clock).
func New(cfg Config, clk clock.Clock, reg prometheus.Registerer) (*Shares, error) {
	t, err := load(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Limiter == nil {
		cfg.Limiter = NewLocal(clk)
	}
	s := &Shares{t: t, on: t.anyLimits(), rate: cfg.Limiter, states: map[string]*state{},
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "koophone", Subsystem: "share", Name: "refused_total",
			Help: "Calls refused because their caller's share was used up, by principal (\"other\" unless the shares file names it) and limit."},
			[]string{"principal", "limit"}),
		inUse: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "koophone", Subsystem: "share", Name: "in_use",
			Help: "Unary calls, open streams and fleet runs in flight under a concurrency share, by principal (\"other\" unless the shares file names it) and limit."},
			[]string{"principal", "limit"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{s.refused, s.inUse} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// Limits is the share of a principal in groups, as resolved from the defaults, the groups and its own entry.
func (s *Shares) Limits(principal string, groups []string) Limits {
	return s.t.limitsFor(principal, groups)
}

// stateFor returns the caller's state, made on first sight. Keyed by the groups too: a keys file reload that moves
// a principal to another group gives it that group's share.
func (s *Shares) stateFor(p auth.Principal) *state {
	key := p.Name
	if len(p.Groups) > 0 {
		key += "\x00" + strings.Join(p.Groups, "\x00")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.states[key]; ok {
		return st
	}
	st := &state{name: p.Name, limits: s.t.limitsFor(p.Name, p.Groups), label: Other}
	if _, named := s.t.principals[p.Name]; named {
		st.label = p.Name
	}
	st.inUse = map[string]prometheus.Gauge{}
	for _, l := range []string{LimitCalls, LimitStreams, LimitFleet} {
		st.inUse[l] = s.inUse.WithLabelValues(st.label, l)
	}
	s.states[key] = st
	return st
}

// Unary returns the unary step: the fairness key, then the rate and the calls in flight.
func (s *Shares) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		p, ok := auth.PrincipalFrom(ctx)
		if !ok { // outside authentication (health, reflection)
			return h(ctx, req)
		}
		ctx = upstream.WithFairnessKey(ctx, p.Name)
		if !s.on {
			return h(ctx, req)
		}
		st := s.stateFor(p)
		if err := s.admitRate(ctx, st); err != nil {
			return nil, err
		}
		release, err := s.acquire(st, &st.calls, st.limits.ConcurrentCalls, LimitCalls, callRetry)
		if err != nil {
			return nil, err
		}
		defer release()
		return h(ctx, req)
	}
}

// Stream returns the stream step: the fairness key, then the rate (for opening it) and the streams or fleet runs
// open. The admission is a function of its own: a watch's goroutine holds this step's frame for as long as it
// lasts, and the admission's locals would double it.
func (s *Shares) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		ks, release, err := s.openStream(ss, info.FullMethod)
		if err != nil {
			return err
		}
		if release != nil {
			defer release()
		}
		return h(srv, ks)
	}
}

// openStream admits a stream: the stream the handler gets (with the fairness key) and the release of its slot
// (nil: nothing to release).
//
//nolint:contextcheck // the call's context is ss.Context(), which contextcheck does not follow
func (s *Shares) openStream(ss grpc.ServerStream, method string) (grpc.ServerStream, func(), error) {
	ctx := ss.Context()
	p, ok := auth.PrincipalFrom(ctx)
	if !ok {
		return ss, nil, nil
	}
	ss = &keyedStream{ServerStream: ss, ctx: upstream.WithFairnessKey(ctx, p.Name)}
	if !s.on {
		return ss, nil, nil
	}
	st := s.stateFor(p)
	if err := s.admitRate(ctx, st); err != nil {
		return nil, nil, err
	}
	count, limit, name := &st.open, st.limits.OpenStreams, LimitStreams
	if fleetRuns[method] {
		count, limit, name = &st.fleet, st.limits.ConcurrentFleetRuns, LimitFleet
	}
	release, err := s.acquire(st, count, limit, name, streamRetry)
	if err != nil {
		return nil, nil, err
	}
	return ss, release, nil
}

// keyedStream carries the stream's context with its fairness key. (One small wrapper rather than
// go-grpc-middleware's WrappedServerStream: the same size, and no import for one field.)
type keyedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (k *keyedStream) Context() context.Context { return k.ctx }

// admitRate spends one call of the caller's requests_per_second share. The bucket is keyed by principal alone, so
// it is the same one whatever groups the caller comes with (and, with Redis, on whichever replica).
func (s *Shares) admitRate(ctx context.Context, st *state) error {
	if st.limits.RequestsPerSecond <= 0 {
		return nil
	}
	ok, d, err := s.rate.Allow(ctx, st.name, st.limits.RequestsPerSecond, st.limits.Burst)
	if err != nil {
		return status.FromContextError(err).Err()
	}
	if !ok {
		s.refused.WithLabelValues(st.label, LimitRate).Inc()
		return refusal(pb.ErrorReason_PRINCIPAL_RATE_LIMITED, st, LimitRate,
			strconv.FormatFloat(st.limits.RequestsPerSecond, 'g', -1, 64), d,
			fmt.Sprintf("%s has used its share of %g calls per second; retry after the delay in RetryInfo", st.name, st.limits.RequestsPerSecond))
	}
	return nil
}

// acquire takes one of limit slots counted by n (limit 0: unlimited, nothing counted).
func (s *Shares) acquire(st *state, n *atomic.Int64, limit int, name string, retry time.Duration) (func(), error) {
	if limit <= 0 {
		return func() {}, nil
	}
	if n.Add(1) > int64(limit) {
		n.Add(-1)
		s.refused.WithLabelValues(st.label, name).Inc()
		reason, what := pb.ErrorReason_PRINCIPAL_CONCURRENCY_LIMITED, "calls in flight"
		switch name {
		case LimitStreams:
			reason, what = pb.ErrorReason_PRINCIPAL_STREAM_LIMITED, "streams open"
		case LimitFleet:
			what = "fleet runs in flight"
		}
		return nil, refusal(reason, st, name, strconv.Itoa(limit), retry,
			fmt.Sprintf("%s already has %d %s, its share; retry when one has ended", st.name, limit, what))
	}
	g := st.inUse[name]
	g.Inc()
	return func() {
		n.Add(-1)
		g.Dec()
	}, nil
}

func refusal(reason pb.ErrorReason, st *state, limit, value string, retry time.Duration, msg string) error {
	st2, err := status.New(codes.ResourceExhausted, msg).WithDetails(
		errcat.Info(reason, map[string]string{KeyPrincipal: st.name, KeyLimit: limit, KeyValue: value}),
		&errdetails.RetryInfo{RetryDelay: durationpb.New(retry)})
	if err != nil {
		return status.Error(codes.ResourceExhausted, msg)
	}
	return st2.Err()
}
