// Command go calls koophone-gateway from Go with the client module (github.com/koophone-gateway/koophone-gateway/
// client/go) alone: list phones, a synchronous command, an asynchronous command followed with WatchTask to its end,
// an error's ErrorInfo and a BadRequest read through the error catalogue, and OpenSession to the end. It prints the
// same lines as the Node and Python examples; examples/goclient_test.go builds it in a module of its own, outside
// this repository, to prove the client module is all it needs.
//
//	go run ./examples/go [grpc-address]
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/koophone-gateway/koophone-gateway/client/go/koophone"
	pb "github.com/koophone-gateway/koophone-gateway/client/go/koophonev1"
)

const phoneIndex = 4 // each example opens its session on its own phone, so they can run against one gateway

func main() {
	addr := os.Getenv("KOOPHONE_GRPC_ADDR")
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	if addr == "" {
		addr = "127.0.0.1:9090"
	}
	// A key from the environment is sent as a bearer token; over plaintext only to loopback.
	c, err := koophone.New(addr, koophone.Config{APIKey: os.Getenv("KOOPHONE_API_KEY")})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	page, err := c.Instances.ListInstances(ctx, &pb.ListInstancesRequest{PageNo: 1, PageSize: 5})
	if err != nil {
		log.Fatal(err)
	}
	var ids []string
	for _, p := range page.GetResult() {
		ids = append(ids, p.GetInstanceId())
	}
	fmt.Printf("list: %d phones; this page: %s\n", page.GetTotalCount(), strings.Join(ids, ", "))

	sync := &pb.SyncCommandRequest{Command: "getprop ro.product.model", InstanceIds: ids[:1]}
	koophone.SetRequestID(sync) // a write: one id per intended write, reused if it is repeated
	res, err := c.Instances.SyncCommand(ctx, sync)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range res.GetCmdResults() {
		fmt.Printf("sync: %s %s %q\n", r.GetInstanceId(), r.GetStatus(), r.GetExecuteMsg())
	}

	async := &pb.AsyncCommandRequest{Command: "getprop ro.serialno", InstanceIds: ids[:1], RequestId: koophone.NewRequestID()}
	started, err := c.Instances.AsyncCommand(ctx, async)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("async: task %s\n", started.GetTaskId())
	watch, err := c.Instances.WatchTask(ctx, &pb.WatchTaskRequest{TaskId: started.GetTaskId()})
	if err != nil {
		log.Fatal(err)
	}
	err = koophone.Follow(watch, func(m *pb.WatchTaskResponse) error {
		fmt.Printf("watch: running=%d succeeded=%d failed=%d terminal=%t\n",
			m.GetRunningCount(), m.GetSucceededCount(), m.GetFailedCount(), m.GetTerminal())
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}

	_, err = c.Instances.SyncCommand(ctx, &pb.SyncCommandRequest{Command: "ls", InstanceIds: []string{"nosuch01"}})
	if e := koophone.ErrorOf(err); e != nil {
		fmt.Printf("error: %s reason=%s domain=%s operation=%s\n", codeName(e), e.Reason, e.Domain, e.Metadata["operation"])
	} else {
		log.Fatalf("SyncCommand on an unknown phone: %v", err)
	}

	_, err = c.Instances.SyncCommand(ctx, &pb.SyncCommandRequest{Command: "reboot; rm -rf /", InstanceIds: ids[:1]})
	e := koophone.ErrorOf(err)
	if e == nil || len(e.Violations) == 0 {
		log.Fatalf("a shell operator was accepted: %v", err)
	}
	for _, v := range e.Violations {
		fmt.Printf("bad request: %s %s (%s): %s\n", codeName(e), v.Field, v.Reason, v.Description)
	}

	session, err := c.Instances.OpenSession(ctx, &pb.OpenSessionRequest{UserId: "example-go", InstanceId: ids[phoneIndex], Assign: true})
	if err != nil {
		log.Fatal(err)
	}
	err = koophone.Follow(session, func(m *pb.OpenSessionResponse) error {
		switch {
		case m.GetPrepared() != nil:
			fmt.Printf("session: prepared %s %s assigned=%t\n", m.GetPrepared().GetInstanceId(), m.GetPrepared().GetStatus(), m.GetAssigned())
		case m.GetProgress() != nil:
			fmt.Printf("session: progress %s waiting=%d\n", m.GetProgress().GetStatus(), m.GetProgress().GetWaitingCount())
		case m.GetSession() != nil:
			ice := m.GetSession().GetResource().GetRtc().GetIceSignaling()
			fmt.Printf("session: ready signalling=%s ice_servers=%d device_token=(%d characters, not shown)\n",
				ice.GetSignalingUrl(), len(ice.GetIceServers()), len(m.GetSession().GetDeviceToken()))
		}
		return nil
	})
	fmt.Printf("session: end %s\n", codeNameOf(err))
}

func codeName(e *koophone.Error) string { return strings.ToUpper(snake(e.Code.String())) }

func codeNameOf(err error) string {
	if e := koophone.ErrorOf(err); e != nil {
		return codeName(e)
	}
	if err != nil {
		return err.Error()
	}
	return "OK"
}

// snake turns grpc-go's "PermissionDenied" into "Permission_Denied" (upper-cased by the caller).
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return b.String()
}
