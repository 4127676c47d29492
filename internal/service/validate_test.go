package service

import (
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/koophone-gateway/koophone-gateway/gen/go/koophone/v1"
)

// Every documented constraint, each boundary on both sides. A case either passes (violation "") or fails with
// exactly one field violation whose field and reason (rule id) are given.

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "ph" + strings.Repeat("0", 6-len(itoa(i))) + itoa(i)
	}
	return out
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}

func goodVideoSettings() []*pb.InstanceSetting {
	spec := func(rate int32) *pb.VideoSpec { return &pb.VideoSpec{CodeRate: rate, Fps: 30} }
	var out []*pb.InstanceSetting
	for _, n := range []string{"MOBILE_NETWORK", "WIFI", "WIRED"} {
		for _, e := range []string{"H264", "H265"} {
			out = append(out, &pb.InstanceSetting{
				NetworkType:  n,
				EncodingType: e,
				VideoSpecGroups: []*pb.VideoSpecGroup{{
					Definition_540P:  spec(6000),
					Definition_720P:  spec(6000),
					Definition_1080P: spec(8000),
				}},
			})
		}
	}
	return out
}

func goodCreate() *pb.CreateInstanceRequest {
	return &pb.CreateInstanceRequest{
		Os:                 "AOSP9",
		InstanceSkuId:      "kp.professional.xlarge.32g.2",
		BandSkuId:          "kp.bandwidth",
		RegionId:           "cn-north-7",
		InstanceNamePrefix: "koophone",
		BandSize:           4,
		Count:              1,
		ChargeParam: &pb.ChargeParam{
			ChargingMode: pb.ChargingMode_CHARGING_MODE_YEARLY_MONTHLY,
			PeriodType:   pb.PeriodType_PERIOD_TYPE_MONTH,
			PeriodNum:    1,
			IsAutoPay:    true,
		},
	}
}

func goodInstall() *pb.InstallAppRequest {
	return &pb.InstallAppRequest{
		ObjectName:        "com.tencent.mm",
		FileName:          "meituan.apk",
		ObjectVersion:     "8.0.58",
		ObjectSize:        "120",
		BizType:           "apk",
		ContentType:       "application/octet-stream",
		InstallPackageUrl: "https://obs.example.com/app.apk",
		InstanceIdList:    []string{"XvH39QVW"},
	}
}

type validationCase struct {
	name   string
	msg    proto.Message
	field  string // "" means the message is valid
	reason string
}

func validationCases() []validationCase {
	long := func(n int) string { return strings.Repeat("a", n) }
	cmd := func(c string, phones ...string) *pb.SyncCommandRequest {
		if phones == nil {
			phones = []string{"a44uhlf7"}
		}
		return &pb.SyncCommandRequest{Command: c, InstanceIds: phones}
	}
	video := func(mut func([]*pb.InstanceSetting) []*pb.InstanceSetting) *pb.SetVideoConfigRequest {
		return &pb.SetVideoConfigRequest{InstanceIds: []string{"iRJEVP96"}, InstanceSettings: mut(goodVideoSettings())}
	}
	list := func(mut func(*pb.ListInstancesRequest)) *pb.ListInstancesRequest {
		r := &pb.ListInstancesRequest{PageNo: 1, PageSize: 100}
		mut(r)
		return r
	}
	create := func(mut func(*pb.CreateInstanceRequest)) *pb.CreateInstanceRequest {
		r := goodCreate()
		mut(r)
		return r
	}
	install := func(mut func(*pb.InstallAppRequest)) *pb.InstallAppRequest {
		r := goodInstall()
		mut(r)
		return r
	}
	pairs := func(n int, user, phone string) []*pb.UserInstance {
		out := make([]*pb.UserInstance, n)
		for i := range out {
			out[i] = &pb.UserInstance{UserId: user, InstanceId: phone}
		}
		return out
	}
	return append([]validationCase{
		// Commands: length in bytes, charset, phone list.
		{"command ok", cmd("ls -l /system"), "", ""},
		{"command empty", cmd(""), "command", "string.min_len"},
		{"command 1024 bytes", cmd(long(1024)), "", ""},
		{"command 1025 bytes", cmd(long(1025)), "command", "string.max_bytes"},
		{"command all allowed characters", cmd("getprop ro.build_id:a-b/c.d"), "", ""},
		{"command semicolon", cmd("ls; rm -rf /"), "command", "command.charset"},
		{"command pipe", cmd("ls | sh"), "command", "command.charset"},
		{"command dollar", cmd("echo $HOME"), "command", "command.charset"},
		{"command quote", cmd("echo 'x'"), "command", "command.charset"},
		{"command newline", cmd("ls\nreboot"), "command", "command.charset"},
		{"command ampersand", cmd("ls && reboot"), "command", "command.charset"},
		{"command non-ascii", cmd("echo é"), "command", "command.charset"},
		{"phones none", cmd("ls", []string{}...), "instance_ids", "repeated.min_items"},
		{"phones 100", cmd("ls", ids(100)...), "", ""},
		{"phones 101", cmd("ls", ids(101)...), "instance_ids", "repeated.max_items"},
		{"phone id 32 chars", cmd("ls", long(32)), "", ""},
		{"phone id 33 chars", cmd("ls", long(33)), "instance_ids[0]", "string.max_len"},
		{"phone id empty", cmd("ls", ""), "instance_ids[0]", "string.min_len"},
		{"async command charset", &pb.AsyncCommandRequest{Command: "ls>x", InstanceIds: []string{"a"}}, "command", "command.charset"},
		{"run async command 101 phones", &pb.RunAsyncCommandRequest{Command: "ls", InstanceIds: ids(101)}, "instance_ids", "repeated.max_items"},

		// Task ids travel in the URL path.
		{"task id ok", &pb.GetTaskRequest{TaskId: "ZGCAorl8ocwK7U7_t0AfH26P-DjwDw8Yknf4"}, "", ""},
		{"task id empty", &pb.GetTaskRequest{}, "task_id", "string.min_len"},
		{"task id 128", &pb.GetTaskRequest{TaskId: long(128)}, "", ""},
		{"task id 129", &pb.GetTaskRequest{TaskId: long(129)}, "task_id", "string.max_len"},
		{"task id slash", &pb.GetTaskRequest{TaskId: "../x"}, "task_id", "task_id.charset"},
		{"watch task id slash", &pb.WatchTaskRequest{TaskId: "a/b"}, "task_id", "task_id.charset"},

		// SetVideoConfig: six combinations once each, rates and frame rates.
		{"video ok", video(func(s []*pb.InstanceSetting) []*pb.InstanceSetting { return s }), "", ""},
		{"video five combinations", video(func(s []*pb.InstanceSetting) []*pb.InstanceSetting { return s[:5] }),
			"instance_settings", "instance_settings.all_combinations"},
		{"video duplicate combination", video(func(s []*pb.InstanceSetting) []*pb.InstanceSetting {
			s[5].NetworkType, s[5].EncodingType = "WIFI", "H264"
			return s
		}), "instance_settings", "instance_settings.all_combinations"},
		{"video seven settings", video(func(s []*pb.InstanceSetting) []*pb.InstanceSetting { return append(s, s[0]) }),
			"instance_settings", "instance_settings.all_combinations"},
		{"video unknown network", video(func(s []*pb.InstanceSetting) []*pb.InstanceSetting {
			s[0].NetworkType = "5G"
			return s
		}), "instance_settings[0].network_type", "string.in"},
		{"video unknown encoding", video(func(s []*pb.InstanceSetting) []*pb.InstanceSetting {
			s[0].EncodingType = "VP9"
			return s
		}), "instance_settings[0].encoding_type", "string.in"},
		{"video no groups", video(func(s []*pb.InstanceSetting) []*pb.InstanceSetting {
			s[0].VideoSpecGroups = nil
			return s
		}), "instance_settings[0].video_spec_groups", "repeated.min_items"},
		{"video missing definition", video(func(s []*pb.InstanceSetting) []*pb.InstanceSetting {
			s[0].VideoSpecGroups[0].Definition_720P = nil
			return s
		}), "instance_settings[0].video_spec_groups[0].definition_720p", "required"},
		{"code rate 100", video(func(s []*pb.InstanceSetting) []*pb.InstanceSetting {
			s[0].VideoSpecGroups[0].Definition_540P.CodeRate = 100
			return s
		}), "", ""},
		{"code rate 0", video(func(s []*pb.InstanceSetting) []*pb.InstanceSetting {
			s[0].VideoSpecGroups[0].Definition_540P.CodeRate = 0
			return s
		}), "instance_settings[0].video_spec_groups[0].definition_540p.code_rate", "int32.gte_lte"},
		{"code rate 10000", video(func(s []*pb.InstanceSetting) []*pb.InstanceSetting {
			s[0].VideoSpecGroups[0].Definition_540P.CodeRate = 10000
			return s
		}), "", ""},
		{"code rate 10100", video(func(s []*pb.InstanceSetting) []*pb.InstanceSetting {
			s[0].VideoSpecGroups[0].Definition_540P.CodeRate = 10100
			return s
		}), "instance_settings[0].video_spec_groups[0].definition_540p.code_rate", "int32.gte_lte"},
		{"code rate 150", video(func(s []*pb.InstanceSetting) []*pb.InstanceSetting {
			s[0].VideoSpecGroups[0].Definition_540P.CodeRate = 150
			return s
		}), "instance_settings[0].video_spec_groups[0].definition_540p.code_rate", "code_rate.multiple_of_100"},
		{"fps 60", video(func(s []*pb.InstanceSetting) []*pb.InstanceSetting {
			s[0].VideoSpecGroups[0].Definition_1080P.Fps = 60
			return s
		}), "", ""},
		{"fps 45", video(func(s []*pb.InstanceSetting) []*pb.InstanceSetting {
			s[0].VideoSpecGroups[0].Definition_1080P.Fps = 45
			return s
		}), "instance_settings[0].video_spec_groups[0].definition_1080p.fps", "int32.in"},

		// Batch operations on phones.
		{"status 101 phones", &pb.BatchQueryStatusRequest{InstanceIds: ids(101)}, "instance_ids", "repeated.max_items"},
		{"reset no phones", &pb.BatchResetRequest{}, "instance_ids", "repeated.min_items"},
		{"reboot 100 phones", &pb.BatchRebootInstanceRequest{InstanceIds: ids(100)}, "", ""},
		{"backup 33-char id", &pb.BatchBackupInstancesRequest{InstanceIds: []string{long(33)}}, "instance_ids[0]", "string.max_len"},
		{"delete 101 phones", &pb.DeleteInstanceRequest{InstanceIds: ids(101)}, "instance_ids", "repeated.max_items"},
		{"delete ok", &pb.DeleteInstanceRequest{InstanceIds: []string{"XvH39QVW"}}, "", ""},

		// Device token: the id travels in the URL path.
		{"token ok", &pb.GetDeviceTokenRequest{InstanceId: "Q39YyZvI"}, "", ""},
		{"token id with slash", &pb.GetDeviceTokenRequest{InstanceId: "a/../b"}, "instance_id", "instance_id.charset"},
		{"token id 33", &pb.GetDeviceTokenRequest{InstanceId: long(33)}, "instance_id", "string.max_len"},

		// Assignment pairs.
		{"assign 100 pairs", &pb.AssignInstanceRequest{UserInstances: pairs(100, "u1", "p1")}, "", ""},
		{"assign 101 pairs", &pb.AssignInstanceRequest{UserInstances: pairs(101, "u1", "p1")}, "user_instances", "repeated.max_items"},
		{"assign none", &pb.AssignInstanceRequest{}, "user_instances", "repeated.min_items"},
		{"assign user 32", &pb.AssignInstanceRequest{UserInstances: pairs(1, long(32), "p1")}, "", ""},
		{"assign user 33", &pb.AssignInstanceRequest{UserInstances: pairs(1, long(33), "p1")}, "user_instances[0].user_id", "string.max_len"},
		{"unassign phone 33", &pb.UnassignInstanceRequest{UserInstances: pairs(1, "u", long(33))}, "user_instances[0].instance_id", "string.max_len"},
		{"unassign empty user", &pb.UnassignInstanceRequest{UserInstances: pairs(1, "", "p")}, "user_instances[0].user_id", "string.min_len"},

		// ListInstances: paging, times, pool tag.
		{"list ok", list(func(*pb.ListInstancesRequest) {}), "", ""},
		{"list page 0", list(func(r *pb.ListInstancesRequest) { r.PageNo = 0 }), "page_no", "int32.gte"},
		{"list size 0", list(func(r *pb.ListInstancesRequest) { r.PageSize = 0 }), "page_size", "int32.gte_lte"},
		{"list size 1000", list(func(r *pb.ListInstancesRequest) { r.PageSize = 1000 }), "", ""},
		{"list size 1001", list(func(r *pb.ListInstancesRequest) { r.PageSize = 1001 }), "page_size", "int32.gte_lte"},
		{"list times ok", list(func(r *pb.ListInstancesRequest) {
			r.QueryStartTime, r.QueryEndTime = "2023-08-15 14:30:45", "2023-08-15 14:30:45"
		}), "", ""},
		{"list time ISO", list(func(r *pb.ListInstancesRequest) { r.QueryStartTime = "2023-08-15T14:30:45Z" }), "query_start_time", "query_time.format"},
		{"list time not a date", list(func(r *pb.ListInstancesRequest) { r.QueryEndTime = "2023-02-30 14:30:45" }), "query_end_time", "query_time.calendar"},
		{"list end before start", list(func(r *pb.ListInstancesRequest) {
			r.QueryStartTime, r.QueryEndTime = "2023-08-15 14:30:45", "2023-08-15 14:30:44"
		}), "query_end_time", "query_time.order"},
		{"list pool CLOUD_APP", list(func(r *pb.ListInstancesRequest) { r.PoolSceneTag = "CLOUD_APP" }), "", ""},
		{"list pool camel", list(func(r *pb.ListInstancesRequest) { r.PoolSceneTag = "cloud_phone" }), "pool_scene_tag", "string.in"},
		{"list id 33", list(func(r *pb.ListInstancesRequest) { r.InstanceId = long(33) }), "instance_id", "string.max_len"},

		// Preparation and sessions.
		{"prepare ok", &pb.BatchPrepareInstancesRequest{UserId: "1008600000104285462", InstanceIds: []string{"iRJEVP96", "iRJEVP96"}}, "", ""},
		{"prepare no user", &pb.BatchPrepareInstancesRequest{InstanceIds: []string{"a"}}, "user_id", "string.min_len"},
		{"prepare user 33", &pb.BatchPrepareInstancesRequest{UserId: long(33), InstanceIds: []string{"a"}}, "user_id", "string.max_len"},
		{"progress no phone", &pb.ShowProgressRequest{UserId: "u"}, "instance_id", "string.min_len"},
		{"watch progress user 33", &pb.WatchPrepareProgressRequest{UserId: long(33), InstanceId: "p"}, "user_id", "string.max_len"},
		{"open session ok", &pb.OpenSessionRequest{UserId: "u", InstanceId: "p", Assign: true}, "", ""},
		{"open session path id", &pb.OpenSessionRequest{UserId: "u", InstanceId: "p?x=1"}, "instance_id", "instance_id.charset"},
		{"stop streaming empty", &pb.StopInstancesStreamingRequest{}, "instance_id", "string.min_len"},
		{"release session 33", &pb.ReleaseInstancesSessionRequest{InstanceId: long(33)}, "instance_id", "string.max_len"},

		// Identifiers: only the characters KooPhone's ids use; the seed's own examples pass.
		{"seed ids ok", &pb.AssignInstanceRequest{UserInstances: []*pb.UserInstance{{UserId: "1008600000104285462", InstanceId: "5srn5hL8"}}}, "", ""},
		{"id list NUL", &pb.BatchResetRequest{InstanceIds: []string{"ok", "a\x00b"}}, "instance_ids[1]", "string.pattern"},
		{"id list escape", &pb.SyncCommandRequest{Command: "id", InstanceIds: []string{"\x1b[2J"}}, "instance_ids[0]", "string.pattern"},
		{"id list bidi", &pb.BatchRebootInstanceRequest{InstanceIds: []string{"abc\u202edef"}}, "instance_ids[0]", "string.pattern"},
		{"id list traversal", &pb.BatchBackupInstancesRequest{InstanceIds: []string{"../x"}}, "instance_ids[0]", "string.pattern"},
		{"id list shell", &pb.DeleteInstanceRequest{InstanceIds: []string{"$(reboot)"}}, "instance_ids[0]", "string.pattern"},
		{"install id list slash", install(func(r *pb.InstallAppRequest) { r.InstanceIdList = []string{"a/b"} }), "instance_id_list[0]", "string.pattern"},
		{"assign user escape", &pb.AssignInstanceRequest{UserInstances: []*pb.UserInstance{{UserId: "u\x1b]0;x\x07", InstanceId: "p"}}}, "user_instances[0].user_id", "string.pattern"},
		{"assign phone NUL", &pb.AssignInstanceRequest{UserInstances: []*pb.UserInstance{{UserId: "u", InstanceId: "p\x00"}}}, "user_instances[0].instance_id", "string.pattern"},
		{"prepare user newline", &pb.BatchPrepareInstancesRequest{UserId: "u\nx", InstanceIds: []string{"a"}}, "user_id", "string.pattern"},
		{"progress phone space", &pb.ShowProgressRequest{UserId: "u", InstanceId: "a b"}, "instance_id", "string.pattern"},
		{"watch progress user NUL", &pb.WatchPrepareProgressRequest{UserId: "a\x00b", InstanceId: "c"}, "user_id", "string.pattern"},
		{"user email ok", &pb.ShowProgressRequest{UserId: "ann.lee@example.com", InstanceId: "a44uhlf7"}, "", ""},
		{"list name seed ok", list(func(r *pb.ListInstancesRequest) { r.InstanceName = "CCTEST-00001" }), "", ""},
		{"list name shell", list(func(r *pb.ListInstancesRequest) { r.InstanceName = "x;reboot" }), "instance_name", "string.pattern"},
		{"list phone escape", list(func(r *pb.ListInstancesRequest) { r.InstanceId = "\x1b" }), "instance_id", "string.pattern"},
		{"create prefix space", create(func(r *pb.CreateInstanceRequest) { r.InstanceNamePrefix = "a b" }), "instance_name_prefix", "string.pattern"},
		{"create prefix seed ok", create(func(r *pb.CreateInstanceRequest) { r.InstanceNamePrefix = "koophone" }), "", ""},

		// BatchShowSku: only type 0.
		{"sku type empty", &pb.BatchShowSkuRequest{}, "", ""},
		{"sku type 0", &pb.BatchShowSkuRequest{Type: "0"}, "", ""},
		{"sku type 1", &pb.BatchShowSkuRequest{Type: "1"}, "type", "string.in"},

		// CreateInstance.
		{"create ok", goodCreate(), "", ""},
		{"create os AOSP11", create(func(r *pb.CreateInstanceRequest) { r.Os = "AOSP11" }), "", ""},
		{"create os missing", create(func(r *pb.CreateInstanceRequest) { r.Os = "" }), "os", "string.in"},
		{"create os AOSP10", create(func(r *pb.CreateInstanceRequest) { r.Os = "AOSP10" }), "os", "string.in"},
		{"create sku 64", create(func(r *pb.CreateInstanceRequest) { r.InstanceSkuId = long(64) }), "", ""},
		{"create sku 65", create(func(r *pb.CreateInstanceRequest) { r.InstanceSkuId = long(65) }), "instance_sku_id", "string.max_len"},
		{"create band sku 65", create(func(r *pb.CreateInstanceRequest) { r.BandSkuId = long(65) }), "band_sku_id", "string.max_len"},
		{"create region 65", create(func(r *pb.CreateInstanceRequest) { r.RegionId = long(65) }), "region_id", "string.max_len"},
		{"create region missing", create(func(r *pb.CreateInstanceRequest) { r.RegionId = "" }), "region_id", "string.min_len"},
		{"create prefix 14", create(func(r *pb.CreateInstanceRequest) { r.InstanceNamePrefix = long(14) }), "", ""},
		{"create prefix 15", create(func(r *pb.CreateInstanceRequest) { r.InstanceNamePrefix = long(15) }), "instance_name_prefix", "string.max_len"},
		{"create band 0", create(func(r *pb.CreateInstanceRequest) { r.BandSize = 0 }), "band_size", "double.gt_lte"},
		{"create count 0", create(func(r *pb.CreateInstanceRequest) { r.Count = 0 }), "count", "int32.gte_lte"},
		{"create count 1500", create(func(r *pb.CreateInstanceRequest) { r.Count = 1500 }), "", ""},
		{"create count 1501", create(func(r *pb.CreateInstanceRequest) { r.Count = 1501 }), "count", "int32.gte_lte"},
		{"create no charge", create(func(r *pb.CreateInstanceRequest) { r.ChargeParam = nil }), "charge_param", "required"},
		{"create charging mode unset", create(func(r *pb.CreateInstanceRequest) { r.ChargeParam.ChargingMode = 0 }), "charge_param.charging_mode", "enum.not_in"},
		{"create charging mode 2", create(func(r *pb.CreateInstanceRequest) { r.ChargeParam.ChargingMode = 2 }), "charge_param.charging_mode", "enum.defined_only"},
		{"create period type unset", create(func(r *pb.CreateInstanceRequest) { r.ChargeParam.PeriodType = 0 }), "charge_param.period_type", "enum.not_in"},
		{"create month 9", create(func(r *pb.CreateInstanceRequest) { r.ChargeParam.PeriodNum = 9 }), "", ""},
		{"create month 10", create(func(r *pb.CreateInstanceRequest) { r.ChargeParam.PeriodNum = 10 }), "charge_param.period_num", "int32.gte_lte"},
		{"create month 0", create(func(r *pb.CreateInstanceRequest) { r.ChargeParam.PeriodNum = 0 }), "charge_param.period_num", "int32.gte_lte"},
		{"create year 3", create(func(r *pb.CreateInstanceRequest) {
			r.ChargeParam.PeriodType, r.ChargeParam.PeriodNum = pb.PeriodType_PERIOD_TYPE_YEAR, 3
		}), "", ""},
		{"create year 4", create(func(r *pb.CreateInstanceRequest) {
			r.ChargeParam.PeriodType, r.ChargeParam.PeriodNum = pb.PeriodType_PERIOD_TYPE_YEAR, 4
		}), "charge_param.period_num", "period_num.year_range"},
		{"create network 65", create(func(r *pb.CreateInstanceRequest) { r.Network = long(65) }), "network", "string.in"},

		// InstallApp.
		{"install ok", goodInstall(), "", ""},
		{"install name 100", install(func(r *pb.InstallAppRequest) { r.ObjectName = long(100) }), "", ""},
		{"install name 101", install(func(r *pb.InstallAppRequest) { r.ObjectName = long(101) }), "object_name", "string.max_len"},
		{"install file no suffix", install(func(r *pb.InstallAppRequest) { r.FileName = "meituan" }), "file_name", "file_name.suffix"},
		{"install file 101", install(func(r *pb.InstallAppRequest) { r.FileName = long(97) + ".apk" }), "file_name", "string.max_len"},
		{"install version 101", install(func(r *pb.InstallAppRequest) { r.ObjectVersion = long(101) }), "object_version", "string.max_len"},
		{"install size decimal", install(func(r *pb.InstallAppRequest) { r.ObjectSize = "35.5" }), "", ""},
		{"install size 2048", install(func(r *pb.InstallAppRequest) { r.ObjectSize = "2048" }), "", ""},
		{"install size 2048.1", install(func(r *pb.InstallAppRequest) { r.ObjectSize = "2048.1" }), "object_size", "object_size.max_2gb"},
		{"install size not a number", install(func(r *pb.InstallAppRequest) { r.ObjectSize = "12MB" }), "object_size", "object_size.decimal"},
		{"install size negative", install(func(r *pb.InstallAppRequest) { r.ObjectSize = "-1" }), "object_size", "object_size.decimal"},
		{"install biz xapk", install(func(r *pb.InstallAppRequest) { r.BizType = "xapk" }), "biz_type", "string.in"},
		{"install content type 65", install(func(r *pb.InstallAppRequest) { r.ContentType = long(65) }), "content_type", "string.max_len"},
		{"install md5 empty", install(func(r *pb.InstallAppRequest) { r.ContentMd5 = "" }), "", ""},
		{"install md5 201", install(func(r *pb.InstallAppRequest) { r.ContentMd5 = long(201) }), "content_md5", "string.max_len"},
		{"install url http", install(func(r *pb.InstallAppRequest) { r.InstallPackageUrl = "http://obs.example.com/a.apk" }), "install_package_url", "install_package_url.https"},
		{"install url 2000", install(func(r *pb.InstallAppRequest) { r.InstallPackageUrl = "https://obs.example.com/" + long(2000-24) }), "", ""},
		{"install url 2001", install(func(r *pb.InstallAppRequest) { r.InstallPackageUrl = "https://obs.example.com/" + long(2001-24) }), "install_package_url", "string.max_len"},
		{"install 101 phones", install(func(r *pb.InstallAppRequest) { r.InstanceIdList = ids(101) }), "instance_id_list", "repeated.max_items"},
		{"install fast", install(func(r *pb.InstallAppRequest) { r.FastInstall = proto.Bool(true) }), "", ""},
	}, newerValidationCases()...)
}

func TestValidation(t *testing.T) {
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range validationCases() {
		t.Run(tc.name, func(t *testing.T) {
			err := v.Validate(tc.msg)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			st, ok := status.FromError(err)
			if !ok || st.Code() != codes.InvalidArgument {
				t.Fatalf("want INVALID_ARGUMENT, got %v", err)
			}
			var br *errdetails.BadRequest
			for _, d := range st.Details() {
				if b, ok := d.(*errdetails.BadRequest); ok {
					br = b
				}
			}
			if br == nil {
				t.Fatalf("no BadRequest in %v", st.Details())
			}
			vs := br.GetFieldViolations()
			if len(vs) != 1 || vs[0].GetField() != tc.field || vs[0].GetReason() != tc.reason {
				t.Fatalf("want one violation %s/%s, got %v", tc.field, tc.reason, vs)
			}
			if vs[0].GetDescription() == "" {
				t.Fatal("violation has no description")
			}
			if !strings.Contains(st.Message(), tc.field) {
				t.Fatalf("status message %q does not name the field", st.Message())
			}
		})
	}
}

func TestValidationReportsEveryBadField(t *testing.T) {
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	req := goodCreate()
	req.Os, req.Count, req.InstanceNamePrefix = "", 0, strings.Repeat("x", 20)
	st := status.Convert(v.Validate(req))
	var fields []string
	for _, d := range st.Details() {
		if b, ok := d.(*errdetails.BadRequest); ok {
			for _, fv := range b.GetFieldViolations() {
				fields = append(fields, fv.GetField())
			}
		}
	}
	if strings.Join(fields, ",") != "os,instance_name_prefix,count" {
		t.Fatalf("violations for %v", fields)
	}
}

// FuzzValidate feeds arbitrary bytes as each request type: validation must never panic, and must answer either
// nil or INVALID_ARGUMENT.
func FuzzValidate(f *testing.F) {
	v, err := NewValidator()
	if err != nil {
		f.Fatal(err)
	}
	for _, tc := range validationCases() {
		b, _ := proto.Marshal(tc.msg)
		f.Add(b)
	}
	msgs := requestMessages()
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range msgs {
			m = proto.Clone(m)
			proto.Reset(m)
			if proto.Unmarshal(b, m) != nil {
				continue
			}
			if err := v.Validate(m); err != nil && status.Code(err) != codes.InvalidArgument {
				t.Fatalf("%T: %v", m, err)
			}
		}
	})
}
