package calllog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func unary(log *slog.Logger, err error) {
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5}})
	_, _ = UnaryServerInterceptor(log)(ctx, "req", &grpc.UnaryServerInfo{FullMethod: "/koophone.v1.InstanceService/GetTask"},
		func(context.Context, any) (any, error) { return "resp", err })
}

func TestOneLinePerCallAtTheCodesLevel(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	unary(log, nil)
	unary(log, status.Error(codes.Unavailable, "KooPhone is down"))
	ls := lines(t, &buf)
	if len(ls) != 2 {
		t.Fatalf("%d lines: %s", len(ls), buf.String())
	}
	ok, bad := ls[0], ls[1]
	if ok["level"] != "INFO" || ok["msg"] != "finished call" || ok["grpc.code"] != "OK" ||
		ok["grpc.service"] != "koophone.v1.InstanceService" || ok["grpc.method"] != "GetTask" ||
		ok["peer.address"] != "127.0.0.1:5" || ok["grpc.method_type"] != "unary" || ok["grpc.error"] != nil {
		t.Errorf("OK line: %v", ok)
	}
	if _, isNum := ok["grpc.time_ms"].(float64); !isNum {
		t.Errorf("grpc.time_ms: %v", ok["grpc.time_ms"])
	}
	if bad["level"] != "WARN" || bad["grpc.code"] != "Unavailable" || !strings.Contains(bad["grpc.error"].(string), "KooPhone is down") {
		t.Errorf("Unavailable line: %v", bad)
	}
}

func TestDroppedLinesCostNothing(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	unary(log, nil)
	unary(log, status.Error(codes.Internal, "bug"))
	ls := lines(t, &buf)
	if len(ls) != 1 || ls[0]["level"] != "ERROR" {
		t.Fatalf("at warn: %s", buf.String())
	}
	ctx := context.Background()
	info := &grpc.UnaryServerInfo{FullMethod: "/s/m"}
	in := UnaryServerInterceptor(log)
	h := func(context.Context, any) (any, error) { return nil, nil }
	if n := testing.AllocsPerRun(100, func() { _, _ = in(ctx, nil, info, h) }); n != 0 {
		t.Fatalf("a dropped line allocates %v times", n)
	}
}

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (f fakeStream) Context() context.Context { return f.ctx }

func TestStreamCalls(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	in := StreamServerInterceptor(log)
	info := &grpc.StreamServerInfo{FullMethod: "/koophone.v1.InstanceService/WatchTask", IsServerStream: true}
	_ = in(nil, fakeStream{ctx: context.Background()}, info, func(any, grpc.ServerStream) error { return nil })
	_ = in(nil, fakeStream{ctx: context.Background()}, info, func(any, grpc.ServerStream) error {
		return errors.New("plain error")
	})
	ls := lines(t, &buf)
	if len(ls) != 2 || ls[0]["grpc.method_type"] != "server_stream" || ls[0]["grpc.code"] != "OK" ||
		ls[1]["grpc.code"] != "Unknown" || ls[1]["level"] != "ERROR" {
		t.Fatalf("%s", buf.String())
	}
}

func BenchmarkUnary(b *testing.B) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelWarn} {
		b.Run(level.String(), func(b *testing.B) {
			log := slog.New(slog.NewTextHandler(discard{}, &slog.HandlerOptions{Level: level}))
			b.ReportAllocs()
			for b.Loop() {
				unary(log, nil)
			}
		})
	}
}

// BenchmarkUnaryWithFields is an INFO line with the gateway's extra fields (a principal and a client address, as
// auth.LogFields gives them for a REST call).
func BenchmarkUnaryWithFields(b *testing.B) {
	log := slog.New(slog.NewTextHandler(discard{}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	in := UnaryServerInterceptor(log, WithFields(func(context.Context) []any {
		return []any{"principal", "key:ops", "client.address", "192.0.2.7:4711"}
	}))
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5}})
	info := &grpc.UnaryServerInfo{FullMethod: "/koophone.v1.InstanceService/BatchQueryStatus"}
	b.ReportAllocs()
	for b.Loop() {
		_, _ = in(ctx, "req", info, func(context.Context, any) (any, error) { return "resp", nil })
	}
}

// BenchmarkLibrary is what the gateway used before: go-grpc-middleware's logging interceptor, same levels.
func BenchmarkLibrary(b *testing.B) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelWarn} {
		b.Run(level.String(), func(b *testing.B) {
			log := slog.New(slog.NewTextHandler(discard{}, &slog.HandlerOptions{Level: level}))
			in := logging.UnaryServerInterceptor(logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
				log.Log(ctx, slog.Level(lvl), msg, fields...)
			}), logging.WithLogOnEvents(logging.FinishCall))
			ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5}})
			info := &grpc.UnaryServerInfo{FullMethod: "/koophone.v1.InstanceService/GetTask"}
			b.ReportAllocs()
			for b.Loop() {
				_, _ = in(ctx, "req", info, func(context.Context, any) (any, error) { return "resp", nil })
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
