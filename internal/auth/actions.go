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

func read(actions ...string) Rule  { return Rule{Actions: actions} }
func write(actions ...string) Rule { return Rule{Actions: actions, Write: true} }

// Rules is the one table of RPC → KooPhone actions, by full gRPC method name (the generated constants, so no
// service or RPC name is typed here). An RPC missing here is denied to everyone once a policy is configured (fail
// closed), and a test checks every RPC of the contract (read from its descriptors) is listed.
var Rules = map[string]Rule{
	pb.InstanceService_SyncCommand_FullMethodName:             write(ActionSyncCommand),
	pb.InstanceService_AsyncCommand_FullMethodName:            write(ActionAsyncCommand),
	pb.InstanceService_GetTask_FullMethodName:                 read(ActionQueryJob),
	pb.InstanceService_SetVideoConfig_FullMethodName:          write(ActionSetVideo),
	pb.InstanceService_BatchQueryStatus_FullMethodName:        read(ActionQueryStatus),
	pb.InstanceService_BatchReset_FullMethodName:              write(ActionReset),
	pb.InstanceService_GetDeviceToken_FullMethodName:          write(ActionDeviceToken),
	pb.InstanceService_AssignInstance_FullMethodName:          write(ActionAssign),
	pb.InstanceService_UnassignInstance_FullMethodName:        write(ActionUnassign),
	pb.InstanceService_ListInstances_FullMethodName:           read(ActionList),
	pb.InstanceService_BatchRebootInstance_FullMethodName:     write(ActionReboot),
	pb.InstanceService_BatchPrepareInstances_FullMethodName:   write(ActionPrepare),
	pb.InstanceService_ShowProgress_FullMethodName:            read(ActionPrepareProgress),
	pb.InstanceService_BatchBackupInstances_FullMethodName:    write(ActionBackup),
	pb.InstanceService_StopInstancesStreaming_FullMethodName:  write(ActionStopStreaming),
	pb.InstanceService_ReleaseInstancesSession_FullMethodName: write(ActionReleaseSession),
	pb.InstanceService_WatchTask_FullMethodName:               read(ActionQueryJob),
	pb.InstanceService_WatchPrepareProgress_FullMethodName:    read(ActionPrepareProgress),
	pb.InstanceService_RunAsyncCommand_FullMethodName:         write(ActionAsyncCommand, ActionQueryJob),
	pb.InstanceService_OpenSession_FullMethodName: {
		Actions: []string{ActionPrepare, ActionPrepareProgress, ActionDeviceToken},
		Write:   true,
		Extra: func(req proto.Message) []string {
			if r, ok := req.(*pb.OpenSessionRequest); ok && r.GetAssign() {
				return []string{ActionAssign}
			}
			return nil
		},
	},
	pb.OrderService_BatchShowSku_FullMethodName:   read(ActionQuerySku),
	pb.OrderService_CreateInstance_FullMethodName: write(ActionCreate),
	pb.OrderService_DeleteInstance_FullMethodName: write(ActionDelete),
	pb.AppService_InstallApp_FullMethodName:       write(ActionInstallApp),
	pb.AppService_ListInstanceApp_FullMethodName:  read(ActionListApps),

	// Fleet RPCs resolve their selector through ListInstances pages, then act batch by batch: they need the list
	// action and every action of the batches they start and follow.
	pb.FleetService_ListAllInstances_FullMethodName: read(ActionList),
	// RunFleetCommand's default mode (ASYNC) starts AsyncCommand batches and follows their tasks; SYNC mode sends
	// SyncCommand batches and needs that action as well.
	pb.FleetService_RunFleetCommand_FullMethodName: {
		Actions: []string{ActionList, ActionAsyncCommand, ActionQueryJob},
		Write:   true,
		Extra: func(req proto.Message) []string {
			if r, ok := req.(*pb.RunFleetCommandRequest); ok && r.GetMode() == pb.FleetCommandMode_FLEET_COMMAND_MODE_SYNC {
				return []string{ActionSyncCommand}
			}
			return nil
		},
	},
	pb.FleetService_ResetFleet_FullMethodName:        write(ActionList, ActionReset, ActionQueryJob),
	pb.FleetService_RebootFleet_FullMethodName:       write(ActionList, ActionReboot),
	pb.FleetService_BackupFleet_FullMethodName:       write(ActionList, ActionBackup, ActionQueryJob),
	pb.FleetService_InstallAppOnFleet_FullMethodName: write(ActionList, ActionInstallApp, ActionQueryJob),
	pb.FleetService_ListFleetApps_FullMethodName:     read(ActionList, ActionListApps),
}
