# The two commands that matter: `make demo` and `make test`. Both set up what they need.
SHELL := /bin/bash
GO ?= go
FUZZTIME ?= 15s
# The fuzz runs use Go 1.27, fetched by the go command from the module proxy (76 MB, once per
# machine): Go 1.26's fuzz coordinator fails a run with "context deadline exceeded" when
# -fuzztime ends while a worker is mid-call on a busy machine, with no failing input found
# (golang/go#75804, fixed in 1.27; seen in our CI on FuzzEnvFile).
FUZZ_TOOLCHAIN ?= go1.27.3
STATICCHECK ?= v0.8.2
# go test -v's output, then every failed test's own output again at the end, where a CI log's
# tail shows it (parallel tests interleave theirs with others' in the -v stream).
GOTEST ?= $(GO) run gotest.tools/gotestsum@v1.13.0 --format standard-verbose --

.PHONY: all build swarm tools demo demo-down test unit e2e fuzz lint bench multinode multinode-down test-multinode

all: build

build:
	CGO_ENABLED=0 $(GO) build -buildvcs=true -o bin/reconciler ./cmd/reconciler

# A local single-node swarm (installs docker.io and starts the daemons when needed).
swarm:
	scripts/swarm-up

demo:
	scripts/demo

demo-down:
	scripts/demo down

# Everything: gofmt, vet, staticcheck, unit tests, the e2e suite against the real swarm, the
# multi-node e2e tests against a 4-node swarm on this machine, and short fuzz runs.
test: swarm tools lint unit e2e test-multinode fuzz

# The web view's test tools: chromium, tidy, axe-core (scripts/test-tools).
tools:
	scripts/test-tools

# A swarm of 3 managers and 1 worker on this machine, beside the single-node one
# (scripts/multinode/README.md); MN_BASE is its state directory.
MN_BASE ?= /tmp/multinode
multinode: swarm
	MN_BASE=$(MN_BASE) scripts/multinode/up || { \
	  echo "multinode: up failed; taking the 4-node swarm down and starting it once more" >&2; \
	  MN_BASE=$(MN_BASE) scripts/multinode/down; MN_BASE=$(MN_BASE) scripts/multinode/up; }

multinode-down:
	MN_BASE=$(MN_BASE) scripts/multinode/down

# The e2e tests that need several nodes (TestMultinode*), against that swarm.
test-multinode: multinode
	E2E_MULTINODE=$(MN_BASE) $(GOTEST) -count=1 -timeout 30m -run '^TestMultinode' ./e2e/

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK) ./...

unit:
	$(GOTEST) -count=1 -race $$($(GO) list ./... | grep -v /e2e)

# -parallel 4: the parallel tests mostly wait on swarm, not on the two cores.
e2e:
	$(GOTEST) -count=1 -timeout 60m -parallel 4 -skip '^TestMultinode' ./e2e/

fuzz:
	GOTOOLCHAIN=$(FUZZ_TOOLCHAIN) $(GO) test ./spec/ -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	GOTOOLCHAIN=$(FUZZ_TOOLCHAIN) $(GO) test ./manifests/ -run '^$$' -fuzz FuzzEnvFile -fuzztime $(FUZZTIME)
	GOTOOLCHAIN=$(FUZZ_TOOLCHAIN) $(GO) test ./manifests/ -run '^$$' -fuzz FuzzCheckPolicy -fuzztime $(FUZZTIME)
	GOTOOLCHAIN=$(FUZZ_TOOLCHAIN) $(GO) test ./webview/ -run '^$$' -fuzz FuzzHideSecrets -fuzztime $(FUZZTIME)

# Benchmarks (docs/benchmarks.md): the reconciler against `docker stack deploy` on the real
# swarm for 1, 10 and 30 apps (BenchmarkScale; E2E_BENCH_SCALE_REPS rounds each way, default 3)
# and one install/delete, the Engine API calls per container event of a 5-service app
# (BenchmarkEventCost; E2E_BENCH_EVENT_REPS kills, default 5), then the in-memory controller
# at 1,000 and 10,000 apps.
bench: swarm
	$(GO) test ./e2e/ -run '^$$' -bench 'Scale|InstallDelete|EventCost' -benchtime 1x -timeout 60m
	$(GO) test ./controller -run '^$$' -bench . -benchtime 3x

# The reconciler image swarm-reconciler:dev (FROM scratch, static binary); IMAGE=... for another tag.
.PHONY: image
image: build
	DOCKER_BUILDKIT=0 docker build -f deploy/Dockerfile -t $${IMAGE:-swarm-reconciler:dev} bin
