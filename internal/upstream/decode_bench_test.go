package upstream

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkDecode decodes BatchQueryStatus answers (envelope, then data) as the client does for every call.
func BenchmarkDecode(b *testing.B) {
	for _, n := range []int{10, 100} {
		var items []string
		for i := range n {
			items = append(items, fmt.Sprintf(`{"instance_id":"ph%06d","status":%d}`, i, i%8))
		}
		body := []byte(`{"error_code":"0","error_msg":"ok","data":{"status_results":[` + strings.Join(items, ",") + `]}}`)
		b.Run(fmt.Sprintf("BatchQueryStatus%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				var out StatusResults
				if err := decodeResponse(200, body, false, &out); err != nil || len(out.StatusResults) != n {
					b.Fatal(err)
				}
			}
		})
		// As Client.BatchQueryStatus decodes: into a slice with room for one result per phone asked about.
		b.Run(fmt.Sprintf("BatchQueryStatus%d/presized", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				out := StatusResults{StatusResults: make([]StatusResult, 0, n)}
				if err := decodeResponse(200, body, false, &out); err != nil || len(out.StatusResults) != n {
					b.Fatal(err)
				}
			}
		})
	}
}
