package sim

import (
	"fmt"
	"slices"
	"time"
)

// phone is one cloud phone of the tenant. Everything that changes with time is a timestamp; settle applies the
// effects of the operations that have finished by the time somebody looks.
type phone struct {
	id, name    string
	created     time.Time
	billing     string // "1" on demand, "0" yearly/monthly
	skuID       string
	skuDesc     string
	region      string
	os          string
	pool        string // node group name (ListInstances' pool_name, newer reference)
	frozen      bool
	fail        bool   // every job, command and preparation on this phone fails
	user        string // assigned user; "" when unassigned
	rebootUntil time.Time
	prep        *preparation
	streaming   bool
	session     bool
	apps        map[string]app // installed packages by name
	video       []byte         // the last SetVideoConfig settings, kept as sent
	ops         []*phoneOp     // asynchronous work still running, in start order

	backupStatus  int // ListInstances backup_status: 0 preparing .. 4 other
	backupTime    time.Time
	backupFailed  bool // BatchQueryStatus 5 until the next preparation
	restoreStatus int  // ListInstances restore_status of the last finished preparation
	restoreTime   time.Time
	deviceID      string
	intAddr       string
	extAddr       string
	extPort       int
}

// app is an installed package.
type app struct {
	name, version, file string
}

// preparation is a BatchPrepareInstances in progress or done: queued, then restoring, then ready (or failed).
type preparation struct {
	user  string
	start time.Time
	fail  bool
}

// phoneOp is asynchronous work on one phone; its effect lands when it ends.
type phoneOp struct {
	kind string // opReset, opBackup, opUnassign, opInstall, opCommand
	end  time.Time
	fail bool
	user string // opUnassign: whose data is wiped
	app  app    // opInstall: what gets installed
}

const (
	opReset    = "reset"
	opBackup   = "backup"
	opUnassign = "unassign"
	opInstall  = "install"
	opCommand  = "command"
)

// prepPhase is where a preparation is at a given time.
type prepPhase int

const (
	phaseNone prepPhase = iota
	phaseQueued
	phaseRestoring
	phaseReady
	phaseFailed
)

// regions gives the display names of the regions the SKU catalogue sells in.
var regions = map[string][2]string{
	"cn-north-7":       {"华北-乌兰察布-二零三", "CN North-Ulanqab203"},
	"cn-north-208":     {"华北-乌兰察布-二零八", "CN North-Ulanqab208"},
	"cn-southwest-252": {"西南-贵阳-二五二", "CN Southwest-Guiyang252"},
}

// fleetSkuDesc is the instance_sku of the starting fleet, as in the seed's ListInstances example.
const fleetSkuDesc = "专业版 | 8 核 | 16GB | 10GB 存储 | 最高分辨率 720p"

// fleetPrefix names the starting fleet: sim-00001, sim-00002, ...
const fleetPrefix = "sim"

func (s *Server) buildFleet() {
	now := s.clock.Now().UTC().Truncate(time.Second)
	for _, id := range s.cfg.ForeignInstances {
		s.foreign[id] = true
	}
	n := max(s.cfg.FleetSize, 0)
	base := now.Add(-30 * 24 * time.Hour)
	for i := range n {
		p := s.newPhoneLocked(fleetPrefix, "1", "kp.professional.xlarge.32g.2", fleetSkuDesc, regionOf(i, n, s.cfg.Regions), "AOSP9",
			base.Add(time.Duration(i)*time.Hour))
		p.pool = s.cfg.Pools[i%len(s.cfg.Pools)]
		s.addPhoneLocked(p)
	}
}

// regionOf is the region of phone i (from 0) of a starting fleet of n phones: regions in contiguous blocks, in
// order, the first blocks one phone larger when n does not divide evenly (20 phones over two regions: 10 and 10;
// 5 phones over three: 2, 2 and 1).
func regionOf(i, n int, regions []string) string {
	k := len(regions)
	size, extra := n/k, n%k
	big := extra * (size + 1) // the first extra blocks hold size+1 phones, the others size
	if i < big {
		return regions[i/(size+1)]
	}
	return regions[extra+(i-big)/size]
}

// newPhoneLocked makes a running, unassigned phone with a fresh id and the next name of its prefix. Ids are
// deterministic for a seed, so FailInstances and FrozenInstances may name phones bought later as well as the fleet.
func (s *Server) newPhoneLocked(prefix, billing, skuID, skuDesc, region, os string, created time.Time) *phone {
	id := s.newInstanceIDLocked()
	s.nameSeq[prefix]++
	s.serial++
	n := s.serial
	p := &phone{
		id:          id,
		name:        fmt.Sprintf("%s-%05d", prefix, s.nameSeq[prefix]),
		created:     created,
		billing:     billing,
		skuID:       skuID,
		skuDesc:     skuDesc,
		region:      region,
		os:          os,
		apps:        map[string]app{},
		backupTime:  created,
		restoreTime: created,
		deviceID:    s.hex(32),
		intAddr:     fmt.Sprintf("192.168.%d.%d", 10+n/250, 2+n%250),
		extAddr:     fmt.Sprintf("10.83.%d.%d", 71+n/250, 2+n%250),
		extPort:     10030 + n%1000,
		fail:        slices.Contains(s.cfg.FailInstances, id),
		frozen:      slices.Contains(s.cfg.FrozenInstances, id),
	}
	return p
}

func (s *Server) addPhoneLocked(p *phone) {
	s.phones[p.id] = p
	s.fleet = append(s.fleet, p.id)
}

// newInstanceIDLocked returns an unused 8-character id of letters and digits, like the seed's "a44uhlf7".
func (s *Server) newInstanceIDLocked() string {
	for {
		id := s.randomFrom("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 8)
		// Never reuse an id, not even a deleted phone's: a stale id must stay unknown.
		if !s.allocated[id] && !s.foreign[id] {
			s.allocated[id] = true
			return id
		}
	}
}

// phoneLocked returns the tenant's phone with id, settled to now. foreign reports an id of another tenant.
func (s *Server) phoneLocked(id string, now time.Time) (p *phone, foreign bool) {
	if s.foreign[id] {
		return nil, true
	}
	p = s.phones[id]
	if p != nil {
		s.settleLocked(p, now)
	}
	return p, false
}

// resolveLocked returns the phones of ids (settled to now), or the error the operation answers: 1001 for a phone
// of another tenant, unknownCode for one that does not exist, 1002 when the phones span regions.
func (s *Server) resolveLocked(ids []string, now time.Time, unknownCode string) ([]*phone, *apiError) {
	out := make([]*phone, 0, len(ids))
	for _, id := range ids {
		p, foreign := s.phoneLocked(id, now)
		switch {
		case foreign:
			return nil, apiErr(codeNoPermission, "instance "+id+" does not belong to the tenant")
		case p == nil:
			return nil, apiErr(unknownCode, "instance "+id+" does not exist")
		}
		out = append(out, p)
	}
	for _, p := range out {
		if p.region != out[0].region {
			return nil, errCode(codeNotSameRegion)
		}
	}
	return out, nil
}

// settleLocked applies the effects of every operation on p that has ended by now, in the order they end.
func (s *Server) settleLocked(p *phone, now time.Time) {
	if len(p.ops) == 0 {
		return
	}
	slices.SortStableFunc(p.ops, func(a, b *phoneOp) int { return a.end.Compare(b.end) })
	i := 0
	for ; i < len(p.ops) && !now.Before(p.ops[i].end); i++ {
		s.applyLocked(p, p.ops[i], now)
	}
	p.ops = slices.Delete(p.ops, 0, i)
}

// applyLocked lands the effect of a finished operation. A failed operation changes nothing but its own record.
func (s *Server) applyLocked(p *phone, op *phoneOp, now time.Time) {
	switch op.kind {
	case opReset:
		if op.fail {
			return
		}
		// A reset brings the phone back to its image: installed apps and any loaded user data are gone.
		clear(p.apps)
		s.endPreparationLocked(p, op.end)
		p.backupFailed = false
	case opBackup:
		p.backupTime = op.end
		if op.fail {
			p.backupStatus, p.backupFailed = 3, true
			return
		}
		// The data is in OBS and the physical phone is released: the phone goes back to idle.
		p.backupStatus, p.backupFailed = 2, false
		s.endPreparationLocked(p, op.end)
	case opUnassign:
		if op.fail || p.user != op.user {
			return
		}
		p.user = ""
		s.endPreparationLocked(p, op.end)
	case opInstall:
		if !op.fail {
			p.apps[op.app.name] = op.app
		}
	}
}

// endPreparationLocked forgets the phone's preparation (keeping its outcome for ListInstances) and its stream.
func (s *Server) endPreparationLocked(p *phone, at time.Time) {
	if p.prep != nil {
		phase, _ := s.prepPhase(p.prep, at)
		p.restoreStatus, p.restoreTime = restoreStatusOf(phase), s.prepEnd(p.prep)
		if phase != phaseReady && phase != phaseFailed {
			p.restoreStatus = 4 // interrupted
		}
	}
	p.prep, p.streaming, p.session = nil, false, false
}

// prepPhase derives a preparation's phase and waitingCount at now: PrepareQueue steps in the queue, then
// RestoreDuration restoring, then ready (or failed on a FailInstances phone).
func (s *Server) prepPhase(pr *preparation, now time.Time) (prepPhase, int) {
	if pr == nil {
		return phaseNone, 0
	}
	queue := max(s.cfg.PrepareQueue, 0)
	step := s.cfg.PrepareStep
	elapsed := now.Sub(pr.start)
	queued := time.Duration(queue) * step
	switch {
	case elapsed < queued:
		return phaseQueued, queue - int(elapsed/step)
	case elapsed < queued+s.cfg.RestoreDuration:
		return phaseRestoring, 0
	case pr.fail:
		return phaseFailed, 0
	}
	return phaseReady, 0
}

func (s *Server) prepEnd(pr *preparation) time.Time {
	return pr.start.Add(time.Duration(max(s.cfg.PrepareQueue, 0))*s.cfg.PrepareStep + s.cfg.RestoreDuration)
}

// restoreStatusOf maps a preparation phase to ListInstances' restore_status (0 preparing, 1 running, 2 succeeded,
// 3 failed).
func restoreStatusOf(ph prepPhase) int {
	switch ph {
	case phaseRestoring:
		return 1
	case phaseReady:
		return 2
	case phaseFailed:
		return 3
	}
	return 0
}

// active reports whether an operation of kind is still running on p (p must be settled).
func (p *phone) active(kind string) bool {
	for _, op := range p.ops {
		if op.kind == kind {
			return true
		}
	}
	return false
}

func (p *phone) rebooting(now time.Time) bool { return now.Before(p.rebootUntil) }

// dataStatus is BatchQueryStatus' status: 0 idle, 1 restoring, 2 data loaded, 3 streaming, 4 backing up,
// 5 backup failed, 6 restore failed. (7, a second "data loaded" in the seed, is never produced.)
func (s *Server) dataStatus(p *phone, now time.Time) int {
	if p.active(opBackup) {
		return 4
	}
	if p.active(opReset) {
		return 0
	}
	switch ph, _ := s.prepPhase(p.prep, now); ph {
	case phaseRestoring:
		return 1
	case phaseReady:
		if p.streaming {
			return 3
		}
		return 2
	case phaseFailed:
		return 6
	}
	if p.backupFailed {
		return 5
	}
	return 0
}

// Random identifiers; the caller holds s.mu (or is New, before the server is shared).

func (s *Server) hex(n int) string { return s.randomFrom("0123456789abcdef", n) }

func (s *Server) urlSafe(n int) string {
	return s.randomFrom("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", n)
}

func (s *Server) upperAlnum(n int) string {
	return s.randomFrom("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", n)
}

func (s *Server) randomFrom(alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[s.rng.IntN(len(alphabet))]
	}
	return string(b)
}

func toSet(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, v := range list {
		m[v] = true
	}
	return m
}
