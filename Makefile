# raftlock's front door: CI calls these same targets.
GO      ?= go
BIN     ?= bin
BUF     := $(GO) run github.com/bufbuild/buf/cmd/buf@v1.75.0

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: build
build: ## Build the binaries into ./bin (static, CGO_ENABLED=0)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ ./cmd/...

.PHONY: test
test: ## Run the tests with the race detector (the README's test command)
	$(GO) test -race ./...

.PHONY: lint
lint: ## gofmt (fails on any unformatted file) and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

.PHONY: fuzz
fuzz: ## Fuzz the fsm decoders for 60s
	$(GO) test -run '^$$' -fuzz=Fuzz -fuzztime=60s ./fsm/

.PHONY: generate
generate: ## Regenerate api/gen from the .proto files (offline, pinned tools)
	cd api && $(BUF) generate

.PHONY: checkgenerate
checkgenerate: generate ## Fail if regenerating changes api/gen
	@git diff --exit-code -- api/gen || (echo "api/gen is stale: run make generate and commit"; exit 1)
	@test -z "$$(git status --porcelain -- api/gen)" || (echo "api/gen has untracked files: run make generate and commit"; git status --porcelain -- api/gen; exit 1)

.PHONY: test-client
test-client: ## Run the Go client and lockctl tests with the race detector
	$(GO) test -race ./client/... ./cmd/lockctl/...

.PHONY: lockctl
lockctl: ## Build the lockctl command line into ./bin
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ ./cmd/lockctl
