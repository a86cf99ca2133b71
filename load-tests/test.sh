#!/usr/bin/env bash
# Run everything CI runs: shell-script checks (bash -n, and shellcheck when
# installed), formatting, lints, all unit and integration tests,
# the dashboard in headless Chromium, smoke runs of the demo and of the
# three-region demo, the deployment assets' validation (docker/validate.sh;
# its linters are skipped with a message when PyPI cannot be reached), and
# the quick routing scenarios. Installs cmake, protoc, etcd, Redis, Chromium
# and HAProxy when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. load-tests/prereqs.sh

step() { printf '\n==> %s\n' "$*"; }

step "shell scripts"
for script in load-tests/*.sh docker/*.sh; do bash -n "$script"; done
if command -v shellcheck >/dev/null 2>&1; then
  shellcheck -x load-tests/*.sh docker/*.sh
else
  echo "shellcheck is not installed: only bash -n was run"
fi
step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo test"
ballast_require etcd etcd-server
ballast_require redis-server redis-server
cargo test --workspace --locked
step "dashboard in headless Chromium"
ballast_require chromium chromium
cargo test -p ballast --locked --test integration -- --ignored --nocapture dashboard::
step "demo smoke run"
load-tests/demo.sh --smoke
step "short soak (30 s: reloads, a flapping backend, RSS and descriptors flat)"
load-tests/soak.sh --duration 30 --slice 5
step "three-region demo smoke run (spillover, canary breaker)"
load-tests/demo-regions.sh --smoke
step "deployment assets (docker/validate.sh)"
docker/validate.sh
step "routing-quality scenarios (quick pace, against HAProxy leastconn)"
ballast_require haproxy haproxy
scenario_out="$(mktemp -d)"
load-tests/scenarios.sh --quick --out "$scenario_out"
rm -rf "$scenario_out"
printf '\nall checks passed\n'
