#!/usr/bin/env bash
# Smoke test of a running gateway (`make run` in another terminal): every RPC once through grpcurl and once
# through curl on the REST mirror, against the embedded simulator's fleet. Prints one line per call and a total;
# exits 1 if any call failed. Usage: scripts/smoke.sh [grpc-addr] [http-addr]
# (`make test-smoke` starts a gateway of its own on free ports and runs this against it: scripts/smoke-run.sh.)
set -uo pipefail
GRPC=${1:-127.0.0.1:9090}
HTTP=${2:-127.0.0.1:8080}
GRPCURL=${GRPCURL:-$(dirname "$0")/../bin/grpcurl}
svc=koophone.v1.InstanceService
ok=0 fail=0
out_file=$(mktemp)
trap 'rm -f "$out_file"' EXIT

g() { # g METHOD JSON
	if out=$("$GRPCURL" -plaintext -max-time 30 -d "$2" "$GRPC" "$1" 2>&1); then
		ok=$((ok + 1)); echo "grpc OK   $1"
	else
		fail=$((fail + 1)); echo "grpc FAIL $1: $(echo "$out" | head -3)"
	fi
	last=$out
}
c() { # c METHOD PATH [JSON]: a body goes as JSON (the mirror refuses curl -d's default form type with 415)
	code=$(curl -s -o "$out_file" -w '%{http_code}' -X "$1" "$HTTP$2" ${3:+-H 'Content-Type: application/json' -d "$3"})
	if [ "$code" = 200 ]; then
		ok=$((ok + 1)); echo "curl OK   $1 $2"
	else
		fail=$((fail + 1)); echo "curl FAIL $1 $2: HTTP $code $(head -c 300 "$out_file")"
	fi
	last=$(cat "$out_file")
}
json() { python3 -c "import json,sys; print($1)"; }

c GET '/v1/instances/batch-query?page_no=1&page_size=20'
read -r -a PH <<<"$(echo "$last" | json '" ".join(r["instance_id"] for r in json.load(sys.stdin)["result"])')"
[ "${#PH[@]}" -ge 14 ] || { echo "need at least 14 phones, got ${#PH[@]}"; exit 1; }
g $svc/ListInstances '{"page_no":1,"page_size":3}'

g $svc/SyncCommand '{"command":"id","instance_ids":["'"${PH[0]}"'"]}'
c POST /v1/instances/sync-command '{"command":"id","instance_ids":["'"${PH[0]}"'"]}'
g $svc/AsyncCommand '{"command":"ls","instance_ids":["'"${PH[0]}"'"]}'
task=$(echo "$last" | json 'json.load(sys.stdin)["taskId"]')
c POST /v1/instances/async-command '{"command":"ls","instance_ids":["'"${PH[0]}"'"]}'
g $svc/GetTask '{"task_id":"'"$task"'"}'
c GET "/v1/instances/tasks/$task"
video=$(json 'json.dumps([{"network_type":n,"encoding_type":e,"video_spec_groups":[{"definition_540p":{"code_rate":6000,"fps":30},"definition_720p":{"code_rate":6000,"fps":30},"definition_1080p":{"code_rate":8000,"fps":30}}]} for n in ("MOBILE_NETWORK","WIFI","WIRED") for e in ("H264","H265")])' </dev/null)
g $svc/SetVideoConfig '{"instance_ids":["'"${PH[1]}"'"],"instance_settings":'"$video"'}'
c PUT /v1/instances/video-setting '{"instance_ids":["'"${PH[1]}"'"],"instance_settings":'"$video"'}'
g $svc/BatchQueryStatus '{"instance_ids":["'"${PH[1]}"'"]}'
c POST /v1/instances/batch-query-status '{"instance_ids":["'"${PH[1]}"'"]}'
g $svc/BatchReset '{"instance_ids":["'"${PH[2]}"'"]}'
c POST /v1/instances/batch-reset '{"instance_ids":["'"${PH[3]}"'"]}'

# The streaming flow, step by step: assign, prepare, follow the progress to ready, then the device token.
g $svc/AssignInstance '{"user_instances":[{"user_id":"smoke1","instance_id":"'"${PH[4]}"'"}]}'
c POST /v1/instances/assign '{"user_instances":[{"user_id":"smoke2","instance_id":"'"${PH[5]}"'"}]}'
g $svc/BatchPrepareInstances '{"user_id":"smoke1","instance_ids":["'"${PH[4]}"'"]}'
c POST /v1/instances/prepare '{"user_id":"smoke2","instance_ids":["'"${PH[5]}"'"]}'
g $svc/ShowProgress '{"user_id":"smoke1","instance_id":"'"${PH[4]}"'"}'
c POST /v1/instances/prepare-progress '{"user_id":"smoke2","instance_id":"'"${PH[5]}"'"}'
g $svc/WatchPrepareProgress '{"user_id":"smoke1","instance_id":"'"${PH[4]}"'"}'
c POST /v1/instances/prepare-progress/watch '{"user_id":"smoke2","instance_id":"'"${PH[5]}"'"}'
g $svc/GetDeviceToken '{"instance_id":"'"${PH[4]}"'"}'
c POST "/v1/instances/${PH[5]}/auth"
g $svc/StopInstancesStreaming '{"instance_id":"'"${PH[4]}"'"}'
c POST /v1/instances/streaming/stop '{"instance_id":"'"${PH[5]}"'"}'
g $svc/ReleaseInstancesSession '{"instance_id":"'"${PH[4]}"'"}'
c POST /v1/instances/session/release '{"instance_id":"'"${PH[5]}"'"}'
g $svc/BatchBackupInstances '{"instance_ids":["'"${PH[4]}"'"]}'
c POST /v1/instances/backup '{"instance_ids":["'"${PH[5]}"'"]}'
g $svc/UnassignInstance '{"user_instances":[{"user_id":"smoke1","instance_id":"'"${PH[4]}"'"}]}'
c POST /v1/instances/unassign '{"user_instances":[{"user_id":"smoke2","instance_id":"'"${PH[5]}"'"}]}'

g $svc/BatchRebootInstance '{"instance_ids":["'"${PH[6]}"'"]}'
c POST /v1/instances/reboot '{"instance_ids":["'"${PH[7]}"'"]}'

g koophone.v1.OrderService/BatchShowSku '{}'
c GET '/v1/instances/sku?type=0'
order='{"os":"AOSP9","instance_sku_id":"kp.professional.xlarge.32g.2","band_sku_id":"kp.bandwidth","region_id":"cn-north-7","instance_name_prefix":"smoke","band_size":4,"count":1,"charge_param":{"charging_mode":"CHARGING_MODE_YEARLY_MONTHLY","period_type":"PERIOD_TYPE_MONTH","period_num":1,"is_auto_pay":true}}'
g koophone.v1.OrderService/CreateInstance "$order"
new1=$(echo "$last" | json 'json.load(sys.stdin)["instanceInfos"][0]["instanceId"]')
c POST /v1/instances/create "$order"
new2=$(echo "$last" | json 'json.load(sys.stdin)["instance_infos"][0]["instance_id"]')
g koophone.v1.OrderService/DeleteInstance '{"instance_ids":["'"$new1"'"]}'
c POST /v1/instances/delete '{"instance_ids":["'"$new2"'"]}'

app='"object_name":"com.example.smoke","file_name":"smoke.apk","object_version":"1.0.'"$(date +%s%N)"'","object_size":"12","biz_type":"apk","content_type":"application/octet-stream","install_package_url":"https://obs.example.com/smoke.apk"'
g koophone.v1.AppService/InstallApp '{'"$app"',"instance_id_list":["'"${PH[8]}"'"]}'
c POST /v1/instances/app/install '{'"$app"',"instance_id_list":["'"${PH[9]}"'"]}'

g $svc/WatchTask '{"task_id":"'"$task"'"}'
c GET "/v1/instances/tasks/$task/watch"
g $svc/RunAsyncCommand '{"command":"id","instance_ids":["'"${PH[10]}"'"]}'
c POST /v1/instances/async-command/run '{"command":"id","instance_ids":["'"${PH[11]}"'"]}'
g $svc/OpenSession '{"user_id":"smoke3","instance_id":"'"${PH[12]}"'","assign":true}'
c POST "/v1/instances/${PH[13]}/open-session" '{"user_id":"smoke4","assign":true}'

# Operation 21 of the newer reference, and the fleet RPCs (small selections: they run to the end).
g koophone.v1.AppService/ListInstanceApp '{"instance_id":"'"${PH[8]}"'","page_no":1,"page_size":20}'
c GET "/v1/instances/${PH[9]}/app-list?page_no=1&page_size=20&app_type=APP_TYPE_THIRD_PARTY"
fleet=koophone.v1.FleetService
two='{"instance_ids":["'"${PH[0]}"'","'"${PH[1]}"'"]}'
g $fleet/ListAllInstances '{"selector":{"filter":{"all":true}}}'
c POST /v1/fleet/instances/list '{"selector":{"filter":{"name_prefix":"sim-0000"}}}'
g $fleet/RunFleetCommand '{"command":"id","selector":'"$two"'}'
c POST /v1/fleet/command/run '{"command":"id","mode":"FLEET_COMMAND_MODE_SYNC","selector":'"$two"'}'
g $fleet/ResetFleet '{"selector":{"instance_ids":["'"${PH[2]}"'"]}}'
c POST /v1/fleet/reset '{"selector":{"instance_ids":["'"${PH[3]}"'"]}}'
g $fleet/RebootFleet '{"selector":{"instance_ids":["'"${PH[10]}"'"]}}'
c POST /v1/fleet/reboot '{"selector":{"instance_ids":["'"${PH[11]}"'"]}}'
g $fleet/BackupFleet '{"selector":{"instance_ids":["'"${PH[12]}"'"]}}'
c POST /v1/fleet/backup '{"selector":{"instance_ids":["'"${PH[13]}"'"]}}'
app2='"object_name":"com.example.smokefleet","file_name":"smoke.apk","object_version":"2.0.'"$(date +%s%N)"'","object_size":"12","biz_type":"apk","content_type":"application/octet-stream","install_package_url":"https://obs.example.com/smoke.apk"'
g $fleet/InstallAppOnFleet '{'"$app2"',"selector":'"$two"'}'
c POST /v1/fleet/app/install '{'"$app2"',"selector":{"instance_ids":["'"${PH[2]}"'"]}}'
g $fleet/ListFleetApps '{"package":"com.example.smokefleet","selector":{"filter":{"all":true}}}'
c POST /v1/fleet/app-list '{"package":"com.example.smokefleet","selector":'"$two"'}'

echo "TOTAL ok=$ok fail=$fail"
[ "$fail" -eq 0 ]
