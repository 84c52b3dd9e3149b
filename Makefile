# One entry point over every module of the workspace. Needs only Go: tools are
# installed into ./bin through the Go module proxy on first use.

MODULES := contracts ingest lifecycle mobile-api orchestrate process serve testenv
PKGS    := $(addsuffix /...,$(addprefix ./,$(MODULES)))

BIN             := $(CURDIR)/bin
STATICCHECK_VER := v0.8.2
STATICCHECK     := $(BIN)/staticcheck-$(STATICCHECK_VER)
TOFU_VER        := v1.10.7
TOFU            := $(BIN)/tofu
# v1.9.0 needs a golang.org/x/telemetry version our module proxy does not serve.
GOVULNCHECK_VER := v1.8.0
GOVULNCHECK     := $(BIN)/govulncheck-$(GOVULNCHECK_VER)

# go test flags; e.g. make test TESTFLAGS='-run Chain -v'
TESTFLAGS ?=
# go test -bench pattern and time; e.g. make bench BENCH=GetDocument BENCHTIME=5s
BENCH     ?= .
BENCHTIME ?= 1s
# the deployables with a Dockerfile, and how `make images` tags them; e.g.
# make images IMAGE_PREFIX=europe-west1-docker.pkg.dev/my-lab/lab/ IMAGE_TAG=v1
IMAGES       := ingest process orchestrate mobile-api
IMAGE_PREFIX ?= lab-
IMAGE_TAG    ?= dev
# flags for `make run` and `make demo`; e.g. make run RUNFLAGS='-robots=100 -workers=2'
RUNFLAGS  ?=
# the commands `make run` builds into ./bin and starts
COMMANDS := ./ingest/cmd/ingest ./process/cmd/process ./orchestrate/cmd/orchestrate \
	./mobile-api/cmd/mobile-api ./testenv/cmd/robotsim ./testenv/cmd/labstack

.DEFAULT_GOAL := help
.PHONY: help test lint fmt vet staticcheck tidy-check bench bench-tools browser tofu images run demo reliability commands vulncheck vulncheck-binaries security

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

test: browser vulncheck-binaries ## govulncheck the deployables, then every module's tests with the race detector
	go test -race -count=1 -timeout 25m $(TESTFLAGS) $(PKGS)

lint: fmt vet staticcheck tidy-check ## gofmt, go vet, staticcheck and go.mod tidiness

fmt: ## fail if any Go file is not gofmt-formatted
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet: ## go vet every module
	go vet $(PKGS)

staticcheck: $(STATICCHECK) ## staticcheck every module
	$(STATICCHECK) $(PKGS)

$(STATICCHECK):
	mkdir -p $(BIN)
	GOBIN=$(BIN) go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VER)
	mv $(BIN)/staticcheck $@

# The Go vulnerability database comes from the module proxy (golang.org/x/vulndb): see
# scripts/vulncheck.sh. Both fail when a known vulnerability is reachable.
vulncheck: $(GOVULNCHECK) ## govulncheck every module's source (go.work versions): about 4 min and 14 GB
	GOVULNCHECK=$(GOVULNCHECK) scripts/vulncheck.sh

# Only the deployables: labstack would add a cold build of the BigQuery emulator.
vulncheck-binaries: $(GOVULNCHECK) ## govulncheck the deployables' binaries (seconds after their build; make test runs it)
	mkdir -p $(BIN)
	go build -o $(BIN)/ $(foreach m,$(IMAGES),./$(m)/cmd/$(m))
	GOVULNCHECK=$(GOVULNCHECK) VULNCHECK_MODE=binary scripts/vulncheck.sh $(addprefix $(BIN)/,$(IMAGES))

# FUZZTIME bounds each fuzz run of `make security`; e.g. make security FUZZTIME=5m
FUZZTIME ?= 30s

security: vulncheck ## the security suite: authorization matrix, token attacks, log hygiene, fuzzing of the API, tokens and page tokens, govulncheck
	go test -race -count=1 -run 'TestAuthorizationMatrix|TestDeniedLooksLikeMissing|TestLogsHoldNoPatientData|TestClientAddressIsNotTheCallersToChoose|TestSummaryCacheNeverCrossesPatients|TestCORS|TestValidation|TestRateLimit' ./mobile-api/internal/api/
	go test -race -count=1 ./mobile-api/internal/auth/ ./serve/history/
	go test -run '^$$' -fuzz '^FuzzQueryParameters$$' -fuzztime $(FUZZTIME) ./mobile-api/internal/api/
	go test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) ./mobile-api/internal/auth/
	go test -run '^$$' -fuzz '^FuzzPageToken$$' -fuzztime $(FUZZTIME) ./serve/history/

$(GOVULNCHECK):
	mkdir -p $(BIN)
	GOBIN=$(BIN) go install golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VER)
	mv $(BIN)/govulncheck $@

tidy-check: ## fail if a go.mod or go.sum is not tidy
	@for m in $(MODULES); do (cd $$m && go mod tidy -diff >/dev/null) || { echo "go.mod of $$m is not tidy: run (cd $$m && go mod tidy)"; exit 1; }; done

bench: bench-tools ## run every module's benchmarks (see BENCHMARKS.md)
	go test -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -benchmem -timeout 60m $(PKGS)

# Peers the benchmarks compare with, from Debian's packages when we are root;
# a benchmark whose peer is missing skips with a message saying how to get it.
bench-tools:
	@command -v rclone >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq rclone >/dev/null; } || echo "rclone could not be installed: BenchmarkIngestVsRclone will skip"
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq wrk >/dev/null; } || echo "wrk could not be installed: BenchmarkAPIWithWrk will skip (apt-get install wrk)"

tofu: $(TOFU) ## build OpenTofu into ./bin (infra's `tofu fmt -check` test uses it; takes minutes)

# `go install .../cmd/tofu@VER` is refused (OpenTofu's go.mod has a replace
# directive), so build it inside its own module, from the module cache.
$(TOFU):
	mkdir -p $(BIN)
	GOWORK=off go mod download github.com/opentofu/opentofu@$(TOFU_VER)
	cd "$$(go env GOMODCACHE)/github.com/opentofu/opentofu@$(TOFU_VER)" && \
		GOWORK=off go build -trimpath -ldflags "-X github.com/opentofu/opentofu/version.dev=no" -o $(TOFU) ./cmd/tofu

# Headless Chromium for the web page's browser tests, from Debian's packages
# when we are root; without it those tests skip with a message saying so.
browser: ## install Debian's chromium for the browser tests (root only)
	@command -v chromium >/dev/null 2>&1 || [ -n "$$CHROMIUM_PATH" ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; } || echo "chromium could not be installed: the browser tests will skip (apt-get install chromium, or set CHROMIUM_PATH)"

images: ## build a container image per deployable (needs a Docker engine; not run in CI)
	@docker info >/dev/null 2>&1 || { echo "make images needs a running Docker engine (docker info failed)"; exit 1; }
	@for m in $(IMAGES); do echo "docker build -f $$m/Dockerfile -t $(IMAGE_PREFIX)$$m:$(IMAGE_TAG) ."; docker build -f $$m/Dockerfile -t $(IMAGE_PREFIX)$$m:$(IMAGE_TAG) . || exit 1; done

commands: ## build the platform's commands into ./bin
	mkdir -p $(BIN)
	go build -o $(BIN)/ $(COMMANDS)

run: commands ## run the whole platform on this machine until Ctrl-C (state in ./.labstack)
	$(BIN)/labstack $(RUNFLAGS)

demo: commands ## a bounded run of the whole platform (at most 3 min) ending with a report; fails if an invariant does
	$(BIN)/labstack demo $(RUNFLAGS)

reliability: commands ## multi-worker scale, 50-kill chaos, emulator outages and a load on the whole platform; writes RELIABILITY.md (about 25 min)
	$(BIN)/labstack reliability $(RUNFLAGS)
