package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/koophone-gateway/koophone-gateway/client/go/koophone"
)

// Exit codes. A call that fails with a gRPC status exits with 10 + the status's code, so a script can tell
// "refused" from "not found" from "may or may not have happened" without reading the message.
const (
	exitOK      = 0
	exitLocal   = 1 // failed before any answer, without a gRPC status
	exitUsage   = 2 // the command line, config file or a file it names is wrong; nothing was sent
	exitPartial = 3 // the call ended OK but some phones failed (fleet operations, task watches)
	exitStatus  = 10
)

const exitCodeHelp = `Exit codes: 0 OK; 1 failed without a gRPC status; 2 bad command line or config (nothing sent);
3 the call ended OK but some phones failed (fleet operations, task watches); 10 + the gRPC code otherwise
(11 CANCELLED, 12 UNKNOWN (e.g. OUTCOME_UNKNOWN: check before repeating a write), 13 INVALID_ARGUMENT,
14 DEADLINE_EXCEEDED, 15 NOT_FOUND, 16 ALREADY_EXISTS, 17 PERMISSION_DENIED, 18 RESOURCE_EXHAUSTED,
19 FAILED_PRECONDITION, 20 ABORTED, 21 OUT_OF_RANGE, 22 UNIMPLEMENTED, 23 INTERNAL, 24 UNAVAILABLE, 25 DATA_LOSS,
26 UNAUTHENTICATED). ` + "`koophonectl exit-codes`" + ` prints the table.`

func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	st, ok := status.FromError(err)
	if !ok {
		return exitLocal
	}
	return exitStatus + int(st.Code())
}

func (a *app) exitCodesCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "exit-codes",
		Short: "Print the exit code of each outcome",
		Args:  cobra.NoArgs,
		Run: func(*cobra.Command, []string) {
			_, _ = fmt.Fprintf(a.stdout, "%d\tOK\n%d\tfailed without a gRPC status\n%d\tbad command line or config (nothing sent)\n%d\tended OK but some phones failed\n",
				exitOK, exitLocal, exitUsage, exitPartial)
			for c := codes.Canceled; c <= codes.Unauthenticated; c++ {
				_, _ = fmt.Fprintf(a.stdout, "%d\t%s\n", exitStatus+int(c), codeName(c))
			}
		},
	}
}

// reportError writes a failed call's status to stderr, with the error catalogue's details, and returns its exit code.
func (a *app) reportError(err error) int {
	st, ok := status.FromError(err)
	if !ok {
		_, _ = fmt.Fprintln(a.stderr, "koophonectl:", err)
		return exitLocal
	}
	if a.global.output == "json" {
		b, _ := protojson.Marshal(st.Proto())
		_, _ = fmt.Fprintf(a.stderr, "{\"error\":%s}\n", b)
		return exitCode(err)
	}
	e := koophone.ErrorOf(err)
	_, _ = fmt.Fprintf(a.stderr, "koophonectl: %s: %s\n", codeName(e.Code), e.Message)
	if e.Reason != "" {
		_, _ = fmt.Fprintf(a.stderr, "  reason: %s (%s)\n", e.Reason, e.Domain)
	}
	keys := make([]string, 0, len(e.Metadata))
	for k := range e.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		_, _ = fmt.Fprintf(a.stderr, "  %s: %s\n", k, e.Metadata[k])
	}
	for _, v := range e.Violations {
		_, _ = fmt.Fprintf(a.stderr, "  field %s: %s (%s)\n", v.Field, v.Description, v.Reason)
	}
	if e.RetryDelay > 0 {
		_, _ = fmt.Fprintf(a.stderr, "  retry after: %s\n", e.RetryDelay)
	}
	if e.OutcomeUnknown() {
		_, _ = fmt.Fprintln(a.stderr, "  the write may or may not have happened: check the state before repeating it (with the same request_id)")
	}
	return exitCode(err)
}

// codeName is the code as the gRPC specification spells it (CANCELLED, INVALID_ARGUMENT…).
func codeName(c codes.Code) string {
	if c == codes.Canceled {
		return "CANCELLED"
	}
	var b strings.Builder
	for i, r := range c.String() {
		if r >= 'A' && r <= 'Z' && i > 0 {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}
