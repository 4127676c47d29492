# koophone-gateway. `make run` starts the server on the embedded simulator; `make test` is what CI runs.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

BIN := $(CURDIR)/bin
export PATH := $(BIN):$(PATH)
export GOBIN := $(BIN)

# Pinned tool versions (see ../shared/docs/toolchain.md); installed into ./bin with `go install`.
BUF_VERSION               := v1.75.0
PROTOC_GEN_GO_VERSION     := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION:= v1.6.2
GRPC_GATEWAY_VERSION      := v2.33.0
GRPCURL_VERSION           := v1.9.4

TOOLS := $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc $(BIN)/protoc-gen-grpc-gateway $(BIN)/protoc-gen-openapiv2

.PHONY: all run test test-deps test-dates test-deploy image lint generate check-generated breaking tools grpcurl build bench smoke clean

all: build

## run: start the gateway on the embedded KooPhone simulator (gRPC 127.0.0.1:9090, REST 127.0.0.1:8080)
run:
	go run ./cmd/server

## test: lint (incl. stale gen/ check), every test with the race detector, then the suites on shifted dates
test:
	scripts/stage.sh tools $(MAKE) --no-print-directory $(TOOLS)
	scripts/stage.sh lint $(MAKE) --no-print-directory lint
	scripts/stage.sh test-deps $(MAKE) --no-print-directory test-deps
	scripts/stage.sh go-test go test -race -count=1 -timeout 20m ./...
	scripts/stage.sh test-dates $(MAKE) --no-print-directory test-dates
	scripts/stage.sh test-deploy $(MAKE) --no-print-directory test-deploy

## test-dates: every suite with its fake clocks a year ahead and a year back, so no part may read the wall clock
## where a test injected one (tests start on fixed dates; see internal/clock/clocktest)
test-dates:
	KOOPHONE_TEST_CLOCK_SHIFT=8760h go test -count=1 -timeout 10m ./...
	KOOPHONE_TEST_CLOCK_SHIFT=-8760h go test -count=1 -timeout 10m ./...

## test-deploy: render deploy/'s kustomize overlays and check them against the server (deploy/ is its own module)
test-deploy:
	cd deploy && go vet ./... && go test -race -count=1 ./...

## image: the gateway and simulator images as `docker load`-able tarballs in dist/, built without a Docker engine
## (static binaries on an empty base, nonroot; deploy/cmd/mkimage). Not part of `make test`: CI's cold run stays short.
image:
	mkdir -p dist/linux
	CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags='-s -w' -o dist/linux/koophone-gateway ./cmd/server
	CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags='-s -w' -o dist/linux/koophone-sim ./cmd/koophone-sim
	cd deploy && go run ./cmd/mkimage -binary ../dist/linux/koophone-gateway -name koophone-gateway \
	  -tag koophone-gateway:dev -out ../dist/koophone-gateway.tar
	cd deploy && go run ./cmd/mkimage -gateway=false -binary ../dist/linux/koophone-sim -name koophone-sim \
	  -tag koophone-sim:dev -out ../dist/koophone-sim.tar

## test-deps: install what the tests need beyond Go (Debian packages, npm), only when missing
test-deps:
	scripts/test-deps.sh

## build: compile the server and the standalone simulator into ./bin
build:
	go build -o $(BIN)/koophone-gateway ./cmd/server
	go build -o $(BIN)/koophone-sim ./cmd/koophone-sim

## lint: buf lint and format, go vet, gofmt, and gen/ up to date with proto/
lint: $(TOOLS)
	buf lint
	buf format -d --exit-code proto
	go vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/' || true) 2>/dev/null); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(MAKE) --no-print-directory check-generated

## generate: regenerate gen/ from proto/
generate: $(TOOLS)
	buf generate

# Generates into a scratch directory and compares, so a stale or hand-edited gen/ fails without touching it.
check-generated: $(TOOLS)
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	  buf generate -o "$$tmp"; \
	  if ! diff -r gen "$$tmp/gen" >/dev/null; then \
	    diff -r gen "$$tmp/gen" | head -40; echo "gen/ is stale: run 'make generate' and commit it"; exit 1; \
	  fi; echo "gen/ is up to date"

## breaking: compare the contract with an earlier version (BREAKING_AGAINST, default the previous commit)
BREAKING_AGAINST ?= .git\#ref=HEAD~1
breaking: $(TOOLS)
	buf breaking --against '$(BREAKING_AGAINST)'

## smoke: every RPC once through grpcurl and once through curl, against a running `make run`
smoke: $(BIN)/grpcurl
	scripts/smoke.sh

## bench: fan-out benchmarks of the watch hub (figures go in docs/benchmarks.md)
bench:
	go test -run '^$$' -bench . -benchmem ./internal/stream/

## tools: install the pinned code generators and buf into ./bin
tools: $(TOOLS) grpcurl

$(BIN)/buf:
	go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(BIN)/protoc-gen-go:
	go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(BIN)/protoc-gen-go-grpc:
	go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
$(BIN)/protoc-gen-grpc-gateway:
	go install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$(GRPC_GATEWAY_VERSION)
$(BIN)/protoc-gen-openapiv2:
	go install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@$(GRPC_GATEWAY_VERSION)

## grpcurl: install grpcurl into ./bin (for the README's examples)
grpcurl: $(BIN)/grpcurl
$(BIN)/grpcurl:
	go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

clean:
	rm -rf $(BIN)
