package sim

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/koophone-gateway/koophone-gateway/internal/clock/clocktest"
)

func TestShell(t *testing.T) {
	s := New(Config{FleetSize: 1})
	p := s.phones[s.fleet[0]]
	p.apps["com.tencent.mm"] = app{name: "com.tencent.mm", version: "8.0.58", file: "mm.apk"}
	now := clocktest.Start(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	for _, tc := range []struct {
		cmd  string
		ok   bool
		want string
	}{
		{"ls", true, "system"},
		{"ls /data/app", true, "com.tencent.mm-1"},
		{"ls -l /data/app/com.tencent.mm-1", true, "base.apk"},
		{"ls -la /sdcard/", true, "Download"},
		{"ls /system/build.prop", true, "/system/build.prop"},
		{"ls -l /system/build.prop", true, "-rw-r--r--"},
		{"ls /system /nowhere", false, "/system:"},
		{"ls -z", false, "Unknown option"},
		{"ls sdcard", true, "DCIM"},
		{"cat /etc/hosts", true, "localhost"},
		{"cat /system", false, "Is a directory"},
		{"cat /proc/version", true, "Linux version"},
		{"getprop no.such.key fallback", true, "fallback"},
		{"getprop no.such.key", true, ""},
		{"pm list packages -s", true, "package:android"},
		{"pm list packages tencent", true, "package:com.tencent.mm"},
		{"pm install x.apk", false, "usage"},
		{"pm list packages -x", false, "Unknown option"},
		{"uname -r", true, "4.19.157-kp"},
		{"uname -q", false, "Unknown option"},
		{"dumpsys", true, "battery"},
		{"dumpsys wifi", true, "Can't find service: wifi"},
		{"date", true, now.Format(time.UnixDate)},
		{"whoami", true, "shell"},
		{"/system/bin/ls", false, "not found"},
	} {
		res := s.shell(p, tc.cmd, now)
		if res.ok != tc.ok || !strings.Contains(res.out, tc.want) {
			t.Errorf("%q: ok=%v %q, want ok=%v containing %q", tc.cmd, res.ok, res.out, tc.ok, tc.want)
		}
	}
	if out := s.shell(p, "pm list packages -s", now).out; strings.Contains(out, "tencent") {
		t.Errorf("-s lists installed apps: %q", out)
	}
}

func TestCapOutput(t *testing.T) {
	long := strings.Repeat("界", 400) // 1200 bytes
	got := capOutput(long)
	if len(got) > maxOutput || !utf8.ValidString(got) || len(got) < maxOutput-3 {
		t.Fatalf("%d bytes, valid %v", len(got), utf8.ValidString(got))
	}
	if capOutput("short") != "short" {
		t.Fatal("short output changed")
	}
}
