#!/usr/bin/env bash
# Installs the koophone-gateway wheel into a fresh virtual environment and runs example.py with it, as a team that
# calls the gateway would (from outside this repository: only the wheel and the example are used).
#
#   examples/python/run.sh WHEEL [grpc-address]      (VENV=dir keeps the environment there; default: a temporary one)
#
# The environment is made with Debian's /usr/bin/python3 and --system-site-packages: the wheel's dependencies,
# grpcio and protobuf, come from Debian's python3-grpcio and python3-protobuf, since PyPI is not reachable from
# here. pip installs with --no-index, so it fetches nothing: it checks the wheel's declared requirements against
# what the system provides and fails if one is missing or too old. With PyPI, a plain venv and `pip install WHEEL`
# does the same with PyPI's grpcio and protobuf.
set -euo pipefail
wheel=$(realpath "$1")
address=${2:-${KOOPHONE_GRPC_ADDR:-127.0.0.1:9090}}
example=$(realpath "$(dirname "$0")/example.py")
venv=${VENV:-}
if [[ -z $venv ]]; then
	venv=$(mktemp -d)
	trap 'rm -rf "$venv"' EXIT
fi
/usr/bin/python3 -m venv --system-site-packages "$venv"
"$venv/bin/python" -m pip install --quiet --no-index --disable-pip-version-check "$wheel"
# A scratch project outside this repository: example.py copied into a directory of its own beside the environment,
# and run from there isolated (-I), so nothing of this repository is importable but the installed package.
project=$venv/project
mkdir -p "$project"
cp "$example" "$project/example.py"
cd "$project"
"$venv/bin/python" -I example.py "$address"
