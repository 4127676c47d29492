package sim

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// A tiny deterministic adb shell: enough commands for demos and tests to see real-looking, phone-specific output
// (the serial number is the instance id, installed apps show up in pm), and to see unknown commands fail the way
// the seed's example does.

type shellResult struct {
	ok  bool
	out string
}

// maxOutput is execute_msg's limit (seed: "最长1024字节").
const maxOutput = 1024

// shell runs cmd on p at now. The caller holds s.mu.
func (s *Server) shell(p *phone, cmd string, now time.Time) shellResult {
	args := strings.Fields(cmd)
	var r shellResult
	switch args[0] {
	case "echo":
		r = shellResult{true, strings.Join(args[1:], " ")}
	case "ls":
		r = shellLs(p, args[1:])
	case "cat":
		r = shellCat(p, args[1:])
	case "getprop":
		r = shellGetprop(p, args[1:])
	case "pm":
		r = shellPm(p, args[1:])
	case "dumpsys":
		r = shellDumpsys(args[1:])
	case "id":
		r = shellResult{true, "uid=2000(shell) gid=2000(shell) groups=2000(shell),1004(input),1007(log),1011(adb)," +
			"1015(sdcard_rw),1028(sdcard_r),3001(net_bt_admin),3002(net_bt),3003(inet),3006(net_bw_stats) context=u:r:shell:s0"}
	case "whoami":
		r = shellResult{true, "shell"}
	case "pwd":
		r = shellResult{true, "/"}
	case "uname":
		r = shellUname(args[1:])
	case "date":
		r = shellResult{true, now.UTC().Format("Mon Jan _2 15:04:05 MST 2006")}
	default:
		r = shellResult{false, "sh: " + args[0] + ": not found"}
	}
	r.out = capOutput(r.out)
	return r
}

// capOutput cuts output to maxOutput bytes without splitting a character.
func capOutput(s string) string {
	if len(s) <= maxOutput {
		return s
	}
	s = s[:maxOutput]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// fsEntry is a file or directory of the fake filesystem.
type fsEntry struct {
	dir  bool
	size int
}

// baseFS is the read-only part of every phone's filesystem. Directories list their children; /data/app also
// lists the phone's installed apps.
var baseFS = map[string][]string{
	"/":                {"acct", "cache", "config", "d", "data", "default.prop", "dev", "etc", "mnt", "proc", "sdcard", "storage", "sys", "system", "vendor"},
	"/system":          {"app", "bin", "build.prop", "etc", "fonts", "framework", "lib", "lib64", "priv-app", "usr", "xbin"},
	"/system/app":      {"Browser2", "Calendar", "Camera2", "Gallery2", "LatinIME", "Launcher3", "WebViewGoogle"},
	"/system/bin":      {"app_process64", "cat", "date", "dumpsys", "echo", "getprop", "id", "input", "ls", "pm", "sh", "toybox", "uname"},
	"/system/etc":      {"hosts", "permissions"},
	"/system/fonts":    {"DroidSans.ttf", "NotoSansCJK-Regular.ttc", "Roboto-Regular.ttf"},
	"/system/priv-app": {"Settings", "Shell", "SystemUI"},
	"/sdcard":          {"Alarms", "Android", "DCIM", "Download", "Movies", "Music", "Notifications", "Pictures", "Podcasts", "Ringtones"},
	"/sdcard/Download": {},
	"/sdcard/DCIM":     {},
	"/data":            {"app", "data", "local", "misc", "system", "user"},
	"/data/app":        {},
	"/data/local":      {"tmp"},
	"/data/local/tmp":  {},
	"/storage":         {"emulated", "self"},
	"/vendor":          {"bin", "etc", "lib", "lib64"},
	"/proc":            {"cpuinfo", "meminfo", "uptime", "version"},
	"/dev":             {"null", "random", "urandom", "zero"},
	"/etc":             {"hosts"},
}

// fileContents are the files cat can show; the rest read as empty.
func fileContents(p *phone, path string) (string, bool) {
	switch path {
	case "/system/build.prop", "/default.prop":
		var b strings.Builder
		for _, k := range sortedKeys(props(p)) {
			if strings.HasPrefix(k, "ro.") {
				b.WriteString(k + "=" + props(p)[k] + "\n")
			}
		}
		return strings.TrimSuffix(b.String(), "\n"), true
	case "/etc/hosts", "/system/etc/hosts":
		return "127.0.0.1       localhost\n::1             ip6-localhost", true
	case "/proc/version":
		return "Linux version " + kernelRelease + " (builder@kp) (clang version 12.0.5) #1 SMP PREEMPT " + kernelDate, true
	}
	return "", false
}

// lookup finds path on p's filesystem; children is nil for a file.
func lookup(p *phone, path string) (entry fsEntry, children []string, ok bool) {
	path = cleanPath(path)
	if kids, isDir := baseFS[path]; isDir {
		if path == "/data/app" {
			kids = nil
			for _, a := range sortedApps(p) {
				kids = append(kids, a.name+"-1")
			}
		}
		return fsEntry{dir: true, size: 4096}, kids, true
	}
	if strings.HasPrefix(path, "/data/app/") {
		for _, a := range sortedApps(p) {
			if path == "/data/app/"+a.name+"-1" {
				return fsEntry{dir: true, size: 4096}, []string{"base.apk", "lib", "oat"}, true
			}
		}
	}
	parent, name := path[:strings.LastIndex(path, "/")], path[strings.LastIndex(path, "/")+1:]
	if parent == "" {
		parent = "/"
	}
	if kids, isDir := baseFS[parent]; isDir && slices.Contains(kids, name) {
		if _, isDir := baseFS[path]; !isDir {
			// A name listed in a directory but not described further: a directory if it looks like one.
			if isFile(parent, name) {
				content, _ := fileContents(p, path)
				return fsEntry{size: max(len(content), 512)}, nil, true
			}
			return fsEntry{dir: true, size: 4096}, []string{}, true
		}
	}
	return fsEntry{}, nil, false
}

// isFile tells files from directories among the names baseFS lists without describing.
func isFile(parent, name string) bool {
	switch parent {
	case "/system/bin", "/proc", "/dev", "/etc":
		return true
	}
	return strings.Contains(name, ".") || name == "hosts"
}

func cleanPath(p string) string {
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	for strings.Contains(p, "//") {
		p = strings.ReplaceAll(p, "//", "/")
	}
	if len(p) > 1 {
		p = strings.TrimSuffix(p, "/")
	}
	return p
}

func shellLs(p *phone, args []string) shellResult {
	long := false
	var paths []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			for _, f := range a[1:] {
				switch f {
				case 'l':
					long = true
				case 'a', '1', 'h':
				default:
					return shellResult{false, fmt.Sprintf("ls: Unknown option '%c' (see \"ls --help\")", f)}
				}
			}
			continue
		}
		paths = append(paths, a)
	}
	if len(paths) == 0 {
		paths = []string{"/"}
	}
	var out []string
	ok := true
	for i, path := range paths {
		entry, kids, found := lookup(p, path)
		if !found {
			out = append(out, "ls: cannot access '"+path+"': No such file or directory")
			ok = false
			continue
		}
		if len(paths) > 1 && entry.dir {
			if i > 0 {
				out = append(out, "")
			}
			out = append(out, path+":")
		}
		if !entry.dir {
			out = append(out, lsLine(entry, path, long))
			continue
		}
		if long {
			out = append(out, fmt.Sprintf("total %d", len(kids)*8))
		}
		for _, k := range kids {
			e, _, _ := lookup(p, cleanPath(path)+"/"+k)
			out = append(out, lsLine(e, k, long))
		}
	}
	return shellResult{ok, strings.Join(out, "\n")}
}

func lsLine(e fsEntry, name string, long bool) string {
	if !long {
		return name
	}
	mode, links := "-rw-r--r--", 1
	if e.dir {
		mode, links = "drwxr-xr-x", 2
	}
	return fmt.Sprintf("%s %2d root root %5d 2024-05-24 17:34 %s", mode, links, e.size, name)
}

func shellCat(p *phone, args []string) shellResult {
	if len(args) == 0 {
		return shellResult{true, ""}
	}
	var out []string
	ok := true
	for _, a := range args {
		e, _, found := lookup(p, a)
		switch {
		case !found:
			out, ok = append(out, "cat: "+a+": No such file or directory"), false
		case e.dir:
			out, ok = append(out, "cat: "+a+": Is a directory"), false
		default:
			content, _ := fileContents(p, cleanPath(a))
			out = append(out, content)
		}
	}
	return shellResult{ok, strings.Join(out, "\n")}
}

// props are the system properties of p: a cloud phone of the sim, whose serial number is its instance id.
func props(p *phone) map[string]string {
	release, sdk := "9", "28"
	if p.os == "AOSP11" {
		release, sdk = "11", "30"
	}
	return map[string]string{
		"ro.build.version.release": release,
		"ro.build.version.sdk":     sdk,
		"ro.build.display.id":      "KooPhone-" + p.os + "-sim",
		"ro.build.type":            "user",
		"ro.product.brand":         "HUAWEI",
		"ro.product.manufacturer":  "HUAWEI",
		"ro.product.model":         "KooPhone",
		"ro.product.name":          "kooPhone",
		"ro.product.device":        "cloudphone",
		"ro.product.cpu.abi":       "arm64-v8a",
		"ro.hardware":              "cloudphone",
		"ro.serialno":              p.id,
		"ro.boot.serialno":         p.id,
		"persist.sys.timezone":     "Asia/Shanghai",
		"persist.sys.locale":       "zh-CN",
		"sys.boot_completed":       "1",
	}
}

func shellGetprop(p *phone, args []string) shellResult {
	pr := props(p)
	switch len(args) {
	case 0:
		var lines []string
		for _, k := range sortedKeys(pr) {
			lines = append(lines, "["+k+"]: ["+pr[k]+"]")
		}
		return shellResult{true, strings.Join(lines, "\n")}
	case 1:
		return shellResult{true, pr[args[0]]}
	}
	if v, ok := pr[args[0]]; ok {
		return shellResult{true, v}
	}
	return shellResult{true, args[1]} // getprop KEY DEFAULT
}

// systemPackages are the packages of the image.
var systemPackages = []string{
	"android", "com.android.inputmethod.latin", "com.android.launcher3", "com.android.phone",
	"com.android.providers.settings", "com.android.settings", "com.android.shell", "com.android.systemui",
	"com.android.webview", "com.huawei.cloudphone.agent",
}

func shellPm(p *phone, args []string) shellResult {
	if len(args) < 2 || args[0] != "list" || args[1] != "packages" {
		return shellResult{false, "usage: pm list packages [-3] [-s] [FILTER]"}
	}
	third, system, filter := false, false, ""
	for _, a := range args[2:] {
		switch a {
		case "-3":
			third = true
		case "-s":
			system = true
		default:
			if strings.HasPrefix(a, "-") {
				return shellResult{false, "Error: Unknown option: " + a}
			}
			filter = a
		}
	}
	var pkgs []string
	if !third {
		pkgs = append(pkgs, systemPackages...)
	}
	if !system {
		for _, a := range sortedApps(p) {
			pkgs = append(pkgs, a.name)
		}
	}
	sort.Strings(pkgs)
	var lines []string
	for _, name := range pkgs {
		if strings.Contains(name, filter) {
			lines = append(lines, "package:"+name)
		}
	}
	return shellResult{true, strings.Join(lines, "\n")}
}

func shellDumpsys(args []string) shellResult {
	if len(args) == 0 {
		return shellResult{true, "Currently running services:\n  activity\n  battery\n  package\n  window"}
	}
	if args[0] != "battery" {
		return shellResult{true, "Can't find service: " + args[0]}
	}
	return shellResult{true, strings.Join([]string{
		"Current Battery Service state:",
		"  AC powered: true",
		"  USB powered: false",
		"  Wireless powered: false",
		"  Max charging current: 0",
		"  Max charging voltage: 0",
		"  Charge counter: 0",
		"  status: 2",
		"  health: 2",
		"  present: true",
		"  level: 100",
		"  scale: 100",
		"  voltage: 5000",
		"  temperature: 250",
		"  technology: Li-ion",
	}, "\n")}
}

const (
	kernelRelease = "4.19.157-kp"
	kernelDate    = "Fri May 24 17:34:58 CST 2024"
)

func shellUname(args []string) shellResult {
	if len(args) == 0 {
		return shellResult{true, "Linux"}
	}
	switch args[0] {
	case "-a":
		return shellResult{true, "Linux localhost " + kernelRelease + " #1 SMP PREEMPT " + kernelDate + " aarch64"}
	case "-s":
		return shellResult{true, "Linux"}
	case "-r":
		return shellResult{true, kernelRelease}
	case "-m":
		return shellResult{true, "aarch64"}
	case "-n":
		return shellResult{true, "localhost"}
	}
	return shellResult{false, "uname: Unknown option '" + strings.TrimPrefix(args[0], "-") + "'"}
}

func sortedApps(p *phone) []app {
	apps := make([]app, 0, len(p.apps))
	for _, a := range p.apps {
		apps = append(apps, a)
	}
	sort.Slice(apps, func(i, j int) bool { return apps[i].name < apps[j].name })
	return apps
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
