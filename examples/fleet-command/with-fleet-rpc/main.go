// Command with-fleet-rpc runs one adb shell command on every phone of the tenant through FleetService: the
// gateway lists the phones, batches them, starts and follows the batches, and streams each phone's outcome.
//
//	go run ./examples/fleet-command/with-fleet-rpc -addr 127.0.0.1:9090 -command "getprop ro.serialno"
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9090", "gateway gRPC address")
	command := flag.String("command", "getprop ro.serialno", "adb shell command")
	flag.Parse()
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	stream, err := pb.NewFleetServiceClient(conn).RunFleetCommand(context.Background(), &pb.RunFleetCommandRequest{
		Command:  *command,
		Selector: &pb.FleetSelector{Filter: &pb.FleetFilter{All: true}},
	})
	if err != nil {
		log.Fatal(err)
	}
	for {
		ev, err := stream.Recv()
		if err == io.EOF {
			return
		}
		if err != nil {
			log.Fatal(err)
		}
		if r := ev.GetResult(); r != nil {
			fmt.Printf("%s\t%s\t%s%s\n", r.GetInstanceId(), r.GetOutcome(), r.GetErrorCode(), r.GetExecuteMsg())
		}
		if s := ev.GetSummary(); s != nil {
			fmt.Printf("done: %d succeeded, %d failed\n", s.GetCounts().GetSucceeded(), s.GetCounts().GetFailed())
		}
	}
}
