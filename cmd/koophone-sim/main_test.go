package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/koophone-gateway/koophone-gateway/internal/testsupport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testsupport.SyncBuffer lets the test read what run prints while run is still going.

// envLines reads the KOOPHONE_* lines of the banner.
func envLines(out string) map[string]string {
	env := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "KOOPHONE_") {
			env[k] = v
		}
	}
	return env
}

func TestRunServesAndShutsDown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &testsupport.SyncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--fleet", "5", "--job-duration", "10ms", "--pools", "p1,p2", "--regions", "r-a,r-b,r-c",
			"--fault", `{"kind":"503","ops":["ListInstances"],"count":1}`}, out)
	}()
	var env map[string]string
	for deadline := time.Now().Add(10 * time.Second); ; {
		if env = envLines(out.String()); env["KOOPHONE_PROJECT_ID"] != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no banner: %q", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, k := range []string{"KOOPHONE_ENDPOINT", "KOOPHONE_IAM_ENDPOINT", "KOOPHONE_IAM_DOMAIN", "KOOPHONE_IAM_USER",
		"KOOPHONE_IAM_PASSWORD", "KOOPHONE_PROJECT", "KOOPHONE_AK", "KOOPHONE_SK", "KOOPHONE_PROJECT_ID"} {
		if env[k] == "" {
			t.Errorf("banner lacks %s:\n%s", k, out.String())
		}
	}

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	login, _ := json.Marshal(map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{"user": map[string]any{
			"name": env["KOOPHONE_IAM_USER"], "password": env["KOOPHONE_IAM_PASSWORD"],
			"domain": map[string]string{"name": env["KOOPHONE_IAM_DOMAIN"]},
		}}},
		"scope": map[string]any{"project": map[string]string{"name": env["KOOPHONE_PROJECT"]}},
	}})
	res, err := client.Post(env["KOOPHONE_IAM_ENDPOINT"]+"/v3/auth/tokens", "application/json", bytes.NewReader(login))
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	token := res.Header.Get("X-Subject-Token")
	if res.StatusCode != http.StatusCreated || token == "" {
		t.Fatalf("IAM: HTTP %d", res.StatusCode)
	}

	list := func(query ...string) (int, map[string]any) {
		req, _ := http.NewRequest("GET", env["KOOPHONE_ENDPOINT"]+"/v1/instances/batch-query?page_no=1&page_size=10&x-request-id=t1"+strings.Join(query, ""), nil)
		req.Header.Set("X-Auth-Token", token)
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = res.Body.Close() }()
		body, _ := io.ReadAll(res.Body)
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		return res.StatusCode, m
	}
	if status, _ := list(); status != http.StatusServiceUnavailable {
		t.Errorf("the --fault flag did not apply: HTTP %d", status)
	}
	status, m := list()
	if status != 200 || m["error_code"] != "0" || m["data"].(map[string]any)["total_count"] != float64(5) {
		t.Fatalf("ListInstances: HTTP %d %v", status, m)
	}
	// --regions cuts the fleet into contiguous blocks: 2, 2 and 1 phones.
	var regions []string
	for _, r := range m["data"].(map[string]any)["result"].([]any) {
		regions = append(regions, r.(map[string]any)["region"].(string))
	}
	if strings.Join(regions, ",") != "r-a,r-a,r-b,r-b,r-c" {
		t.Fatalf("regions %v", regions)
	}
	// --pools spreads the fleet round robin: p2 holds the 2nd and 4th phones.
	if status, m = list("&pool_name=p2"); status != 200 || m["data"].(map[string]any)["total_count"] != float64(2) {
		t.Fatalf("ListInstances pool_name=p2: HTTP %d %v", status, m)
	}
	// Five requests went out on a keep-alive client (a fault or an unread body may cost a new connection, which
	// the server may not have seen close yet); the last one is still open.
	res, err = client.Get(env["KOOPHONE_ENDPOINT"] + "/_sim/connections")
	if err != nil {
		t.Fatal(err)
	}
	var conns map[string]int
	err = json.NewDecoder(res.Body).Decode(&conns)
	_ = res.Body.Close()
	if err != nil || conns["opened"] < 1 || conns["opened"] > 5 || conns["open"] < 1 || conns["open"] > conns["opened"] ||
		conns["peak"] < conns["open"] || conns["peak"] > conns["opened"] {
		t.Fatalf("/_sim/connections: %v %v", conns, err)
	}
	// The peak starts again from the connections open now (a connection may still close or open meanwhile).
	before := conns
	res, err = client.Post(env["KOOPHONE_ENDPOINT"]+"/_sim/connections/peak-reset", "", nil)
	if err != nil || res.StatusCode != http.StatusNoContent {
		t.Fatalf("peak-reset: %v %v", res, err)
	}
	_ = res.Body.Close()
	res, err = client.Get(env["KOOPHONE_ENDPOINT"] + "/_sim/connections")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(res.Body).Decode(&conns)
	_ = res.Body.Close()
	if err != nil || conns["peak"] < conns["open"] || conns["peak"] > before["open"]+1 {
		t.Fatalf("/_sim/connections after peak-reset: %v %v", conns, err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no shutdown")
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--fault", `{"kind":"teapot"}`},
		{"--error-rate", "2"},
		{"--no-such-flag"},
		{"--addr", "256.0.0.1:99999"},
	} {
		if err := run(context.Background(), args, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
