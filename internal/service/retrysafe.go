package service

// RetrySafe lists the RPCs a client may send again on UNAVAILABLE or RESOURCE_EXHAUSTED without asking what
// happened: they only read. Every other RPC changes something (orders and bills phones, runs commands, wipes
// data); retry it only on UNAVAILABLE, which the gateway answers only when nothing was sent, never on UNKNOWN
// (reason OUTCOME_UNKNOWN). docs/service-config.json, the gRPC service config for clients, lists the same
// RPCs; a test keeps the two equal.
var RetrySafe = []string{
	"/koophone.v1.InstanceService/GetTask",
	"/koophone.v1.InstanceService/BatchQueryStatus",
	"/koophone.v1.InstanceService/ListInstances",
	"/koophone.v1.InstanceService/ShowProgress",
	"/koophone.v1.InstanceService/WatchTask",
	"/koophone.v1.InstanceService/WatchPrepareProgress",
	"/koophone.v1.OrderService/BatchShowSku",
}
