package upstream

// Operations and fields of Huawei's newer KooPhone reference (its current API reference and the Java SDK's
// services/koophone) that the seed does not have. docs/koophone-differences.md lists each difference.

// DeviceTokenRequest is GetDeviceToken's input. StreamType (1 SDK streaming, 2 H5 streaming) is newer than the
// seed: the current reference lists it as an optional query parameter. 0 leaves it out, so the call is exactly
// the seed's.
type DeviceTokenRequest struct {
	InstanceID string
	StreamType int
}

// ListInstanceAppRequest is ListInstanceApp's query (operation 21). PageNo and PageSize (1..200) are required;
// AppType 1 lists system apps, 2 third-party apps, 0 (left out) all of them.
type ListInstanceAppRequest struct {
	InstanceID string
	PageNo     int
	PageSize   int
	AppType    int
}

// AppPage is ListInstanceApp's data.
type AppPage struct {
	Result     []InstalledApp `json:"result"`
	PageNo     int            `json:"page_no"`
	PageSize   int            `json:"page_size"`
	TotalCount int            `json:"total_count"`
}

// InstalledApp is one app on a phone.
type InstalledApp struct {
	AppName    string `json:"app_name"`
	AppVersion string `json:"app_version"`
	AppPkg     string `json:"app_pkg"`
	IconURL    string `json:"icon_url"`
}
