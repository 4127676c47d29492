package auth

import (
	"context"
	"log/slog"
	"path"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/koophone-gateway/koophone-gateway/internal/requestid"
)

// The audit log has one line per write call (allowed, denied or invalid): who, which actions, on which phones, the
// request id and the outcome. It is a logger of its own so operators can ship it apart from the call log. It never
// holds payloads beyond phone ids (commands and URLs can carry secrets).
//
// A line is bounded whatever the request holds: the line is written after authorization and validation, but a
// denied or invalid request can carry anything (95,000 ids made 4 MB lines), so it lists at most auditMaxIDs ids,
// each cut at auditMaxIDLen bytes, with instance_ids_total giving the count.
const (
	auditMaxIDs   = 20 // a valid batch names up to 100 phones; the count tells the rest
	auditMaxIDLen = 64 // valid ids are far shorter; an invalid one is cut
)

func (g *Guard) auditUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	rule := Rules[info.FullMethod]
	if g.audit == nil || !rule.Write {
		return h(ctx, req)
	}
	res, err := h(ctx, req)
	m, _ := req.(proto.Message)
	g.auditLine(ctx, info.FullMethod, rule, m, err)
	return res, err
}

func (g *Guard) auditLine(ctx context.Context, method string, rule Rule, req proto.Message, err error) {
	p, _ := PrincipalFrom(ctx)
	actions := rule.actions(req, true)
	attrs := []any{
		"principal", p.Name,
		"auth", p.Method,
		"rpc", path.Base(method),
		"actions", actions,
	}
	ids, total := instanceIDs(req, auditMaxIDs)
	attrs = append(attrs, "instance_ids", ids)
	if total > len(ids) {
		attrs = append(attrs, "instance_ids_total", total)
	}
	attrs = append(attrs,
		"request_id", requestid.From(ctx),
		"outcome", status.Code(err).String(),
	)
	if c := ClientAddress(ctx); c != "" {
		attrs = append(attrs, "client.address", c)
	}
	g.audit.LogAttrs(ctx, slog.LevelInfo, "audit", slogAttrs(attrs)...)
}

func slogAttrs(kv []any) []slog.Attr {
	out := make([]slog.Attr, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, slog.Any(kv[i].(string), kv[i+1]))
	}
	return out
}

// instanceIDs collects the first limit phone ids a request names, in its instance_id(s) fields at any depth
// (user_instances holds them one level down), each cut at auditMaxIDLen bytes, and counts them all.
func instanceIDs(m proto.Message, limit int) (ids []string, total int) {
	out := []string{}
	if m == nil {
		return out, 0
	}
	add := func(id string) {
		total++
		if len(out) < limit {
			out = append(out, cut(id, auditMaxIDLen))
		}
	}
	var walk func(protoreflect.Message, int)
	walk = func(msg protoreflect.Message, depth int) {
		msg.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.Kind() == protoreflect.StringKind && isIDField(fd.Name()):
				if fd.IsList() {
					for i := range v.List().Len() {
						add(v.List().Get(i).String())
					}
				} else {
					add(v.String())
				}
			case fd.Kind() == protoreflect.MessageKind && depth < 3 && !fd.IsMap():
				if fd.IsList() {
					for i := range v.List().Len() {
						walk(v.List().Get(i).Message(), depth+1)
					}
				} else {
					walk(v.Message(), depth+1)
				}
			}
			return true
		})
	}
	walk(m.ProtoReflect(), 0)
	return out, total
}

// cut shortens s to at most n bytes, on a rune boundary, marking the cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func isIDField(n protoreflect.Name) bool {
	return n == "instance_id" || n == "instance_ids" || n == "instance_id_list"
}

// recordingStream keeps the request a server-streaming handler receives, for the audit line.
type recordingStream struct {
	grpc.ServerStream
	req proto.Message
}

func (s *recordingStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if msg, ok := m.(proto.Message); ok && err == nil && s.req == nil {
		s.req = msg
	}
	return err
}
