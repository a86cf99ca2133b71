# Ballast: the everyday commands. `make` lists them. The scripts under
# load-tests/ do the work (each has --help or a header describing its
# options); ARGS="..." is passed on to the script or cargo command.
#
#   make demo                          the demo: three simulated origins + the proxy on conf/ballast.yaml
#   make test                          everything CI runs (what .ci/run runs)
#   make scenarios ARGS=--quick        the quick routing-quality scenarios
#   make bench ARGS="--quick --profile release"

SHELL := /bin/bash
# Builds reuse one target directory, as the scripts do (load-tests/prereqs.sh).
export CARGO_TARGET_DIR ?= $(HOME)/.cache/ballast-target
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help demo demo-regions test check bench bench-brain scenarios soak memory fuzz

help: ## list the targets
	@echo "usage: make TARGET [ARGS=\"...\"]"
	@echo
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk -F':.*## ' '{ printf "  %-14s %s\n", $$1, $$2 }'
	@echo
	@echo "Builds go to CARGO_TARGET_DIR ($(CARGO_TARGET_DIR))."

demo: ## build, start 3 simulated origins + ballast on conf/ballast.yaml (ARGS=--smoke: check and stop)
	load-tests/demo.sh $(ARGS)

demo-regions: ## the three-region demo: spillover and a canary trip, live (ARGS=--smoke)
	load-tests/demo-regions.sh $(ARGS)

test: ## everything CI runs: fmt, clippy, every test, demo smoke runs, short soak, deployment checks, quick scenarios
	load-tests/test.sh

check: ## cargo fmt --check and clippy -D warnings
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

bench: ## throughput benchmark against bare Pingora, nginx, HAProxy (ARGS=--quick, --profile release, ...)
	load-tests/bench.sh $(ARGS)

bench-brain: ## criterion micro-benchmarks of pick, parse, recompute (ARGS="-- pick/adaptive")
	cargo bench -p ballast --bench brain $(ARGS)

scenarios: ## routing-quality load-test scenarios (ARGS=--quick, --scenario KEY, --out DIR)
	load-tests/scenarios.sh $(ARGS)

soak: ## bounded soak: load, reloads, a flapping backend; RSS and descriptors flat (ARGS="--duration 30 --slice 5")
	load-tests/soak.sh $(ARGS)

memory: ## RSS over 1 000 000 requests through 100 backends (ARGS="--requests 100000 --backends 20")
	load-tests/memory.sh $(ARGS)

fuzz: ## every fuzz target for 60 s (ARGS=600: seconds per target; nightly toolchain)
	fuzz/run.sh $(ARGS)
