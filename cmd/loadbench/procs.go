package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// proc is a child process the harness started: the simulator, a gateway or the bare proxy.
type proc struct {
	name, log string // log: the file its stdout and stderr go to
	cmd       *exec.Cmd
	done      chan struct{}
}

// startProc starts bin with args and env; its stdout and stderr go to logDir/name.log.
func startProc(name, logDir, bin string, args, env []string) (*proc, error) {
	logPath := filepath.Join(logDir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = logFile.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop asks the process to end (SIGTERM to this one pid), then kills it if it has not ended within 10s.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// clockTick is the unit of utime and stime in /proc/<pid>/stat (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// cpuTime is the user+system CPU the process has used, from /proc/<pid>/stat.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; the fields after its closing parenthesis are fixed.
	rest := b[bytes.LastIndexByte(b, ')')+2:]
	f := strings.Fields(string(rest))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * clockTick, nil
}

// memStatus returns VmRSS and VmHWM (peak RSS) of the process, in bytes.
func memStatus(pid int) (rss, peak int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if k == "VmRSS" {
			rss = kb << 10
		} else {
			peak = kb << 10
		}
	}
	return rss, peak, sc.Err()
}

// waitLog waits until the process' log matches re (every process listens on port 0 and logs the address it got:
// picking a free port for it instead would race with whatever else runs on the machine), and returns the
// submatches.
func waitLog(ctx context.Context, p *proc, re *regexp.Regexp) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		if b, err := os.ReadFile(p.log); err == nil {
			if m := re.FindStringSubmatch(string(b)); m != nil {
				return m, nil
			}
		}
		if p.exited() {
			return nil, fmt.Errorf("%s exited before logging %q (see %s)", p.name, re, p.log)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s never logged %q (see %s): %w", p.name, re, p.log, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitHTTP polls url with hc until it answers 200, the process exits, or ctx ends.
func waitHTTP(ctx context.Context, p *proc, hc *http.Client, url string) error {
	for {
		if res, err := hc.Get(url); err == nil {
			_, _ = io.Copy(io.Discard, res.Body) // drained for the connection's reuse; only the status matters
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		if p.exited() {
			return fmt.Errorf("%s exited before %s answered (see its log)", p.name, url)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %s never answered 200: %w", p.name, url, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// getJSON decodes url's JSON answer into v.
func getJSON(url string, v any) error {
	res, err := http.Get(url)
	if err != nil {
		return err
	}
	defer func() { _ = res.Body.Close() }()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", url, res.StatusCode)
	}
	return json.NewDecoder(res.Body).Decode(v)
}

// runtimeStats reads a gateway's goroutine count, live heap and goroutine stacks through its /debug/pprof port.
type runtimeStats struct {
	Goroutines int
	HeapAlloc  int64 // after a forced GC
	HeapInuse  int64 // bytes in spans with at least one object: HeapAlloc plus the holes between live objects
	StackInuse int64 // bytes of goroutine stacks
}

func readRuntime(pprofAddr string) (runtimeStats, error) {
	var st runtimeStats
	body, err := fetch("http://" + pprofAddr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return st, err
	}
	line, _, _ := strings.Cut(body, "\n")
	if st.Goroutines, err = strconv.Atoi(strings.TrimPrefix(line, "goroutine profile: total ")); err != nil {
		return st, fmt.Errorf("goroutine profile: %q", line)
	}
	// gc=1 collects first, so HeapAlloc is live memory; debug=1 ends with runtime.MemStats as "# Name = value".
	body, err = fetch("http://" + pprofAddr + "/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		return st, err
	}
	found := 0
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, "# HeapAlloc = "); ok {
			if st.HeapAlloc, err = strconv.ParseInt(v, 10, 64); err != nil {
				return st, err
			}
			found++
		}
		if v, ok := strings.CutPrefix(l, "# HeapInuse = "); ok {
			if st.HeapInuse, err = strconv.ParseInt(v, 10, 64); err != nil {
				return st, err
			}
		}
		if v, ok := strings.CutPrefix(l, "# Stack = "); ok { // "# Stack = StackInuse / StackSys"
			inuse, _, _ := strings.Cut(v, " ")
			if st.StackInuse, err = strconv.ParseInt(inuse, 10, 64); err != nil {
				return st, err
			}
			found++
		}
	}
	if found != 2 {
		return st, errors.New("heap profile without HeapAlloc and Stack")
	}
	return st, nil
}

func fetch(url string) (string, error) { return fetchWith(http.DefaultClient, url) }

func fetchWith(hc *http.Client, url string) (string, error) {
	res, err := hc.Get(url)
	if err != nil {
		return "", err
	}
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	if err == nil && res.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: HTTP %d", url, res.StatusCode)
	}
	return string(b), err
}
