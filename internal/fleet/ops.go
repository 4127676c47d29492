package fleet

import (
	"context"

	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// Upstream is what the fleet operations call: *upstream.Client in production.
type Upstream interface {
	Lister
	SyncCommand(context.Context, upstream.CommandRequest) (*upstream.SyncCommandResult, error)
	AsyncCommand(context.Context, upstream.CommandRequest) (*upstream.Task, error)
	BatchReset(context.Context, upstream.InstanceIDsRequest) (*upstream.Task, error)
	BatchRebootInstance(context.Context, upstream.InstanceIDsRequest) error
	BatchBackupInstances(context.Context, upstream.InstanceIDsRequest) (*upstream.Task, error)
	InstallApp(context.Context, upstream.InstallAppRequest) (*upstream.Task, error)
	ListInstanceApp(context.Context, upstream.ListInstanceAppRequest) (*upstream.AppPage, error)
}

// The operations. Each maps a batch to one KooPhone call (ListFleetApps: one read per phone).

func taskStarted(t *upstream.Task, err error) (*Started, error) {
	if err != nil {
		return nil, err
	}
	return &Started{TaskID: t.TaskID, Jobs: t.CmdJobs}, nil
}

// AsyncCommand runs command with AsyncCommand batches, followed to the end.
func AsyncCommand(up Upstream, command string) Op {
	return Op{Name: "RunFleetCommand", Start: func(ctx context.Context, b Batch) (*Started, error) {
		return taskStarted(up.AsyncCommand(ctx, upstream.CommandRequest{Command: command, InstanceIDs: b.IDs}))
	}}
}

// SyncCommand runs command with SyncCommand batches; the answer is every phone's result.
func SyncCommand(up Upstream, command string) Op {
	return Op{Name: "RunFleetCommand", Start: func(ctx context.Context, b Batch) (*Started, error) {
		res, err := up.SyncCommand(ctx, upstream.CommandRequest{Command: command, InstanceIDs: b.IDs})
		if err != nil {
			return nil, err
		}
		st := &Started{Results: make([]Result, 0, len(res.CmdResults))}
		for _, c := range res.CmdResults {
			r := Result{InstanceID: c.InstanceID, RawStatus: c.Status, ErrorCode: c.ErrorCode, ErrorMsg: c.ErrorMsg, Output: c.ExecuteMsg}
			switch c.Status {
			case jobSucceeded:
				r.Outcome = Succeeded
			case jobRunning:
				r.Outcome = Unknown // a synchronous answer that says "still running" settles nothing
			default:
				r.Outcome = Failed
			}
			st.Results = append(st.Results, r)
		}
		return st, nil
	}}
}

// Reset resets phones with BatchReset batches, followed to the end.
func Reset(up Upstream) Op {
	return Op{Name: "ResetFleet", Start: func(ctx context.Context, b Batch) (*Started, error) {
		return taskStarted(up.BatchReset(ctx, upstream.InstanceIDsRequest{InstanceIDs: b.IDs}))
	}}
}

// Backup backs phones up with BatchBackupInstances batches, followed to the end.
func Backup(up Upstream) Op {
	return Op{Name: "BackupFleet", Start: func(ctx context.Context, b Batch) (*Started, error) {
		return taskStarted(up.BatchBackupInstances(ctx, upstream.InstanceIDsRequest{InstanceIDs: b.IDs}))
	}}
}

// Install installs an app with InstallApp batches (req's instance list is each batch's), followed to the end.
func Install(up Upstream, req upstream.InstallAppRequest) Op {
	return Op{Name: "InstallAppOnFleet", Start: func(ctx context.Context, b Batch) (*Started, error) {
		r := req
		r.InstanceIDList = b.IDs
		return taskStarted(up.InstallApp(ctx, r))
	}}
}

// Reboot reboots phones with BatchRebootInstance batches. KooPhone answers at once and gives no task: an accepted
// batch counts as succeeded for each of its phones.
func Reboot(up Upstream) Op {
	return Op{Name: "RebootFleet", Start: func(ctx context.Context, b Batch) (*Started, error) {
		if err := up.BatchRebootInstance(ctx, upstream.InstanceIDsRequest{InstanceIDs: b.IDs}); err != nil {
			return nil, err
		}
		st := &Started{Results: make([]Result, len(b.IDs))}
		for i, id := range b.IDs {
			st.Results[i] = Result{InstanceID: id, Outcome: Succeeded}
		}
		return st, nil
	}}
}

// appPageSize is ListInstanceApp's largest page: the fewest calls per phone.
const appPageSize = 200

// FindApp reports, per phone, whether it has the third-party app pkg and at which version (ListInstanceApp
// pages, one phone after the other within a batch; batches run concurrently). A phone whose apps cannot be read
// fails alone; its batch goes on.
func FindApp(up Upstream, pkg string) Op {
	return Op{Name: "ListFleetApps", Start: func(ctx context.Context, b Batch) (*Started, error) {
		st := &Started{Results: make([]Result, 0, len(b.IDs))}
		for _, id := range b.IDs {
			app, err := findApp(ctx, up, id, pkg)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			r := Result{InstanceID: id, Outcome: Succeeded, App: app}
			if err != nil {
				r.Outcome, r.ErrorMsg = Failed, err.Error()
				if ue, ok := upstream.AsError(err); ok {
					r.ErrorCode, r.ErrorMsg = ue.Code, ue.Message
				}
			}
			st.Results = append(st.Results, r)
		}
		return st, nil
	}}
}

func findApp(ctx context.Context, up Upstream, id, pkg string) (*upstream.InstalledApp, error) {
	for no := 1; ; no++ {
		page, err := up.ListInstanceApp(ctx, upstream.ListInstanceAppRequest{InstanceID: id, PageNo: no, PageSize: appPageSize, AppType: 2})
		if err != nil {
			return nil, err
		}
		for _, a := range page.Result {
			if a.AppPkg == pkg {
				return &a, nil
			}
		}
		if len(page.Result) < appPageSize || no*appPageSize >= page.TotalCount {
			return nil, nil
		}
	}
}
