// Command without-fleet-rpc runs one adb shell command on every phone of the tenant with the per-call RPCs only:
// list every page, group the phones by region and cut each region's into batches of 100 (KooPhone refuses a batch
// over 100 phones or over two regions), start an AsyncCommand per batch a few at a time, follow each task with
// WatchTask, tie job ids back to phones, and merge the outcomes. This is the loop FleetService.RunFleetCommand
// replaces (see ../with-fleet-rpc).
//
//	go run ./examples/fleet-command/without-fleet-rpc -addr 127.0.0.1:9090 -command "getprop ro.serialno"
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"sync"

	"github.com/koophone-gateway/koophone-gateway/client/go/koophone"
	pb "github.com/koophone-gateway/koophone-gateway/client/go/koophonev1"
)

const (
	pageSize    = 100
	batchSize   = 100 // KooPhone's most phones per call
	concurrency = 4
)

type result struct {
	phone, status, code, output string
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9090", "gateway gRPC address")
	command := flag.String("command", "getprop ro.serialno", "adb shell command")
	flag.Parse()
	c, err := koophone.New(*addr, koophone.Config{APIKey: os.Getenv("KOOPHONE_API_KEY")})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	inst := c.Instances
	ctx := context.Background()

	// 1. Every phone, page by page, grouped by region.
	var regions []string
	phonesIn := map[string][]string{}
	total := 0
	for page := int32(1); ; page++ {
		res, err := inst.ListInstances(ctx, &pb.ListInstancesRequest{PageNo: page, PageSize: pageSize})
		if err != nil {
			log.Fatal(err)
		}
		for _, in := range res.GetResult() {
			if _, ok := phonesIn[in.GetRegion()]; !ok {
				regions = append(regions, in.GetRegion())
			}
			phonesIn[in.GetRegion()] = append(phonesIn[in.GetRegion()], in.GetInstanceId())
			total++
		}
		if len(res.GetResult()) < pageSize || int(page*pageSize) >= int(res.GetTotalCount()) {
			break
		}
	}

	// 2. Batches of 100 phones of one region, a few at a time; each one started once (a command must not run
	// twice) and followed.
	results := make(chan result, total)
	slots := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for _, region := range regions {
		phones := phonesIn[region]
		for start := 0; start < len(phones); start += batchSize {
			batch := phones[start:min(start+batchSize, len(phones))]
			slots <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-slots; wg.Done() }()
				runBatch(ctx, inst, *command, batch, results)
			}()
		}
	}
	wg.Wait()
	close(results)

	// 3. Merge.
	ok, failed := 0, 0
	for r := range results {
		fmt.Printf("%s\t%s\t%s%s\n", r.phone, r.status, r.code, r.output)
		if r.status == "SUCCEEDED" {
			ok++
		} else {
			failed++
		}
	}
	fmt.Printf("done: %d succeeded, %d failed\n", ok, failed)
}

// runBatch starts the command on one batch and reports each phone's job when the task has ended.
func runBatch(ctx context.Context, inst pb.InstanceServiceClient, command string, batch []string, out chan<- result) {
	// One request_id per intended write: were this call repeated after a lost answer, the gateway would answer the
	// first outcome instead of running the command again.
	task, err := inst.AsyncCommand(ctx, &pb.AsyncCommandRequest{Command: command, InstanceIds: batch, RequestId: koophone.NewRequestID()})
	if err != nil {
		for _, p := range batch {
			out <- result{phone: p, status: "BATCH_FAILED", code: err.Error()}
		}
		return
	}
	phoneOf := map[string]string{}
	for _, j := range task.GetCmdJobs() {
		phoneOf[j.GetJobId()] = j.GetInstanceId()
	}
	watch, err := inst.WatchTask(ctx, &pb.WatchTaskRequest{TaskId: task.GetTaskId()})
	if err != nil {
		log.Fatal(err)
	}
	last, err := koophone.Last(watch)
	if err != nil {
		log.Fatal(err) // the task goes on: a careful caller would watch it again
	}
	reported := map[string]bool{}
	for _, j := range last.GetJobs() {
		p := phoneOf[j.GetJobId()]
		reported[p] = true
		status := "FAILED"
		if j.GetStatus() == pb.JobStatus_JOB_STATUS_SUCCEEDED {
			status = "SUCCEEDED"
		}
		out <- result{phone: p, status: status, code: j.GetErrorCode(), output: j.GetExecuteMsg()}
	}
	for _, p := range batch {
		if !reported[p] {
			out <- result{phone: p, status: "UNKNOWN"}
		}
	}
}
