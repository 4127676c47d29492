package upstream_test

// Integration tests: the real upstream.Client against the real internal/sim simulator over loopback HTTP. The two
// were written independently from the same API digest, so each side checks the other: the simulator parses every
// request strictly (unknown JSON members, types, headers, signatures) and the client decodes the simulator's
// deliberately mixed-type answers.
//
// Coverage of the 20 KooPhone operations. Success paths are in the tests named; every operation's documented
// error codes are in TestSimOpsErrorPaths (and the lifecycle tests), auth in auth_integration_test.go, faults in
// faults_integration_test.go.
//
//	#   Operation                 Test(s)
//	1   SyncCommand               TestSimOpsCommands, TestSimOpsInstallApp, TestSimAuthAKSKTamperedBody
//	2   AsyncCommand              TestSimOpsCommands, TestSimAuthAKSK, TestSimAuthIAMPassword, TestSimFaultMatrix
//	3   GetTask                   TestSimOpsCommands, TestSimOpsMaintenance, TestSimOpsStreamingLifecycle,
//	                              TestSimOpsInstallApp, TestSimAuthAKSK, TestSimFaultMatrix
//	4   SetVideoConfig            TestSimOpsMaintenance, TestSimAuthAKSK
//	5   BatchQueryStatus          TestSimOpsStreamingLifecycle, TestSimOpsMaintenance, TestSimAuthIAMPassword
//	6   BatchReset                TestSimOpsMaintenance
//	7   GetDeviceToken            TestSimOpsStreamingLifecycle
//	8   AssignInstance            TestSimOpsStreamingLifecycle
//	9   UnassignInstance          TestSimOpsStreamingLifecycle
//	10  ListInstances             TestSimOpsListInstances, TestSimOpsOrderLifecycle, TestSimAuthAKSK,
//	                              TestSimAuthIAMProject, TestSimAuthStaticToken, TestSimFaultMatrix
//	11  BatchRebootInstance       TestSimOpsMaintenance
//	12  BatchShowSku              TestSimOpsOrderLifecycle
//	13  CreateInstance            TestSimOpsOrderLifecycle, TestSimFaultMatrix
//	14  DeleteInstance            TestSimOpsOrderLifecycle
//	15  BatchPrepareInstances     TestSimOpsStreamingLifecycle
//	16  ShowProgress              TestSimOpsStreamingLifecycle
//	17  BatchBackupInstances      TestSimOpsMaintenance
//	18  StopInstancesStreaming    TestSimOpsStreamingLifecycle
//	19  ReleaseInstancesSession   TestSimOpsStreamingLifecycle
//	20  InstallApp                TestSimOpsInstallApp (both result shapes the seed documents)
//	21  ListInstanceApp           newer_integration_test.go (operation 21 and the newer reference's fields)
//
// The other files: auth_integration_test.go (IAM password flow, AK/SK, static token) and
// faults_integration_test.go (the fault matrix written up in docs/fault-matrix.md).
//
// Time: the simulator and the client share one *clock.Fake. Jobs, preparations and reboots move only when a test
// advances it; the client's retry waits go through stepClock, which fires them at once and records them, so no
// test sleeps and Retry-After can be measured exactly.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/koophone-gateway/koophone-gateway/internal/clock"
	"github.com/koophone-gateway/koophone-gateway/internal/clock/clocktest"
	"github.com/koophone-gateway/koophone-gateway/internal/requestid"
	"github.com/koophone-gateway/koophone-gateway/internal/sim"
	"github.com/koophone-gateway/koophone-gateway/internal/upstream"
)

// itStart is the fake time every simulator starts at (whole seconds: the fleet's creation times are truncated).
var itStart = clocktest.Start(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))

var (
	hex32      = regexp.MustCompile(`^[0-9a-f]{32}$`)
	rmTaskID   = regexp.MustCompile(`^RM_[0-9a-f]{32}$`)
	zgcaTaskID = regexp.MustCompile(`^ZGCA[A-Za-z0-9_-]{32}$`)
)

// stepClock is the client's clock: the shared fake, except that a timer fires as soon as it is armed, by moving
// the fake forward by its duration. The client arms timers only to wait before a retry, so waits is exactly the
// list of backoff / Retry-After waits it chose, and a retrying call never blocks the test.
type stepClock struct {
	*clock.Fake
	mu    sync.Mutex
	waits []time.Duration
}

func (c *stepClock) NewTimer(d time.Duration) clock.Timer {
	c.mu.Lock()
	c.waits = append(c.waits, d)
	c.mu.Unlock()
	t := c.Fake.NewTimer(d)
	c.Advance(d)
	return t
}

// takeWaits returns the waits recorded since the last call and forgets them.
func (c *stepClock) takeWaits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.waits
	c.waits = nil
	return w
}

// simEnv is one simulator on a loopback port and what clients need to reach it.
type simEnv struct {
	t     *testing.T
	sim   *sim.Server
	srv   *httptest.Server
	fake  *clock.Fake
	clk   *stepClock
	creds sim.Credentials
	cfg   sim.Config
}

// checkLeaks makes the test fail if it leaves goroutines behind. It must be called before anything is started:
// cleanups run last-registered first, so this check runs after the servers and clients registered later are closed.
func checkLeaks(t *testing.T) {
	t.Helper()
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// newSimEnv starts a simulator with DefaultConfig on the shared fake clock; mod may change the config.
func newSimEnv(t *testing.T, mod func(*sim.Config)) *simEnv {
	t.Helper()
	fake := clock.NewFake(itStart)
	cfg := sim.DefaultConfig()
	cfg.Clock = fake
	if mod != nil {
		mod(&cfg)
	}
	s := sim.New(cfg)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &simEnv{t: t, sim: s, srv: srv, fake: fake, clk: &stepClock{Fake: fake}, creds: s.Credentials(), cfg: cfg}
}

// transport returns a fresh production transport (upstream.NewTransport) whose idle connections are closed when
// the test ends.
func (e *simEnv) transport() *http.Transport {
	tr := upstream.NewTransport()
	e.t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// client builds a client on the simulator with auth (AK/SK with the sim's keys and project when nil), the
// stepping clock and its own transport; mod may change the config.
func (e *simEnv) client(auth upstream.Authenticator, mod func(*upstream.Config)) *upstream.Client {
	e.t.Helper()
	if auth == nil {
		auth = e.aksk()
	}
	cfg := upstream.Config{
		Endpoint:   e.srv.URL,
		Auth:       auth,
		HTTPClient: &http.Client{Transport: e.transport()},
		Clock:      e.clk,
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := upstream.New(cfg)
	if err != nil {
		e.t.Fatalf("upstream.New: %v", err)
	}
	e.t.Cleanup(c.Close)
	return c
}

func (e *simEnv) aksk() upstream.Authenticator {
	return upstream.NewAKSK(e.creds.AK, e.creds.SK, e.creds.ProjectID)
}

// ids returns the first n phones of the simulator's fleet.
func (e *simEnv) ids(n int) []string {
	e.t.Helper()
	all := e.sim.InstanceIDs()
	if len(all) < n {
		e.t.Fatalf("fleet has %d phones, want %d", len(all), n)
	}
	return all[:n]
}

// ctx is the caller's context: a deadline far beyond anything a passing test needs, so that a hang fails
// instead of blocking the run.
func itCtx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// mustOK fails the test on err, printing the *upstream.Error's fields.
func mustOK(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %s", what, describeErr(err))
	}
}

// describe prints an error with the fields the tests assert on.
func describeErr(err error) string {
	if err == nil {
		return "ok"
	}
	e, ok := upstream.AsError(err)
	if !ok {
		return "non-upstream error " + err.Error()
	}
	return e.Kind.String() + " code=" + e.Code + " http=" + strconv.Itoa(e.HTTPStatus) + " attempts=" + strconv.Itoa(e.Attempts) +
		": " + e.Error()
}

// wantAPIError asserts that err is an *upstream.Error of KindAPI with code and HTTP status, and returns it.
// apiError fails the test unless err is an API error with this code and HTTP status, and returns it.
func apiError(t *testing.T, err error, code string, status int) *upstream.Error {
	t.Helper()
	return wantError(t, err, upstream.KindAPI, code, status)
}

// wantAPIError is apiError for a test that needs only the check.
func wantAPIError(t *testing.T, err error, code string, status int) {
	t.Helper()
	_ = apiError(t, err, code, status)
}

func wantError(t *testing.T, err error, kind upstream.Kind, code string, status int) *upstream.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got success, want %v %s HTTP %d", kind, code, status)
	}
	e, ok := upstream.AsError(err)
	if !ok {
		t.Fatalf("got %T %v, want *upstream.Error", err, err)
	}
	if e.Kind != kind || e.Code != code || e.HTTPStatus != status {
		t.Fatalf("got %s, want %v code=%q http=%d", describeErr(err), kind, code, status)
	}
	return e
}

// task status values (GetTask jobs, SyncCommand results).
const (
	jobRunning   = 1
	jobSucceeded = 2
	jobFailed    = -1
)

// wantJobs asserts that the task's jobs are the ones cmd_jobs announced, all in status.
func wantJobs(t *testing.T, c *upstream.Client, task *upstream.Task, status int) []upstream.JobDetail {
	t.Helper()
	ts, err := c.GetTask(itCtx(t), task.TaskID)
	mustOK(t, "GetTask "+task.TaskID, err)
	if len(ts.Jobs) != len(task.CmdJobs) {
		t.Fatalf("GetTask: %d jobs, task announced %d", len(ts.Jobs), len(task.CmdJobs))
	}
	for i, j := range ts.Jobs {
		if j.JobID != task.CmdJobs[i].JobID || j.Status != status {
			t.Fatalf("job %d = %+v, want job_id %s status %d", i, j, task.CmdJobs[i].JobID, status)
		}
	}
	return ts.Jobs
}

// wantTask checks a task's id against pattern and that it has one 32-hex job per phone, in order.
func wantTask(t *testing.T, what string, task *upstream.Task, pattern *regexp.Regexp, phones []string) {
	t.Helper()
	if task == nil || !pattern.MatchString(task.TaskID) {
		t.Fatalf("%s: task %+v, want task_id matching %s", what, task, pattern)
	}
	if len(task.CmdJobs) != len(phones) {
		t.Fatalf("%s: %d cmd_jobs, want %d", what, len(task.CmdJobs), len(phones))
	}
	for i, j := range task.CmdJobs {
		phone := phones[i] //nolint:gosec // G602: the lengths are equal (checked above; Fatalf ends the test)
		if j.InstanceID != phone || !hex32.MatchString(j.JobID) {
			t.Fatalf("%s: cmd_jobs[%d] = %+v, want instance %s and a 32-hex job id", what, i, j, phone)
		}
	}
}

// instance reads one phone through ListInstances' instance_id filter.
func listOne(t *testing.T, c *upstream.Client, id string) upstream.Instance {
	t.Helper()
	page, err := c.ListInstances(itCtx(t), upstream.ListInstancesRequest{PageNo: 1, PageSize: 10, InstanceID: id})
	mustOK(t, "ListInstances instance_id="+id, err)
	if page.TotalCount != 1 || len(page.Result) != 1 || page.Result[0].InstanceID != id {
		t.Fatalf("ListInstances instance_id=%s: %+v", id, page)
	}
	return page.Result[0]
}

// dataStatus reads one phone's BatchQueryStatus status.
func dataStatus(t *testing.T, c *upstream.Client, id string) int {
	t.Helper()
	r, err := c.BatchQueryStatus(itCtx(t), upstream.InstanceIDsRequest{InstanceIDs: []string{id}})
	mustOK(t, "BatchQueryStatus", err)
	if len(r.StatusResults) != 1 || r.StatusResults[0].InstanceID != id {
		t.Fatalf("BatchQueryStatus %s: %+v", id, r)
	}
	return r.StatusResults[0].Status
}

// TestSimOpsCommands: SyncCommand output comes from the phone (its serial number is its instance id); AsyncCommand
// returns a 32-hex task whose jobs run until JobDuration has passed on the simulator's clock.
func TestSimOpsCommands(t *testing.T) {
	checkLeaks(t)
	e := newSimEnv(t, nil)
	c := e.client(nil, nil)
	phones := e.ids(2)

	res, err := c.SyncCommand(itCtx(t), upstream.CommandRequest{Command: "getprop ro.serialno", InstanceIDs: phones})
	mustOK(t, "SyncCommand", err)
	if len(res.CmdResults) != 2 {
		t.Fatalf("SyncCommand: %+v", res)
	}
	for i, r := range res.CmdResults {
		if r.InstanceID != phones[i] || r.Status != jobSucceeded || r.ErrorCode != "" || r.ExecuteMsg != phones[i] {
			t.Errorf("cmd_results[%d] = %+v, want status 2 and execute_msg = the phone id %s", i, r, phones[i])
		}
	}

	// A command the phone cannot run is a per-phone failure inside a successful call: data, not an error.
	res, err = c.SyncCommand(itCtx(t), upstream.CommandRequest{Command: "frobnicate now", InstanceIDs: phones[:1]})
	mustOK(t, "SyncCommand frobnicate", err)
	if r := res.CmdResults[0]; r.Status != jobFailed || r.ErrorCode != "CPS.0191" || !strings.Contains(r.ExecuteMsg, "not found") {
		t.Errorf("unknown command: %+v, want status -1 CPS.0191 and the shell's complaint", r)
	}

	task, err := c.AsyncCommand(itCtx(t), upstream.CommandRequest{Command: "echo hello async", InstanceIDs: phones})
	mustOK(t, "AsyncCommand", err)
	wantTask(t, "AsyncCommand", task, hex32, phones)

	for _, j := range wantJobs(t, c, task, jobRunning) {
		if j.ExecuteMsg != "" { // execute_msg is null while running
			t.Errorf("running job has execute_msg %q", j.ExecuteMsg)
		}
	}
	e.fake.Advance(e.cfg.JobDuration - time.Millisecond)
	wantJobs(t, c, task, jobRunning)
	e.fake.Advance(time.Millisecond)
	for _, j := range wantJobs(t, c, task, jobSucceeded) {
		if j.ExecuteMsg != "hello async" || j.ErrorCode != "" {
			t.Errorf("finished job %+v, want execute_msg %q", j, "hello async")
		}
	}
}

// TestSimOpsListInstances: paging reassembles the fleet in order with a stable total_count, and every filter is
// sent as the simulator reads it.
func TestSimOpsListInstances(t *testing.T) {
	checkLeaks(t)
	e := newSimEnv(t, nil)
	c := e.client(nil, nil)
	fleet := e.sim.InstanceIDs()
	if len(fleet) != 20 {
		t.Fatalf("default fleet has %d phones", len(fleet))
	}

	var got []string
	for pageNo, want := range []int{7, 7, 6, 0} {
		page, err := c.ListInstances(itCtx(t), upstream.ListInstancesRequest{PageNo: pageNo + 1, PageSize: 7})
		mustOK(t, "ListInstances page", err)
		if page.PageNo != pageNo+1 || page.PageSize != 7 || page.TotalCount != 20 || len(page.Result) != want {
			t.Fatalf("page %d: page_no %d page_size %d total %d, %d rows; want %d rows of 20",
				pageNo+1, page.PageNo, page.PageSize, page.TotalCount, len(page.Result), want)
		}
		for _, r := range page.Result {
			got = append(got, r.InstanceID)
		}
	}
	if !slices.Equal(got, fleet) {
		t.Fatalf("paged ids %v, want the fleet %v", got, fleet)
	}

	// The simulator caps page_size at 100, as the seed's example (asks 200, gets 100).
	page, err := c.ListInstances(itCtx(t), upstream.ListInstancesRequest{PageNo: 1, PageSize: 500})
	mustOK(t, "ListInstances page_size 500", err)
	if page.PageSize != 100 || len(page.Result) != 20 {
		t.Errorf("page_size 500: answered page_size %d with %d rows", page.PageSize, len(page.Result))
	}

	// One phone, all 20-odd fields decoded; phone_id is the string "null" upstream and decodes as "".
	one := listOne(t, c, fleet[3])
	if one.InstanceName != "sim-00004" || one.Region != sim.DefaultRegion || one.BillingMode != "1" ||
		one.ProjectID != sim.DefaultProjectID || one.ProjectName != sim.DefaultRegion || one.RunningStatus != 2 ||
		one.PhoneID != "" || one.RegionNameEn == "" || one.InstanceSku == "" || one.AccountName != sim.DefaultDomain {
		t.Errorf("instance %s decoded as %+v", fleet[3], one)
	}

	// The fleet was created one phone an hour, 30 days before start (truncated to the second).
	base := itStart.Add(-30 * 24 * time.Hour)
	const layout = "2006-01-02 15:04:05"
	for _, tc := range []struct {
		name  string
		req   upstream.ListInstancesRequest
		total int
		check func(upstream.Instance) bool
	}{
		{"instance_name substring", upstream.ListInstancesRequest{InstanceName: "sim-0001"}, 10,
			func(i upstream.Instance) bool { return strings.Contains(i.InstanceName, "sim-0001") }},
		{"pool_scene_tag CLOUD_PHONE", upstream.ListInstancesRequest{PoolSceneTag: "CLOUD_PHONE"}, 20, nil},
		{"pool_scene_tag CLOUD_APP", upstream.ListInstancesRequest{PoolSceneTag: "CLOUD_APP"}, 0, nil},
		{"creation time window", upstream.ListInstancesRequest{
			QueryStartTime: base.Add(5 * time.Hour).Format(layout), QueryEndTime: base.Add(9 * time.Hour).Format(layout),
		}, 5, func(i upstream.Instance) bool {
			return slices.Index(fleet, i.InstanceID) >= 5 && slices.Index(fleet, i.InstanceID) <= 9
		}},
		{"no match", upstream.ListInstancesRequest{InstanceName: "no such phone"}, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.PageNo, tc.req.PageSize = 1, 100
			page, err := c.ListInstances(itCtx(t), tc.req)
			mustOK(t, "ListInstances", err)
			if page.TotalCount != tc.total || len(page.Result) != tc.total {
				t.Fatalf("total_count %d with %d rows, want %d", page.TotalCount, len(page.Result), tc.total)
			}
			for _, r := range page.Result {
				if tc.check != nil && !tc.check(r) {
					t.Errorf("row %s (%s) does not match the filter", r.InstanceID, r.InstanceName)
				}
			}
		})
	}
}

// TestSimOpsOrderLifecycle: the catalogue decodes with its mixed pool id types; an order paid at once
// (isAutoPay=1) puts yearly/monthly phones (billing_mode "0") into ListInstances, an unpaid one only once paid;
// DeleteInstance removes them.
func TestSimOpsOrderLifecycle(t *testing.T) {
	checkLeaks(t)
	e := newSimEnv(t, nil)
	c := e.client(nil, nil)

	cat, err := c.BatchShowSku(itCtx(t), "")
	mustOK(t, "BatchShowSku", err)
	if cat.BandInfo.CbcSkuID != "kp.bandwidth" || len(cat.SkuSpecResponseList) == 0 {
		t.Fatalf("catalogue: %+v", cat)
	}
	var region *upstream.RegionSkus
	for i := range cat.SkuSpecResponseList {
		if cat.SkuSpecResponseList[i].RegionID == sim.DefaultRegion {
			region = &cat.SkuSpecResponseList[i]
		}
	}
	if region == nil || len(region.SkuResponses) < 2 {
		t.Fatalf("no SKUs for %s in %+v", sim.DefaultRegion, cat.SkuSpecResponseList)
	}
	// The seed's example gives poolInfo.aosp[].id as "40" (a string) in one SKU and 58 (a number) in the next.
	pro, ent := region.SkuResponses[0], region.SkuResponses[1]
	if id := pro.PoolInfo.Aosp[0].ID; id != "40" {
		t.Errorf("string pool id decoded as %q, want 40", id)
	}
	if n, ok := ent.PoolInfo.Aosp[0].ID.Int(); !ok || n != 58 {
		t.Errorf("numeric pool id decoded as %q, want 58", ent.PoolInfo.Aosp[0].ID)
	}
	if pro.CbcSkuID == "" || pro.ChargeMode != 2 || len(pro.NestInfo) != 1 || pro.NestInfo[0].BandSize != "6" {
		t.Errorf("SKU decoded as %+v", pro)
	}

	order := func(prefix string, count, autoPay int) *upstream.Order {
		t.Helper()
		o, err := c.CreateInstance(itCtx(t), upstream.CreateInstanceRequest{
			OS: "AOSP9", InstanceSkuID: pro.CbcSkuID, BandSkuID: cat.BandInfo.CbcSkuID, RegionID: region.RegionID,
			InstanceNamePrefix: prefix, BandSize: 4, Count: count,
			ChargeParam: upstream.ChargeParam{ChargingMode: 1, PeriodType: 2, PeriodNum: 1, IsAutoPay: autoPay},
		})
		mustOK(t, "CreateInstance", err)
		if !strings.HasPrefix(o.OrderID, "CS") || len(o.InstanceInfos) != count {
			t.Fatalf("order %+v, want an order id CS… and %d phones", o, count)
		}
		for i, info := range o.InstanceInfos {
			if info.InstanceID == "" || info.InstanceName != fmt.Sprintf("%s-%05d", prefix, i+1) {
				t.Fatalf("instanceInfos[%d] = %+v", i, info)
			}
		}
		return o
	}
	listed := func(prefix string) []upstream.Instance {
		t.Helper()
		page, err := c.ListInstances(itCtx(t), upstream.ListInstancesRequest{PageNo: 1, PageSize: 100, InstanceName: prefix})
		mustOK(t, "ListInstances "+prefix, err)
		return page.Result
	}

	stock := e.sim.Stock()
	paid := order("itpaid", 2, 1)
	rows := listed("itpaid")
	if len(rows) != 2 {
		t.Fatalf("after an auto-paid order of 2, ListInstances lists %d", len(rows))
	}
	for i, r := range rows {
		if r.InstanceID != paid.InstanceInfos[i].InstanceID || r.BillingMode != "0" || r.InstanceSku == "" {
			t.Errorf("ordered phone listed as %+v, want billing_mode 0", r)
		}
	}
	all, err := c.ListInstances(itCtx(t), upstream.ListInstancesRequest{PageNo: 1, PageSize: 1})
	mustOK(t, "ListInstances", err)
	if all.TotalCount != 22 {
		t.Errorf("total_count %d after buying 2 phones, want 22", all.TotalCount)
	}

	unpaid := order("itlater", 1, 0)
	if n := len(listed("itlater")); n != 0 {
		t.Errorf("an unpaid order's phone is listed (%d rows)", n)
	}
	if err := e.sim.PayOrder(unpaid.OrderID); err != nil {
		t.Fatal(err)
	}
	if r := listed("itlater"); len(r) != 1 || r[0].BillingMode != "0" {
		t.Errorf("after paying, ListInstances gives %+v", r)
	}
	if got := e.sim.Stock(); got != stock-3 {
		t.Errorf("stock %d, want %d: each order must be placed exactly once", got, stock-3)
	}

	del := []string{paid.InstanceInfos[0].InstanceID, paid.InstanceInfos[1].InstanceID, unpaid.InstanceInfos[0].InstanceID}
	mustOK(t, "DeleteInstance", c.DeleteInstance(itCtx(t), upstream.DeleteInstanceRequest{InstanceIDList: del}))
	if n := len(listed("itpaid")) + len(listed("itlater")); n != 0 {
		t.Errorf("%d deleted phones still listed", n)
	}
	_, err = c.GetDeviceToken(itCtx(t), del[0])
	wantAPIError(t, err, "KOOPHONE.API.4001", http.StatusOK)
}

// TestSimOpsStreamingLifecycle walks one phone through assign → prepare (queued, waitingCount counting down) →
// restoring → ready → device token → streaming → stop → release → unassign.
func TestSimOpsStreamingLifecycle(t *testing.T) {
	checkLeaks(t)
	e := newSimEnv(t, nil)
	c := e.client(nil, nil)
	phone, user := e.ids(1)[0], "it-user-1"

	mustOK(t, "AssignInstance", c.AssignInstance(itCtx(t), upstream.UserInstancesRequest{
		UserInstances: []upstream.UserInstance{{UserID: user, InstanceID: phone}},
	}))
	if in := listOne(t, c, phone); in.AssignStatus != 1 || in.AssignUser != user {
		t.Fatalf("after AssignInstance: assign_status %d assign_user %q", in.AssignStatus, in.AssignUser)
	}

	// Not prepared yet: no stream (62010), and ShowProgress says offline (2).
	_, err := c.GetDeviceToken(itCtx(t), phone)
	wantAPIError(t, err, "KOOPHONE.API.62010", http.StatusOK)
	progress := func(wantStatus, wantWaiting int) {
		t.Helper()
		p, err := c.ShowProgress(itCtx(t), upstream.ProgressRequest{UserID: user, InstanceID: phone})
		mustOK(t, "ShowProgress", err)
		if p.Status != wantStatus || p.WaitingCount != wantWaiting {
			t.Fatalf("ShowProgress at +%v = %+v, want status %d waitingCount %d",
				e.fake.Now().Sub(itStart), *p, wantStatus, wantWaiting)
		}
	}
	progress(2, 0)

	prep, err := c.BatchPrepareInstances(itCtx(t), upstream.PrepareRequest{UserID: user, InstanceIDs: []string{phone}})
	mustOK(t, "BatchPrepareInstances", err)
	if len(prep.StatusList) != 1 || prep.StatusList[0] != (upstream.InstanceStatus{InstanceID: phone, Status: 1}) {
		t.Fatalf("prepare: %+v, want [%s waiting for restore (1)]", prep.StatusList, phone)
	}
	// Queue of 3, one step a second, then 2 s of restoring.
	progress(1, 3)
	e.fake.Advance(e.cfg.PrepareStep)
	progress(1, 2)
	e.fake.Advance(2 * e.cfg.PrepareStep)
	progress(2, 0)
	if s := dataStatus(t, c, phone); s != 1 {
		t.Errorf("BatchQueryStatus while restoring = %d, want 1", s)
	}
	_, err = c.GetDeviceToken(itCtx(t), phone)
	wantAPIError(t, err, "KOOPHONE.API.2005", http.StatusOK)
	e.fake.Advance(e.cfg.RestoreDuration)
	progress(0, 0)
	if s := dataStatus(t, c, phone); s != 2 {
		t.Errorf("BatchQueryStatus when ready = %d, want 2 (data loaded)", s)
	}

	tok, err := c.GetDeviceToken(itCtx(t), phone)
	mustOK(t, "GetDeviceToken", err)
	r := tok.Resource
	if !hex32.MatchString(tok.DeviceToken) || tok.StreamingID == "" || r.KpID != phone || r.DeviceID == "" ||
		r.RTC.IceSignaling.SignalingURL == "" || r.RTC.IceSignaling.ExpiredTime != "3600" {
		t.Errorf("device token decoded as %+v", tok)
	}
	// internal aport/atype are strings upstream, external ones integers: both decode to the same text.
	if r.SDK.Internal.Aport == "" || r.SDK.Internal.Aport != r.SDK.External.Aport ||
		r.SDK.Internal.Atype != "1" || r.SDK.External.Atype != "1" || r.SDK.External.Address == "" {
		t.Errorf("sdk endpoints decoded as %+v", r.SDK)
	}
	if s := dataStatus(t, c, phone); s != 3 {
		t.Errorf("BatchQueryStatus while streaming = %d, want 3", s)
	}
	if in := listOne(t, c, phone); in.LoginStatus != 1 {
		t.Errorf("login_status %d while streaming, want 1", in.LoginStatus)
	}

	mustOK(t, "StopInstancesStreaming", c.StopInstancesStreaming(itCtx(t), upstream.InstanceIDRequest{InstanceID: phone}))
	if s := dataStatus(t, c, phone); s != 2 {
		t.Errorf("BatchQueryStatus after stop = %d, want 2", s)
	}
	// Stopping a phone that is not streaming is documented as harmless.
	mustOK(t, "StopInstancesStreaming again", c.StopInstancesStreaming(itCtx(t), upstream.InstanceIDRequest{InstanceID: phone}))
	_, err = c.GetDeviceToken(itCtx(t), phone)
	mustOK(t, "GetDeviceToken again", err)
	mustOK(t, "ReleaseInstancesSession", c.ReleaseInstancesSession(itCtx(t), upstream.InstanceIDRequest{InstanceID: phone}))
	if s := dataStatus(t, c, phone); s != 2 {
		t.Errorf("BatchQueryStatus after release = %d, want 2", s)
	}

	task, err := c.UnassignInstance(itCtx(t), upstream.UserInstancesRequest{
		UserInstances: []upstream.UserInstance{{UserID: user, InstanceID: phone}},
	})
	mustOK(t, "UnassignInstance", err)
	wantTask(t, "UnassignInstance", task, rmTaskID, []string{phone})
	wantJobs(t, c, task, jobRunning)
	e.fake.Advance(e.cfg.JobDuration)
	wantJobs(t, c, task, jobSucceeded)
	if in := listOne(t, c, phone); in.AssignStatus != 0 || in.AssignUser != "" {
		t.Errorf("after unassign: assign_status %d assign_user %q", in.AssignStatus, in.AssignUser)
	}
	_, err = c.ShowProgress(itCtx(t), upstream.ProgressRequest{UserID: user, InstanceID: phone})
	wantAPIError(t, err, "KOOPHONE.API.2210", http.StatusOK)
}

// sixVideoSettings is a valid SetVideoConfig: every network × encoding combination once (drop the last for 1005).
func sixVideoSettings() []upstream.InstanceSetting {
	var out []upstream.InstanceSetting
	for _, n := range []string{"MOBILE_NETWORK", "WIFI", "WIRED"} {
		for _, enc := range []string{"H264", "H265"} {
			out = append(out, upstream.InstanceSetting{NetworkType: n, EncodingType: enc,
				VideoSpecGroups: []upstream.VideoSpecGroup{{
					Definition540P:  upstream.VideoSpec{CodeRate: 1000, FPS: 30},
					Definition720P:  upstream.VideoSpec{CodeRate: 2000, FPS: 30},
					Definition1080P: upstream.VideoSpec{CodeRate: 4000, FPS: 60},
				}}})
		}
	}
	return out
}

// TestSimOpsMaintenance: SetVideoConfig, BatchReset (RM_ task), BatchRebootInstance (running_status 4 for
// RebootDuration, 5005 when repeated) and BatchBackupInstances (RM_ task, backing up until the job ends).
func TestSimOpsMaintenance(t *testing.T) {
	checkLeaks(t)
	e := newSimEnv(t, nil)
	c := e.client(nil, nil)
	phones := e.ids(3)

	mustOK(t, "SetVideoConfig", c.SetVideoConfig(itCtx(t), upstream.SetVideoConfigRequest{
		InstanceIDs: phones[:2], InstanceSettings: sixVideoSettings(),
	}))

	reset, err := c.BatchReset(itCtx(t), upstream.InstanceIDsRequest{InstanceIDs: phones[:2]})
	mustOK(t, "BatchReset", err)
	wantTask(t, "BatchReset", reset, rmTaskID, phones[:2])
	wantJobs(t, c, reset, jobRunning)

	mustOK(t, "BatchRebootInstance", c.BatchRebootInstance(itCtx(t), upstream.InstanceIDsRequest{InstanceIDs: phones[2:]}))
	if in := listOne(t, c, phones[2]); in.RunningStatus != 4 {
		t.Errorf("running_status %d while rebooting, want 4", in.RunningStatus)
	}

	backup, err := c.BatchBackupInstances(itCtx(t), upstream.InstanceIDsRequest{InstanceIDs: phones[2:]})
	mustOK(t, "BatchBackupInstances", err)
	wantTask(t, "BatchBackupInstances", backup, rmTaskID, phones[2:])
	if s := dataStatus(t, c, phones[2]); s != 4 {
		t.Errorf("BatchQueryStatus while backing up = %d, want 4", s)
	}
	if in := listOne(t, c, phones[2]); in.BackupStatus != 1 {
		t.Errorf("backup_status %d while backing up, want 1", in.BackupStatus)
	}

	e.fake.Advance(max(e.cfg.JobDuration, e.cfg.RebootDuration))
	for _, j := range wantJobs(t, c, reset, jobSucceeded) {
		if j.ExecuteMsg != "success" {
			t.Errorf("reset job %+v, want execute_msg success", j)
		}
	}
	wantJobs(t, c, backup, jobSucceeded)
	in := listOne(t, c, phones[2])
	if in.RunningStatus != 2 || in.BackupStatus != 2 {
		t.Errorf("after reboot and backup: running_status %d backup_status %d, want 2 and 2", in.RunningStatus, in.BackupStatus)
	}
}

// TestSimOpsInstallApp: InstallApp's task id starts with ZGCA, the package shows up on the phones when the job has
// ended, and installing the same version again is 62005. The client must accept both result shapes the seed
// documents (data{task_id,…} and data.data{task_id,…}).
func TestSimOpsInstallApp(t *testing.T) {
	checkLeaks(t)
	for _, shape := range []string{"example", "table"} {
		t.Run(shape, func(t *testing.T) {
			e := newSimEnv(t, func(cfg *sim.Config) { cfg.InstallResultShape = shape })
			c := e.client(nil, nil)
			phones := e.ids(2)
			req := installRequest(phones)

			task, err := c.InstallApp(itCtx(t), req)
			mustOK(t, "InstallApp", err)
			wantTask(t, "InstallApp", task, zgcaTaskID, phones)
			wantJobs(t, c, task, jobRunning)
			e.fake.Advance(e.cfg.JobDuration)
			wantJobs(t, c, task, jobSucceeded)

			out, err := c.SyncCommand(itCtx(t), upstream.CommandRequest{Command: "pm list packages -3", InstanceIDs: phones})
			mustOK(t, "SyncCommand pm", err)
			for _, r := range out.CmdResults {
				if r.ExecuteMsg != "package:"+req.ObjectName {
					t.Errorf("pm list packages -3 on %s = %q", r.InstanceID, r.ExecuteMsg)
				}
			}
			_, err = c.InstallApp(itCtx(t), req)
			wantAPIError(t, err, "KOOPHONE.API.62005", http.StatusOK)
		})
	}
}

func installRequest(phones []string) upstream.InstallAppRequest {
	return upstream.InstallAppRequest{
		FastInstall: "1", ObjectName: "com.example.integration", FileName: "integration.apk", ObjectVersion: "1.0.0",
		ObjectSize: "12.5", BizType: "apk", ContentType: "application/octet-stream",
		// "&" must reach the simulator unescaped (the client turns off JSON's HTML escaping).
		InstallPackageURL: "https://bucket.obs.cn-north-7.myhuaweicloud.com/integration.apk?a=1&b=2",
		InstanceIDList:    phones,
	}
}

// TestSimOpsErrorPaths: every documented error the simulator can produce through the typed client, asserted as
// *upstream.Error with Kind, Code and HTTP status. The client validates nothing itself, so bad input (times,
// periods, fast_install, command characters) reaches the simulator, whose code is what comes back. None of these
// codes is retryable: each call is sent once.
func TestSimOpsErrorPaths(t *testing.T) {
	checkLeaks(t)
	e := newSimEnv(t, func(cfg *sim.Config) {
		cfg.Stock = 3
		cfg.ForeignInstances = []string{"foreign01"}
	})
	c := e.client(nil, nil)
	p := e.ids(10)
	cat, err := c.BatchShowSku(itCtx(t), "0")
	mustOK(t, "BatchShowSku", err)
	create := func(mod func(*upstream.CreateInstanceRequest)) error {
		req := upstream.CreateInstanceRequest{
			OS: "AOSP11", InstanceSkuID: cat.SkuSpecResponseList[0].SkuResponses[0].CbcSkuID,
			BandSkuID: cat.BandInfo.CbcSkuID, RegionID: cat.SkuSpecResponseList[0].RegionID,
			InstanceNamePrefix: "iterr", BandSize: 4, Count: 1,
			ChargeParam: upstream.ChargeParam{ChargingMode: 1, PeriodType: 2, PeriodNum: 1, IsAutoPay: 1},
		}
		mod(&req)
		_, err := c.CreateInstance(itCtx(t), req)
		return err
	}
	assign := func(user, phone string) error {
		return c.AssignInstance(itCtx(t), upstream.UserInstancesRequest{UserInstances: []upstream.UserInstance{{UserID: user, InstanceID: phone}}})
	}
	list := func(start, end string) error {
		_, err := c.ListInstances(itCtx(t), upstream.ListInstancesRequest{PageNo: 1, PageSize: 10, QueryStartTime: start, QueryEndTime: end})
		return err
	}
	install := func(mod func(*upstream.InstallAppRequest)) error {
		req := installRequest(p[5:6])
		mod(&req)
		_, err := c.InstallApp(itCtx(t), req)
		return err
	}

	for _, tc := range []struct {
		name   string
		call   func() error
		code   string
		status int
	}{
		{"1001 unknown phone (SyncCommand)", func() error {
			_, err := c.SyncCommand(itCtx(t), upstream.CommandRequest{Command: "id", InstanceIDs: []string{"nosuch01"}})
			return err
		}, "KOOPHONE.API.1001", 401},
		{"1001 another tenant's phone (BatchReset)", func() error {
			_, err := c.BatchReset(itCtx(t), upstream.InstanceIDsRequest{InstanceIDs: []string{"foreign01"}})
			return err
		}, "KOOPHONE.API.1001", 401},
		{"1012 delete another tenant's phone", func() error {
			return c.DeleteInstance(itCtx(t), upstream.DeleteInstanceRequest{InstanceIDList: []string{"foreign01"}})
		}, "KOOPHONE.API.1012", 200},
		{"1323 unknown task", func() error {
			_, err := c.GetTask(itCtx(t), "0123456789abcdef0123456789abcdef")
			return err
		}, "KOOPHONE.API.1323", 400},
		{"4001 unknown phone (GetDeviceToken)", func() error {
			_, err := c.GetDeviceToken(itCtx(t), "nosuch01")
			return err
		}, "KOOPHONE.API.4001", 200},
		{"4001 unknown phone (BatchPrepareInstances)", func() error {
			_, err := c.BatchPrepareInstances(itCtx(t), upstream.PrepareRequest{UserID: "u", InstanceIDs: []string{"nosuch01"}})
			return err
		}, "KOOPHONE.API.4001", 200},
		{"2210 progress of a user not assigned the phone", func() error {
			_, err := c.ShowProgress(itCtx(t), upstream.ProgressRequest{UserID: "nobody", InstanceID: p[1]})
			return err
		}, "KOOPHONE.API.2210", 200},
		{"2210 unassign a user not assigned the phone", func() error {
			_, err := c.UnassignInstance(itCtx(t), upstream.UserInstancesRequest{UserInstances: []upstream.UserInstance{{UserID: "nobody", InstanceID: p[1]}}})
			return err
		}, "KOOPHONE.API.2210", 200},
		{"KPAPI.2209 phone already assigned to another user", func() error {
			mustOK(t, "AssignInstance", assign("user-a", p[2]))
			return assign("user-b", p[2])
		}, "KPAPI.2209", 200},
		{"5001 delete an on-demand phone", func() error {
			return c.DeleteInstance(itCtx(t), upstream.DeleteInstanceRequest{InstanceIDList: []string{p[3]}})
		}, "KOOPHONE.API.5001", 400},
		{"5005 reboot a rebooting phone", func() error {
			mustOK(t, "BatchRebootInstance", c.BatchRebootInstance(itCtx(t), upstream.InstanceIDsRequest{InstanceIDs: p[4:5]}))
			return c.BatchRebootInstance(itCtx(t), upstream.InstanceIDsRequest{InstanceIDs: p[4:5]})
		}, "KOOPHONE.API.5005", 400},
		{"3002 unknown SKU", func() error {
			return create(func(r *upstream.CreateInstanceRequest) { r.InstanceSkuID = "kp.no.such.sku" })
		}, "KOOPHONE.API.3002", 200},
		{"3002 unknown region", func() error {
			return create(func(r *upstream.CreateInstanceRequest) { r.RegionID = "xx-nowhere-1" })
		}, "KOOPHONE.API.3002", 200},
		{"3001 band SKU mismatch", func() error {
			return create(func(r *upstream.CreateInstanceRequest) { r.BandSkuID = "kp.other.band" })
		}, "KOOPHONE.API.3001", 400},
		{"3003 no os", func() error {
			return create(func(r *upstream.CreateInstanceRequest) { r.OS = "" })
		}, "KOOPHONE.API.3003", 200},
		{"3006 ten months", func() error {
			return create(func(r *upstream.CreateInstanceRequest) { r.ChargeParam.PeriodNum = 10 })
		}, "KOOPHONE.API.3006", 200},
		{"3006 zero months", func() error {
			return create(func(r *upstream.CreateInstanceRequest) { r.ChargeParam.PeriodNum = 0 })
		}, "KOOPHONE.API.3006", 200},
		{"3007 four years", func() error {
			return create(func(r *upstream.CreateInstanceRequest) { r.ChargeParam.PeriodType, r.ChargeParam.PeriodNum = 3, 4 })
		}, "KOOPHONE.API.3007", 200},
		{"40010 out of stock (stock 3, order 4)", func() error {
			return create(func(r *upstream.CreateInstanceRequest) { r.Count = 4 })
		}, "KOOPHONE.API.40010", 200},
		{"62010 device token before prepare", func() error {
			_, err := c.GetDeviceToken(itCtx(t), p[6])
			return err
		}, "KOOPHONE.API.62010", 200},
		{"62005 same app twice once installed", func() error {
			mustOK(t, "InstallApp", install(func(*upstream.InstallAppRequest) {}))
			e.fake.Advance(e.cfg.JobDuration) // the package lands when the job ends
			return install(func(*upstream.InstallAppRequest) {})
		}, "KOOPHONE.API.62005", 200},
		{"3008 fast_install 2", func() error {
			return install(func(r *upstream.InstallAppRequest) { r.FastInstall, r.ObjectVersion = "2", "2.0" })
		}, "KOOPHONE.API.3008", 200},
		{"62006 object_size not a number", func() error {
			return install(func(r *upstream.InstallAppRequest) { r.ObjectSize, r.ObjectVersion = "12MB", "2.0" })
		}, "KOOPHONE.API.62006", 200},
		{"62015 package over 2 GB", func() error {
			return install(func(r *upstream.InstallAppRequest) { r.ObjectSize, r.ObjectVersion = "2049", "2.0" })
		}, "KOOPHONE.API.62015", 200},
		{"5002 bad time format", func() error { return list("2026/03/01 00:00:00", "") }, "KOOPHONE.API.5002", 400},
		{"5002 bad end time", func() error { return list("", "2026-03-01T00:00:00Z") }, "KOOPHONE.API.5002", 400},
		{"5004 end before start", func() error { return list("2026-03-02 00:00:00", "2026-03-01 00:00:00") }, "KOOPHONE.API.5004", 400},
		{"1005 five video combinations", func() error {
			return c.SetVideoConfig(itCtx(t), upstream.SetVideoConfigRequest{InstanceIDs: p[7:8], InstanceSettings: sixVideoSettings()[:5]})
		}, "KOOPHONE.API.1005", 400},
		{"1005 a combination twice", func() error {
			s := sixVideoSettings()
			s[5] = s[0]
			return c.SetVideoConfig(itCtx(t), upstream.SetVideoConfigRequest{InstanceIDs: p[7:8], InstanceSettings: s})
		}, "KOOPHONE.API.1005", 400},
		{"1000 forbidden character in a command", func() error {
			_, err := c.AsyncCommand(itCtx(t), upstream.CommandRequest{Command: "ls; reboot", InstanceIDs: p[8:9]})
			return err
		}, "KOOPHONE.API.1000", 400},
		{"0003 caller's request id is passed through unchecked", func() error {
			_, err := c.BatchQueryStatus(requestid.With(itCtx(t), "not a valid id"), upstream.InstanceIDsRequest{InstanceIDs: p[9:]})
			return err
		}, "KOOPHONE.API.0003", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			got := apiError(t, err, tc.code, tc.status)
			if got.Attempts != 1 || got.Op == "" || got.RequestID == "" || got.Message == "" {
				t.Errorf("error fields: %+v, want one attempt, an op, a request id and the upstream message", *got)
			}
			var ue *upstream.Error
			if !errors.As(err, &ue) {
				t.Error("errors.As does not find *upstream.Error")
			}
		})
	}
	if got := e.sim.Stock(); got != 3 {
		t.Errorf("stock %d after only failed orders, want 3", got)
	}
}
