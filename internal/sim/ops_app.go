package sim

import (
	"bytes"
	"encoding/json"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// InstallApp (seed 4.4.1).

type installRequest struct {
	FastInstall       json.RawMessage `json:"fast_install"` // "0" | "1"; the seed's example sends a number
	ObjectName        string          `json:"object_name"`
	FileName          string          `json:"file_name"`
	ObjectVersion     string          `json:"object_version"`
	ObjectSize        json.RawMessage `json:"object_size"` // decimal MB as a string; the example sends a number
	BizType           string          `json:"biz_type"`
	ContentType       string          `json:"content_type"`
	ContentMD5        *string         `json:"content_md5"`
	InstallPackageURL string          `json:"install_package_url"`
	InstanceIDList    []string        `json:"instance_id_list"`
}

const (
	maxAppSizeMB    = 2048        // 62015 beyond: "应用程序包的大小超过限制2G"
	tenantQuotaMB   = 1024 * 1024 // 62016 beyond: 1 TB per tenant
	msgDownloadFail = "Download failed, check install_package_url."
	msgInstallFail  = "Install app failed."
)

var decimalMB = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)

// checkInstallShape checks lengths, biz_type, the URL and the phone list (all 1000).
func checkInstallShape(req *installRequest) *apiError {
	for _, f := range []struct {
		name, v  string
		max      int
		required bool
	}{
		{"object_name", req.ObjectName, 100, true},
		{"file_name", req.FileName, 100, true},
		{"object_version", req.ObjectVersion, 100, true},
		{"biz_type", req.BizType, 64, true},
		{"content_type", req.ContentType, 64, true},
		{"install_package_url", req.InstallPackageURL, 2000, true},
		{"content_md5", deref(req.ContentMD5), 200, false},
	} {
		if (f.required && f.v == "") || len(f.v) > f.max {
			return badParam("%s is required, at most %d characters", f.name, f.max)
		}
	}
	if req.BizType != "apk" {
		return badParam("biz_type must be apk (the only package type installed)")
	}
	if len(req.ObjectSize) == 0 || string(req.ObjectSize) == "null" {
		return badParam("object_size is required")
	}
	u, err := url.Parse(req.InstallPackageURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return badParam("install_package_url must be an https URL (an OBS download link)")
	}
	return checkIDs("instance_id_list", req.InstanceIDList)
}

// fastInstallOK accepts fast_install absent, "0", "1", or the numbers 0 and 1.
func fastInstallOK(raw json.RawMessage) bool {
	switch string(bytes.TrimSpace(raw)) {
	case "", "null", `"0"`, `"1"`, "0", "1":
		return true
	}
	return false
}

// appSizeMB reads object_size as a decimal number of MB, from a string or a number.
func appSizeMB(raw json.RawMessage) (float64, *apiError) {
	var str string
	if err := json.Unmarshal(raw, &str); err != nil {
		str = string(bytes.TrimSpace(raw)) // a JSON number, or something that is neither
	}
	if !decimalMB.MatchString(str) {
		return 0, errCode(codeSizeNotNumber)
	}
	mb, err := strconv.ParseFloat(str, 64)
	if err != nil || mb <= 0 {
		return 0, errCode(codeSizeNotNumber)
	}
	if mb > maxAppSizeMB {
		return 0, errCode(codeSizeTooBig)
	}
	return mb, nil
}

func (s *Server) installApp(c *call) {
	var req installRequest
	if e := c.decode(&req); e != nil {
		c.answer(nil, e)
		return
	}
	if e := checkInstallShape(&req); e != nil {
		c.answer(nil, e)
		return
	}
	if !fastInstallOK(req.FastInstall) {
		c.answer(nil, errCode(codeFastInstall))
		return
	}
	mb, e := appSizeMB(req.ObjectSize)
	if e != nil {
		c.answer(nil, e)
		return
	}
	u, _ := url.Parse(req.InstallPackageURL)
	downloadFails := strings.Contains(strings.ToLower(u.Hostname()), "fail")
	a := app{name: req.ObjectName, version: req.ObjectVersion, file: req.FileName}

	c.locked(func() (any, *apiError) {
		phones, e := s.resolveLocked(req.InstanceIDList, c.now, codeNoPermission)
		if e != nil {
			return nil, e
		}
		everywhere := true
		for _, p := range phones {
			if have, ok := p.apps[a.name]; !ok || have.version != a.version {
				everywhere = false
			}
		}
		if everywhere {
			return nil, errCode(codeAppExists)
		}
		if s.uploaded+mb > tenantQuotaMB {
			return nil, errCode(codeQuota)
		}
		s.uploaded += mb
		data := s.startTaskLocked("ZGCA"+s.urlSafe(32), phones, c.now, func(p *phone) jobSpec {
			op := &phoneOp{kind: opInstall, app: a}
			switch {
			case downloadFails:
				return jobSpec{fail: true, code: codeDownloadFailed, msg: msgDownloadFail, op: op}
			case p.fail:
				return jobSpec{fail: true, code: codeInstallFailed, msg: msgInstallFail, op: op}
			}
			return jobSpec{out: &outSuccess, op: op}
		})
		if s.cfg.InstallResultShape == "table" {
			return map[string]any{"data": data}, nil
		}
		return data, nil
	})
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
