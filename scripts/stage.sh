#!/usr/bin/env bash
# stage.sh NAME COMMAND...: runs COMMAND and says how long it took, so a slow CI run shows where its time went.
# With STAGE_LOG set (.ci/run sets it), each stage's time is also appended there for the closing summary.
set -uo pipefail
name=$1; shift
start=$(date +%s.%N)
echo "=== stage $name: $*"
"$@"; rc=$?
secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
status=ok; ((rc == 0)) || status="FAILED (exit $rc)"
echo "=== stage $name: $status in ${secs}s"
[[ -n ${STAGE_LOG:-} ]] && printf '%-14s %8ss  %s\n' "$name" "$secs" "$status" >>"$STAGE_LOG"
exit $rc
