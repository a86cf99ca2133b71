#!/usr/bin/env bash
# Run the load-test scenarios (load-tests/src/scenario/): Ballast in each
# routing mode, and nginx (round robin, least_conn) and HAProxy (leastconn)
# when they are installed, under bounded open- or closed-loop load on
# loopback, some with finite-capacity origins (workers and a FIFO queue).
# Writes a Markdown report with a CSV and a PNG per scenario, and exits
# non-zero when a run fails or, with --quick, when a routing-quality check
# fails.
#
#   load-tests/scenarios.sh           full run (about 50 min with nginx and HAProxy,
#                                     25 min without); report in load-tests/results/DATE/
#   load-tests/scenarios.sh --quick   CI subset (about 9.5 min): Ballast and HAProxy, with checks;
#                                     report in load-tests/results/DATE-quick/ (not committed)
#
# Any other option goes to ballast-scenarios (--out DIR, --scenario KEY, --rate N;
# see --help). Installs a TrueType font for the charts when none is found.
set -euo pipefail
cd "$(dirname "$0")/.."
. load-tests/prereqs.sh

if [ -z "${BALLAST_FONT:-}" ] && [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then
  echo "installing missing font: fonts-dejavu-core" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  command -v apt-get >/dev/null 2>&1 || { echo "error: install a TrueType font or set BALLAST_FONT" >&2; exit 1; }
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq fonts-dejavu-core >/dev/null
fi

echo "building (release)..."
cargo build --release --locked -p ballast -p ballast-load-tests
bin="$CARGO_TARGET_DIR/release"
exec "$bin/ballast-scenarios" --ballast "$bin/ballast" "$@"
