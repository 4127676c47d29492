package upstream

// Request and response bodies of the 20 KooPhone operations, mirroring the seed's JSON field for field
// (snake_case everywhere except CreateInstance, DeleteInstance and BatchShowSku, which are camelCase upstream).
// Response types describe the envelope's `data`; the envelope itself (error_code, error_msg) is handled by the
// client. Integers that carry a status stay plain ints here: mapping them to enums is the service's job.

// CommandRequest is the body of SyncCommand and AsyncCommand.
type CommandRequest struct {
	Command     string   `json:"command"`
	InstanceIDs []string `json:"instance_ids"`
}

// SyncCommandResult is SyncCommand's data.
type SyncCommandResult struct {
	CmdResults []CmdResult `json:"cmd_results"`
}

// CmdResult is one phone's outcome of a synchronous command. Status: 1 running, 2 succeeded, -1 failed.
type CmdResult struct {
	InstanceID string `json:"instance_id"`
	Status     int    `json:"status"`
	ErrorCode  string `json:"error_code"`
	ErrorMsg   string `json:"error_msg"`
	// ExecuteMsg is the command's output (≤1024 bytes); the seed sends null for none, decoded as "".
	ExecuteMsg string `json:"execute_msg"`
}

// Task is the data of every operation that starts asynchronous work (AsyncCommand, BatchReset, UnassignInstance,
// BatchBackupInstances, InstallApp): one job per phone, followed with GetTask.
type Task struct {
	TaskID  string   `json:"task_id"`
	CmdJobs []CmdJob `json:"cmd_jobs"`
}

// CmdJob ties a phone to its job inside a task.
type CmdJob struct {
	InstanceID string `json:"instance_id"`
	JobID      string `json:"job_id"`
}

// TaskStatus is GetTask's data.
type TaskStatus struct {
	Jobs []JobDetail `json:"jobs"`
}

// JobDetail is one job of a task. Status: 1 running, 2 succeeded, -1 failed.
type JobDetail struct {
	JobID      string `json:"job_id"`
	Status     int    `json:"status"`
	ErrorCode  string `json:"error_code"`
	ErrorMsg   string `json:"error_msg"`
	ExecuteMsg string `json:"execute_msg"` // null upstream decodes as ""
}

// SetVideoConfigRequest is SetVideoConfig's body.
type SetVideoConfigRequest struct {
	InstanceIDs      []string          `json:"instance_ids"`
	InstanceSettings []InstanceSetting `json:"instance_settings"`
}

// InstanceSetting is the video setting of one network × encoding combination.
type InstanceSetting struct {
	NetworkType     string           `json:"network_type"`  // MOBILE_NETWORK, WIFI, WIRED
	EncodingType    string           `json:"encoding_type"` // H264, H265
	VideoSpecGroups []VideoSpecGroup `json:"video_spec_groups"`
}

// VideoSpecGroup holds the three definitions' specs.
type VideoSpecGroup struct {
	Definition540P  VideoSpec `json:"definition_540P"`
	Definition720P  VideoSpec `json:"definition_720P"`
	Definition1080P VideoSpec `json:"definition_1080P"`
}

// VideoSpec is one definition's bit rate (kbps, 100..10000, multiple of 100) and frame rate (30 or 60).
type VideoSpec struct {
	CodeRate int `json:"code_rate"`
	FPS      int `json:"fps"`
}

// InstanceIDsRequest is the body of BatchQueryStatus, BatchReset, BatchRebootInstance and BatchBackupInstances.
type InstanceIDsRequest struct {
	InstanceIDs []string `json:"instance_ids"`
}

// StatusResults is BatchQueryStatus's data.
type StatusResults struct {
	StatusResults []StatusResult `json:"status_results"`
}

// StatusResult is one phone's state: 0 idle, 1 restoring, 2 data loaded, 3 streaming, 4 backing up,
// 5 backup failed, 6 restore failed, 7 data loaded.
type StatusResult struct {
	InstanceID string `json:"instance_id"`
	Status     int    `json:"status"`
}

// DeviceToken is GetDeviceToken's data.
type DeviceToken struct {
	StreamingID string         `json:"streamingId"`
	Resource    DeviceResource `json:"resource"`
	DeviceToken string         `json:"device_token"`
}

// DeviceResource describes where and how to stream a phone.
type DeviceResource struct {
	SDK      SDKInfo `json:"sdk"`
	RTC      RTCInfo `json:"rtc"`
	DeviceID string  `json:"device_id"`
	KpID     string  `json:"kp_id"`
}

// SDKInfo holds the phone's internal and external addresses.
type SDKInfo struct {
	Internal SDKEndpoint `json:"internal"`
	External SDKEndpoint `json:"external"`
}

// SDKEndpoint is one address of a phone. The seed types aport/atype as strings for the internal address and as
// integers for the external one; both decode leniently.
type SDKEndpoint struct {
	Address     string     `json:"address"`
	Aport       FlexString `json:"aport"`
	Atype       FlexString `json:"atype"`
	AddressIPv6 string     `json:"address_ipv6"`
}

// RTCInfo holds the WebRTC signalling details.
type RTCInfo struct {
	IceSignaling IceSignaling `json:"ice_signaling"`
}

// IceSignaling is where the user's app connects to stream the phone.
type IceSignaling struct {
	SignalingURL string `json:"signaling_url"`
	// ExpiredTime is the streaming duration in seconds, as a string (null in the seed's example).
	ExpiredTime FlexString `json:"expired_time"`
	IceServers  []string   `json:"ice_servers"`
}

// UserInstance binds a user to a phone.
type UserInstance struct {
	UserID     string `json:"user_id"`
	InstanceID string `json:"instance_id"`
}

// UserInstancesRequest is the body of AssignInstance and UnassignInstance.
type UserInstancesRequest struct {
	UserInstances []UserInstance `json:"user_instances"`
}

// ListInstancesRequest is ListInstances' query. PageNo and PageSize are required; empty strings are omitted.
type ListInstancesRequest struct {
	PageNo         int
	PageSize       int
	InstanceID     string
	InstanceName   string
	QueryStartTime string // UTC, "2006-01-02 15:04:05"
	QueryEndTime   string
	PoolSceneTag   string // CLOUD_APP or CLOUD_PHONE
	// Newer reference (Huawei's current API reference and Java SDK), not in the seed; sent only when set.
	PoolName string // node group (pool) name
	Order    string // asc or desc
	OrderBy  string // the field to sort by
}

// InstancePage is ListInstances' data.
type InstancePage struct {
	Result     []Instance `json:"result"`
	PageNo     int        `json:"page_no"`
	PageSize   int        `json:"page_size"`
	TotalCount int        `json:"total_count"`
}

// Instance is one phone as ListInstances describes it.
type Instance struct {
	InstanceID    string `json:"instance_id"`
	InstanceName  string `json:"instance_name"`
	Region        string `json:"region"`
	InstanceSku   string `json:"instance_sku"`
	FrozenStatus  int    `json:"frozen_status"`  // 0 normal, 1 frozen
	RunningStatus int    `json:"running_status"` // 0 unknown, 1 stopped, 2 running, 3 going offline, 4 starting, 5 shut down
	LoginStatus   int    `json:"login_status"`   // 0 logged out, 1 logged in
	AssignStatus  int    `json:"assign_status"`  // 0 unassigned, 1 assigned
	AssignUser    string `json:"assign_user"`
	BillingMode   string `json:"billing_mode"`
	ProjectID     string `json:"project_id"`
	ProjectName   string `json:"project_name"`
	// PhoneID may arrive as the string "null"; it decodes as "".
	PhoneID       NullableString `json:"phone_id"`
	MemberName    string         `json:"member_name"`
	AccountName   string         `json:"account_name"`
	RegionName    string         `json:"region_name"`
	RegionNameEn  string         `json:"region_name_en"`
	BackupStatus  int            `json:"backup_status"` // 0 preparing, 1 running, 2 succeeded, 3 failed, 4 other
	BackupTime    string         `json:"backup_time"`
	RestoreStatus int            `json:"restore_status"` // same values as BackupStatus
	RestoreTime   string         `json:"restore_time"`
}

// SkuCatalogue is BatchShowSku's data.
type SkuCatalogue struct {
	BandInfo            BandInfo     `json:"bandInfo"`
	SkuSpecResponseList []RegionSkus `json:"skuSpecResponseList"`
}

// BandInfo names the bandwidth SKU (CreateInstance's bandSkuId).
type BandInfo struct {
	CbcSkuID string `json:"cbcSkuId"`
}

// RegionSkus lists the SKUs sold in one region.
type RegionSkus struct {
	RegionID     string `json:"regionId"`
	SkuResponses []Sku  `json:"skuResponses"`
}

// Sku is one phone specification on sale.
type Sku struct {
	Type          string     `json:"type"` // ENTERPRISE or PROFESSIONAL
	CbcSkuID      string     `json:"cbcSkuId"`
	Name          string     `json:"name"`
	CalcSpec      string     `json:"calcSpec"`
	StorageSpec   string     `json:"storageSpec"`
	SpecDesc      string     `json:"specDesc"`
	SpecDescEn    string     `json:"specDescEn"`
	BandSize      string     `json:"bandSize"`   // comma-separated choices in Mbit/s, e.g. "2,4,8"
	ChargeMode    int        `json:"chargeMode"` // 0 yearly/monthly, 1 on demand, 2 both
	MaxResolution string     `json:"maxResolution"`
	PoolInfo      PoolInfo   `json:"poolInfo"`
	NestInfo      []NestInfo `json:"nestInfo"`
}

// PoolInfo lists the resource pools behind a SKU.
type PoolInfo struct {
	Aosp []AospPool `json:"aosp"`
}

// AospPool is one resource pool. ID is an integer in the seed's table and a string in its example.
type AospPool struct {
	Version   string     `json:"version"`
	ResPoolID string     `json:"resPoolId"`
	ID        FlexString `json:"id"`
	Network   string     `json:"network"` // EIP or ADN
	Enable    bool       `json:"enable"`
}

// NestInfo is a scene offered with a SKU (only in the seed's example, not its tables).
type NestInfo struct {
	BandSize    FlexString `json:"bandSize"`
	SceneType   string     `json:"sceneType"`
	Network     string     `json:"network"`
	StorageDesc string     `json:"storageDesc"`
	SceneDesc   string     `json:"sceneDesc"`
	SceneDescEn string     `json:"sceneDescEn"`
	Tags        string     `json:"tags"`
	TagsEn      string     `json:"tagsEn"`
}

// CreateInstanceRequest is CreateInstance's camelCase body.
type CreateInstanceRequest struct {
	OS                 string      `json:"os"` // AOSP9 or AOSP11
	InstanceSkuID      string      `json:"instanceSkuId"`
	BandSkuID          string      `json:"bandSkuId"`
	RegionID           string      `json:"regionId"`
	InstanceNamePrefix string      `json:"instanceNamePrefix"`
	BandSize           float64     `json:"bandSize"` // Mbit/s
	Count              int         `json:"count"`
	ChargeParam        ChargeParam `json:"chargeParam"`
	Network            string      `json:"network,omitempty"` // EIP or ADN (newer reference)
	// Newer reference, not in the seed; each is sent only when set.
	CustomImageType *int   `json:"customImageType,omitempty"` // 0 system, 1 custom, 2 private image
	CustomImageID   *int   `json:"customImageId,omitempty"`   // an integer in the Java SDK
	SpecPoolID      string `json:"specPoolId,omitempty"`
	NodeGroupID     string `json:"nodeGroupId,omitempty"`
}

// ChargeParam is how an order is paid. ChargingMode 1 (yearly/monthly) only; PeriodType 2 month, 3 year.
type ChargeParam struct {
	ChargingMode int `json:"chargingMode"`
	PeriodType   int `json:"periodType"`
	PeriodNum    int `json:"periodNum"`
	IsAutoPay    int `json:"isAutoPay"`
	IsAutoRenew  int `json:"isAutoRenew"`
}

// Order is CreateInstance's data.
type Order struct {
	OrderID       string         `json:"orderId"`
	InstanceInfos []InstanceInfo `json:"instanceInfos"`
}

// InstanceInfo is one ordered phone (the seed's example omits instanceId).
type InstanceInfo struct {
	InstanceID   string `json:"instanceId"`
	InstanceName string `json:"instanceName"`
}

// DeleteInstanceRequest is DeleteInstance's body.
type DeleteInstanceRequest struct {
	InstanceIDList []string `json:"instanceIdList"`
}

// PrepareRequest is BatchPrepareInstances' body.
type PrepareRequest struct {
	UserID      string   `json:"user_id"`
	InstanceIDs []string `json:"instance_ids"`
}

// PrepareResult is BatchPrepareInstances' data.
type PrepareResult struct {
	StatusList []InstanceStatus `json:"status_list"`
}

// InstanceStatus is one phone's preparation state: 0 ready, 1 waiting for restore, 2 waiting for assignment,
// 3 backing up, 4 resetting, 5 rebooting, 6 offline, 7 switching device, 8 restoring expired backup,
// 9 restoring expired backup failed, 10 under maintenance.
type InstanceStatus struct {
	InstanceID string `json:"instance_id"`
	Status     int    `json:"status"`
}

// ProgressRequest is ShowProgress' body.
type ProgressRequest struct {
	UserID     string `json:"user_id"`
	InstanceID string `json:"instance_id"`
}

// Progress is ShowProgress' data. Status: 0 ready, 1 queued, 2 restoring/offline, 3 backing up, -1 failed.
type Progress struct {
	Status       int `json:"status"`
	WaitingCount int `json:"waitingCount"`
}

// InstanceIDRequest is the body of StopInstancesStreaming and ReleaseInstancesSession.
type InstanceIDRequest struct {
	InstanceID string `json:"instance_id"`
}

// InstallAppRequest is InstallApp's body.
type InstallAppRequest struct {
	FastInstall       string   `json:"fast_install,omitempty"` // "0" normal, "1" fast
	ObjectName        string   `json:"object_name"`
	FileName          string   `json:"file_name"`
	ObjectVersion     string   `json:"object_version"`
	ObjectSize        string   `json:"object_size"` // decimal MB
	BizType           string   `json:"biz_type"`
	ContentType       string   `json:"content_type"`
	ContentMD5        string   `json:"content_md5"`
	InstallPackageURL string   `json:"install_package_url"`
	InstanceIDList    []string `json:"instance_id_list"`
}
