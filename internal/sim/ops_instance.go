package sim

import (
	"encoding/json"
	"net/url"
	"slices"
)

// Instance management (seed 4.1.4–4.1.11 except ListInstances, which has its own file).

type videoRequest struct {
	InstanceIDs      []string          `json:"instance_ids"`
	InstanceSettings []instanceSetting `json:"instance_settings"`
}

type instanceSetting struct {
	NetworkType     string           `json:"network_type"`
	EncodingType    string           `json:"encoding_type"`
	VideoSpecGroups []videoSpecGroup `json:"video_spec_groups"`
}

type videoSpecGroup struct {
	D540  *videoSpec `json:"definition_540P"`
	D720  *videoSpec `json:"definition_720P"`
	D1080 *videoSpec `json:"definition_1080P"`
}

type videoSpec struct {
	CodeRate *int `json:"code_rate"`
	FPS      *int `json:"fps"`
}

var (
	networkTypes  = []string{"MOBILE_NETWORK", "WIFI", "WIRED"}
	encodingTypes = []string{"H264", "H265"}
)

// checkVideo validates SetVideoConfig's settings: each value in range (1000), then every network × encoding
// combination present exactly once (1005).
func checkVideo(settings []instanceSetting) *apiError {
	if len(settings) == 0 {
		return badParam("instance_settings is required")
	}
	seen := map[[2]string]int{}
	for i, st := range settings {
		if !slices.Contains(networkTypes, st.NetworkType) {
			return badParam("instance_settings[%d].network_type must be MOBILE_NETWORK, WIFI or WIRED", i)
		}
		if !slices.Contains(encodingTypes, st.EncodingType) {
			return badParam("instance_settings[%d].encoding_type must be H264 or H265", i)
		}
		if len(st.VideoSpecGroups) == 0 {
			return badParam("instance_settings[%d].video_spec_groups is required", i)
		}
		for j, g := range st.VideoSpecGroups {
			for _, d := range []struct {
				name string
				spec *videoSpec
			}{{"definition_540P", g.D540}, {"definition_720P", g.D720}, {"definition_1080P", g.D1080}} {
				spec := d.spec
				where := "instance_settings[" + itoa(i) + "].video_spec_groups[" + itoa(j) + "]." + d.name
				switch {
				case spec == nil || spec.CodeRate == nil || spec.FPS == nil:
					return badParam("%s needs code_rate and fps", where)
				case *spec.CodeRate < 100 || *spec.CodeRate > 10000 || *spec.CodeRate%100 != 0:
					return badParam("%s.code_rate must be 100..10000 kbps in steps of 100", where)
				case *spec.FPS != 30 && *spec.FPS != 60:
					return badParam("%s.fps must be 30 or 60", where)
				}
			}
		}
		seen[[2]string{st.NetworkType, st.EncodingType}]++
	}
	for _, n := range networkTypes {
		for _, e := range encodingTypes {
			if seen[[2]string{n, e}] != 1 {
				return apiErr(codeVideoCombos, n+" × "+e+" must appear exactly once")
			}
		}
	}
	return nil
}

func (s *Server) setVideoConfig(c *call) {
	var req videoRequest
	if e := c.decode(&req); e != nil {
		c.answer(nil, e)
		return
	}
	if e := checkIDs("instance_ids", req.InstanceIDs); e != nil {
		c.answer(nil, e)
		return
	}
	if e := checkVideo(req.InstanceSettings); e != nil {
		c.answer(nil, e)
		return
	}
	settings, _ := json.Marshal(req.InstanceSettings)
	c.locked(func() (any, *apiError) {
		phones, e := s.resolveLocked(req.InstanceIDs, c.now, codeNoPermission)
		if e != nil {
			return nil, e
		}
		for _, p := range phones {
			p.video = settings
		}
		return nil, nil
	})
}

// instanceStatus is one phone's state in BatchQueryStatus' status_results and BatchPrepareInstances' status_list.
type instanceStatus struct {
	InstanceID string `json:"instance_id"`
	Status     int    `json:"status"`
}

func (s *Server) batchQueryStatus(c *call) {
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
		out := make([]instanceStatus, len(phones))
		for i, p := range phones {
			out[i] = instanceStatus{InstanceID: p.id, Status: s.dataStatus(p, c.now)}
		}
		return map[string]any{"status_results": out}, nil
	})
}

// failedJob is how a job ends on a FailInstances phone (the seed's GetTask example).
func failedJob(op *phoneOp) jobSpec {
	return jobSpec{fail: true, code: codeJobPhoneMissing, msg: msgPhoneNotFound, op: op}
}

func (s *Server) batchReset(c *call) {
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
		return s.startMaintenanceLocked(phones, c.now, func(*phone) *phoneOp { return &phoneOp{kind: opReset} },
			func(p *phone) {
				// The reset starts now: whatever was streaming or loaded on the phone is gone for good.
				p.streaming, p.session = false, false
			}), nil
	})
}

// Device token data (seed 4.1.7). The example mixes types: internal aport/atype are strings, external ones
// integers, expired_time a string of seconds; the simulator sends exactly that mix so the client must cope.
type deviceToken struct {
	StreamingID string         `json:"streamingId"`
	Resource    deviceResource `json:"resource"`
	DeviceToken string         `json:"device_token"`
}

type deviceResource struct {
	SDK      sdkInfo `json:"sdk"`
	RTC      rtcInfo `json:"rtc"`
	DeviceID string  `json:"device_id"`
	KpID     string  `json:"kp_id"`
}

type sdkInfo struct {
	Internal sdkInternal `json:"internal"`
	External sdkExternal `json:"external"`
}

type sdkInternal struct {
	Address     string  `json:"address"`
	Aport       string  `json:"aport"`
	Atype       string  `json:"atype"`
	AddressIPv6 *string `json:"address_ipv6"`
}

type sdkExternal struct {
	Address     string  `json:"address"`
	Aport       int     `json:"aport"`
	Atype       int     `json:"atype"`
	AddressIPv6 *string `json:"address_ipv6"`
}

type rtcInfo struct {
	IceSignaling iceSignaling `json:"ice_signaling"`
}

type iceSignaling struct {
	SignalingURL string   `json:"signaling_url"`
	ExpiredTime  string   `json:"expired_time"`
	IceServers   []string `json:"ice_servers"`
}

// getDeviceToken is GetDeviceToken: only a prepared (ready) phone can stream; it becomes streaming (3).
func (s *Server) getDeviceToken(c *call) {
	id := c.params[0]
	if e := checkID("instance_id", id); e != nil {
		c.answer(nil, e)
		return
	}
	if e := checkStreamType(c.r.URL.Query()); e != nil {
		c.answer(nil, e)
		return
	}
	c.locked(func() (any, *apiError) {
		phones, e := s.resolveLocked([]string{id}, c.now, codeNoInstance)
		if e != nil {
			return nil, e
		}
		p := phones[0]
		phase, _ := s.prepPhase(p.prep, c.now)
		switch {
		case p.frozen:
			return nil, errCode(codeFrozen)
		case p.active(opBackup):
			return nil, errCode(codeBackingUp)
		case p.rebooting(c.now) || p.active(opReset):
			return nil, apiErr(codeInstanceBad, "the phone is rebooting or resetting")
		case phase == phaseQueued || phase == phaseRestoring:
			return nil, errCode(codeRestoring)
		case phase != phaseReady:
			return nil, apiErr(codeInstanceBad, "the phone is not prepared: call BatchPrepareInstances first")
		}
		p.streaming, p.session = true, true
		return deviceToken{
			StreamingID: s.hex(32),
			DeviceToken: s.hex(32),
			Resource: deviceResource{
				SDK: sdkInfo{
					Internal: sdkInternal{Address: p.intAddr, Aport: itoa(p.extPort), Atype: "1"},
					External: sdkExternal{Address: p.extAddr, Aport: p.extPort, Atype: 1},
				},
				RTC: rtcInfo{IceSignaling: iceSignaling{
					SignalingURL: "http://100.93.2.248:18082",
					ExpiredTime:  "3600",
					IceServers:   []string{},
				}},
				DeviceID: p.deviceID,
				KpID:     p.id,
			},
		}, nil
	})
}

func (s *Server) assignInstance(c *call) {
	pairs, e := c.decodeUserInstances()
	if e != nil {
		c.answer(nil, e)
		return
	}
	c.locked(func() (any, *apiError) {
		// All or nothing: check every pair before assigning any.
		owner := map[string]string{}
		var phones []*phone
		for _, ui := range pairs {
			ps, e := s.resolveLocked([]string{ui.InstanceID}, c.now, codeNoPermission)
			if e != nil {
				return nil, e
			}
			p := ps[0]
			if p.frozen {
				return nil, errCode(codeFrozen)
			}
			if u, ok := owner[p.id]; ok && u != ui.UserID {
				return nil, apiErr(codeNoDevice, "instance "+p.id+" is given to two users")
			}
			if p.user != "" && p.user != ui.UserID {
				return nil, apiErr(codeNoDevice, "instance "+p.id+" is assigned to another user")
			}
			owner[p.id] = ui.UserID
			phones = append(phones, p)
		}
		for _, p := range phones {
			p.user = owner[p.id]
		}
		return nil, nil
	})
}

func (s *Server) unassignInstance(c *call) {
	pairs, e := c.decodeUserInstances()
	if e != nil {
		c.answer(nil, e)
		return
	}
	c.locked(func() (any, *apiError) {
		var phones []*phone
		for _, ui := range pairs {
			ps, e := s.resolveLocked([]string{ui.InstanceID}, c.now, codeNoPermission)
			if e != nil {
				return nil, e
			}
			if ps[0].user != ui.UserID {
				return nil, apiErr(codeNotBound, "user "+ui.UserID+" is not assigned instance "+ui.InstanceID)
			}
			phones = append(phones, ps[0])
		}
		users := map[*phone]string{}
		for i, p := range phones {
			users[p] = pairs[i].UserID
		}
		// The assignment goes, and the user's data with it, when the job ends.
		return s.startMaintenanceLocked(phones, c.now, func(p *phone) *phoneOp {
			return &phoneOp{kind: opUnassign, user: users[p]}
		}, nil), nil
	})
}

// batchReboot is BatchRebootInstance: every phone must be running (5005 otherwise); each then shows running_status
// 4 (starting) for RebootDuration, and loses its stream.
func (s *Server) batchReboot(c *call) {
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
		for _, p := range phones {
			if p.rebooting(c.now) {
				return nil, apiErr(codeNotRunning, "instance "+p.id+" is not running")
			}
		}
		until := c.now.Add(s.cfg.RebootDuration)
		for _, p := range phones {
			p.rebootUntil = until
			p.streaming, p.session = false, false
		}
		return nil, nil
	})
}

// checkStreamType accepts the seed's call or the newer reference's optional query parameter stream_type: 1 (SDK
// streaming) or 2 (H5 streaming).
func checkStreamType(q url.Values) *apiError {
	if !q.Has("stream_type") {
		return nil
	}
	if v := q.Get("stream_type"); v != "1" && v != "2" {
		return badParam("stream_type must be 1 (SDK streaming) or 2 (H5 streaming)")
	}
	return nil
}
