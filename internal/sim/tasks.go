package sim

import "time"

// task is the record behind a task_id: one job per phone. A job's outcome is fixed when it starts; GetTask
// shows it as running until JobDuration has passed, then as its outcome.
type task struct {
	id   string
	jobs []*job
}

type job struct {
	id         string
	instanceID string
	end        time.Time
	fail       bool
	code, msg  string  // error_code and error_msg when it fails
	out        *string // execute_msg once it ended; nil is null
}

// jobSpec is what an operation decides about one phone's job when it starts it.
type jobSpec struct {
	fail      bool
	code, msg string
	out       *string
	op        *phoneOp // the effect on the phone when the job ends (nil: none)
}

// Job failures as the seed's examples show them.
const (
	msgPhoneNotFound = "Phone not found."
	msgRunFailed     = "Run command failed."
)

var outSuccess = "success"

// maxTasks is how many tasks the simulator remembers.
const maxTasks = 100_000

// taskData is the data of every operation that starts a task (seed: InstanceAsyncCommandsInfo and its twins).
type taskData struct {
	TaskID  string   `json:"task_id"`
	CmdJobs []cmdJob `json:"cmd_jobs"`
}

type cmdJob struct {
	InstanceID string `json:"instance_id"`
	JobID      string `json:"job_id"`
}

// startTaskLocked records a task with one job per phone, each decided by spec, and attaches each job's effect to
// its phone.
func (s *Server) startTaskLocked(taskID string, phones []*phone, now time.Time, spec func(*phone) jobSpec) taskData {
	t := &task{id: taskID}
	data := taskData{TaskID: taskID, CmdJobs: make([]cmdJob, 0, len(phones))}
	end := now.Add(s.cfg.JobDuration)
	for _, p := range phones {
		js := spec(p)
		j := &job{id: s.hex(32), instanceID: p.id, end: end, fail: js.fail, code: js.code, msg: js.msg, out: js.out}
		t.jobs = append(t.jobs, j)
		if js.op != nil {
			js.op.end, js.op.fail = end, js.fail
			p.ops = append(p.ops, js.op)
		}
		data.CmdJobs = append(data.CmdJobs, cmdJob{InstanceID: p.id, JobID: j.id})
	}
	s.tasks[taskID] = t
	s.taskOrder = append(s.taskOrder, taskID)
	if len(s.taskOrder) > maxTasks {
		// A long load test must not grow without end; KooPhone forgets old tasks too (GetTask: 1323).
		delete(s.tasks, s.taskOrder[0])
		s.taskOrder = s.taskOrder[1:]
	}
	return data
}

// jobDetail is one entry of GetTask's jobs.
type jobDetail struct {
	JobID      string  `json:"job_id"`
	Status     int     `json:"status"`
	ErrorCode  string  `json:"error_code"`
	ErrorMsg   string  `json:"error_msg"`
	ExecuteMsg *string `json:"execute_msg"`
}

// getTask is GetTask: GET /v1/instances/tasks/{task_id}. Unknown ids answer 1323 with HTTP 400, as its table says.
func (s *Server) getTask(c *call) {
	id := c.params[0]
	c.locked(func() (any, *apiError) {
		t, ok := s.tasks[id]
		if !ok {
			return nil, errCode(codeNoTask)
		}
		jobs := make([]jobDetail, len(t.jobs))
		for i, j := range t.jobs {
			d := jobDetail{JobID: j.id, Status: 1}
			if !c.now.Before(j.end) {
				d.Status, d.ExecuteMsg = 2, j.out
				if j.fail {
					d.Status, d.ErrorCode, d.ErrorMsg = -1, j.code, j.msg
				}
			}
			jobs[i] = d
		}
		return map[string]any{"jobs": jobs}, nil
	})
}

// startMaintenanceLocked starts an RM_ task (reset, unassign, backup): one job per phone, failing on FailInstances
// phones and succeeding elsewhere. op describes each phone's job; begin, if any, applies the operation's immediate
// effect to the phones whose job will succeed.
func (s *Server) startMaintenanceLocked(phones []*phone, now time.Time, op func(*phone) *phoneOp, begin func(*phone)) taskData {
	return s.startTaskLocked("RM_"+s.hex(32), phones, now, func(p *phone) jobSpec {
		o := op(p)
		if p.fail {
			return failedJob(o)
		}
		if begin != nil {
			begin(p)
		}
		return jobSpec{out: &outSuccess, op: o}
	})
}
