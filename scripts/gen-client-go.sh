#!/usr/bin/env bash
# gen-client-go.sh DIR: generates the Go client's stubs into DIR/koophonev1, and the contract's descriptor set with
# its comments into DIR/cmd/koophonectl/contract.binpb (the CLI's help text; the stubs carry no comments at run
# time). make client-go passes client/go; make check-generated passes a scratch directory and compares. The contract is built with buf, stripped of its custom
# options by tools/clientprotos (as for the other languages' clients), and generated with local plugins only:
# bin/client-go/protoc-gen-go (pinned to the client module's protobuf runtime) and bin/protoc-gen-go-grpc.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
buf build --as-file-descriptor-set -o "$tmp/full.binpb"
go run ./tools/clientprotos -in "$tmp/full.binpb" -out "$tmp/clients.binpb"
buf generate "$tmp/clients.binpb#format=binpb" --template client/go/buf.gen.yaml --path koophone/v1 -o "$tmp/gen"
mkdir -p "$out/koophonev1"
rm -f "$out"/koophonev1/*.pb.go
cp "$tmp"/gen/koophonev1/*.pb.go "$out/koophonev1/"
mkdir -p "$out/cmd/koophonectl"
cp "$tmp/clients.binpb" "$out/cmd/koophonectl/contract.binpb"
