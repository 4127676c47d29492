package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/koophone-gateway/koophone-gateway/client/go/koophone"
	pb "github.com/koophone-gateway/koophone-gateway/client/go/koophonev1"
)

// app holds one run's settings and outcome.
type app struct {
	stdin io.Reader
	// Writes to stdout and stderr drop their errors (`_, _ =`): when the terminal or pipe is gone, there is no one
	// left to tell, and the exit status still says how the call ended.
	stdout, stderr io.Writer
	getenv         func(string) string
	global         globalFlags
	called         bool // the call was made: errors from now on are the call's
	exit           int  // exit code when the call itself succeeded (exitPartial when phones failed)
}

// services lists the contract's services, read from the stubs' descriptors.
func services() []protoreflect.ServiceDescriptor {
	_ = pb.File_koophone_v1_instance_service_proto // the stubs register the contract
	var out []protoreflect.ServiceDescriptor
	protoregistry.GlobalFiles.RangeFilesByPackage("koophone.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			out = append(out, fd.Services().Get(i))
		}
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out
}

// kebab turns "ListInstances" into "list-instances" and "page_no" into "page-no".
func kebab(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == '_':
			b.WriteByte('-')
		case r >= 'A' && r <= 'Z':
			if i > 0 {
				b.WriteByte('-')
			}
			b.WriteRune(r + 'a' - 'A')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func (a *app) serviceCommand(svc protoreflect.ServiceDescriptor) *cobra.Command {
	name := strings.TrimSuffix(string(svc.Name()), "Service") // InstanceService -> instance
	cmd := &cobra.Command{
		Use:     strings.ToLower(name),
		Aliases: []string{string(svc.Name()), strings.ToLower(name) + "s"},
		Short:   "RPCs of koophone.v1." + string(svc.Name()),
	}
	for i := 0; i < svc.Methods().Len(); i++ {
		cmd.AddCommand(a.methodCommand(svc, svc.Methods().Get(i)))
	}
	return cmd
}

func (a *app) methodCommand(svc protoreflect.ServiceDescriptor, md protoreflect.MethodDescriptor) *cobra.Command {
	full := "/" + string(svc.FullName()) + "/" + string(md.Name())
	short := firstLine(comment(md))
	if md.IsStreamingServer() {
		short += " (stream)"
	}
	if koophone.IsWrite(full) {
		short += " [write]"
	}
	var body string
	fields := &fieldFlags{}
	cmd := &cobra.Command{
		Use:     kebab(string(md.Name())),
		Aliases: []string{string(md.Name())},
		Short:   short,
		Long:    comment(md) + "\n\nRequest: koophone.v1." + string(md.Input().Name()) + ". Method: " + full,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.global.check(); err != nil {
				return err
			}
			req, err := a.buildRequest(md.Input(), body, fields, cmd)
			if err != nil {
				return err
			}
			return a.call(cmd, full, md, req)
		},
	}
	cmd.Flags().StringVarP(&body, "data", "d", "", "request as JSON (proto field names); @file reads a file, - reads stdin")
	fields.register(cmd, md.Input())
	return cmd
}

// buildRequest makes the request message: the JSON body first, then every flag given on top of it.
func (a *app) buildRequest(in protoreflect.MessageDescriptor, body string, fields *fieldFlags, cmd *cobra.Command) (proto.Message, error) {
	req := newMessage(in)
	if body != "" {
		raw := []byte(body)
		var err error
		switch {
		case body == "-":
			raw, err = io.ReadAll(a.stdin)
		case strings.HasPrefix(body, "@"):
			raw, err = os.ReadFile(body[1:])
		}
		if err != nil {
			return nil, usagef("--data: %v", err)
		}
		if err := protojson.Unmarshal(raw, req); err != nil {
			return nil, usagef("--data: %v", err)
		}
	}
	if err := fields.apply(req.ProtoReflect(), cmd.Flags()); err != nil {
		return nil, err
	}
	return req, nil
}

// newMessage returns the stubs' Go type for a message (dynamicpb if it is not linked in).
func newMessage(md protoreflect.MessageDescriptor) proto.Message {
	if mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName()); err == nil {
		return mt.New().Interface()
	}
	return dynamicpb.NewMessage(md)
}

// call dials, sends the request and shows the answer: one message, or every message of a stream.
func (a *app) call(cmd *cobra.Command, full string, md protoreflect.MethodDescriptor, req proto.Message) error {
	addr, cfg, err := a.connection(cmd)
	if err != nil {
		return err
	}
	conn, err := koophone.Dial(addr, cfg)
	if err != nil {
		return usageError{err}
	}
	defer func() { _ = conn.Close() }()
	if id := koophone.SetRequestID(req); id != "" && !a.global.quiet {
		_, _ = fmt.Fprintln(a.stderr, "request_id:", id)
	}
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	timeout := a.global.timeout
	if timeout == 0 && !md.IsStreamingServer() {
		timeout = 30 * time.Second
	}
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	a.called = true
	out := newPrinter(a, md.Output())
	if !md.IsStreamingServer() {
		res := newMessage(md.Output())
		if err := conn.Invoke(ctx, full, req, res); err != nil {
			return err
		}
		return out.unary(res)
	}
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, full)
	if err != nil {
		return err
	}
	if err := stream.SendMsg(req); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if err := stream.CloseSend(); err != nil {
		return err
	}
	defer out.finish()
	for {
		res := newMessage(md.Output())
		err := stream.RecvMsg(res)
		if errors.Is(err, io.EOF) {
			return out.end()
		}
		if err != nil {
			out.finish()
			return err
		}
		if err := out.message(res); err != nil {
			return err
		}
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	// The first sentence: up to ". " followed by a capital letter.
	for i := 0; i+2 < len(s); i++ {
		if s[i] == '.' && s[i+1] == ' ' && s[i+2] >= 'A' && s[i+2] <= 'Z' {
			return s[:i+1]
		}
	}
	return s
}
