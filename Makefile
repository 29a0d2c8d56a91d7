# raftlock's front door: CI calls these same targets.
GO      ?= go
BIN     ?= bin
BUF     := $(GO) run github.com/bufbuild/buf/cmd/buf@v1.75.0
STATICCHECK := $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Every build tag of the tree: go vet and staticcheck see all the code.
TAGS    := chaos,docker,pg,browser

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: build
build: ## Build the binaries into ./bin (static, CGO_ENABLED=0)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o $(BIN)/ ./cmd/...

.PHONY: test
test: ## Run the tests with the race detector (the README's test command)
	$(GO) test -race ./...

.PHONY: toolchain
toolchain: ## CI's first step: print the tools' versions; install iptables (as root) when missing
	$(GO) version
	node --version
	docker version --format 'docker {{.Server.Version}}'
	@if ! command -v iptables >/dev/null; then \
	  if [ "$$(id -u)" != 0 ]; then echo "toolchain: iptables is not installed; as root: apt-get install iptables"; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 iptables >/dev/null; \
	fi
	iptables --version

.PHONY: lint
lint: ## gofmt, go vet (with and without the build tags chaos, docker, pg, browser), staticcheck (pinned, both ways) and buf lint
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags $(TAGS) ./...
	$(STATICCHECK) ./...
	$(STATICCHECK) -tags $(TAGS) ./...
	cd api && $(BUF) lint

.PHONY: api-examples
api-examples: ## Every example of api/README.md against a live node (bash api/examples.sh)
	bash api/examples.sh

.PHONY: python-example
python-example: ## clients/python/example.py against a live node
	bash clients/python/run_example.sh

.PHONY: fuzz
fuzz: ## Fuzz the fsm decoders for 60s, and the backup file reader for 60s
	$(GO) test -run '^$$' -fuzz=Fuzz -fuzztime=60s ./fsm/
	$(GO) test -run '^$$' -fuzz=FuzzRead -fuzztime=60s ./fsm/backup/

.PHONY: generate
generate: ## Regenerate api/gen from the .proto files (offline, pinned tools)
	cd api && $(BUF) generate

.PHONY: checkgenerate
checkgenerate: generate ## Fail if regenerating changes api/gen
	@git diff --exit-code -- api/gen || (echo "api/gen is stale: run make generate and commit"; exit 1)
	@test -z "$$(git status --porcelain -- api/gen)" || (echo "api/gen has untracked files: run make generate and commit"; git status --porcelain -- api/gen; exit 1)

# ---- The JavaScript client and Medusa Locking Module provider (clients/js).
.PHONY: js-test
js-test: ## node --test of clients/js against real 3-node clusters: client, provider, TLS, the framework's loading steps and its locking spec (RAFTLOCK_SPEC_REPEAT, default 50)
	node --test --test-concurrency=1 --test-timeout=300000 clients/js/test/*.test.js

.PHONY: js-types
js-types: ## tsc (Debian's node-typescript, installed as root when missing) on clients/js's declarations and the READMEs' Medusa examples, as ESM and CommonJS consumers
	@if ! command -v tsc >/dev/null; then \
	  if [ "$$(id -u)" != 0 ]; then echo "js-types: tsc is not installed; as root: apt-get install node-typescript"; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 node-typescript >/dev/null; \
	fi
	node clients/js/test/types/check.mjs

.PHONY: ui-test
ui-test: ## The web console (/ui) in headless Chromium (Debian's chromium, installed as root when missing) against real 3-node clusters; screenshot in the test's artifacts (UPDATE_SCREENSHOT=1: docs/console.png)
	@if ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" != 0 ]; then echo "ui-test: chromium is not installed; as root: apt-get install chromium"; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 chromium >/dev/null; \
	fi
	mkdir -p data/ui-test
	CI=$${CI:-1} $(GO) test -tags browser -count=1 -run 'TestConsole' -artifacts -outputdir $(CURDIR)/data/ui-test ./cmd/node

# ---- Fencing on a real PostgreSQL (fence/pgtest): Debian's postgresql (and
# sqlite3, whose shell runs the claim SQL too) is installed when missing (as root; CI is), each test starts its own server
# on a temporary directory and a free port, and fails when it cannot.
.PHONY: fence-pg
fence-pg: ## A paused worker cannot oversell: fence (Go) and claimRow (JS) on a real PostgreSQL and a 3-node cluster of processes (installs postgresql)
	@if { [ -z "$$PG_BINDIR" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || ! command -v sqlite3 >/dev/null; then \
	  if [ "$$(id -u)" != 0 ]; then echo "fence-pg: PostgreSQL or sqlite3 is not installed; as root: apt-get install postgresql sqlite3 (or set PG_BINDIR)"; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 postgresql sqlite3 >/dev/null; \
	fi
	$(GO) vet -tags pg ./fence/pgtest/
	$(GO) test -tags pg -race -count=1 -v -timeout 10m ./fence/pgtest/
	node --test --test-concurrency=1 --test-timeout=120000 clients/js/test-pg/*.test.js

# ---- TLS: development certificates, made with the Go standard library by
# lockctl certs (cluster/certs). Production brings its own PKI.
CERTS_DIR  ?= certs
CERT_HOSTS ?= 127.0.0.1,localhost,n1,n2,n3

.PHONY: certs
certs: ## Development CA, node certificate (CERT_HOSTS) and client certificate in ./certs (kept if there: rm -r certs to renew)
	@if [ -f $(CERTS_DIR)/ca.crt ]; then \
	  echo "$(CERTS_DIR)/ca.crt exists: keeping $(CERTS_DIR)/ (rm -r $(CERTS_DIR) to make new ones)"; \
	else \
	  $(GO) run ./cmd/lockctl certs --dir $(CERTS_DIR) --hosts $(CERT_HOSTS); \
	fi

.PHONY: cluster
cluster: ## Start a local 3-node cluster of real processes on 127.0.0.1:7071-7073
	scripts/cluster.sh start

.PHONY: cluster-stop
cluster-stop: ## Stop the local 3-node cluster
	scripts/cluster.sh stop

.PHONY: bench-cluster
bench-cluster: ## Go benchmark: acquire+release pairs/s on an in-process 3-node cluster
	$(GO) test -run '^$$' -bench BenchmarkAcquireRelease -benchtime 5s ./cluster/

.PHONY: bench
bench: ## The standard load table on a local 3-node cluster (ports 7181-7183) -> bench/results.md, bench/latency.png
	GO=$(GO) scripts/bench.sh

.PHONY: scale
scale: ## Scale figures with 1M held locks (RSS, snapshot, restart to ready, Apply cost) -> bench/scale.md
	GO=$(GO) scripts/scale.sh

.PHONY: backup-scale
backup-scale: ## Backup figures with 1M held locks (save time, file size, writes during a save, restore to ready) -> bench/backup.md
	GO=$(GO) scripts/backup-scale.sh

.PHONY: bench-smoke
bench-smoke: ## make bench in brief (1s per workload, one run, ports 7186-7188, results under data/bench-smoke): CI's smoke test, no timing asserted
	GO=$(GO) BENCH_DURATION=1s BENCH_WARMUP=0s BENCH_REPEAT=1 BENCH_OUT=data/bench-smoke BENCH_DIR=data/bench-smoke/cluster BENCH_PORT=7185 scripts/bench.sh

# ---- Docker: an image FROM scratch around the static binaries, and a
# 3-node cluster with compose (docker/compose.yaml, host ports 7071-7073).
IMAGE   ?= raftlock:dev
# The Compose v2 plugin when it is there, else docker-compose (v1).
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
COMPOSE_FILE := docker/compose.yaml

.PHONY: docker
docker: build ## Build the image raftlock:dev, or IMAGE=... (FROM scratch: node and lockctl of ./bin, data in a volume)
	@ctx=$$(mktemp -d) && trap 'rm -rf "$$ctx"' EXIT && \
	mkdir -p "$$ctx/bin" && mkdir -m 0750 "$$ctx/data" && \
	cp $(BIN)/node $(BIN)/lockctl "$$ctx/bin/" && \
	echo "image $(IMAGE) with:" $$(ls "$$ctx/bin") && \
	docker build -q -f docker/Dockerfile -t $(IMAGE) "$$ctx" && \
	docker image ls $(IMAGE)

# TLS=1: add docker/compose.tls.yaml (certificates of ./certs mounted at
# /certs, RAFTLOCK_TLS_*); DOCKER_AUTH_TOKENS=/certs/tokens.json turns
# tokens on as well (a token file in ./certs).
TLS                ?=
DOCKER_AUTH_TOKENS ?=
COMPOSE_FILES      := -f $(COMPOSE_FILE) $(if $(TLS),-f docker/compose.tls.yaml)

.PHONY: docker-up
docker-up: $(if $(TLS),docker-certs) ## Start the 3-node compose cluster on ports 7071-7073 (make docker first; stop make cluster first; TLS=1 for TLS)
	RAFTLOCK_IMAGE=$(IMAGE) RAFTLOCK_CERTS_DIR=$(abspath $(CERTS_DIR)) RAFTLOCK_DOCKER_AUTH_TOKENS=$(DOCKER_AUTH_TOKENS) \
	  $(COMPOSE) $(COMPOSE_FILES) up -d

.PHONY: docker-up-tls
docker-up-tls: ## The compose cluster with TLS (make certs, then docker-up TLS=1); https://127.0.0.1:7071, CA certs/ca.crt
	$(MAKE) docker-up TLS=1

# The containers run as 65532 and mount ./certs read-only: the keys must be
# readable by that user. As root the keys are given to it (they stay 0600);
# otherwise (also rootless Docker) they are made world-readable, acceptable
# only for this development CA on a machine of your own.
.PHONY: docker-certs
docker-certs: certs ## make certs, and let the image's user (65532) read ./certs/node.key and client.key
	@if [ "$$(id -u)" = 0 ]; then \
	  chown 65532:65532 $(CERTS_DIR)/node.key $(CERTS_DIR)/client.key; \
	else \
	  chmod 0644 $(CERTS_DIR)/node.key $(CERTS_DIR)/client.key; \
	  echo "note: $(CERTS_DIR)/node.key and client.key are now world-readable (development certificates only)"; \
	fi

.PHONY: docker-down
docker-down: ## Stop the 3-node cluster (plain or TLS) and delete its containers, network and volumes
	RAFTLOCK_IMAGE=$(IMAGE) $(COMPOSE) -f $(COMPOSE_FILE) down -v --remove-orphans

.PHONY: docker-test
docker-test: ## Run the Docker suite, plain and TLS (builds the image, runs clusters beside yours, cleans up)
	$(GO) vet -tags docker ./docker/...
	$(GO) test -tags docker -count=1 -v -timeout 20m ./docker/...

# ---- The fault-injection suite (jepsen-style-tests/README.md).
CHAOS_DURATION ?= 10m
CHAOS_PROFILE  ?= full

.PHONY: chaos
chaos: ## Fault-injection suite on real processes (CHAOS_DURATION, CHAOS_SEED, CHAOS_NEMESES, CHAOS_PROFILE; needs root for network faults)
	CHAOS_DURATION=$(CHAOS_DURATION) CHAOS_PROFILE=$(CHAOS_PROFILE) \
	  $(GO) test -tags chaos -run 'TestChaos$$' -v -count=1 -timeout 90m ./jepsen-style-tests/

.PHONY: chaos-ci
chaos-ci: ## The CI profile: every nemesis in turn for 5 minutes, then the broken-build check
	CHAOS_PROFILE=ci CHAOS_DURATION=5m $(GO) test -tags chaos -run 'TestChaos$$|TestSuiteCatchesBrokenBuild' -v -count=1 -timeout 30m ./jepsen-style-tests/

# The kills (torn log tails), a pause and a partition on the other log
# store, raft-boltdb: shorter, every nemesis of the list once.
CHAOS_BOLT_NEMESES = kill-leader,kill-one,kill-all,pause-leader,partition-majority-minority,lossy-link

.PHONY: chaos-bolt-ci
chaos-bolt-ci: ## The CI profile in brief on --log-store bolt: kills, a pause, a partition and a lossy link, 75 s
	CHAOS_PROFILE=ci CHAOS_DURATION=75s CHAOS_NEMESES=$(CHAOS_BOLT_NEMESES) CHAOS_NODE_ARGS="--log-store bolt" \
	  $(GO) test -tags chaos -run 'TestChaos$$' -v -count=1 -timeout 15m ./jepsen-style-tests/

.PHONY: chaos-docker-ci
chaos-docker-ci: ## The CI profile against the compose cluster: every container fault in turn for 90 s
	$(MAKE) chaos-docker CHAOS_PROFILE=ci CHAOS_DURATION=90s

.PHONY: chaos-docker
chaos-docker: ## Fault-injection suite against the compose cluster (docker kill/pause/network disconnect, iptables in containers)
	CHAOS_DURATION=$(CHAOS_DURATION) CHAOS_PROFILE=$(CHAOS_PROFILE) \
	  $(GO) test -tags chaos -run 'TestChaosDocker$$' -v -count=1 -timeout 90m ./jepsen-style-tests/

# ---- Side by side with etcd (issue 21): both as 3 members on loopback,
# fsync on, the same loop (internal/loadgen), alternating rounds.
.PHONY: compare
compare: ## raftlock and etcd side by side (COMPARE_ROUNDS, COMPARE_DURATION, ...; installs Debian's etcd if missing) -> bench/compare.md, bench/compare.png
	GO=$(GO) scripts/compare.sh

.PHONY: compare-smoke
compare-smoke: ## make compare in brief (1 round, 1s per run, ports 7261-7283, results under data/compare-smoke): CI's smoke test, no timing asserted
	GO=$(GO) COMPARE_ROUNDS=1 COMPARE_DURATION=1s COMPARE_WARMUP=0s COMPARE_PORT=7260 COMPARE_OUT=data/compare-smoke \
	  COMPARE_DIR=data/compare-smoke/run COMPARE_COMMAND="make compare-smoke" scripts/compare.sh
	@test -s data/compare-smoke/compare.md && test -s data/compare-smoke/compare.png && echo "compare-smoke: report written (data/compare-smoke/compare.md)"

.PHONY: stages
stages: ## Where a write's time goes on the nodes, stage by stage (raftlock_stage_seconds), at 1 and 64 callers -> bench/stages.md
	GO=$(GO) scripts/stages.sh

.PHONY: trace
trace: ## The client side of an acquire, stage by stage, per protocol at 1 and 64 callers (lockbench --trace) -> bench/trace.md
	GO=$(GO) scripts/trace.sh
