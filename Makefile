# ordersaga: `make dev` runs the system, `make test` runs every check CI runs.
GO       ?= go
BIN      := .bin
TEMPORAL := $(BIN)/temporal
WORKFLOWCHECK := $(BIN)/workflowcheck
# Integration tests start real servers per package; two at a time fit 2 cores.
TESTFLAGS ?= -count=1 -p 2 -timeout 14m

.PHONY: dev test lint build tools fmtcheck vet spectral bench load fanout histories clean-data faults

build:
	$(GO) build -o $(BIN)/ordersaga ./cmd/ordersaga

# The Temporal CLI is pinned in tools/go.mod, workflowcheck by its version
# here (apart, so that neither moves the other's dependencies); both are
# built once into .bin/.
WORKFLOWCHECK_VERSION := v0.6.0
tools: $(TEMPORAL) $(WORKFLOWCHECK)
$(TEMPORAL): tools/go.mod tools/go.sum
	cd tools && $(GO) build -o ../$(TEMPORAL) github.com/temporalio/cli/cmd/temporal
$(WORKFLOWCHECK):
	GOBIN=$(CURDIR)/$(BIN) $(GO) install go.temporal.io/sdk/contrib/tools/workflowcheck@$(WORKFLOWCHECK_VERSION)

dev: build tools
	TEMPORAL_CLI=$(CURDIR)/$(TEMPORAL) $(BIN)/ordersaga dev

test: tools lint
	$(GO) test $(TESTFLAGS) ./...

fmtcheck:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.data/*')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# workflowcheck reports non-deterministic calls (time.Now, goroutines, map
# iteration, …) reachable from any function taking a workflow.Context.
lint: fmtcheck vet spectral $(WORKFLOWCHECK)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	$(WORKFLOWCHECK) ./...

# Spectral lints the OpenAPI document with the rules of .spectral.yaml and
# fails on any finding. npx fetches the pinned CLI on first use (about 15 s,
# then about 2 s); it needs Node.js 18.18+ and npm (.ci/run installs them).
SPECTRAL ?= npx --yes @stoplight/spectral-cli@6.16.3
spectral:
	$(SPECTRAL) lint --ruleset .spectral.yaml --fail-severity hint gateway/openapi.json

# Benchmarks on real servers; see each benchmark's comment for what it reports.
bench: tools
	$(GO) test -run '^$$' -bench . -benchtime 300x -count 3 ./workers/
	$(GO) test -run '^$$' -bench . -benchtime 200x -count 3 ./ws/
	$(GO) test -run '^$$' -bench ProductFreshness -benchtime 300x -count 3 ./gateway/

# Records one history per saga path from the real workers on a Temporal dev
# server into workflows/order/testdata/histories (commit them).
histories: tools
	$(GO) test -count=1 -run '^TestGoldenHistories$$' ./workers/ -update-histories

# The fault run: every service as its own process, DESIGN.md's faults
# injected one after another under load (at least 500 orders), then the
# invariants checked and printed as a table; fails on any violation. About
# 6 minutes. FAULTFLAGS passes flags, e.g. FAULTFLAGS='-orders 100 -faults kill-hub,stop-postgres'.
faults: tools
	$(GO) build -o $(BIN)/faultrun ./cmd/faultrun
	$(BIN)/faultrun -temporal-cli $(CURDIR)/$(TEMPORAL) $(FAULTFLAGS)

# Against a running `make dev` (another terminal): `ordersaga load` places
# orders end to end (REST, then the terminal status over the websocket),
# three rounds each followed by the same workflow shape with no-op
# activities (the ceiling), and prints the medians, their ratios and the CPU
# per order of each process; it writes load-report.html. Then wrk's rounds
# of reads and stock adjustments. LOADFLAGS passes flags to `ordersaga
# load`, e.g. LOADFLAGS='--rate 10 --duration 1m --tokens tok_ok=90,tok_declined=10'.
LOADFLAGS ?= --orders 300 --concurrency 20 --ceiling --rounds 3 --cpu --report load-report.html
load: build
	$(BIN)/ordersaga load $(LOADFLAGS)
	deploy/loadtest/run.sh

# Against a running `make dev` (another terminal): websocket fan-out with
# the hub in a process of its own. deploy/loadtest/fanout.sh runs
# `ordersaga fanout` three times (5,000 clients on "all", 50 events/s for
# 20 s), each against a fresh `ordersaga ws` on ports and a Kafka topic of
# its own (no dashboard sees the synthetic orders), and prints each run and
# the medians. FANOUTFLAGS passes flags, e.g. FANOUTFLAGS='--clients 1000'.
fanout: build
	deploy/loadtest/fanout.sh

# Removes the local stack's data (PostgreSQL, Kafka, Temporal).
clean-data:
	rm -rf .data
