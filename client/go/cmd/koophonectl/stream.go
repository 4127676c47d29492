package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/koophone-gateway/koophone-gateway/client/go/koophonev1"
)

// printer shows a call's answer. For streams: fleet operations and task watches get a progress bar on stderr and a
// line per phone on stdout as each phone finishes; OpenSession and WatchPrepareProgress a line per step and a bar
// of the queue ahead of the phone; ListAllInstances a table at the end; any other stream a line per message. With
// -o json every message is one JSON line instead.
type printer struct {
	a     *app
	json  bool
	bar   *progressbar.ProgressBar
	done  map[string]bool // phones whose line was written
	rows  []protoreflect.Message
	queue int // OpenSession, WatchPrepareProgress: the longest queue seen ahead of the phone, plus the phone itself
}

func newPrinter(a *app, _ protoreflect.MessageDescriptor) *printer {
	return &printer{a: a, json: a.global.output == "json", done: map[string]bool{}}
}

// progressOn: --progress=always, or auto and stderr is a terminal; never with --quiet.
func (p *printer) progressOn() bool {
	if p.a.global.quiet {
		return false
	}
	switch p.a.global.progress {
	case "always":
		return true
	case "never":
		return false
	}
	f, ok := p.a.stderr.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress moves the bar to done of total, creating it on first use.
func (p *printer) progress(desc string, done, total int) {
	if total <= 0 || !p.progressOn() {
		return
	}
	if p.bar == nil {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(p.a.stderr),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionSetRenderBlankState(true),
		)
	}
	if p.bar.GetMax() != total {
		p.bar.ChangeMax(total)
	}
	_ = p.bar.Set(done)
}

// println writes a line to stdout, clearing the bar first so the two do not mix on one terminal.
func (p *printer) println(format string, args ...any) {
	p.clearBar()
	_, _ = fmt.Fprintln(p.a.stdout, strings.TrimRight(fmt.Sprintf(format, args...), " "))
}

// oneLine keeps a phone's result on its line: a command's multi-line output with its line breaks shown as \n.
func oneLine(s string) string {
	s = strings.TrimRight(s, "\r\n")
	return strings.NewReplacer("\r\n", `\n`, "\n", `\n`, "\r", `\r`).Replace(s)
}

func (p *printer) clearBar() {
	if p.bar != nil {
		_ = p.bar.Clear()
	}
}

// queued moves the bar of a phone waiting in KooPhone's prepare queue: its length is the longest queue seen ahead
// of the phone plus the phone itself, and it fills as the queue shrinks, to the end once the phone is ready.
func (p *printer) queued(desc string, waiting int32, ready bool) {
	ahead := max(int(waiting), 0)
	p.queue = max(p.queue, ahead+1)
	done := p.queue - ahead - 1
	if ready {
		done = p.queue
	}
	p.progress(desc, done, p.queue)
}

func (p *printer) message(res proto.Message) error {
	if p.json {
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(res)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(p.a.stdout, "%s\n", b)
		p.watchOutcome(res)
		return err
	}
	switch m := res.(type) {
	case *pb.FleetEvent:
		p.fleet(m)
	case *pb.WatchTaskResponse, *pb.RunAsyncCommandResponse:
		p.jobs(res.ProtoReflect())
	case *pb.OpenSessionResponse:
		if m.GetSession() != nil { // the last step: the bar ends full and stays, above the session's line
			p.queued("session", 0, true)
			p.finish()
		}
		if step := m.ProtoReflect().WhichOneof(m.ProtoReflect().Descriptor().Oneofs().ByName("step")); step != nil {
			p.clearBar()
			line(p.a.stdout, string(step.Name())+": ", m.ProtoReflect().Get(step).Message())
		}
		if m.GetProgress() != nil {
			p.queued("session", m.GetProgress().GetWaitingCount(), m.GetProgress().GetStatus() == pb.ProgressStatus_PROGRESS_STATUS_READY)
		}
	case *pb.WatchPrepareProgressResponse:
		p.queued("prepare", m.GetWaitingCount(), m.GetStatus() == pb.ProgressStatus_PROGRESS_STATUS_READY)
		if m.GetTerminal() {
			p.finish()
		}
		p.clearBar()
		line(p.a.stdout, "", m.ProtoReflect())
	case *pb.ListAllInstancesResponse:
		p.rows = append(p.rows, m.GetInstance().ProtoReflect())
	default:
		line(p.a.stdout, "", res.ProtoReflect())
	}
	return nil
}

// watchOutcome notes failed phones in JSON mode too, for the exit code.
func (p *printer) watchOutcome(res proto.Message) {
	switch m := res.(type) {
	case *pb.FleetEvent:
		if m.GetSummary().GetCounts().GetFailed() > 0 {
			p.a.exit = exitPartial
		}
	case *pb.WatchTaskResponse:
		if m.GetTerminal() && m.GetFailedCount() > 0 {
			p.a.exit = exitPartial
		}
	case *pb.RunAsyncCommandResponse:
		if m.GetTerminal() && m.GetFailedCount() > 0 {
			p.a.exit = exitPartial
		}
	}
}

func (p *printer) fleet(ev *pb.FleetEvent) {
	switch {
	case ev.GetBatch() != nil && !ev.GetBatch().GetStarted():
		b := ev.GetBatch()
		p.println("batch %d refused: %s %s", b.GetIndex(), b.GetErrorCode(), b.GetErrorMsg())
	case ev.GetResult() != nil:
		r := ev.GetResult()
		detail := r.GetErrorCode()
		if r.GetErrorMsg() != "" {
			detail += " " + r.GetErrorMsg()
		}
		if r.GetExecuteMsg() != "" {
			detail += " " + oneLine(r.GetExecuteMsg())
		}
		if app := r.GetApp(); app != nil {
			detail += " " + app.GetAppPkg() + " " + app.GetAppVersion()
		}
		p.println("%-20s %-12s %s", r.GetInstanceId(), shortEnum(r.GetOutcome().Descriptor(), r.GetOutcome().String()), detail)
	case ev.GetProgress() != nil:
		c := ev.GetProgress()
		p.progress("phones", int(c.GetSucceeded()+c.GetFailed()), int(c.GetTotal()))
	case ev.GetSummary() != nil:
		c := ev.GetSummary().GetCounts()
		p.progress("phones", int(c.GetSucceeded()+c.GetFailed()), int(c.GetTotal()))
		p.finish()
		p.println("done: %d phones, %d succeeded, %d failed, %d batches refused",
			c.GetTotal(), c.GetSucceeded(), c.GetFailed(), ev.GetSummary().GetBatchesFailed())
		p.watchOutcome(ev)
	}
}

// jobs shows a task's watch: a line per phone when its job ends, the bar meanwhile, the counts at the end.
func (p *printer) jobs(m protoreflect.Message) {
	res := m.Interface()
	var jobs []*pb.Job
	var terminal bool
	var taskID string
	var ok, failed int32
	switch r := res.(type) {
	case *pb.WatchTaskResponse:
		jobs, terminal, taskID, ok, failed = r.GetJobs(), r.GetTerminal(), r.GetTaskId(), r.GetSucceededCount(), r.GetFailedCount()
	case *pb.RunAsyncCommandResponse:
		jobs, terminal, taskID, ok, failed = r.GetJobs(), r.GetTerminal(), r.GetTaskId(), r.GetSucceededCount(), r.GetFailedCount()
	}
	finished := 0
	for _, j := range jobs {
		if j.GetStatus() != pb.JobStatus_JOB_STATUS_SUCCEEDED && j.GetStatus() != pb.JobStatus_JOB_STATUS_FAILED {
			continue
		}
		finished++
		who := j.GetInstanceId()
		if who == "" {
			who = j.GetJobId() // KooPhone does not always name the phone of a job
		}
		if p.done[who] {
			continue
		}
		p.done[who] = true
		detail := j.GetErrorCode()
		if j.GetErrorMsg() != "" {
			detail += " " + j.GetErrorMsg()
		}
		if j.GetExecuteMsg() != "" {
			detail += " " + oneLine(j.GetExecuteMsg())
		}
		p.println("%-20s %-12s %s", who, shortEnum(j.GetStatus().Descriptor(), j.GetStatus().String()), detail)
	}
	p.progress("task "+taskID, finished, len(jobs))
	if terminal {
		p.finish()
		p.println("task %s: %d succeeded, %d failed", taskID, ok, failed)
		p.watchOutcome(res)
	}
}

// end is called when the stream ended with OK.
func (p *printer) end() error {
	p.finish()
	if len(p.rows) > 0 {
		return p.table(p.rows)
	}
	return nil
}

// finish completes the bar (and ends its line), once.
func (p *printer) finish() {
	if p.bar == nil {
		return
	}
	_ = p.bar.Finish()
	_, _ = fmt.Fprintln(p.a.stderr)
	p.bar = nil
}
