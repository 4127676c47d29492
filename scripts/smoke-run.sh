#!/usr/bin/env bash
# smoke-run.sh: `make test-smoke`. Builds the gateway, starts it as `make run` does (embedded simulator, default
# settings) but on free loopback ports, so it cannot collide with a `make run` or another test, runs
# scripts/smoke.sh against it and stops it. The simulator's jobs and preparation steps are shortened (a smoke run
# waits on every stream to its end); SMOKE_GATEWAY_FLAGS replaces those flags.
set -euo pipefail
cd "$(dirname "$0")/.."
flags=${SMOKE_GATEWAY_FLAGS---sim-job-duration=300ms --sim-prepare-step=100ms}

tmp=$(mktemp -d)
pid=
cleanup() {
	if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$tmp/koophone-gateway" ./cmd/server

# Port 0: the kernel picks free ports; the server's "serving" log line says which.
# shellcheck disable=SC2086 # flags is a list of flags
"$tmp/koophone-gateway" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 $flags 2>"$tmp/log" &
pid=$!
grpc= http=
for _ in $(seq 150); do # up to 15 s
	line=$(grep -m1 'msg=serving' "$tmp/log" || true)
	if [[ -n $line ]]; then
		grpc=$(sed -E 's/.* grpc=([^ ]+).*/\1/' <<<"$line")
		http=$(sed -E 's/.* http=([^ ]+).*/\1/' <<<"$line")
		[[ $(curl -s -o /dev/null -w '%{http_code}' "http://$http/readyz") == 200 ]] && break
	fi
	kill -0 "$pid" 2>/dev/null || { echo "smoke-run: the gateway exited:"; cat "$tmp/log"; exit 1; }
	sleep 0.1
done
if [[ -z $http ]] || [[ $(curl -s -o /dev/null -w '%{http_code}' "http://$http/readyz") != 200 ]]; then
	echo "smoke-run: the gateway did not become ready in 15s; its log:"; cat "$tmp/log"; exit 1
fi
echo "smoke-run: gateway on gRPC $grpc, REST $http"
if ! scripts/smoke.sh "$grpc" "$http"; then
	echo "smoke-run: the gateway's log:"; tail -50 "$tmp/log"; exit 1
fi
