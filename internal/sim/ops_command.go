package sim

// SyncCommand and AsyncCommand: adb shell commands on up to 100 phones (seed 4.1.1, 4.1.2).

type commandRequest struct {
	Command     string   `json:"command"`
	InstanceIDs []string `json:"instance_ids"`
}

// cmdResult is one phone's outcome of SyncCommand.
type cmdResult struct {
	InstanceID string `json:"instance_id"`
	Status     int    `json:"status"`
	ErrorCode  string `json:"error_code"`
	ErrorMsg   string `json:"error_msg"`
	ExecuteMsg string `json:"execute_msg"`
}

// checkCommand enforces the seed's limits: at most 1024 bytes of letters, digits and _ . / : - (plus the space,
// which the digest allows because the seed's own example needs it).
func checkCommand(cmd string) *apiError {
	if len(cmd) > maxCmdLen {
		return badParam("command must be at most %d bytes", maxCmdLen)
	}
	blank := true
	for i := 0; i < len(cmd); i++ {
		c := cmd[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '_', c == '.', c == '/', c == ':', c == '-':
			blank = false
		case c == ' ':
		default:
			return badParam("command may hold only letters, digits, spaces and _ . / : - (found %q)", c)
		}
	}
	if blank {
		return badParam("command is required")
	}
	return nil
}

func (c *call) decodeCommand() (commandRequest, *apiError) {
	var req commandRequest
	if e := c.decode(&req); e != nil {
		return req, e
	}
	if e := checkIDs("instance_ids", req.InstanceIDs); e != nil {
		return req, e
	}
	return req, checkCommand(req.Command)
}

// commandOutcome runs cmd on p and says how the job or result ends. A FailInstances phone is lost ("CPS0005
// Phone not found."), a rebooting one is offline, anything the shell cannot run fails like the seed's example
// ("CPS.0191 Run command failed.").
func (s *Server) commandOutcome(p *phone, cmd string, c *call) (ok bool, code, msg string, out *string) {
	switch {
	case p.fail:
		return false, codeJobPhoneMissing, msgPhoneNotFound, nil
	case p.rebooting(c.now):
		return false, codeJobRunFailed, msgRunFailed, ptr("error: device offline")
	}
	res := s.shell(p, cmd, c.now)
	if !res.ok {
		return false, codeJobRunFailed, msgRunFailed, &res.out
	}
	return true, "", "", &res.out
}

func (s *Server) syncCommand(c *call) {
	req, e := c.decodeCommand()
	if e != nil {
		c.answer(nil, e)
		return
	}
	c.locked(func() (any, *apiError) {
		phones, e := s.resolveLocked(req.InstanceIDs, c.now, codeNoPermission)
		if e != nil {
			return nil, e
		}
		results := make([]cmdResult, len(phones))
		for i, p := range phones {
			ok, code, msg, out := s.commandOutcome(p, req.Command, c)
			r := cmdResult{InstanceID: p.id, Status: 2, ErrorCode: code, ErrorMsg: msg}
			if !ok {
				r.Status = -1
			}
			if out != nil {
				r.ExecuteMsg = *out
			}
			results[i] = r
		}
		return map[string]any{"cmd_results": results}, nil
	})
}

func (s *Server) asyncCommand(c *call) {
	req, e := c.decodeCommand()
	if e != nil {
		c.answer(nil, e)
		return
	}
	c.locked(func() (any, *apiError) {
		phones, e := s.resolveLocked(req.InstanceIDs, c.now, codeNoPermission)
		if e != nil {
			return nil, e
		}
		return s.startTaskLocked(s.hex(32), phones, c.now, func(p *phone) jobSpec {
			ok, code, msg, out := s.commandOutcome(p, req.Command, c)
			return jobSpec{fail: !ok, code: code, msg: msg, out: out}
		}), nil
	})
}
