// Package fleet runs KooPhone operations on any number of phones. KooPhone caps every batch at 100 phones and
// lists phones a page at a time; this package does the loop every caller would otherwise write:
//
//   - Resolver turns a Selector (explicit ids, or a filter) into phones and their regions through ListInstances
//     (pages fetched a few ahead, with a cursor to resume a listing; explicit ids looked up one by one or found in
//     the fleet's pages, whichever takes fewer calls).
//   - Engine is the one fan-out used by every fleet operation: it splits the phones into batches of at most 100
//     phones of one region (KooPhone refuses a batch that spans regions: KOOPHONE.API.1002),
//     starts them with bounded concurrency through one function (startBatch: one deterministic key per batch,
//     never retried), follows each batch's task through a Follower (the service's watch hub, so fleet operations
//     and ordinary watchers share pollers), and emits one result per phone as its job ends, periodic progress and
//     a final summary.
//
// The package knows KooPhone's plain types (internal/upstream) but not protobuf or gRPC: internal/service maps its
// events to the contract's messages.
package fleet
