#!/usr/bin/env bash
# Generates the clients other languages use, under clients/ (not committed; `make clients` writes them):
#   clients/proto/        the contract's .proto files and everything they import (google/rpc included)
#   clients/koophone.binpb a FileDescriptorSet of the contract without its custom options (for dynamic loaders)
#   clients/ts/           TypeScript messages and service descriptors (@bufbuild/protoc-gen-es, from npm)
#   clients/python/       Python messages, type stubs and grpc stubs (Debian's protoc and grpc_python_plugin)
# The TypeScript and Python modules are generated from the option-free descriptor set, so they import nothing but
# their protobuf runtime, each other and google/rpc (generated alongside): no buf/validate, google/api or OpenAPI
# modules at run time. Needs protoc 3.15 or newer (proto3 `optional`); checked with 3.21.12.
set -euo pipefail
cd "$(dirname "$0")/.."

es=tools/npm/node_modules/.bin/protoc-gen-es
[[ -x $es ]] || { echo "gen-clients: $es missing: run 'make npm-deps'" >&2; exit 1; }
command -v protoc >/dev/null && command -v grpc_python_plugin >/dev/null ||
	{ echo "gen-clients: protoc or grpc_python_plugin missing: run 'make test-deps'" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
buf build --as-file-descriptor-set -o "$tmp/full.binpb"
go run ./tools/clientprotos -in "$tmp/full.binpb" -out "$tmp/clients.binpb"

rm -rf clients/proto clients/python clients/ts clients/koophone.binpb
mkdir -p clients/proto clients/python clients/ts
files=(google/rpc/status.proto google/rpc/error_details.proto google/rpc/code.proto)
for f in proto/koophone/v1/*.proto; do files+=("${f#proto/}"); done

protoc --descriptor_set_in="$tmp/clients.binpb" \
	--python_out=clients/python --pyi_out=clients/python \
	--plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" --grpc_python_out=clients/python \
	"${files[@]}"
protoc --descriptor_set_in="$tmp/clients.binpb" \
	--plugin=protoc-gen-es="$es" --es_out=clients/ts --es_opt=target=ts \
	"${files[@]}"

cp "$tmp/clients.binpb" clients/koophone.binpb
cp -r proto/koophone clients/proto/
cp -r third_party/google third_party/buf third_party/protoc-gen-openapiv2 clients/proto/
echo "gen-clients: wrote clients/ (protoc $(protoc --version | cut -d' ' -f2), protoc-gen-es $($es --version | cut -d' ' -f2))"

# Type-check the TypeScript against the pinned runtime (clients/node_modules points at tools/npm's).
ln -sfn ../tools/npm/node_modules clients/node_modules
tools/npm/node_modules/.bin/tsc -p clients/tsconfig.json
echo "gen-clients: clients/ts type-checks"
