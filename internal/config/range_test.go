package config

import (
	"strings"
	"testing"
	"time"
)

// Every value that cannot work is refused at start, and the error names the setting.
func TestOutOfRangeValuesAreRefusedByName(t *testing.T) {
	cases := map[string]string{
		"KOOPHONE_MAX_RECV_BYTES":           "0",
		"KOOPHONE_MAX_CONCURRENT_STREAMS":   "0",
		"KOOPHONE_SHUTDOWN_GRACE":           "0s",
		"KOOPHONE_DEFAULT_CALL_TIMEOUT":     "0s",
		"KOOPHONE_WATCH_POLL_TIMEOUT":       "-1s",
		"KOOPHONE_WATCH_STEP_TIMEOUT":       "0s",
		"KOOPHONE_WATCH_MAX_POLLERS":        "0",
		"KOOPHONE_UPSTREAM_READ_RATE":       "-1",
		"KOOPHONE_UPSTREAM_WRITE_RATE":      "NaN",
		"KOOPHONE_UPSTREAM_READ_BURST":      "0",
		"KOOPHONE_UPSTREAM_WRITE_BURST":     "-3",
		"KOOPHONE_UPSTREAM_MAX_CONNS":       "0",
		"KOOPHONE_UPSTREAM_MAX_IN_FLIGHT":   "0",
		"KOOPHONE_UPSTREAM_RETRY_BUDGET":    "11",
		"KOOPHONE_UPSTREAM_RETRY_MIN":       "-1",
		"KOOPHONE_BREAKER_FAILURES":         "0",
		"KOOPHONE_BREAKER_OPEN_FOR":         "0s",
		"KOOPHONE_SHUTDOWN_DRAIN_DELAY":     "-1s",
		"KOOPHONE_MAX_CONNECTION_AGE":       "0s",
		"KOOPHONE_MAX_CONNECTION_AGE_GRACE": "soon",
	}
	for name, v := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Load(nil, env(map[string]string{name: v}), &strings.Builder{})
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("%s=%s: err = %v, want an error naming the setting", name, v, err)
			}
		})
	}
}

func TestOperatingDefaults(t *testing.T) {
	c, err := Load(nil, env(nil), &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	if c.UpstreamReadRate != 50 || c.UpstreamWriteRate != 20 || c.UpstreamMaxConns != 64 || c.UpstreamMaxInFlight != 256 ||
		c.UpstreamRetryBudget != 0.2 || c.BreakerFailures != 5 || c.WatchMaxPollers != 10000 || c.MaxConnectionAge == 0 {
		t.Fatalf("defaults: %+v", c)
	}
}

// The breaker counts failures in a uint32: a count beyond it must be refused, not wrapped to a breaker that never
// (or always) opens.
func TestBreakerFailuresRange(t *testing.T) {
	for _, v := range []string{"0", "1000001", "4294967296"} {
		_, err := Load(nil, env(map[string]string{"KOOPHONE_BREAKER_FAILURES": v}), &strings.Builder{})
		if err == nil || !strings.Contains(err.Error(), "KOOPHONE_BREAKER_FAILURES") {
			t.Errorf("KOOPHONE_BREAKER_FAILURES=%s: err = %v, want an error naming the setting", v, err)
		}
	}
}

// The connection limits of issue 18: in the table with sane defaults, range-checked by name.
func TestConnectionLimitSettings(t *testing.T) {
	c, err := Load(nil, env(nil), &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxConnsPerSource != 256 || c.MaxConnsPerSource >= c.MaxConnections || c.HandshakeTimeout != 10*time.Second ||
		c.IdleTimeout != 2*time.Minute {
		t.Fatalf("defaults: per source %d of %d, handshake %v, idle %v", c.MaxConnsPerSource, c.MaxConnections,
			c.HandshakeTimeout, c.IdleTimeout)
	}
	for name, v := range map[string]string{
		"KOOPHONE_MAX_CONNECTIONS_PER_SOURCE": "0",
		"KOOPHONE_HANDSHAKE_TIMEOUT":          "0s",
		"KOOPHONE_IDLE_TIMEOUT":               "-1m",
	} {
		if _, err := Load(nil, env(map[string]string{name: v}), &strings.Builder{}); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%s: err = %v, want an error naming the setting", name, v, err)
		}
	}
}
