# Eddy — developer entry points. Run `make help` for the list.
#
# Every target that needs PostgreSQL/Redis first runs `scripts/services.sh up`, which finds
# or starts them and writes their URLs to .eddy/env. Make runs each recipe line in a new
# shell, so each line that needs those URLs sources the file itself.

SHELL := /bin/bash
.SHELLFLAGS := -e -o pipefail -c
.DEFAULT_GOAL := help

# Go installed from the official tarball lives here; non-login shells may not have it on PATH.
export PATH := $(PATH):/usr/local/go/bin

GO       ?= go
SERVICES := scripts/services.sh
ENV      := . ./.eddy/env
NODE_DIRS := test/segment-node test/cube-client test/browser
# The browser-side code the eddy binary embeds: the console and the tracker.
WEB_DIRS := console sdk/tracker
BIN      := bin/eddy

.PHONY: help build web plugins run test bench clean services-down proto

help: ## show this list
	@echo "Eddy make targets:"
	@awk -F ':.*## ' '/^[a-z-]+:.*## / { printf "  %-14s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

build: web ## build the console and the tracker, then compile bin/eddy
	$(GO) build -o $(BIN) ./core/cmd/eddy

# npm ci when package-lock.json is newer than the last install (always so on a fresh
# clone), then the package's build: the console into console/dist, the tracker into
# sdk/tracker/dist, both embedded by go build (each dist/ keeps a .gitkeep so that a
# fresh clone compiles; eddy then says the console is not built).
web: ## build the console (React, Vite) and the one-line tracker (esbuild) with npm
	@$(SERVICES) node
	@for d in $(WEB_DIRS); do \
		if [ $$d/package-lock.json -nt $$d/node_modules/.eddy-installed ]; then \
			echo "npm ci --prefix $$d"; \
			npm ci --prefix $$d --no-audit --no-fund || exit 1; \
			touch $$d/node_modules/.eddy-installed; \
		fi; \
		find $$d/dist -mindepth 1 ! -name .gitkeep -delete; \
		echo "npm run build --prefix $$d"; \
		npm run --silent build --prefix $$d || exit 1; \
	done

# Every folder under plugins/ with a plugin.yaml: a WASM plugin (runtime: wasm) is built
# for wasip1 into dist/plugin.wasm, a gRPC plugin into dist/plugin, as their manifests say.
PLUGIN_DIRS := $(patsubst %/plugin.yaml,%,$(wildcard plugins/*/*/plugin.yaml))

plugins: ## build every plugin under plugins/ (gRPC executables and WASM modules, into each dist/)
	@for d in $(PLUGIN_DIRS); do \
		if grep -q '^runtime: *wasm' $$d/plugin.yaml; then \
			echo "wasm  $$d"; (cd $$d && GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o dist/plugin.wasm .) || exit 1; \
		else \
			echo "grpc  $$d"; (cd $$d && $(GO) build -o dist/plugin .) || exit 1; \
		fi; \
	done

run: plugins web ## start PostgreSQL + Redis if needed, migrate, create the first admin, and serve Eddy (the one command you need)
	$(SERVICES) up
	$(GO) build -o $(BIN) ./core/cmd/eddy
	$(ENV) && $(BIN) migrate
	$(ENV) && $(BIN) admin bootstrap
	$(ENV) && exec $(BIN) serve

test: plugins web ## build the plugins, console and tracker, then the tracker's tests, gofmt check, go vet, and all Go tests (race detector on) against real services
	$(SERVICES) up
	$(SERVICES) browser
	@# Node deps for the client compatibility tests (Segment's SDK, Cube's client, Playwright):
	@# (re)installed when package-lock.json is newer than the last install (always so
	@# on a fresh clone).
	@for d in $(NODE_DIRS); do \
		if [ $$d/package-lock.json -nt $$d/node_modules/.eddy-installed ]; then \
			echo "npm ci --prefix $$d"; \
			npm ci --prefix $$d --no-audit --no-fund || exit 1; \
			touch $$d/node_modules/.eddy-installed; \
		fi; \
	done
	@echo "gofmt -l"; \
	unformatted=$$(find . \( -name .git -o -name .eddy -o -name node_modules -o -name bin \) -prune -o \
		-name '*.go' ! -name '*.pb.go' -type f -print | xargs -r gofmt -l); \
	if [ -n "$$unformatted" ]; then echo "these files need gofmt -w:"; echo "$$unformatted"; exit 1; fi
	npm test --prefix sdk/tracker
	$(GO) vet ./...
	$(ENV) && $(GO) test -race -count=1 -timeout 20m ./...

bench: ## run the benchmark suite (writes docs/benchmarks.md)
	$(SERVICES) up
	$(GO) build -o $(BIN) ./core/cmd/eddy
	$(ENV) && $(GO) run ./core/cmd/eddy-bench

# Code generators for `make proto`, pinned; protoc itself comes from Debian
# (apt-get install protobuf-compiler). The generated code is committed, so
# only changing a .proto needs them.
PROTOC_GEN_GO      := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2

proto: ## regenerate the plugin protocol's Go code from sdk/proto (needs protoc)
	@command -v protoc >/dev/null || { echo "protoc is missing: apt-get install protobuf-compiler"; exit 1; }
	GOBIN=$(CURDIR)/bin $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(CURDIR)/bin $(GO) install $(PROTOC_GEN_GO_GRPC)
	PATH=$(CURDIR)/bin:$$PATH protoc -I sdk/proto --go_out=sdk/proto --go_opt=paths=source_relative \
	  --go-grpc_out=sdk/proto --go-grpc_opt=paths=source_relative sdk/proto/eddy/plugin/v1/plugin.proto

clean: ## remove build output (never the service data in .eddy/)
	rm -rf bin

services-down: ## stop the private PostgreSQL/Redis that scripts/services.sh started (data is kept)
	$(SERVICES) down
