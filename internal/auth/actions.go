// Package auth decides who may call the gateway and what they may do. Authentication names the caller (a bearer
// API key from a keys file, a verified mTLS client certificate, or the identity the REST mirror forwards for its
// own callers); authorization checks the caller against a policy of KooPhone's own IAM action names; every write
// gets an audit line. Both transports go through the same interceptors: the REST mirror forwards its callers'
// credentials and the gRPC side decides.
package auth

import (
	"google.golang.org/protobuf/proto"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
)

// The KooPhone IAM action names (from KooPhone's "permissions and actions" table), one per upstream operation.
const (
	ActionSyncCommand     = "koophone:cloudphoneResource:syncInvokeInstance"
	ActionAsyncCommand    = "koophone:cloudphoneResource:asyncInvokeInstance"
	ActionQueryJob        = "koophone:cloudphoneResource:queryExecuteJob"
	ActionSetVideo        = "koophone:cloudphoneResource:setVideo"
	ActionQueryStatus     = "koophone:cloudphoneResource:queryBatchShowInstance"
	ActionReset           = "koophone:cloudphoneResource:batchResetInstance"
	ActionDeviceToken     = "koophone:cloudphoneResource:executeInstanceAuthToken" //nolint:gosec // G101: an action's name, not a credential
	ActionAssign          = "koophone:cloudphoneResource:instanceAssign"
	ActionUnassign        = "koophone:cloudphoneResource:instanceUnassign"
	ActionList            = "koophone:cloudphoneResource:queryInstanceBatch"
	ActionReboot          = "koophone:cloudphoneResource:instanceReboot"
	ActionQuerySku        = "koophone:cloudphoneResource:queryInstanceSku"
	ActionCreate          = "koophone:cloudphoneResource:instanceCreate"
	ActionDelete          = "koophone:cloudphoneResource:instanceDelete"
	ActionPrepare         = "koophone:cloudphoneResource:instancePrepare"
	ActionPrepareProgress = "koophone:cloudphoneResource:getInstancePrepareProgress"
	ActionBackup          = "koophone:cloudphoneResource:instanceBackup"
	ActionStopStreaming   = "koophone:cloudphoneResource:stopInstancesStreaming"
	ActionReleaseSession  = "koophone:cloudphoneResource:releaseInstancesSession"
	ActionInstallApp      = "koophone:cloudphoneResource:instanceAppInstall"
	ActionListApps        = "koophone:cloudphoneResource:queryApplicationList" // operation 21, newer reference
)

// Rule is what one RPC needs: the actions of every KooPhone operation it performs, whether it changes anything
// (writes get an audit line), and actions that depend on the request (OpenSession's assign).
type Rule struct {
	Actions []string
	Write   bool
	// Extra returns further actions the request asks for; nil when none.
	Extra func(req proto.Message) []string
}

// actions are the actions a call asks for: the RPC's own (with base) and those its request adds (with req).
func (r Rule) actions(req proto.Message, base bool) []string {
	var out []string
	if base {
		out = r.Actions
	}
	if req != nil && r.Extra != nil {
		out = append(append([]string(nil), out...), r.Extra(req)...)
	}
	return out
}

const (
	instanceSvc = "/koophone.v1.InstanceService/"
	orderSvc    = "/koophone.v1.OrderService/"
	appSvc      = "/koophone.v1.AppService/"
	fleetSvc    = "/koophone.v1.FleetService/"
)

func read(actions ...string) Rule  { return Rule{Actions: actions} }
func write(actions ...string) Rule { return Rule{Actions: actions, Write: true} }

// Rules is the one table of RPC → KooPhone actions, by full gRPC method name. An RPC missing here is denied to
// everyone once a policy is configured (fail closed), and a test checks every RPC of the contract is listed.
var Rules = map[string]Rule{
	instanceSvc + "SyncCommand":             write(ActionSyncCommand),
	instanceSvc + "AsyncCommand":            write(ActionAsyncCommand),
	instanceSvc + "GetTask":                 read(ActionQueryJob),
	instanceSvc + "SetVideoConfig":          write(ActionSetVideo),
	instanceSvc + "BatchQueryStatus":        read(ActionQueryStatus),
	instanceSvc + "BatchReset":              write(ActionReset),
	instanceSvc + "GetDeviceToken":          write(ActionDeviceToken),
	instanceSvc + "AssignInstance":          write(ActionAssign),
	instanceSvc + "UnassignInstance":        write(ActionUnassign),
	instanceSvc + "ListInstances":           read(ActionList),
	instanceSvc + "BatchRebootInstance":     write(ActionReboot),
	instanceSvc + "BatchPrepareInstances":   write(ActionPrepare),
	instanceSvc + "ShowProgress":            read(ActionPrepareProgress),
	instanceSvc + "BatchBackupInstances":    write(ActionBackup),
	instanceSvc + "StopInstancesStreaming":  write(ActionStopStreaming),
	instanceSvc + "ReleaseInstancesSession": write(ActionReleaseSession),
	instanceSvc + "WatchTask":               read(ActionQueryJob),
	instanceSvc + "WatchPrepareProgress":    read(ActionPrepareProgress),
	instanceSvc + "RunAsyncCommand":         write(ActionAsyncCommand, ActionQueryJob),
	instanceSvc + "OpenSession": {
		Actions: []string{ActionPrepare, ActionPrepareProgress, ActionDeviceToken},
		Write:   true,
		Extra: func(req proto.Message) []string {
			if r, ok := req.(*pb.OpenSessionRequest); ok && r.GetAssign() {
				return []string{ActionAssign}
			}
			return nil
		},
	},
	orderSvc + "BatchShowSku":   read(ActionQuerySku),
	orderSvc + "CreateInstance": write(ActionCreate),
	orderSvc + "DeleteInstance": write(ActionDelete),
	appSvc + "InstallApp":       write(ActionInstallApp),
	appSvc + "ListInstanceApp":  read(ActionListApps),

	// Fleet RPCs resolve their selector through ListInstances pages, then act batch by batch: they need the list
	// action and every action of the batches they start and follow.
	fleetSvc + "ListAllInstances": read(ActionList),
	// RunFleetCommand's default mode (ASYNC) starts AsyncCommand batches and follows their tasks; SYNC mode sends
	// SyncCommand batches and needs that action as well.
	fleetSvc + "RunFleetCommand": {
		Actions: []string{ActionList, ActionAsyncCommand, ActionQueryJob},
		Write:   true,
		Extra: func(req proto.Message) []string {
			if r, ok := req.(*pb.RunFleetCommandRequest); ok && r.GetMode() == pb.FleetCommandMode_FLEET_COMMAND_MODE_SYNC {
				return []string{ActionSyncCommand}
			}
			return nil
		},
	},
	fleetSvc + "ResetFleet":        write(ActionList, ActionReset, ActionQueryJob),
	fleetSvc + "RebootFleet":       write(ActionList, ActionReboot),
	fleetSvc + "BackupFleet":       write(ActionList, ActionBackup, ActionQueryJob),
	fleetSvc + "InstallAppOnFleet": write(ActionList, ActionInstallApp, ActionQueryJob),
	fleetSvc + "ListFleetApps":     read(ActionList, ActionListApps),
}
