package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"time"
)

// simulator is the standalone koophone-sim process and what the harness needs from it.
type simulator struct {
	*proc
	url   string
	creds struct {
		Domain      string `json:"domain"`
		User        string `json:"user"`
		Password    string `json:"password"`
		ProjectName string `json:"project_name"`
	}
	ids   []string // the tenant's phones
	token string   // an IAM token for direct calls and the bare proxy
}

func startSim(ctx context.Context, o *options, name string, jobDuration time.Duration) (*simulator, error) {
	p, err := startProc(name, o.logDir, o.simBin, []string{"-addr", "127.0.0.1:0", "-fleet", "200",
		"-job-duration", jobDuration.String(), "-token-ttl", "24h"}, nil)
	if err != nil {
		return nil, err
	}
	m, err := waitLog(ctx, p, simListening)
	if err != nil {
		p.stop()
		return nil, err
	}
	s := &simulator{proc: p, url: m[1]}
	if err := waitHTTP(ctx, p, http.DefaultClient, s.url+"/_sim/instances"); err != nil {
		p.stop()
		return nil, err
	}
	err = getJSON(s.url+"/_sim/credentials", &s.creds) // an error here was lost in a shadowed variable
	if err == nil {
		err = getJSON(s.url+"/_sim/instances", &s.ids)
	}
	if err == nil {
		s.token, err = s.login()
	}
	if err != nil {
		p.stop()
		return nil, err
	}
	return s, nil
}

var (
	simListening   = regexp.MustCompile(`KooPhone simulator listening on (http://\S+)`)
	gatewayServing = regexp.MustCompile(`msg=serving grpc=(\S+) http=(\S+)`)
	gatewayPprof   = regexp.MustCompile(`msg="serving /debug/pprof for operators" addr=(\S+)`)
)

// login gets a project-scoped IAM token from the simulator's Keystone endpoint.
func (s *simulator) login() (string, error) {
	body, _ := json.Marshal(map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{"user": map[string]any{
			"name": s.creds.User, "password": s.creds.Password, "domain": map[string]string{"name": s.creds.Domain},
		}}},
		"scope": map[string]any{"project": map[string]string{"name": s.creds.ProjectName}},
	}})
	res, err := http.Post(s.url+"/v3/auth/tokens", "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("IAM login: HTTP %d", res.StatusCode)
	}
	return res.Header.Get("X-Subject-Token"), nil
}

// calls returns the simulator's request counters per operation.
func (s *simulator) calls() (map[string]int64, error) {
	var m map[string]int64
	err := getJSON(s.url+"/_sim/calls", &m)
	return m, err
}

// conns is the simulator's connection counts: opened since start, open now, peak open at once.
func (s *simulator) conns() (map[string]int64, error) {
	var m map[string]int64
	err := getJSON(s.url+"/_sim/connections", &m)
	return m, err
}

// resetConnPeak starts the simulator's peak count again from the connections open now, and returns the counts.
func (s *simulator) resetConnPeak() (map[string]int64, error) {
	res, err := http.Post(s.url+"/_sim/connections/peak-reset", "", nil)
	if err != nil {
		return nil, err
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		return nil, fmt.Errorf("peak-reset: HTTP %d", res.StatusCode)
	}
	return s.conns()
}

// setFaults replaces the simulator's faults with the JSON list.
func (s *simulator) setFaults(list string) error {
	req, _ := http.NewRequest(http.MethodPut, s.url+"/_sim/faults", bytes.NewBufferString(list))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("set faults: HTTP %d", res.StatusCode)
	}
	return nil
}

// gateway is a koophone-gateway process in front of the simulator, with pprof on for the harness' readings.
type gateway struct {
	*proc
	grpcAddr, httpAddr, pprofAddr string
	base                          string       // of the HTTP port: http://addr, or https://addr with TLS
	hc                            *http.Client // for probes and scrapes: trusts the gateway's certificate
}

func startGateway(ctx context.Context, o *options, s *simulator, name, bin string, extraEnv ...string) (*gateway, error) {
	return startGatewayTLS(ctx, o, s, name, bin, nil, extraEnv...)
}

// startGatewayTLS starts a gateway whose ports use TLS when d is not nil (extraEnv names the files).
func startGatewayTLS(ctx context.Context, o *options, s *simulator, name, bin string, d *dress, extraEnv ...string) (*gateway, error) {
	g := gateway{hc: http.DefaultClient}
	scheme := "http://"
	if d != nil {
		// The client certificate too: a gateway with client CAs asks for one, and /readyz is answered either way.
		g.hc, scheme = d.httpClient(true), "https://"
	}
	env := []string{
		"KOOPHONE_GRPC_ADDR=127.0.0.1:0", "KOOPHONE_HTTP_ADDR=127.0.0.1:0", "KOOPHONE_PPROF_ADDR=127.0.0.1:0",
		"KOOPHONE_LOG_LEVEL=info", "KOOPHONE_LOG_FORMAT=text", "KOOPHONE_ENDPOINT=" + s.url, "KOOPHONE_IAM_ENDPOINT=" + s.url,
		"KOOPHONE_IAM_DOMAIN=" + s.creds.Domain, "KOOPHONE_IAM_USER=" + s.creds.User,
		"KOOPHONE_IAM_PASSWORD=" + s.creds.Password, "KOOPHONE_PROJECT=" + s.creds.ProjectName,
		// No client-side quota: it is there to be polite to KooPhone (50 reads/s by default), and would measure
		// itself instead of the gateway; the simulator has none.
		"KOOPHONE_UPSTREAM_READ_RATE=0", "KOOPHONE_UPSTREAM_WRITE_RATE=0",
		// Every load comes from 127.0.0.1: the per-source bound (256) would cap the REST paths' connections, so it is
		// raised to the whole listener's (an earlier build ignores the variable).
		"KOOPHONE_MAX_CONNECTIONS_PER_SOURCE=4096",
		// One anonymous caller makes the whole load: its per-caller shares (2,000 streams, 256 calls by default)
		// would cap the watcher and slow-upstream phases, so they are lifted (an earlier build ignores them).
		"KOOPHONE_SHARE_OPEN_STREAMS=0", "KOOPHONE_SHARE_CONCURRENT_CALLS=0",
	}
	if bin == o.gatewayBin {
		// As the container images run it (deploy/Dockerfile, deploy/cmd/mkimage). An earlier build
		// (-gateway-before) runs without it, as the images of the builds before this setting did.
		env = append(env, "GODEBUG=gcshrinkstackoff=1")
	}
	env = append(append(env, extraEnv...), o.gatewayEnv...)
	p, err := startProc(name, o.logDir, bin, nil, env)
	if err != nil {
		return nil, err
	}
	g.proc = p
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	m, err := waitLog(ctx, p, gatewayServing)
	if err == nil {
		g.grpcAddr, g.httpAddr, g.base = m[1], m[2], scheme+m[2]
		err = waitHTTP(ctx, p, g.hc, g.base+"/readyz")
	}
	if err != nil {
		p.stop()
		return nil, err
	}
	// An earlier build (-gateway-before) may predate --pprof-addr: then there are no goroutine or heap readings.
	if b, err := os.ReadFile(p.log); err == nil {
		if m := gatewayPprof.FindStringSubmatch(string(b)); m != nil {
			g.pprofAddr = m[1]
		}
	}
	return &g, nil
}
