#!/usr/bin/env bash
# Installs what `make test` needs beyond Go (servers, browsers, other languages' runtimes), from Debian's packages
# and the npm registry only. Fast when everything is already there: apt is touched only for a missing command.
set -euo pipefail

missing=()
# need_apt COMMAND PACKAGE...: install PACKAGE(s) when COMMAND is not on PATH (or is not an existing file path).
need_apt() {
	local cmd=$1; shift
	if [[ $cmd == /* ]]; then [[ -e $cmd ]] && return 0; else command -v "$cmd" >/dev/null 2>&1 && return 0; fi
	missing+=("$@")
}

# Each test dependency is one line below: the command that proves it is there, and the Debian package(s) that bring it.
need_apt protoc protobuf-compiler                                                # Python client generation (make clients)
need_apt grpc_python_plugin protobuf-compiler-grpc                               # Python grpc stubs
need_apt /usr/lib/python3/dist-packages/grpc/__init__.py python3-grpcio          # examples/python
need_apt /usr/lib/python3/dist-packages/google/protobuf/__init__.py python3-protobuf
need_apt chromium chromium                                                       # the /docs browser test
need_apt node nodejs                                                             # examples/node, npm tools
need_apt npm npm
need_apt jq jq                                                                   # examples/curl.sh
need_apt curl curl
need_apt redis-server redis-server # internal/coord and the scale-out test start their own

if ((${#missing[@]})); then
	echo "test-deps: installing ${missing[*]}"
	sudo_=""; [[ $(id -u) -eq 0 ]] || sudo_="sudo"
	$sudo_ apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "test-deps: ready"
