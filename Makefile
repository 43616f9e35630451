# Keyholder. `make run` starts the console; `make test` runs every test.
SHELL := /bin/bash
GO    ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# go vet/test must not walk into npm packages that ship .go files.
GOPKGS = $$($(GO) list ./... | grep -v /node_modules/)
FRONTEND_SRC := $(shell find frontend/src frontend/index.html frontend/public -type f 2>/dev/null)

.PHONY: run test deps frontend web desktop vet gotest fetest e2e smoke clean

## run: install what is missing, then open the console (desktop with a display, web otherwise)
run: deps frontend/dist/index.html bin/keyholder
	@./scripts/run.sh

## test: install what is missing, then run every test (Go, frontend, browser, desktop smoke)
test: deps frontend/dist/index.html
	@./scripts/test.sh

deps:
	@./scripts/deps.sh --wails

frontend/dist/index.html: $(FRONTEND_SRC) frontend/package-lock.json frontend/vite.config.ts
	cd frontend && npm run --silent build -- --logLevel warn

## web: the console binary without the desktop (no GTK needed)
web: bin/keyholder-web
bin/keyholder-web: frontend/dist/index.html $(shell find . -name '*.go' -not -path './frontend/*' -not -path './tools/*') go.mod go.sum
	$(GO) build -ldflags "$(LDFLAGS)" -o $@ .

## bin/keyholder: the desktop + web console (WebKitGTK 4.1)
bin/keyholder: frontend/dist/index.html $(shell find . -name '*.go' -not -path './frontend/*' -not -path './tools/*') go.mod go.sum
	$(GO) build -tags desktop,production,webkit2_41 -ldflags "-s -w $(LDFLAGS)" -o $@ .

## desktop: the packaged desktop build through the Wails CLI
desktop: deps
	tools/wails/bin/wails build -tags webkit2_41 -ldflags "$(LDFLAGS)"

clean:
	rm -rf bin build/bin frontend/dist artifacts
