package sim

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ListInstances (seed 4.1.10): GET /v1/instances/batch-query with query parameters.

// listTimeFormat is the seed's "2023-08-15 14:30:45" (UTC), for query times and backup/restore times alike.
const listTimeFormat = "2006-01-02 15:04:05"

// maxPageSize caps page_size: the seed's example asks for 200 and gets page_size 100 back.
const maxPageSize = 100

type instanceRow struct {
	InstanceID    string `json:"instance_id"`
	InstanceName  string `json:"instance_name"`
	Region        string `json:"region"`
	InstanceSku   string `json:"instance_sku"`
	FrozenStatus  int    `json:"frozen_status"`
	RunningStatus int    `json:"running_status"`
	LoginStatus   int    `json:"login_status"`
	AssignStatus  int    `json:"assign_status"`
	AssignUser    string `json:"assign_user"`
	BillingMode   string `json:"billing_mode"`
	ProjectID     string `json:"project_id"`
	ProjectName   string `json:"project_name"`
	PhoneID       string `json:"phone_id"`
	MemberName    string `json:"member_name"`
	AccountName   string `json:"account_name"`
	RegionName    string `json:"region_name"`
	RegionNameEn  string `json:"region_name_en"`
	BackupStatus  int    `json:"backup_status"`
	BackupTime    string `json:"backup_time"`
	RestoreStatus int    `json:"restore_status"`
	RestoreTime   string `json:"restore_time"`
}

type listData struct {
	Result     []instanceRow `json:"result"`
	PageNo     int           `json:"page_no"`
	PageSize   int           `json:"page_size"`
	TotalCount int           `json:"total_count"`
}

type listQuery struct {
	pageNo, pageSize int
	id, name, tag    string
	start, end       time.Time
	// Newer reference: pool_name (exact node group name), order (asc, desc) and order_by.
	pool, order, orderBy string
}

// orderKeys are the order_by values the simulator sorts by. The newer reference documents order_by as "the field
// to sort by" without a list; these are ListInstances' own fields that make sense to sort on.
var orderKeys = map[string]func(a, b *phone) int{
	"instance_name": func(a, b *phone) int { return strings.Compare(a.name, b.name) },
	"instance_id":   func(a, b *phone) int { return strings.Compare(a.id, b.id) },
	"create_time":   func(a, b *phone) int { return a.created.Compare(b.created) },
}

func parseListQuery(q url.Values) (listQuery, *apiError) {
	var lq listQuery
	var err error
	for _, p := range []struct {
		name string
		dst  *int
	}{{"page_no", &lq.pageNo}, {"page_size", &lq.pageSize}} {
		*p.dst, err = strconv.Atoi(q.Get(p.name))
		if err != nil || *p.dst < 1 {
			return lq, badParam("%s is required and must be a positive integer", p.name)
		}
	}
	lq.pageSize = min(lq.pageSize, maxPageSize)
	lq.id, lq.name, lq.tag = q.Get("instance_id"), q.Get("instance_name"), q.Get("pool_scene_tag")
	lq.pool, lq.order, lq.orderBy = q.Get("pool_name"), q.Get("order"), q.Get("order_by")
	if lq.order != "" && lq.order != "asc" && lq.order != "desc" {
		return lq, badParam("order must be asc or desc")
	}
	if _, ok := orderKeys[lq.orderBy]; lq.orderBy != "" && !ok {
		return lq, badParam("order_by must be instance_name, instance_id or create_time")
	}
	if len(lq.id) > maxIDLen {
		return lq, badParam("instance_id must be at most %d characters", maxIDLen)
	}
	if lq.tag != "" && lq.tag != "CLOUD_APP" && lq.tag != "CLOUD_PHONE" {
		return lq, badParam("pool_scene_tag must be CLOUD_APP or CLOUD_PHONE")
	}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"query_start_time", &lq.start}, {"query_end_time", &lq.end}} {
		v := q.Get(t.name)
		if v == "" {
			continue
		}
		if *t.dst, err = time.ParseInLocation(listTimeFormat, v, time.UTC); err != nil {
			return lq, apiErr(codeTimeFormat, t.name+" must look like 2023-08-15 14:30:45")
		}
	}
	if !lq.start.IsZero() && !lq.end.IsZero() && lq.end.Before(lq.start) {
		return lq, errCode(codeTimeOrder)
	}
	return lq, nil
}

func (s *Server) listInstances(c *call) {
	lq, e := parseListQuery(c.r.URL.Query())
	if e != nil {
		c.answer(nil, e)
		return
	}
	c.locked(func() (any, *apiError) {
		var match []*phone
		for _, id := range s.fleet {
			p, _ := s.phoneLocked(id, c.now)
			switch {
			case lq.id != "" && p.id != lq.id,
				lq.name != "" && !strings.Contains(p.name, lq.name),
				!lq.start.IsZero() && p.created.Before(lq.start),
				!lq.end.IsZero() && p.created.After(lq.end),
				lq.tag == "CLOUD_APP", // every phone of the simulator is a general cloud phone
				lq.pool != "" && p.pool != lq.pool:
				continue
			}
			match = append(match, p)
		}
		sortPhones(match, lq.order, lq.orderBy)
		data := listData{Result: []instanceRow{}, PageNo: lq.pageNo, PageSize: lq.pageSize, TotalCount: len(match)}
		from := (lq.pageNo - 1) * lq.pageSize
		if lq.pageNo-1 > len(match)/lq.pageSize { // avoids overflow on absurd page numbers
			from = len(match)
		}
		for _, p := range match[min(from, len(match)):min(from+lq.pageSize, len(match))] {
			data.Result = append(data.Result, s.row(p, c.now))
		}
		return data, nil
	})
}

// row fills the 21 fields of a ListInstances result from the phone's state at now.
func (s *Server) row(p *phone, now time.Time) instanceRow {
	names, ok := regions[p.region]
	if !ok {
		names = [2]string{p.region, p.region}
	}
	r := instanceRow{
		InstanceID:    p.id,
		InstanceName:  p.name,
		Region:        p.region,
		InstanceSku:   p.skuDesc,
		RunningStatus: 2,
		AssignUser:    p.user,
		BillingMode:   p.billing,
		ProjectID:     s.cfg.Project.ID,
		ProjectName:   s.cfg.Project.Name,
		PhoneID:       "null", // as in the seed's example: the string, not JSON null
		MemberName:    p.user,
		AccountName:   s.cfg.IAMUsers[0].Domain,
		RegionName:    names[0],
		RegionNameEn:  names[1],
		BackupStatus:  p.backupStatus,
		BackupTime:    p.backupTime.UTC().Format(listTimeFormat),
		RestoreStatus: p.restoreStatus,
		RestoreTime:   p.restoreTime.UTC().Format(listTimeFormat),
	}
	if p.frozen {
		r.FrozenStatus = 1
	}
	if p.rebooting(now) {
		r.RunningStatus = 4
	}
	if p.streaming {
		r.LoginStatus = 1
	}
	if p.user != "" {
		r.AssignStatus = 1
	}
	for _, op := range p.ops {
		if op.kind == opBackup {
			r.BackupStatus, r.BackupTime = 1, op.end.Add(-s.cfg.JobDuration).UTC().Format(listTimeFormat)
		}
	}
	if p.prep != nil {
		phase, _ := s.prepPhase(p.prep, now)
		r.RestoreStatus, r.RestoreTime = restoreStatusOf(phase), p.prep.start.UTC().Format(listTimeFormat)
	}
	return r
}

// sortPhones orders a listing: creation order by default (stable, so pages never overlap), else by orderBy
// (creation time when only order is given), ascending unless order is desc.
func sortPhones(ps []*phone, order, orderBy string) {
	if order == "" && orderBy == "" {
		return
	}
	cmp := orderKeys["create_time"]
	if orderBy != "" {
		cmp = orderKeys[orderBy]
	}
	slices.SortStableFunc(ps, func(a, b *phone) int {
		if order == "desc" {
			return cmp(b, a)
		}
		return cmp(a, b)
	})
}
