// Command with-fleet-rpc runs one adb shell command on every phone of the tenant through FleetService: the
// gateway lists the phones, batches them, starts and follows the batches, and streams each phone's outcome.
//
//	go run ./examples/fleet-command/with-fleet-rpc -addr 127.0.0.1:9090 -command "getprop ro.serialno"
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"

	"github.com/koophone-gateway/koophone-gateway/client/go/koophone"
	pb "github.com/koophone-gateway/koophone-gateway/client/go/koophonev1"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9090", "gateway gRPC address")
	command := flag.String("command", "getprop ro.serialno", "adb shell command")
	flag.Parse()
	c, err := koophone.New(*addr, koophone.Config{APIKey: os.Getenv("KOOPHONE_API_KEY")})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	stream, err := c.Fleet.RunFleetCommand(context.Background(), &pb.RunFleetCommandRequest{
		Command:  *command,
		Selector: &pb.FleetSelector{Filter: &pb.FleetFilter{All: true}},
	})
	if err != nil {
		log.Fatal(err)
	}
	err = koophone.Follow(stream, func(ev *pb.FleetEvent) error {
		if r := ev.GetResult(); r != nil {
			fmt.Printf("%s\t%s\t%s%s\n", r.GetInstanceId(), r.GetOutcome(), r.GetErrorCode(), r.GetExecuteMsg())
		}
		if s := ev.GetSummary(); s != nil {
			fmt.Printf("done: %d succeeded, %d failed\n", s.GetCounts().GetSucceeded(), s.GetCounts().GetFailed())
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
}
