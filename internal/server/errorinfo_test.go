package server

import (
	"context"
	"io"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/koophone-gateway/koophone-gateway/internal/errcat"
)

// checkErrorInfos is a dial option for the tests' gRPC clients: every error any test receives is walked, and a
// gateway-made ErrorInfo (domain koophone-gateway, or KooPhone's codes as the gateway reports them) with an empty
// metadata value fails the test. "" or "0" would read as KooPhone's code or status when KooPhone was never asked.
func checkErrorInfos(t testing.TB) []grpc.DialOption {
	check := func(method string, err error) {
		if err == nil {
			return
		}
		for _, d := range status.Convert(err).Details() {
			info, ok := d.(*errdetails.ErrorInfo)
			if !ok || (info.GetDomain() != errcat.Domain && info.GetDomain() != errcat.KooPhoneDomain) {
				continue
			}
			for k, v := range info.GetMetadata() {
				if v == "" {
					t.Errorf("%s: ErrorInfo %s has an empty %q: %v", method, info.GetReason(), k, info.GetMetadata())
				}
			}
		}
	}
	unary := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		check(method, err)
		return err
	}
	streams := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		cs, err := streamer(ctx, desc, cc, method, opts...)
		check(method, err)
		if err != nil {
			return nil, err
		}
		return &checkedStream{ClientStream: cs, check: func(err error) { check(method, err) }}, nil
	}
	return []grpc.DialOption{grpc.WithChainUnaryInterceptor(unary), grpc.WithChainStreamInterceptor(streams)}
}

type checkedStream struct {
	grpc.ClientStream
	check func(error)
}

func (s *checkedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != io.EOF {
		s.check(err)
	}
	return err
}
