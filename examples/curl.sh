#!/usr/bin/env bash
# Calls koophone-gateway's REST mirror with curl (and jq to pick fields): list phones, a synchronous command, an
# asynchronous command followed with WatchTask (newline-delimited JSON), an error's ErrorInfo and BadRequests decoded,
# a wrong verb and a misspelt query parameter, and OpenSession to the end as Server-Sent Events.
#
#   examples/curl.sh [http://host:port]
set -euo pipefail
base=${1:-${KOOPHONE_HTTP_URL:-http://127.0.0.1:8080}}
phone_index=3 # each example opens its session on its own phone, so they can run against one gateway
json=(-H 'Content-Type: application/json')

list=$(curl -sf "$base/v1/instances/batch-query?page_no=1&page_size=5")
echo "list: $(jq -r '.total_count' <<<"$list") phones; this page: $(jq -r '[.result[].instance_id] | join(", ")' <<<"$list")"
phone=$(jq -r '.result[0].instance_id' <<<"$list")
session_phone=$(jq -r ".result[$phone_index].instance_id" <<<"$list")

curl -sf "${json[@]}" "$base/v1/instances/sync-command" -d "{\"command\":\"getprop ro.product.model\",\"instance_ids\":[\"$phone\"]}" |
	jq -r '.cmd_results[] | "sync: \(.instance_id) \(.status) \(.execute_msg | tojson)"'

task=$(curl -sf "${json[@]}" "$base/v1/instances/async-command" -d "{\"command\":\"getprop ro.serialno\",\"instance_ids\":[\"$phone\"]}" | jq -r .task_id)
echo "async: task $task"
# A stream answers 200 with Content-Type application/x-ndjson: one {"result": …} object per line, and a last
# {"error": google.rpc.Status} line if it fails after it began.
curl -sfN -w 'watch: content-type %{content_type}\n' "$base/v1/instances/tasks/$task/watch" |
	jq -rR 'fromjson? // . | if type == "object" then
	  (if .error then "watch: error \(.error.code) \(.error.message)"
	   else .result | "watch: running=\(.running_count) succeeded=\(.succeeded_count) failed=\(.failed_count) terminal=\(.terminal)" end)
	  else . end'

# Errors: the HTTP status of the gRPC code and {"error": google.rpc.Status} with its details; X-Request-Id always.
error_of() { jq -r --arg t "type.googleapis.com/google.rpc.$1" '.error.details[] | select(."@type" == $t)'; }
status_and_body() { curl -s -w '\n%{http_code}' "$@"; }
out=$(status_and_body "${json[@]}" "$base/v1/instances/sync-command" -d '{"command":"ls","instance_ids":["nosuch01"]}')
code=$(tail -n1 <<<"$out")
sed '$d' <<<"$out" | error_of ErrorInfo | jq -r --arg code "$code" '"error: HTTP \($code) reason=\(.reason) domain=\(.domain) operation=\(.metadata.operation)"'

out=$(status_and_body "${json[@]}" "$base/v1/instances/sync-command" -d "{\"command\":\"reboot; rm -rf /\",\"instance_ids\":[\"$phone\"]}")
code=$(tail -n1 <<<"$out")
sed '$d' <<<"$out" | error_of BadRequest | jq -r --arg code "$code" '.field_violations[] | "bad request: HTTP \($code) \(.field) (\(.reason)): \(.description)"'

out=$(status_and_body -D - "${json[@]}" "$base/v1/instances/sync-command" -d '{"command":"ls","instance_idz":["x"]}')
code=$(tail -n1 <<<"$out")
rid=$(grep -i '^x-request-id:' <<<"$out" | tr -d '\r' | cut -d' ' -f2)
sed '1,/^\r$/d; $d' <<<"$out" | error_of BadRequest |
	jq -r --arg code "$code" --arg rid "$rid" '.field_violations[] | "bad body: HTTP \($code) \(.field) (\(.reason)): \(.description) request_id=\($rid)"'

out=$(status_and_body "$base/v1/instances/batch-query?page_no=1&page_sise=5")
code=$(tail -n1 <<<"$out")
sed '$d' <<<"$out" | error_of BadRequest | jq -r --arg code "$code" '.field_violations[] | "bad query: HTTP \($code) \(.field) (\(.reason)): \(.description)"'

allow=$(curl -s -o /dev/null -D - -X DELETE "$base/v1/instances/sync-command" | tr -d '\r' | awk 'NR==1 {s=$2} tolower($1)=="allow:" {a=$2} END {print s " Allow: " a}')
echo "wrong verb: HTTP $allow"

# OpenSession as Server-Sent Events (Accept: text/event-stream): "event: result" (with an "id:") or "event: error",
# JSON in "data:", and a last "event: end" with the final code ({"code":0}); a "retry:" field comes first.
curl -sfN -H 'Accept: text/event-stream' "${json[@]}" "$base/v1/instances/$session_phone/open-session" \
	-d '{"user_id":"example-curl","assign":true}' -w 'session: end (content-type %{content_type})\n' |
	while IFS= read -r line; do
		case $line in
		"event: "*) event=${line#event: } ;;
		"id: "* | "retry: "*) ;;
		"data: "*)
			jq -r --arg event "$event" '
			  if $event == "end" then empty
			  elif $event == "error" then "session: error \(.error.code) \(.error.message)"
			  elif .result.prepared then "session: prepared \(.result.prepared.instance_id) \(.result.prepared.status) assigned=\(.result.assigned)"
			  elif .result.progress then "session: progress \(.result.progress.status) waiting=\(.result.progress.waiting_count)"
			  else .result.session as $s | "session: ready signalling=\($s.resource.rtc.ice_signaling.signaling_url) ice_servers=\($s.resource.rtc.ice_signaling.ice_servers | length) device_token=(\($s.device_token | length) characters, not shown)" end' <<<"${line#data: }"
			;;
		"") ;;
		*) echo "$line" ;;
		esac
	done
