package idempotency

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
)

const (
	// FieldName is the request field that carries the key; a request message without it is not keyed.
	FieldName = "request_id"
	// HeaderName is the REST header mapped to the same key (grpc-gateway passes it as this metadata key).
	HeaderName = "idempotency-key"

	// ReasonKeyReused is the ErrorInfo reason of ALREADY_EXISTS for a key reused with a different request.
	ReasonKeyReused = "IDEMPOTENCY_KEY_REUSED"
	// ReasonOutcomeUnknown is the reason when the first call's outcome is unknown (and so is replayed as such).
	ReasonOutcomeUnknown = "IDEMPOTENT_OUTCOME_UNKNOWN"
	// ReasonStoreUnavailable is the reason of UNAVAILABLE when the key store cannot be reached.
	ReasonStoreUnavailable = "IDEMPOTENCY_STORE_UNAVAILABLE"
	// ReasonInFlight is the reason when a repeat gave up waiting for the first call.
	ReasonInFlight = "IDEMPOTENT_CALL_IN_FLIGHT"
	errorDomain    = "koophone-gateway"
)

// DefaultTTL is how long a key is remembered by default (--idempotency-ttl).
const DefaultTTL = 24 * time.Hour

// Options is the interceptor's policy. Zero fields take the defaults.
type Options struct {
	Store      Store         // required
	TTL        time.Duration // how long a key is remembered; default DefaultTTL
	MaxPending time.Duration // how long a first call may run before repeats call its outcome unknown; default 10m
	PollEvery  time.Duration // how often a repeat checks on a call in flight; default 100ms
	Clock      clock.Clock   // default clock.Real{}
	// Scope names the caller a key belongs to (the authenticated principal): one caller's key never replays
	// another's outcome. Nil or "": keys are shared by every caller.
	Scope func(ctx context.Context) string
}

// UnaryServerInterceptor keys every unary call whose request has a request_id field (or whose caller sent an
// Idempotency-Key), and passes the others through untouched.
func UnaryServerInterceptor(o Options) grpc.UnaryServerInterceptor {
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 10 * time.Minute
	}
	if o.PollEvery <= 0 {
		o.PollEvery = 100 * time.Millisecond
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		msg, ok := req.(proto.Message)
		if !ok {
			return handler(ctx, req)
		}
		fd := msg.ProtoReflect().Descriptor().Fields().ByName(FieldName)
		if fd == nil || fd.Kind() != protoreflect.StringKind || fd.Cardinality() == protoreflect.Repeated {
			return handler(ctx, req)
		}
		key, err := keyOf(ctx, msg, fd)
		if err != nil || key == "" {
			if err != nil {
				return nil, err
			}
			return handler(ctx, req)
		}
		hash, err := hashOf(info.FullMethod, msg, fd)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "hashing the request: %v", err)
		}
		return o.run(ctx, key, hash, req, handler)
	}
}

// keyOf reads the key from the field or the header; both set and different is an error naming both.
func keyOf(ctx context.Context, msg proto.Message, fd protoreflect.FieldDescriptor) (string, error) {
	field := msg.ProtoReflect().Get(fd).String()
	var header string
	if v := metadata.ValueFromIncomingContext(ctx, HeaderName); len(v) > 0 {
		header = strings.TrimSpace(v[0])
	}
	switch {
	case header == "":
		return field, nil // validated by the contract (a UUID)
	case field != "" && !strings.EqualFold(field, header):
		return "", badKey("request_id and the Idempotency-Key header differ: send one, or the same in both")
	}
	if _, err := uuid.Parse(header); err != nil || len(header) != 36 {
		return "", badKey("Idempotency-Key: value must be a UUID (e.g. 123e4567-e89b-12d3-a456-426614174000)")
	}
	if field == "" {
		// The handler sees the key too, as if it came in the body.
		msg.ProtoReflect().Set(fd, protoreflect.ValueOfString(header))
	}
	return header, nil
}

func badKey(desc string) error {
	st := status.New(codes.InvalidArgument, desc)
	if d, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
		{Field: FieldName, Description: desc},
	}}); err == nil {
		st = d
	}
	return st.Err()
}

// hashOf identifies the request: the method and the deterministic encoding of the message without its key.
func hashOf(method string, msg proto.Message, fd protoreflect.FieldDescriptor) (string, error) {
	c := proto.Clone(msg)
	c.ProtoReflect().Clear(fd)
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write([]byte(method))
	h.Write([]byte{0})
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (o *Options) run(ctx context.Context, key, hash string, req any, handler grpc.UnaryHandler) (any, error) {
	skey := strings.ToLower(key)
	if o.Scope != nil {
		if scope := o.Scope(ctx); scope != "" {
			skey = scope + "/" + skey // keys are UUIDs: the last "/" always splits them from the scope
		}
	}
	now := o.Clock.Now()
	prev, claimed, err := o.Store.Claim(ctx, skey, Record{State: Pending, Hash: hash, PendingUntil: now.Add(o.MaxPending)}, o.TTL)
	if err != nil {
		return nil, unavailable(ctx, err)
	}
	if !claimed {
		return o.repeat(ctx, key, skey, hash, prev)
	}
	resp, herr := handler(ctx, req)
	rec := Record{State: Done, Hash: hash}
	code := status.Code(herr)
	switch {
	case herr == nil:
		m, ok := resp.(proto.Message)
		if !ok {
			break
		}
		a, err := anypb.New(m)
		if err != nil {
			rec.Unknown = true
			break
		}
		rec.Response, _ = proto.Marshal(a)
	case certainlyNotDone(code):
		// Nothing happened upstream: forget the key, so a retry with it may run. (A store error here leaves the
		// key pending; repeats then call its outcome unknown after MaxPending, never a second write.)
		_ = o.Store.Forget(context.WithoutCancel(ctx), skey)
		return resp, herr
	default:
		rec.Unknown = outcomeUnknown(code)
		rec.Status, _ = proto.Marshal(status.Convert(herr).Proto())
	}
	// The caller may have gone; the outcome must still be kept for its retry.
	_ = o.Store.Put(context.WithoutCancel(ctx), skey, rec, o.TTL)
	return resp, herr
}

// certainlyNotDone: the gateway refused before KooPhone saw the write (its own limits), or KooPhone refused it, so
// nothing to remember. UNAVAILABLE is among them because the service never answers it for a write that was sent
// without proof of refusal: a proxy's 503 page, a lost answer or KooPhone's "unknown error" become UNKNOWN
// (OUTCOME_UNKNOWN) or DEADLINE_EXCEEDED, which are remembered.
func certainlyNotDone(c codes.Code) bool {
	return c == codes.ResourceExhausted || c == codes.Unavailable || c == codes.InvalidArgument ||
		c == codes.Unauthenticated || c == codes.PermissionDenied
}

// outcomeUnknown: the write may have happened (it was sent and no answer came).
func outcomeUnknown(c codes.Code) bool {
	return c == codes.DeadlineExceeded || c == codes.Canceled || c == codes.Unknown || c == codes.Internal || c == codes.DataLoss
}

// repeat answers a key seen before: conflict, the recorded outcome, or a wait for the first call.
func (o *Options) repeat(ctx context.Context, key, skey, hash string, rec Record) (any, error) {
	for {
		if rec.Hash != hash {
			st := status.New(codes.AlreadyExists, fmt.Sprintf("request_id %s was already used for a different request", key))
			if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: ReasonKeyReused, Domain: errorDomain,
				Metadata: map[string]string{"request_id": key}}); err == nil {
				st = d
			}
			return nil, st.Err()
		}
		if rec.State == Done {
			return replay(key, rec)
		}
		if !o.Clock.Now().Before(rec.PendingUntil) {
			return nil, unknown(key, "the first call with this request_id never reported its outcome")
		}
		if !clock.Sleep(o.Clock, o.PollEvery, ctx.Done()) {
			st := status.New(codes.Aborted, fmt.Sprintf("request_id %s: the first call with this key is still in flight; retry later", key))
			if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: ReasonInFlight, Domain: errorDomain}); err == nil {
				st = d
			}
			return nil, st.Err()
		}
		var ok bool
		var err error
		rec, ok, err = o.Store.Get(ctx, skey)
		if err != nil {
			return nil, unavailable(ctx, err)
		}
		if !ok {
			// The first call certainly did nothing and let the key go: say so rather than run it from here,
			// which could race another repeat.
			st := status.New(codes.Unavailable, fmt.Sprintf("request_id %s: the first call did not reach KooPhone; retry", key))
			return nil, st.Err()
		}
	}
}

func replay(key string, rec Record) (any, error) {
	if rec.Response != nil {
		var a anypb.Any
		if err := proto.Unmarshal(rec.Response, &a); err != nil {
			return nil, unknown(key, "the recorded outcome is unreadable")
		}
		m, err := a.UnmarshalNew()
		if err != nil {
			return nil, unknown(key, "the recorded outcome is unreadable")
		}
		return m, nil
	}
	if rec.Status != nil {
		var sp spb.Status
		if err := proto.Unmarshal(rec.Status, &sp); err == nil {
			if rec.Unknown {
				return nil, unknown(key, "the first call with this request_id ended without a known outcome: "+sp.GetMessage())
			}
			return nil, status.FromProto(&sp).Err()
		}
	}
	return nil, unknown(key, "the first call with this request_id ended without a known outcome")
}

func unknown(key, why string) error {
	st := status.New(codes.Unknown, fmt.Sprintf("request_id %s: %s; check the phones before sending a new request_id", key, why))
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: ReasonOutcomeUnknown, Domain: errorDomain,
		Metadata: map[string]string{"request_id": key}}); err == nil {
		st = d
	}
	return st.Err()
}

// unavailable fails closed: without the store, a repeat could not be recognised, so the write is not sent.
func unavailable(ctx context.Context, err error) error {
	if ctx.Err() != nil { // the caller's own deadline or cancel, not the store's
		return status.FromContextError(ctx.Err()).Err()
	}
	st := status.New(codes.Unavailable, "the idempotency key store is unreachable, so keyed writes are refused; retry with the same request_id")
	if d, e := st.WithDetails(&errdetails.ErrorInfo{Reason: ReasonStoreUnavailable, Domain: errorDomain}); e == nil {
		st = d
	}
	return st.Err()
}
