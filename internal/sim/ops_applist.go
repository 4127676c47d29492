package sim

import (
	"net/url"
	"slices"
	"strconv"
)

// ListInstanceApp (operation 21, from Huawei's newer reference; not in the seed): GET
// /v1/instances/{instance_id}/app-list?page_no=&page_size=&app_type=. Every phone carries the system apps of its
// image (app_type 1); third-party apps (app_type 2) appear when an InstallApp job on the phone succeeds and vanish
// with a reset.
//
// The newer reference lists 1000, 1001, 1004, 5002, 5004 and 9999 without saying when each applies. The simulator's
// choice (docs/koophone-differences.md): 1000 a page parameter missing or not an integer, 5002 app_type other
// than 1 or 2, 5004 page_no below 1 or page_size outside 1..200, 1001 a phone that is not the tenant's (or does
// not exist), 1004 a tenant without a subscription (Config.Unsubscribed), 9999 through faults.

const maxAppPageSize = 200

// systemApps are the apps every simulated image ships with.
var systemApps = []app{
	{name: "com.android.settings", version: "9", file: "Settings.apk"},
	{name: "com.android.browser", version: "9", file: "Browser.apk"},
	{name: "com.huawei.cloudphone.agent", version: "2.3.1", file: "agent.apk"},
}

const (
	appTypeSystem     = 1
	appTypeThirdParty = 2
)

type appRow struct {
	AppName    string `json:"app_name"`
	AppVersion string `json:"app_version"`
	AppPkg     string `json:"app_pkg"`
	IconURL    string `json:"icon_url"`
}

type appPage struct {
	Result     []appRow `json:"result"`
	PageNo     int      `json:"page_no"`
	PageSize   int      `json:"page_size"`
	TotalCount int      `json:"total_count"`
}

type appQuery struct {
	pageNo, pageSize, appType int
}

func parseAppQuery(q url.Values) (appQuery, *apiError) {
	var aq appQuery
	for _, p := range []struct {
		name string
		dst  *int
	}{{"page_no", &aq.pageNo}, {"page_size", &aq.pageSize}} {
		n, err := strconv.Atoi(q.Get(p.name))
		if err != nil {
			return aq, badParam("%s is required and must be an integer", p.name)
		}
		*p.dst = n
	}
	if aq.pageNo < 1 || aq.pageSize < 1 || aq.pageSize > maxAppPageSize {
		return aq, apiErr(codeAppRange, "page_no must be at least 1 and page_size 1.."+itoa(maxAppPageSize))
	}
	if v := q.Get("app_type"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || (n != appTypeSystem && n != appTypeThirdParty) {
			return aq, apiErr(codeAppFormat, "app_type must be 1 (system) or 2 (third-party)")
		}
		aq.appType = n
	}
	return aq, nil
}

func (s *Server) listInstanceApp(c *call) {
	id := c.params[0]
	if e := checkID("instance_id", id); e != nil {
		c.answer(nil, e)
		return
	}
	aq, e := parseAppQuery(c.r.URL.Query())
	if e != nil {
		c.answer(nil, e)
		return
	}
	if s.cfg.Unsubscribed {
		c.answer(nil, errCode(codeUnsubscribed))
		return
	}
	c.locked(func() (any, *apiError) {
		p, foreign := s.phoneLocked(id, c.now)
		if foreign || p == nil {
			// The newer reference lists no "no such instance" code for this operation: 1001 covers both.
			return nil, apiErr(codeNoPermission, "instance "+id+" is not the tenant's")
		}
		var rows []appRow
		if aq.appType != appTypeThirdParty {
			for _, a := range systemApps {
				rows = append(rows, appRow{AppName: a.file, AppVersion: a.version, AppPkg: a.name})
			}
		}
		if aq.appType != appTypeSystem {
			names := make([]string, 0, len(p.apps))
			for n := range p.apps {
				names = append(names, n)
			}
			slices.Sort(names)
			for _, n := range names {
				a := p.apps[n]
				rows = append(rows, appRow{AppName: a.file, AppVersion: a.version, AppPkg: a.name,
					IconURL: "https://koophone-icons.obs.cn-north-7.myhuaweicloud.com/" + a.name + ".png"})
			}
		}
		out := appPage{Result: []appRow{}, PageNo: aq.pageNo, PageSize: aq.pageSize, TotalCount: len(rows)}
		if from := (aq.pageNo - 1) * aq.pageSize; aq.pageNo-1 <= len(rows)/aq.pageSize && from < len(rows) {
			out.Result = rows[from:min(from+aq.pageSize, len(rows))]
		}
		return out, nil
	})
}
