package sim

import "net/http"

// Error codes the simulator answers with. The HTTP status of each comes from the seed's table 6.2. Codes the
// table leaves out take the status of their family in the table (2209 and 2210 like 2001..2006: 200; 62005 like
// the other 62xxx: 200; 5002, 5004 and 5005 like 5001: 400), except 1323, which GetTask's own table puts under 400.
const (
	codeOK              = "0"
	codeNoTenant        = "KOOPHONE.API.0000"
	codeNoRequestID     = "KOOPHONE.API.0002"
	codeBadRequestID    = "KOOPHONE.API.0003"
	codeNoProject       = "KOOPHONE.API.0004"
	codeBadParam        = "KOOPHONE.API.1000"
	codeNoPermission    = "KOOPHONE.API.1001"
	codeNotSameRegion   = "KOOPHONE.API.1002"
	codeUnsubscribed    = "KOOPHONE.API.1004"
	codeVideoCombos     = "KOOPHONE.API.1005"
	codeNotTenants      = "KOOPHONE.API.1012"
	codeNoTask          = "KOOPHONE.API.1323"
	codeFrozen          = "KOOPHONE.API.2004"
	codeRestoring       = "KOOPHONE.API.2005"
	codeBackingUp       = "KOOPHONE.API.2006"
	codeNoDevice        = "KPAPI.2209"
	codeNotBound        = "KOOPHONE.API.2210"
	codeBandMismatch    = "KOOPHONE.API.3001"
	codeNoSku           = "KOOPHONE.API.3002"
	codeNoOS            = "KOOPHONE.API.3003"
	codeMonthRange      = "KOOPHONE.API.3006"
	codeYearRange       = "KOOPHONE.API.3007"
	codeFastInstall     = "KOOPHONE.API.3008"
	codeNoInstance      = "KOOPHONE.API.4001"
	codeNoStock         = "KOOPHONE.API.40010"
	codeOnDemand        = "KOOPHONE.API.5001"
	codeTimeFormat      = "KOOPHONE.API.5002"
	codeTimeOrder       = "KOOPHONE.API.5004"
	codeAppFormat       = codeTimeFormat // ListInstanceApp reuses 5002 and 5004 (see ops_applist.go)
	codeAppRange        = codeTimeOrder
	codeNotRunning      = "KOOPHONE.API.5005"
	codeAuthFailed      = "KOOPHONE.API.6001"
	codeAppExists       = "KOOPHONE.API.62005"
	codeSizeNotNumber   = "KOOPHONE.API.62006"
	codeInstanceBad     = "KOOPHONE.API.62010"
	codeSizeTooBig      = "KOOPHONE.API.62015"
	codeQuota           = "KOOPHONE.API.62016"
	codeDownloadFailed  = "KOOPHONE.API.62017"
	codeInstallFailed   = "KOOPHONE.API.62019"
	codeInternal        = "KOOPHONE.API.9999"
	codeAPIGWAuth       = "APIGW.0301"
	codeAPIGWThrottled  = "APIGW.0308"
	codeAPIGWNoAPI      = "APIGW.0101"
	codeJobPhoneMissing = "CPS0005"
	codeJobRunFailed    = "CPS.0191"
)

type codeInfo struct {
	status int
	msg    string
}

// codes gives each code its HTTP status and the message of the seed's table.
var codes = map[string]codeInfo{
	codeNoTenant:       {http.StatusOK, "租户不存在"},
	codeNoRequestID:    {http.StatusOK, "缺少请求头x-request-id"},
	codeBadRequestID:   {http.StatusBadRequest, "无效的请求头x-request-id"},
	codeNoProject:      {http.StatusOK, "项目不存在"},
	codeBadParam:       {http.StatusBadRequest, "接口请求参数存在错误,检查请求参数类型或者范围是否跟接口保持一致"},
	codeNoPermission:   {http.StatusUnauthorized, "租户没有实例对应的权限,需要检查请求传入的实例ID是否正确"},
	codeNotSameRegion:  {http.StatusBadRequest, "instance not in the same region, modify the request instance to the same region"},
	codeUnsubscribed:   {http.StatusOK, "租户未订购服务"},
	codeVideoCombos:    {http.StatusBadRequest, "请求参数错误,请求参数不包含所有需要的编码和网络组合"},
	codeNotTenants:     {http.StatusOK, "实例不属于租户"},
	codeNoTask:         {http.StatusBadRequest, "app安装任务不存在"},
	codeFrozen:         {http.StatusOK, "实例已冻结"},
	codeRestoring:      {http.StatusOK, "实例正在恢复中"},
	codeBackingUp:      {http.StatusOK, "实例在备份中"},
	codeNoDevice:       {http.StatusOK, "没有可分配的设备"},
	codeNotBound:       {http.StatusOK, "用户和实例绑定关系不存在"},
	codeBandMismatch:   {http.StatusBadRequest, "输入实例sku参数需要与band sku匹配"},
	codeNoSku:          {http.StatusOK, "没有这样的sku或region"},
	codeNoOS:           {http.StatusOK, "通用实例需要操作系统版本"},
	codeMonthRange:     {http.StatusOK, "如果周期类型为月,则周期范围应在1-9之间"},
	codeYearRange:      {http.StatusOK, "如果周期类型为年,周期范围应在1-3之间"},
	codeFastInstall:    {http.StatusOK, "请求参数中的fast_install应该为0或1"},
	codeNoInstance:     {http.StatusOK, "实例不存在"},
	codeNoStock:        {http.StatusOK, "库存不足"},
	codeOnDemand:       {http.StatusBadRequest, "不能删除按需实例"},
	codeTimeFormat:     {http.StatusBadRequest, "时间请求格式错误"},
	codeTimeOrder:      {http.StatusBadRequest, "查询结束日期小于查询起始日期"},
	codeNotRunning:     {http.StatusBadRequest, "不是所有的实例都在运行中状态"},
	codeAuthFailed:     {http.StatusUnauthorized, "身份验证失败!"},
	codeAppExists:      {http.StatusOK, "app包已经存在"},
	codeSizeNotNumber:  {http.StatusOK, "应用程序的大小必须是一个数字"},
	codeInstanceBad:    {http.StatusOK, "云实例异常"},
	codeSizeTooBig:     {http.StatusOK, "应用程序包的大小超过限制2G"},
	codeQuota:          {http.StatusOK, "单个租户上传的应用包总大小超过上限1T"},
	codeDownloadFailed: {http.StatusOK, "下载失败,请检查install_package_url"},
	codeInstallFailed:  {http.StatusOK, "安装app失败"},
	codeInternal:       {http.StatusInternalServerError, "未知错误"},
}

// codeStatus returns the HTTP status of a KooPhone error code (500 for a code the table does not know).
func codeStatus(code string) int {
	if c, ok := codes[code]; ok {
		return c.status
	}
	return http.StatusInternalServerError
}
