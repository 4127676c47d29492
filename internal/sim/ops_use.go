package sim

// Instance use (seed 4.3): preparing a phone for streaming, following the preparation, backing up, and ending
// streams and sessions.

type prepareRequest struct {
	UserID      string   `json:"user_id"`
	InstanceIDs []string `json:"instance_ids"`
}

// batchPrepare is BatchPrepareInstances. Per phone: 2 not assigned to the user, 3 backing up, 4 resetting,
// 5 rebooting, 0 already ready, else 1 (queued; a preparation starts unless one is under way). The seed's example
// lists the same phone twice, so duplicates are fine.
func (s *Server) batchPrepare(c *call) {
	var req prepareRequest
	if e := c.decode(&req); e != nil {
		c.answer(nil, e)
		return
	}
	if e := checkID("user_id", req.UserID); e != nil {
		c.answer(nil, e)
		return
	}
	if e := checkIDs("instance_ids", req.InstanceIDs); e != nil {
		c.answer(nil, e)
		return
	}
	c.locked(func() (any, *apiError) {
		phones, e := s.resolveLocked(req.InstanceIDs, c.now, codeNoInstance)
		if e != nil {
			return nil, e
		}
		out := make([]instanceStatus, len(phones))
		for i, p := range phones {
			out[i] = instanceStatus{InstanceID: p.id, Status: s.prepareLocked(p, req.UserID, c)}
		}
		return map[string]any{"status_list": out}, nil
	})
}

func (s *Server) prepareLocked(p *phone, user string, c *call) int {
	switch {
	case p.user != user:
		return 2
	case p.active(opBackup):
		return 3
	case p.active(opReset):
		return 4
	case p.rebooting(c.now):
		return 5
	}
	switch phase, _ := s.prepPhase(p.prep, c.now); phase {
	case phaseReady:
		return 0
	case phaseQueued, phaseRestoring:
		return 1
	}
	p.prep = &preparation{user: user, start: c.now, fail: p.fail}
	p.backupFailed = false
	return 1
}

type progressRequest struct {
	UserID     string `json:"user_id"`
	InstanceID string `json:"instance_id"`
}

type progressData struct {
	Status       int `json:"status"`
	WaitingCount int `json:"waitingCount"`
}

// showProgress is ShowProgress: 1 queued (waitingCount counts down), 2 restoring or offline (never prepared),
// 0 ready, -1 failed, 3 backing up. A user the phone is not assigned to gets 2210.
func (s *Server) showProgress(c *call) {
	var req progressRequest
	if e := c.decode(&req); e != nil {
		c.answer(nil, e)
		return
	}
	if e := checkID("user_id", req.UserID); e != nil {
		c.answer(nil, e)
		return
	}
	if e := checkID("instance_id", req.InstanceID); e != nil {
		c.answer(nil, e)
		return
	}
	c.locked(func() (any, *apiError) {
		phones, e := s.resolveLocked([]string{req.InstanceID}, c.now, codeNoInstance)
		if e != nil {
			return nil, e
		}
		p := phones[0]
		if p.user != req.UserID {
			return nil, apiErr(codeNotBound, "user "+req.UserID+" is not assigned instance "+p.id)
		}
		if p.active(opBackup) {
			return progressData{Status: 3}, nil
		}
		switch phase, waiting := s.prepPhase(p.prep, c.now); phase {
		case phaseQueued:
			return progressData{Status: 1, WaitingCount: waiting}, nil
		case phaseReady:
			return progressData{Status: 0}, nil
		case phaseFailed:
			return progressData{Status: -1}, nil
		}
		return progressData{Status: 2}, nil // restoring, or offline
	})
}

// batchBackup is BatchBackupInstances: the data goes to OBS and the physical phone is released when the job ends.
func (s *Server) batchBackup(c *call) {
	ids, e := c.decodeIDs()
	if e != nil {
		c.answer(nil, e)
		return
	}
	c.locked(func() (any, *apiError) {
		phones, e := s.resolveLocked(ids, c.now, codeNoPermission)
		if e != nil {
			return nil, e
		}
		return s.startMaintenanceLocked(phones, c.now, func(*phone) *phoneOp { return &phoneOp{kind: opBackup} },
			func(p *phone) { p.streaming = false }), nil // a phone being backed up cannot stream
	})
}

// stopStreaming is StopInstancesStreaming: a streaming phone goes back to "data loaded"; others are untouched.
func (s *Server) stopStreaming(c *call) {
	id, e := c.decodeInstance()
	if e != nil {
		c.answer(nil, e)
		return
	}
	c.locked(func() (any, *apiError) {
		phones, e := s.resolveLocked([]string{id}, c.now, codeNoPermission)
		if e != nil {
			return nil, e
		}
		phones[0].streaming = false
		return nil, nil
	})
}

// releaseSession is ReleaseInstancesSession: the session that outlives a stopped stream is freed (and a stream
// still running ends with it).
func (s *Server) releaseSession(c *call) {
	id, e := c.decodeInstance()
	if e != nil {
		c.answer(nil, e)
		return
	}
	c.locked(func() (any, *apiError) {
		phones, e := s.resolveLocked([]string{id}, c.now, codeNoPermission)
		if e != nil {
			return nil, e
		}
		phones[0].session, phones[0].streaming = false, false
		return nil, nil
	})
}
