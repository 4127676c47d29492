// Package errcat is the error catalogue in Go: the ErrorInfo domains and metadata keys that the contract
// (proto/koophone/v1/errors.proto) documents, and helpers that build the gateway's own ErrorInfo from the
// contract's ErrorReason enum, so a reason string cannot drift from the enum.
package errcat

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
)

// Domain is the ErrorInfo domain of the gateway's own errors; their reasons are koophone.v1.ErrorReason names.
const Domain = "koophone-gateway"

// KooPhoneDomain is the ErrorInfo domain of errors KooPhone itself answered; their reason is KooPhone's code
// verbatim (KOOPHONE.API.nnnn).
const KooPhoneDomain = "koophone.myhuaweicloud.com"

// ErrorInfo metadata keys, documented in errors.proto and docs/errors.md.
const (
	KeyOperation       = "operation"        // KooPhone's name for the operation the gateway called
	KeyUpstreamCode    = "upstream_code"    // KooPhone's error code
	KeyUpstreamMessage = "upstream_message" // KooPhone's message, untranslated
	KeyHTTPStatus      = "http_status"      // the HTTP status KooPhone answered
	KeyRequestID       = "request_id"       // the id to quote when asking Huawei about the call
)

// MetadataKeys lists the keys above with what they mean, in the order docs/errors.md shows them.
var MetadataKeys = []struct{ Key, Meaning string }{
	{KeyOperation, "KooPhone's name for the operation the gateway called, e.g. `SyncCommand`"},
	{KeyUpstreamCode, "KooPhone's error code, e.g. `KOOPHONE.API.4001` (absent when KooPhone sent none)"},
	{KeyUpstreamMessage, "KooPhone's message, untranslated (often Chinese)"},
	{KeyHTTPStatus, "the HTTP status KooPhone answered (absent when no answer came: unreachable, or refused by the gateway's own limits before sending)"},
	{KeyRequestID, "the request id the gateway sent KooPhone: quote it when asking Huawei about the call"},
}

// Reason is the ErrorInfo reason string of r: the enum value's name.
func Reason(r pb.ErrorReason) string { return r.String() }

// Info is the gateway's own ErrorInfo with reason r; metadata may be nil. Empty values are left out (see Metadata).
func Info(r pb.ErrorReason, metadata map[string]string) *errdetails.ErrorInfo {
	return &errdetails.ErrorInfo{Reason: Reason(r), Domain: Domain, Metadata: Metadata(metadata)}
}

// Metadata returns md without its empty values (nil when none is left): a key is there when it says something,
// so a caller never reads "" or "0" as KooPhone's code or status when KooPhone was never asked. md is not changed.
func Metadata(md map[string]string) map[string]string {
	var out map[string]string
	for k, v := range md {
		if v == "" {
			continue
		}
		if out == nil {
			out = make(map[string]string, len(md))
		}
		out[k] = v
	}
	return out
}
