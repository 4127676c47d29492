package auth

import (
	"context"
	"fmt"
	"path"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"

	"github.com/koophone-gateway/koophone-gateway/internal/errcat"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// ReasonActionDenied is the ErrorInfo reason of a call the policy does not allow; its metadata names the
// principal and the missing action.
var ReasonActionDenied = errcat.Reason(pb.ErrorReason_ACTION_DENIED)

// check returns PERMISSION_DENIED unless the policy allows the principal the actions of method: its fixed ones when
// base is set, and those req asks for (OpenSession's assign) when req is not nil.
func (g *Guard) check(ctx context.Context, method string, req proto.Message, base bool) error {
	if g.policy == nil {
		return nil // no policy: every authenticated caller may do everything
	}
	p, _ := PrincipalFrom(ctx)
	rule, ok := Rules[method]
	if !ok {
		return denied(p.Name, "(none: "+path.Base(method)+" is in no action table)", method)
	}
	pol, err := g.policy.current() // authentication looked at the file for this call
	if err != nil {
		return filesUnusable()
	}
	for _, a := range rule.actions(req, base) {
		if !pol.Allows(p.Name, p.Groups, a) {
			return denied(p.Name, a, method)
		}
	}
	return nil
}

func denied(principal, action, method string) error {
	st, _ := status.New(codes.PermissionDenied,
		fmt.Sprintf("%s may not call %s: the policy does not allow %s", principal, path.Base(method), action)).
		WithDetails(&errdetails.ErrorInfo{
			Reason:   ReasonActionDenied,
			Domain:   errcat.Domain,
			Metadata: map[string]string{"principal": principal, "action": action},
		})
	return st.Err()
}

func (g *Guard) authorizeUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	m, _ := req.(proto.Message)
	if err := g.check(ctx, info.FullMethod, m, true); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

type authorizingStream struct {
	grpc.ServerStream
	g      *Guard
	method string
}

func (s *authorizingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if msg, ok := m.(proto.Message); ok {
		return s.g.check(s.Context(), s.method, msg, false)
	}
	return nil
}
