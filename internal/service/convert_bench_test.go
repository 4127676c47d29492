package service

import (
	"fmt"
	"testing"

	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// BenchmarkMapping maps KooPhone's answers to the contract's messages: a task's jobs (every WatchTask poll) and
// a phone's full record (ListInstances, per phone).
func BenchmarkMapping(b *testing.B) {
	details := make([]upstream.JobDetail, 10)
	for i := range details {
		details[i] = upstream.JobDetail{JobID: fmt.Sprintf("job%d", i), Status: i % 3, ExecuteMsg: "ok"}
	}
	b.Run("TaskSnapshot10", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if s := taskSnapshot("t1", details); len(s.GetJobs()) != 10 {
				b.Fatal(s)
			}
		}
	})
	results := make([]upstream.StatusResult, 10)
	for i := range results {
		results[i] = upstream.StatusResult{InstanceID: fmt.Sprintf("phone-%08d", i), Status: i % 8}
	}
	b.Run("StatusResults10", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if s := statusResults(results); len(s) != 10 {
				b.Fatal(s)
			}
		}
	})
	inst := upstream.Instance{InstanceID: "iRJEVP96", InstanceName: "phone 1", RunningStatus: 2, AssignStatus: 1}
	b.Run("Instance", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if p := instance(inst); p.GetInstanceId() != "iRJEVP96" {
				b.Fatal(p)
			}
		}
	})
}
