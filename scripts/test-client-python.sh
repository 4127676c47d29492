#!/usr/bin/env bash
# Builds the Python package's wheel (clients/python/dist) without PyPI, from Debian's python3-setuptools and
# python3-wheel (pip's --no-build-isolation uses them instead of downloading a build environment), installs it into
# a fresh virtual environment and runs the package's tests there, on the installed wheel. `make clients` must have
# generated the stubs first. Debian's /usr/bin/python3 on purpose: the machine may have other Pythons (pyenv), and
# CI on a fresh machine has only Debian's.
#   scripts/test-client-python.sh            wheel and tests
#   scripts/test-client-python.sh --wheel    the wheel only
set -euo pipefail
cd "$(dirname "$0")/.."
py=/usr/bin/python3
pkg=clients/python
[[ -e $pkg/koophone/v1/instance_service_pb2.py ]] || { echo "test-client-python: stubs missing: run 'make clients'" >&2; exit 1; }
rm -rf "$pkg/dist" "$pkg/build" "$pkg"/*.egg-info
"$py" -m pip wheel --quiet --disable-pip-version-check --no-build-isolation --no-deps --no-index -w "$pkg/dist" "$pkg"
rm -rf "$pkg/build" "$pkg"/*.egg-info
wheel=$(ls "$pkg"/dist/koophone_gateway-*-py3-none-any.whl)
echo "test-client-python: built $wheel"
[[ ${1:-} == --wheel ]] && exit 0

venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
# --system-site-packages: grpcio and protobuf come from Debian (python3-grpcio, python3-protobuf); --no-index: pip
# fetches nothing and fails if the system lacks what the wheel requires. See examples/python/run.sh.
"$py" -m venv --system-site-packages "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-index "$wheel"
tests=$(realpath "$pkg/tests")
# From the environment's directory and isolated (-I), so the tests import the installed package, not the sources.
cd "$venv" && "$venv/bin/python" -I -W error::ResourceWarning -m unittest discover -v -s "$tests" -t "$tests" 2>&1 | tail -n 20
exit "${PIPESTATUS[0]}"
