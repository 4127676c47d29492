# koophone-gateway. `make run` starts the server on the embedded simulator; `make test` is what CI runs.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

BIN := $(CURDIR)/bin
export PATH := $(BIN):$(PATH)
export GOBIN := $(BIN)

# Pinned tool versions (see docs/toolchain.md); installed into ./bin with `go install`.
BUF_VERSION               := v1.75.0
PROTOC_GEN_GO_VERSION     := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION:= v1.6.2
GRPC_GATEWAY_VERSION      := v2.33.0
GRPCURL_VERSION           := v1.9.4
GHZ_VERSION               := v0.121.0
BOMBARDIER_VERSION        := v1.2.6

TOOLS := $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc $(BIN)/protoc-gen-grpc-gateway $(BIN)/protoc-gen-openapiv2

.PHONY: all run test test-deps test-dates test-deploy test-smoke image lint generate check-generated breaking tools grpcurl \
	build bench profile smoke clean npm-deps clients docs openapi-lint docs-ui check-docs-ui

all: build

## run: start the gateway on the embedded KooPhone simulator (gRPC 127.0.0.1:9090, REST 127.0.0.1:8080)
run:
	go run ./cmd/server

## test: lint (incl. stale gen/ check), every test with the race detector (the README's examples among them), the
## smoke run, then the suites on shifted dates
test:
	scripts/stage.sh tools $(MAKE) --no-print-directory $(TOOLS) $(BIN)/grpcurl
	scripts/stage.sh lint $(MAKE) --no-print-directory lint
	scripts/stage.sh test-deps $(MAKE) --no-print-directory test-deps
	scripts/stage.sh clients $(MAKE) --no-print-directory npm-deps clients openapi-lint check-docs-ui
	scripts/stage.sh go-test go test -race -count=1 -timeout 20m ./...
	scripts/stage.sh smoke $(MAKE) --no-print-directory test-smoke
	scripts/stage.sh test-dates $(MAKE) --no-print-directory test-dates
	scripts/stage.sh test-deploy $(MAKE) --no-print-directory test-deploy
	scripts/stage.sh image $(MAKE) --no-print-directory image

## test-dates: every suite with its fake clocks a year ahead and a year back, so no part may read the wall clock
## where a test injected one (tests start on fixed dates; see internal/clock/clocktest)
# (The examples, the README's examples and the browser check start the gateway as `make run` does, on the wall
# clock: nothing to shift.)
DATED_PACKAGES = $$(go list ./... | grep -v -e /examples -e /internal/apidocs -e /internal/docstest)
test-dates:
	KOOPHONE_TEST_CLOCK_SHIFT=8760h go test -count=1 -timeout 10m $(DATED_PACKAGES)
	KOOPHONE_TEST_CLOCK_SHIFT=-8760h go test -count=1 -timeout 10m $(DATED_PACKAGES)

## test-deploy: render deploy/'s kustomize overlays and check them against the server (deploy/ is its own module)
test-deploy:
	cd deploy && go vet ./... && go test -race -count=1 ./...

## image: the gateway and simulator images as `docker load`-able tarballs in dist/, built without a Docker engine
## (static binaries on an empty base, nonroot; deploy/cmd/mkimage). The last stage of `make test`, so CI builds both.
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

## generate: regenerate gen/ from proto/ (and the copy of the OpenAPI that /docs serves)
generate: $(TOOLS)
	buf generate
	cp gen/openapiv2/koophone.swagger.json internal/apidocs/koophone.swagger.json

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

## test-smoke: the smoke run against a gateway of its own, started as `make run` does but on free ports (make test)
test-smoke: $(BIN)/grpcurl
	scripts/smoke-run.sh

## bench: every figure of docs/benchmarks.md in one run (~15 min): cmd/loadbench (direct, bare proxy, gateway gRPC
## and REST side by side; a slow upstream; idle watchers), then the Go benchmarks with -benchmem; the tables go to
## $(BENCH_OUT). The unary phase is cross-checked with ghz (gRPC) and bombardier (HTTP), pinned below and installed
## into ./bin. BENCH_BEFORE=<git revision> also measures the gateway built from that revision, alongside, for
## before/after ratios; BENCH_FLAGS passes loadbench flags (e.g. -header "Authorization: Bearer x").
BENCH_OUT ?= bench-results.md
BENCH_BEFORE ?=
BENCH_FLAGS ?=
bench: $(BIN)/ghz $(BIN)/bombardier
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	  go build -o "$$tmp/" ./cmd/server ./cmd/koophone-sim ./cmd/loadbench; \
	  before=(); if [ -n "$(BENCH_BEFORE)" ]; then \
	    mkdir "$$tmp/src"; git archive "$(BENCH_BEFORE)" | tar -x -C "$$tmp/src"; \
	    (cd "$$tmp/src" && go build -o "$$tmp/server-before" ./cmd/server); before=(-gateway-before "$$tmp/server-before"); fi; \
	  "$$tmp/loadbench" -gateway "$$tmp/server" -sim "$$tmp/koophone-sim" -out $(BENCH_OUT) "$${before[@]}" \
	    -ghz $(BIN)/ghz -bombardier $(BIN)/bombardier $(BENCH_FLAGS)
	@{ echo; echo '### Go benchmarks (-benchmem)'; echo; echo '```'; \
	  go test -run '^$$' -bench . -benchmem ./internal/stream/ ./internal/service/ ./internal/upstream/ ./internal/calllog/ ./internal/server/; \
	  echo '```'; } | tee -a $(BENCH_OUT)

## profile: CPU profiles (gRPC, REST) and allocations of a gateway at saturation, and their top entries
PROFILE_DIR ?= profiles
profile:
	@mkdir -p $(PROFILE_DIR); tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	  go build -o "$$tmp/" ./cmd/server ./cmd/koophone-sim ./cmd/loadbench; \
	  "$$tmp/loadbench" -gateway "$$tmp/server" -sim "$$tmp/koophone-sim" -profile $(PROFILE_DIR) -segment 20s $(BENCH_FLAGS); \
	  for p in cpu-grpc cpu-rest; do echo "== $$p"; go tool pprof -top -nodecount=25 "$$tmp/server" $(PROFILE_DIR)/$$p.pprof 2>/dev/null | sed -n '4,32p'; done; \
	  echo "== allocs (alloc_space)"; go tool pprof -top -nodecount=20 -sample_index=alloc_space "$$tmp/server" $(PROFILE_DIR)/allocs.pprof 2>/dev/null | sed -n '4,27p'

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

# The public load tools make bench cross-checks its own generator with.
$(BIN)/ghz:
	go install github.com/bojand/ghz/cmd/ghz@$(GHZ_VERSION)
$(BIN)/bombardier:
	go install github.com/codesenberg/bombardier@$(BOMBARDIER_VERSION)

## grpcurl: install grpcurl into ./bin (for the README's examples)
grpcurl: $(BIN)/grpcurl
$(BIN)/grpcurl:
	go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

# npm packages, each directory pinned by its package-lock.json; npm ci runs only when the lock file changed.
NPM_TOOLS   := tools/npm/node_modules/.package-lock.json
NPM_EXAMPLE := examples/node/node_modules/.package-lock.json
$(NPM_TOOLS): tools/npm/package-lock.json
	cd tools/npm && npm ci --no-audit --no-fund --ignore-scripts
$(NPM_EXAMPLE): examples/node/package-lock.json
	cd examples/node && npm ci --no-audit --no-fund --ignore-scripts
## npm-deps: install the pinned npm packages (client generator, OpenAPI linter, Swagger UI, Chromium driver, Node example)
npm-deps: $(NPM_TOOLS) $(NPM_EXAMPLE)

## clients: generate the TypeScript and Python clients and ship the protos under clients/ (see clients/README.md)
clients: $(TOOLS) $(NPM_TOOLS) test-deps
	scripts/gen-clients.sh

## docs: regenerate docs/errors.md from the contract and the code
docs:
	go test -count=1 -run TestErrorsDoc ./internal/service -update

## openapi-lint: the OpenAPI must pass @redocly/cli's recommended rules
openapi-lint: $(NPM_TOOLS)
	tools/npm/node_modules/.bin/redocly lint --config tools/npm/redocly.yaml gen/openapiv2/koophone.swagger.json

# Swagger UI's files for /docs are committed (so `go build` works on a fresh clone) and checked against the pinned
# npm package here.
SWAGGER_UI := tools/npm/node_modules/swagger-ui-dist
SWAGGER_UI_FILES := swagger-ui-bundle.js swagger-ui.css favicon-32x32.png LICENSE
## docs-ui: copy Swagger UI's files from the pinned npm package into internal/apidocs/ui
docs-ui: $(NPM_TOOLS)
	for f in $(SWAGGER_UI_FILES); do cp $(SWAGGER_UI)/$$f internal/apidocs/ui/$$f; done
check-docs-ui: $(NPM_TOOLS)
	@for f in $(SWAGGER_UI_FILES); do cmp -s $(SWAGGER_UI)/$$f internal/apidocs/ui/$$f || \
	  { echo "internal/apidocs/ui/$$f differs from swagger-ui-dist: run 'make docs-ui'"; exit 1; }; done

clean:
	rm -rf $(BIN)
