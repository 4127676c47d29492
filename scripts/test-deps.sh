#!/usr/bin/env bash
# Installs what `make test` needs beyond Go, and checks the versions that matter: Debian/Ubuntu packages through
# apt (as root or through sudo; without either it prints the command to run and stops), and Node.js as new as the
# npm lock files' `engines` require. Fast when everything is already there: apt is touched only for a missing
# command, and nothing is downloaded when the Node on PATH is new enough.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${GOBIN:-$PWD/bin} # the Makefile puts ./bin first on PATH

# The Node installed into ./bin when the one on PATH is older than the lock files require: the npm registry's
# node-linux-<arch> package (the official binary), pinned with its integrity.
NODE_VERSION=22.23.5
declare -A NODE_INTEGRITY=(
	[x64]=sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw==
	[arm64]=sha512-e1LOUGKVruPGuLVutn8+Cgm5pI1APm4Kvh+zbb/qe/ZpD9s+TQby5iUgZOWmPpbSKpj0Td8DP1N0NEnXasHizg==
)

missing=()
# need_apt COMMAND PACKAGE...: install PACKAGE(s) when COMMAND is not on PATH (or is not an existing file path).
need_apt() {
	local cmd=$1; shift
	if [[ $cmd == /* ]]; then [[ -e $cmd ]] && return 0; else command -v "$cmd" >/dev/null 2>&1 && return 0; fi
	missing+=("$@")
}

# Each test dependency is one line below: the command that proves it is there, and the Debian package(s) that bring it.
need_apt gcc gcc libc6-dev                                                       # go test -race needs cgo
need_apt git git                                                                 # make lint lists files with git
need_apt python3 python3                                                         # scripts/smoke.sh, examples/python
need_apt protoc protobuf-compiler                                                # Python client generation (make clients)
need_apt grpc_python_plugin protobuf-compiler-grpc                               # Python grpc stubs
need_apt /usr/lib/python3/dist-packages/grpc/__init__.py python3-grpcio          # examples/python
need_apt /usr/lib/python3/dist-packages/google/protobuf/__init__.py python3-protobuf
need_apt chromium chromium                                                       # the /docs browser test
need_apt node nodejs                                                             # examples/node, npm tools (version: below)
need_apt npm npm
need_apt jq jq                                                                   # examples/curl.sh, README examples
need_apt curl curl
need_apt redis-server redis-server # internal/coord and the scale-out test start their own
# The Python package (scripts/test-client-python.sh, examples/python/run.sh): its wheel is built without PyPI by
# Debian's pip, setuptools and wheel (pip wheel --no-build-isolation), and installed into a virtual environment made
# by Debian's venv (its ensurepip comes with python3-venv); openssl makes the certificates of its TLS tests.
need_apt /usr/bin/python3 python3
need_apt /usr/lib/python3/dist-packages/pip/__init__.py python3-pip
need_apt /usr/lib/python3/dist-packages/setuptools/__init__.py python3-setuptools
need_apt /usr/lib/python3/dist-packages/wheel/__init__.py python3-wheel
need_apt "/usr/lib/python$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo 3)/ensurepip/__init__.py" python3-venv
need_apt openssl openssl

if ((${#missing[@]})); then
	echo "test-deps: missing ${missing[*]}"
	if [[ $(id -u) -eq 0 ]]; then
		sudo_=()
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
		sudo_=(sudo)
	else
		echo "test-deps: installing them needs root; run as root (or give this user sudo) and retry, or install them:"
		echo "  sudo apt-get update && sudo apt-get install --no-install-recommends ${missing[*]}"
		exit 1
	fi
	"${sudo_[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo_[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# version_at_least HAVE WANT: dotted versions compared field by field.
version_at_least() { [[ $(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1) == "$2" ]]; }

# protoc 3.15 added proto3 `optional`, which the contract uses.
protoc_version=$(protoc --version | awk '{print $2}')
version_at_least "$protoc_version" 3.15 ||
	{ echo "test-deps: protoc $protoc_version is older than 3.15: install protobuf-compiler 3.15 or newer"; exit 1; }

# Node: every package in the lock files declares the Node versions it supports (`engines`); the Node used must
# satisfy all of them. node-engines.py prints the ranges a version misses.
node_misses() { python3 scripts/node-engines.py "$1" tools/npm/package-lock.json examples/node/package-lock.json; }
have=$(node --version 2>/dev/null || echo none)
if misses=$(node_misses "${have#v}"); then
	echo "test-deps: node $have satisfies the npm lock files' engines"
else
	echo "test-deps: node $have is too old for the npm lock files:"; echo "$misses" | sed 's/^/  /'
	node_misses "$NODE_VERSION" >/dev/null || { echo "test-deps: the pinned Node $NODE_VERSION does not satisfy them either: update NODE_VERSION in $0"; exit 1; }
	case $(uname -m) in x86_64) arch=x64 ;; aarch64 | arm64) arch=arm64 ;; *) arch= ;; esac
	if [[ -z $arch || $(uname -s) != Linux ]]; then
		echo "test-deps: install Node $NODE_VERSION (or any version the lock files accept) and put it first on PATH"; exit 1
	fi
	dir=$BIN/node-v$NODE_VERSION
	if [[ ! -x $dir/bin/node ]]; then
		echo "test-deps: installing Node $NODE_VERSION into $dir (npm registry package node-linux-$arch)"
		tmp=$(mktemp -d)
		trap 'rm -rf "$tmp"' EXIT
		tgz=node-linux-$arch-$NODE_VERSION.tgz
		curl -fsSL -o "$tmp/$tgz" "https://registry.npmjs.org/node-linux-$arch/-/$tgz"
		want=${NODE_INTEGRITY[$arch]#sha512-}
		got=$(python3 -c 'import base64,hashlib,sys;print(base64.b64encode(hashlib.sha512(open(sys.argv[1],"rb").read()).digest()).decode())' "$tmp/$tgz")
		[[ $got == "$want" ]] || { echo "test-deps: $tgz does not match its pinned integrity"; exit 1; }
		mkdir -p "$dir"
		tar -xzf "$tmp/$tgz" -C "$dir" --strip-components=1
	fi
	ln -sfn "node-v$NODE_VERSION/bin/node" "$BIN/node"
	echo "test-deps: $BIN/node is Node $("$BIN/node" --version) (make puts $BIN first on PATH)"
fi
echo "test-deps: ready"
