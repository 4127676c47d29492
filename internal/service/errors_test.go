package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/koophone-gateway/koophone-gateway/internal/errcat"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// TestToStatus is the one table of the error mapping: every upstream code of the digest's error table, the HTTP
// statuses without a code, and every kind of failure.
func TestToStatus(t *testing.T) {
	api := func(code string, httpStatus int) *upstream.Error {
		return &upstream.Error{Op: "GetTask", Kind: upstream.KindAPI, Code: code, HTTPStatus: httpStatus, Message: "上游消息", RequestID: "req-1"}
	}
	kind := func(k upstream.Kind, httpStatus int, cause error) *upstream.Error {
		return &upstream.Error{Op: "ListInstances", Kind: k, HTTPStatus: httpStatus, RequestID: "req-2", Err: cause}
	}
	digest := map[codes.Code][]string{
		codes.InvalidArgument:    {"1000", "1002", "1005", "3001", "3002", "3003", "3006", "3007", "3008", "5002", "5004", "6000", "62006", "0003"},
		codes.PermissionDenied:   {"1001", "1003", "1012", "6002", "2002"},
		codes.NotFound:           {"0000", "0004", "1323", "2001", "2210", "3009", "4001"},
		codes.FailedPrecondition: {"1004", "2004", "2005", "2006", "5001", "5005", "62010"},
		codes.ResourceExhausted:  {"2003", "2209", "40010", "62015", "62016", "62021"},
		codes.AlreadyExists:      {"62005"},
		codes.Aborted:            {"62020", "9002"},
		codes.Unavailable:        {"9001", "9003", "4999", "62017"},
		codes.Internal:           {"9000", "9999", "62019", "0001", "0002", "0005"},
	}
	type row struct {
		name   string
		err    error
		code   codes.Code
		reason string
	}
	var rows []row
	for want, list := range digest {
		for _, n := range list {
			code := "KOOPHONE.API." + n
			rows = append(rows, row{code, api(code, 200), want, code})
		}
	}
	rows = append(rows,
		row{"KPAPI prefix", api("KPAPI.2209", 200), codes.ResourceExhausted, "KPAPI.2209"},
		row{"mixed-case prefix", api("KooPhone.API.4001", 400), codes.NotFound, "KooPhone.API.4001"},
		row{"unknown code", api("KOOPHONE.API.77777", 200), codes.Internal, "KOOPHONE.API.77777"},
		row{"unknown code with 400", api("CPS.0191", 400), codes.Internal, "CPS.0191"},
		row{"KooPhone refuses our credential", api("KOOPHONE.API.6001", 401), codes.Unavailable, ReasonAuth},
		row{"API gateway 401", api("APIGW.0301", 401), codes.Unavailable, ReasonAuth},
		row{"credential refused after a fresh one", &upstream.Error{Op: "GetTask", Kind: upstream.KindAPI, Code: "KOOPHONE.API.1003", HTTPStatus: 401, CredentialRefused: true}, codes.Unavailable, ReasonAuth},
		row{"rate limited", &upstream.Error{Op: "GetTask", Kind: upstream.KindRateLimited, RetryAfter: time.Second}, codes.ResourceExhausted, ReasonRateLimited},
		row{"breaker open", &upstream.Error{Op: "GetTask", Kind: upstream.KindCircuitOpen, RetryAfter: time.Second}, codes.Unavailable, ReasonUnavailable},
		row{"write lost after sending", &upstream.Error{Op: "CreateInstance", Kind: upstream.KindTransport, OutcomeUnknown: true, Err: io.ErrUnexpectedEOF}, codes.Unknown, ReasonOutcomeUnknown},
		row{"write answer truncated", &upstream.Error{Op: "CreateInstance", Kind: upstream.KindDecode, HTTPStatus: 200, OutcomeUnknown: true}, codes.Unknown, ReasonOutcomeUnknown},
		row{"write deadline after sending", &upstream.Error{Op: "CreateInstance", Kind: upstream.KindTransport, OutcomeUnknown: true, Err: context.DeadlineExceeded}, codes.DeadlineExceeded, ReasonOutcomeUnknown},
		row{"write answered by a proxy's 503 page", &upstream.Error{Op: "BatchRebootInstance", Kind: upstream.KindHTTP, HTTPStatus: 503, OutcomeUnknown: true}, codes.Unknown, ReasonOutcomeUnknown},
		row{"write answered 9003", &upstream.Error{Op: "BatchReset", Kind: upstream.KindAPI, Code: "KOOPHONE.API.9003", HTTPStatus: 500, OutcomeUnknown: true}, codes.Unknown, ReasonOutcomeUnknown},
		row{"API gateway 429", api("APIGW.0308", 429), codes.ResourceExhausted, "APIGW.0308"},
		row{"HTTP 401", kind(upstream.KindHTTP, 401, nil), codes.Unavailable, ReasonAuth},
		row{"HTTP 403", kind(upstream.KindHTTP, 403, nil), codes.PermissionDenied, ReasonHTTP},
		row{"HTTP 429", kind(upstream.KindHTTP, 429, nil), codes.ResourceExhausted, ReasonHTTP},
		row{"HTTP 500", kind(upstream.KindHTTP, 500, nil), codes.Internal, ReasonHTTP},
		row{"HTTP 502", kind(upstream.KindHTTP, 502, nil), codes.Unavailable, ReasonHTTP},
		row{"HTTP 503", kind(upstream.KindHTTP, 503, nil), codes.Unavailable, ReasonHTTP},
		row{"HTTP 504", kind(upstream.KindHTTP, 504, nil), codes.Unavailable, ReasonHTTP},
		row{"undecodable 200", kind(upstream.KindDecode, 200, io.ErrUnexpectedEOF), codes.Internal, ReasonBadResponse},
		row{"undecodable 503", kind(upstream.KindDecode, 503, io.ErrUnexpectedEOF), codes.Unavailable, ReasonBadResponse},
		row{"connection refused", kind(upstream.KindTransport, 0, errors.New("connect: connection refused")), codes.Unavailable, ReasonUnavailable},
		row{"deadline", kind(upstream.KindTransport, 0, context.DeadlineExceeded), codes.DeadlineExceeded, ReasonUnavailable},
		row{"canceled", kind(upstream.KindTransport, 0, context.Canceled), codes.Canceled, ReasonUnavailable},
		row{"IAM refused", kind(upstream.KindAuth, 401, nil), codes.Unavailable, ReasonAuth},
		row{"IAM unreachable", kind(upstream.KindAuth, 0, errors.New("dial")), codes.Unavailable, ReasonAuth},
		row{"bare deadline", context.DeadlineExceeded, codes.DeadlineExceeded, ""},
		row{"wrapped deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), codes.DeadlineExceeded, ""},
		row{"other error", errors.New("boom"), codes.Internal, ""},
		row{"status passes", status.Error(codes.InvalidArgument, "bad"), codes.InvalidArgument, ""},
	)
	log := slog.New(slog.DiscardHandler)
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			st := status.Convert(ToStatus(context.Background(), log, r.err))
			if st.Code() != r.code {
				t.Fatalf("code %v, want %v (%s)", st.Code(), r.code, st.Message())
			}
			var info *errdetails.ErrorInfo
			for _, d := range st.Details() {
				if i, ok := d.(*errdetails.ErrorInfo); ok {
					info = i
				}
			}
			if r.reason == "" {
				if info != nil {
					t.Fatalf("unexpected ErrorInfo %v", info)
				}
				return
			}
			if info == nil {
				t.Fatal("no ErrorInfo")
			}
			// KooPhone's own codes keep KooPhone's domain; the gateway's reasons carry its own.
			wantDomain := errcat.Domain
			if strings.Contains(r.reason, ".") {
				wantDomain = ErrorDomain
			}
			if info.GetReason() != r.reason || info.GetDomain() != wantDomain {
				t.Fatalf("ErrorInfo %v, want reason %s in domain %s", info, r.reason, wantDomain)
			}
			ue, _ := upstream.AsError(r.err)
			md := info.GetMetadata()
			wantStatus := ""
			if ue.HTTPStatus != 0 {
				wantStatus = fmt.Sprint(ue.HTTPStatus)
			}
			if md["request_id"] != ue.RequestID || md["operation"] != ue.Op || md["http_status"] != wantStatus ||
				md["upstream_message"] != ue.Message || md["upstream_code"] != ue.Code {
				t.Fatalf("metadata %v does not describe %+v", md, ue)
			}
			// What is not known is left out, never "" or "0" (a rate-limited call never reached KooPhone).
			for k, v := range md {
				if v == "" {
					t.Errorf("metadata %q is empty in %v", k, md)
				}
			}
		})
	}
}

func TestToStatusRetryInfo(t *testing.T) {
	err := &upstream.Error{Op: "GetTask", Kind: upstream.KindHTTP, HTTPStatus: 429, RetryAfter: 3 * time.Second}
	st := status.Convert(ToStatus(context.Background(), slog.New(slog.DiscardHandler), err))
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			if ri.GetRetryDelay().AsDuration() != 3*time.Second {
				t.Fatalf("retry delay %v", ri.GetRetryDelay().AsDuration())
			}
			return
		}
	}
	t.Fatalf("no RetryInfo in %v", st.Details())
}

func TestGatewayBugsAreLoggedLoudly(t *testing.T) {
	var buf strings.Builder
	log := slog.New(slog.NewTextHandler(&buf, nil))
	_ = ToStatus(context.Background(), log, &upstream.Error{Op: "GetTask", Kind: upstream.KindAPI, Code: "KOOPHONE.API.0002"}) // only its log line matters here
	if !strings.Contains(buf.String(), "level=ERROR") || !strings.Contains(buf.String(), "gateway bug") {
		t.Fatalf("log: %q", buf.String())
	}
}

// A huge upstream message must not become a huge status: it is cut to 512 bytes on a UTF-8 boundary, in the
// message and in ErrorInfo, and KooPhone's code survives.
func TestToStatusTruncatesUpstreamText(t *testing.T) {
	huge := strings.Repeat("错", 2<<20) // 6 MB of 3-byte runes
	err := &upstream.Error{Op: "GetTask", Kind: upstream.KindAPI, Code: "KOOPHONE.API.77777", HTTPStatus: 500, Message: huge}
	st := status.Convert(ToStatus(context.Background(), slog.New(slog.DiscardHandler), err))
	if len(st.Message()) > maxUpstreamText || !utf8.ValidString(st.Message()) {
		t.Fatalf("message: %d bytes, valid UTF-8 %v", len(st.Message()), utf8.ValidString(st.Message()))
	}
	for _, d := range st.Details() {
		if i, ok := d.(*errdetails.ErrorInfo); ok {
			m := i.GetMetadata()["upstream_message"]
			if len(m) > maxUpstreamText || !utf8.ValidString(m) || i.GetMetadata()["upstream_code"] != "KOOPHONE.API.77777" {
				t.Fatalf("ErrorInfo: %d bytes, code %q", len(m), i.GetMetadata()["upstream_code"])
			}
			return
		}
	}
	t.Fatal("no ErrorInfo")
}

func FuzzTruncate(f *testing.F) {
	f.Add("héllo wörld", 5)
	f.Add("\xff\xfe", 1)
	f.Fuzz(func(t *testing.T, s string, n int) {
		n = abs(n % 600)
		got := truncate(s, n)
		if len(got) > n || !utf8.ValidString(got) {
			t.Fatalf("truncate(%q, %d) = %q", s, n, got)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
