package sim_test

import (
	"slices"
	"testing"
	"time"

	"github.com/koophone-gateway/koophone-gateway/internal/sim"
)

func (e *env) prepare(user string, ids ...string) []int {
	e.t.Helper()
	r := e.call("POST", "/v1/instances/prepare", map[string]any{"user_id": user, "instance_ids": ids})
	r.want(e.t, 200, "0")
	var d struct {
		StatusList []struct {
			InstanceID string `json:"instance_id"`
			Status     int    `json:"status"`
		} `json:"status_list"`
	}
	r.data(e.t, &d)
	got := make([]string, len(d.StatusList))
	out := make([]int, len(d.StatusList))
	for i, s := range d.StatusList {
		got[i], out[i] = s.InstanceID, s.Status
	}
	if !slices.Equal(got, ids) {
		e.t.Fatalf("status_list is for %v, want %v in that order", got, ids)
	}
	return out
}

type progress struct {
	Status       int `json:"status"`
	WaitingCount int `json:"waitingCount"`
}

func (e *env) progress(user, id string) progress {
	e.t.Helper()
	r := e.call("POST", "/v1/instances/prepare-progress", map[string]any{"user_id": user, "instance_id": id})
	r.want(e.t, 200, "0")
	var p progress
	r.data(e.t, &p)
	return p
}

func (e *env) deviceToken(id string) *resp {
	e.t.Helper()
	return e.call("POST", "/v1/instances/"+id+"/auth", nil)
}

// The streaming flow of the architecture: assign, prepare, follow progress, get the device token, stop, release,
// back up.
func TestPrepareProgressAndStream(t *testing.T) {
	e := newEnv(t, nil) // queue 3 × 1s, restore 2s
	ids := e.ids(3)
	user := "1008600000104285462"

	// Not assigned: waiting for assignment, and ShowProgress does not know the pair.
	if st := e.prepare(user, ids[0]); st[0] != 2 {
		t.Fatalf("unassigned: %v", st)
	}
	e.call("POST", "/v1/instances/prepare-progress", map[string]any{"user_id": user, "instance_id": ids[0]}).
		want(t, 200, "KOOPHONE.API.2210")
	e.assign(user, ids[0], ids[1])
	if p := e.progress(user, ids[0]); p != (progress{Status: 2}) {
		t.Fatalf("never prepared: %+v", p)
	}
	e.deviceToken(ids[0]).want(t, 200, "KOOPHONE.API.62010")

	// Duplicates are allowed, as in the seed's example.
	if st := e.prepare(user, ids[0], ids[0]); st[0] != 1 || st[1] != 1 {
		t.Fatalf("prepare: %v", st)
	}
	for i, want := range []progress{{1, 3}, {1, 2}, {1, 1}, {2, 0}, {2, 0}, {0, 0}} {
		if p := e.progress(user, ids[0]); p != want {
			t.Fatalf("after %ds: %+v, want %+v", i, p, want)
		}
		if i == 1 {
			e.deviceToken(ids[0]).want(t, 200, "KOOPHONE.API.2005")
			if st := e.status(ids[0]); st != 0 {
				t.Fatalf("queued status %d", st)
			}
		}
		if i == 3 {
			if st := e.status(ids[0]); st != 1 {
				t.Fatalf("restoring status %d", st)
			}
		}
		e.clk.Advance(time.Second)
	}
	if st := e.status(ids[0]); st != 2 {
		t.Fatalf("data loaded status %d", st)
	}
	if st := e.prepare(user, ids[0]); st[0] != 0 {
		t.Fatalf("prepare when ready: %v", st)
	}

	// Device token: the seed's shape, with its mixed types.
	r := e.deviceToken(ids[0])
	r.want(t, 200, "0")
	var tok struct {
		StreamingID string `json:"streamingId"`
		DeviceToken string `json:"device_token"`
		Resource    struct {
			SDK struct {
				Internal struct {
					Address string `json:"address"`
					Aport   string `json:"aport"`
					Atype   string `json:"atype"`
				} `json:"internal"`
				External struct {
					Address string `json:"address"`
					Aport   int    `json:"aport"`
					Atype   int    `json:"atype"`
				} `json:"external"`
			} `json:"sdk"`
			RTC struct {
				IceSignaling struct {
					SignalingURL string   `json:"signaling_url"`
					ExpiredTime  string   `json:"expired_time"`
					IceServers   []string `json:"ice_servers"`
				} `json:"ice_signaling"`
			} `json:"rtc"`
			DeviceID string `json:"device_id"`
			KpID     string `json:"kp_id"`
		} `json:"resource"`
	}
	r.data(t, &tok)
	if len(tok.DeviceToken) != 32 || tok.StreamingID == "" || tok.Resource.KpID != ids[0] || len(tok.Resource.DeviceID) != 32 ||
		tok.Resource.SDK.Internal.Aport == "" || tok.Resource.SDK.External.Aport == 0 ||
		tok.Resource.RTC.IceSignaling.SignalingURL == "" || tok.Resource.RTC.IceSignaling.ExpiredTime != "3600" ||
		tok.Resource.RTC.IceSignaling.IceServers == nil {
		t.Fatalf("device token %s", r.body)
	}
	if st := e.status(ids[0]); st != 3 {
		t.Fatalf("streaming status %d", st)
	}
	if rows := e.list("instance_id=" + ids[0]); rows[0].LoginStatus != 1 || rows[0].RestoreStatus != 2 {
		t.Fatalf("row while streaming %+v", rows[0])
	}

	// Stop (twice: no effect the second time), release.
	for range 2 {
		r := e.call("POST", "/v1/instances/streaming/stop", map[string]any{"instance_id": ids[0]})
		r.want(t, 200, "0")
		if st := e.status(ids[0]); st != 2 {
			t.Fatalf("after stop %d", st)
		}
	}
	e.call("POST", "/v1/instances/session/release", map[string]any{"instance_id": ids[0]}).want(t, 200, "0")
	e.call("POST", "/v1/instances/streaming/stop", map[string]any{"instance_id": "nothere1"}).want(t, 401, "KOOPHONE.API.1001")
	e.call("POST", "/v1/instances/session/release", map[string]any{"instance_ids": []string{ids[0]}}).want(t, 400, "KOOPHONE.API.1000")
	h := e.headers()
	h.Del("X-Request-Id")
	e.raw("POST", "/v1/instances/streaming/stop", map[string]any{"instance_id": ids[0]}, h).want(t, 200, "KOOPHONE.API.0002")

	// Backup: backing up while the job runs, then idle and the physical phone released.
	task := e.startTask("/v1/instances/backup", map[string]any{"instance_ids": ids[:1]})
	if st := e.status(ids[0]); st != 4 {
		t.Fatalf("backing up status %d", st)
	}
	if p := e.progress(user, ids[0]); p.Status != 3 {
		t.Fatalf("progress while backing up %+v", p)
	}
	if st := e.prepare(user, ids[0]); st[0] != 3 {
		t.Fatalf("prepare while backing up %v", st)
	}
	e.deviceToken(ids[0]).want(t, 200, "KOOPHONE.API.2006")
	if rows := e.list("instance_id=" + ids[0]); rows[0].BackupStatus != 1 {
		t.Fatalf("row while backing up %+v", rows[0])
	}
	e.clk.Advance(2 * time.Second)
	if j := e.jobs(task.TaskID)[0]; j.Status != 2 {
		t.Fatalf("backup job %+v", j)
	}
	if st := e.status(ids[0]); st != 0 {
		t.Fatalf("after backup %d", st)
	}
	if p := e.progress(user, ids[0]); p.Status != 2 {
		t.Fatalf("after backup progress %+v", p)
	}
	e.deviceToken(ids[0]).want(t, 200, "KOOPHONE.API.62010")
	if rows := e.list("instance_id=" + ids[0]); rows[0].BackupStatus != 2 || rows[0].BackupTime != kooTime(start.Add(8*time.Second)) {
		t.Fatalf("row after backup %+v", rows[0])
	}

	// Rebooting phones say so.
	e.call("POST", "/v1/instances/reboot", map[string]any{"instance_ids": ids[1:2]}).want(t, 200, "0")
	if st := e.prepare(user, ids[1]); st[0] != 5 {
		t.Fatalf("prepare while rebooting %v", st)
	}

	// Unknown phones: 4001 here, 1001 elsewhere.
	e.call("POST", "/v1/instances/prepare", map[string]any{"user_id": user, "instance_ids": []string{"nothere1"}}).
		want(t, 200, "KOOPHONE.API.4001")
	e.call("POST", "/v1/instances/prepare-progress", map[string]any{"user_id": user, "instance_id": "nothere1"}).
		want(t, 200, "KOOPHONE.API.4001")
	e.deviceToken("nothere1").want(t, 200, "KOOPHONE.API.4001")
	e.call("POST", "/v1/instances/prepare", map[string]any{"user_id": "", "instance_ids": ids[:1]}).want(t, 400, "KOOPHONE.API.1000")
	e.call("POST", "/v1/instances/prepare-progress", map[string]any{"user_id": user}).want(t, 400, "KOOPHONE.API.1000")
}

func TestPrepareFails(t *testing.T) {
	var fail string
	e := newEnv(t, func(c *sim.Config) {
		fail = sim.New(sim.Config{Clock: c.Clock, Seed: c.Seed}).InstanceIDs()[0]
		c.FailInstances = []string{fail}
		c.PrepareQueue = -1 // no queue: restoring at once
		c.RestoreDuration = 500 * time.Millisecond
		c.ForeignInstances = []string{"f0reign01"}
	})
	e.assign("u1", fail)
	if st := e.prepare("u1", fail); st[0] != 1 {
		t.Fatal(st)
	}
	if p := e.progress("u1", fail); p != (progress{Status: 2}) {
		t.Fatalf("restoring %+v", p)
	}
	e.clk.Advance(500 * time.Millisecond)
	if p := e.progress("u1", fail); p.Status != -1 {
		t.Fatalf("failed %+v", p)
	}
	if st := e.status(fail); st != 6 {
		t.Fatalf("restore failed status %d", st)
	}
	e.deviceToken(fail).want(t, 200, "KOOPHONE.API.62010")
	// A foreign phone is 1001, even where unknown ones are 4001.
	e.deviceToken("f0reign01").want(t, 401, "KOOPHONE.API.1001")
	// Backup of a FailInstances phone fails: backup failed (5).
	task := e.startTask("/v1/instances/backup", map[string]any{"instance_ids": []string{fail}})
	e.clk.Advance(2 * time.Second)
	if j := e.jobs(task.TaskID)[0]; j.Status != -1 {
		t.Fatalf("%+v", j)
	}
	if st := e.status(fail); st != 6 {
		// The failed preparation still shows; prepare again to see the failed backup.
		t.Fatalf("status %d", st)
	}
}
