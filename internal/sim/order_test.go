package sim_test

import (
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"testing"

	"github.com/koophone-gateway/koophone-gateway/internal/sim"
)

func TestBatchShowSku(t *testing.T) {
	e := newEnv(t, nil)
	r := e.call("GET", "/v1/instances/sku?type=0", nil)
	r.want(t, 200, "0")
	if r.str("error_msg") != "return sku messages success" {
		t.Errorf("error_msg %q", r.str("error_msg"))
	}
	fixture, err := os.ReadFile("sku.json")
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(fixture, &want); err != nil {
		t.Fatal(err)
	}
	if !jsonEqual(t, r.env["data"], want.Data) {
		t.Errorf("data differs from the catalogue:\n%s", r.env["data"])
	}
	e.call("GET", "/v1/instances/sku", nil).want(t, 400, "KOOPHONE.API.1000")
	e.call("GET", "/v1/instances/sku?type=1", nil).want(t, 400, "KOOPHONE.API.1000")
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return string(ja) == string(jb)
}

func createBody(mod func(map[string]any, map[string]any)) map[string]any {
	charge := map[string]any{"chargingMode": 1, "periodType": 2, "periodNum": 1, "isAutoPay": 1, "isAutoRenew": 1}
	body := map[string]any{
		"os": "AOSP9", "instanceSkuId": "kp.professional.xlarge.32g.2", "bandSkuId": "kp.bandwidth",
		"regionId": "cn-north-7", "instanceNamePrefix": "koophone", "bandSize": 4, "count": 2,
		"chargeParam": charge, "network": "EIP",
	}
	if mod != nil {
		mod(body, charge)
	}
	return body
}

type createData struct {
	OrderID       string `json:"orderId"`
	InstanceInfos []struct {
		InstanceID   string `json:"instanceId"`
		InstanceName string `json:"instanceName"`
	} `json:"instanceInfos"`
}

func (e *env) create(body any) createData {
	e.t.Helper()
	r := e.call("POST", "/v1/instances/create", body)
	r.want(e.t, 200, "0")
	var d createData
	r.data(e.t, &d)
	return d
}

func TestCreateAndDeleteInstances(t *testing.T) {
	e := newEnv(t, func(c *sim.Config) { c.Stock = 5; c.ForeignInstances = []string{"f0reign01"} })
	d := e.create(createBody(nil))
	if !regexp.MustCompile(`^CS`+start.Format("0601021504")+`[A-Z0-9]{5}$`).MatchString(d.OrderID) || len(d.InstanceInfos) != 2 ||
		d.InstanceInfos[0].InstanceName != "koophone-00001" || d.InstanceInfos[1].InstanceName != "koophone-00002" {
		t.Fatalf("%+v", d)
	}
	// Auto-paid: the yearly/monthly phones are there at once.
	rows := e.list("instance_name=koophone")
	if len(rows) != 2 || rows[0].InstanceID != d.InstanceInfos[0].InstanceID || rows[0].BillingMode != "0" ||
		rows[0].RunningStatus != 2 {
		t.Fatalf("%+v", rows)
	}
	if got := e.sim.InstanceIDs(); len(got) != 22 {
		t.Fatalf("%d phones", len(got))
	}
	// The phones work like the others.
	if res := e.sync("getprop ro.serialno", rows[1].InstanceID); res[0].ExecuteMsg != rows[1].InstanceID {
		t.Fatalf("%+v", res)
	}

	// Not auto-paid: the order waits for payment, numbering goes on.
	unpaid := e.create(createBody(func(b, c map[string]any) { c["isAutoPay"] = 0; b["count"] = 1; b["os"] = "AOSP11" }))
	if unpaid.InstanceInfos[0].InstanceName != "koophone-00003" {
		t.Fatalf("%+v", unpaid)
	}
	if rows := e.list("instance_name=koophone"); len(rows) != 2 {
		t.Fatalf("unpaid order delivered: %d rows", len(rows))
	}
	if r := e.raw("POST", "/_sim/orders/"+unpaid.OrderID+"/pay", nil, nil); r.status != http.StatusNoContent {
		t.Fatalf("pay: HTTP %d %s", r.status, r.body)
	}
	if rows := e.list("instance_name=koophone"); len(rows) != 3 {
		t.Fatalf("paid order not delivered: %d rows", len(rows))
	}
	if res := e.sync("getprop ro.build.version.release", unpaid.InstanceInfos[0].InstanceID); res[0].ExecuteMsg != "11" {
		t.Fatalf("AOSP11 phone: %+v", res)
	}
	if e.sim.Stock() != 2 {
		t.Fatalf("stock %d", e.sim.Stock())
	}

	// Phones of two regions in one batch: 1002.
	other := e.create(createBody(func(b, c map[string]any) { b["regionId"], b["count"] = "cn-north-208", 1 }))
	if rows := e.list("instance_id=" + other.InstanceInfos[0].InstanceID); rows[0].Region != "cn-north-208" {
		t.Fatalf("%+v", rows)
	}
	e.call("POST", "/v1/instances/batch-query-status", map[string]any{
		"instance_ids": []string{rows[0].InstanceID, other.InstanceInfos[0].InstanceID},
	}).want(t, 400, "KOOPHONE.API.1002")
	e.call("POST", "/v1/instances/delete", map[string]any{"instanceIdList": []string{other.InstanceInfos[0].InstanceID}}).
		want(t, 200, "0")
	if e.sim.Stock() != 1 {
		t.Fatalf("stock %d", e.sim.Stock())
	}

	for _, tc := range []struct {
		name   string
		mod    func(b, c map[string]any)
		status int
		code   string
	}{
		{"no os", func(b, c map[string]any) { delete(b, "os") }, 200, "KOOPHONE.API.3003"},
		{"bad os", func(b, c map[string]any) { b["os"] = "AOSP12" }, 400, "KOOPHONE.API.1000"},
		{"unknown sku", func(b, c map[string]any) { b["instanceSkuId"] = "kp.professional.2xlarge.128g.2" }, 200, "KOOPHONE.API.3002"},
		{"unknown region", func(b, c map[string]any) { b["regionId"] = "cn-north-4" }, 200, "KOOPHONE.API.3002"},
		{"sku not sold there", func(b, c map[string]any) {
			b["regionId"], b["instanceSkuId"] = "cn-north-208", "kp.enterprise.xlarge.32g.2"
		}, 200, "KOOPHONE.API.3002"},
		{"band sku", func(b, c map[string]any) { b["bandSkuId"] = "kp.band" }, 400, "KOOPHONE.API.3001"},
		{"count 0", func(b, c map[string]any) { b["count"] = 0 }, 400, "KOOPHONE.API.1000"},
		{"count 1501", func(b, c map[string]any) { b["count"] = 1501 }, 400, "KOOPHONE.API.1000"},
		{"prefix too long", func(b, c map[string]any) { b["instanceNamePrefix"] = "abcdefghijklmno" }, 400, "KOOPHONE.API.1000"},
		{"no prefix", func(b, c map[string]any) { delete(b, "instanceNamePrefix") }, 400, "KOOPHONE.API.1000"},
		{"charging mode 0", func(b, c map[string]any) { c["chargingMode"] = 0 }, 400, "KOOPHONE.API.1000"},
		{"period type 1", func(b, c map[string]any) { c["periodType"] = 1 }, 400, "KOOPHONE.API.1000"},
		{"10 months", func(b, c map[string]any) { c["periodNum"] = 10 }, 200, "KOOPHONE.API.3006"},
		{"0 months", func(b, c map[string]any) { c["periodNum"] = 0 }, 200, "KOOPHONE.API.3006"},
		{"4 years", func(b, c map[string]any) { c["periodType"], c["periodNum"] = 3, 4 }, 200, "KOOPHONE.API.3007"},
		{"autopay 2", func(b, c map[string]any) { c["isAutoPay"] = 2 }, 400, "KOOPHONE.API.1000"},
		{"autorenew 2", func(b, c map[string]any) { c["isAutoRenew"] = 2 }, 400, "KOOPHONE.API.1000"},
		{"OCR spelling", func(b, c map[string]any) { b["instanceSkuld"] = b["instanceSkuId"]; delete(b, "instanceSkuId") }, 400, "KOOPHONE.API.1000"},
		{"snake case", func(b, c map[string]any) { b["instance_sku_id"] = "x" }, 400, "KOOPHONE.API.1000"},
		{"string count", func(b, c map[string]any) { b["count"] = "1" }, 400, "KOOPHONE.API.1000"},
		{"over stock", func(b, c map[string]any) { b["count"] = 2 }, 200, "KOOPHONE.API.40010"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.call("POST", "/v1/instances/create", createBody(tc.mod)).want(t, tc.status, tc.code)
		})
	}
	h := e.headers()
	h.Del("Content-Type")
	e.raw("POST", "/v1/instances/create", createBody(nil), h).want(t, 400, "KOOPHONE.API.1000")
	if e.sim.Stock() != 1 {
		t.Fatalf("a failed order took stock: %d", e.sim.Stock())
	}

	// Delete: on-demand 5001, foreign 1012, unknown 1001; all or nothing.
	fleet0 := e.ids(1)[0]
	del := func(ids ...string) *resp {
		return e.call("POST", "/v1/instances/delete", map[string]any{"instanceIdList": ids})
	}
	del(rows[0].InstanceID, fleet0).want(t, 400, "KOOPHONE.API.5001")
	del(rows[0].InstanceID, "f0reign01").want(t, 200, "KOOPHONE.API.1012")
	del(rows[0].InstanceID, "nothere1").want(t, 401, "KOOPHONE.API.1001")
	del().want(t, 400, "KOOPHONE.API.1000")
	e.call("POST", "/v1/instances/delete", map[string]any{"instance_ids": []string{rows[0].InstanceID}}).want(t, 400, "KOOPHONE.API.1000")
	r := del(rows[0].InstanceID, rows[1].InstanceID)
	r.want(t, 200, "0")
	if string(r.env["data"]) != "null" || r.str("error_msg") != "OK" {
		t.Fatalf("body %s", r.body)
	}
	if rows := e.list("instance_name=koophone"); len(rows) != 1 {
		t.Fatalf("%d rows after delete", len(rows))
	}
	del(rows[0].InstanceID).want(t, 401, "KOOPHONE.API.1001")
	e.call("POST", "/v1/instances/batch-query-status", map[string]any{"instance_ids": []string{rows[0].InstanceID}}).
		want(t, 401, "KOOPHONE.API.1001")
}
