#!/usr/bin/env bash
# Memory of a release Ballast routing through many backends: RSS at idle,
# then while a fixed number of requests goes through a pool of N simulated
# origins in steps, and after the load has stopped. Each step is bounded by
# its request count (oha -n) and by time (10 minutes at most).
#
#   load-tests/memory.sh                          1 000 000 requests, 100 backends
#   load-tests/memory.sh --requests 100000 --backends 20   a short run
#   load-tests/memory.sh --out DIR                keep memory.csv in DIR
#
# Passes when the RSS after the last step is at most 1.25 × its value after
# the first step (+ 8 MiB of slack) and no request failed: the statistics
# windows, the decision log and the metric series are bounded, so serving
# more requests must not cost more memory.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=load-tests/prereqs.sh disable=SC1091
. load-tests/prereqs.sh

requests=1000000 backends=100 steps=10 connections=32 out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --requests) requests="${2:?--requests needs a value}"; shift 2 ;;
    --backends) backends="${2:?--backends needs a value}"; shift 2 ;;
    --steps) steps="${2:?--steps needs a value}"; shift 2 ;;
    --out) out="${2:?--out needs a value}"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
for value in "$requests" "$backends" "$steps"; do
  [[ "$value" =~ ^[1-9][0-9]*$ ]] || { echo "error: \"$value\" is not a positive integer" >&2; exit 2; }
done
[ "$requests" -ge "$steps" ] || { echo "error: fewer requests than steps" >&2; exit 2; }

ballast_require oha "oha (cargo install oha --locked)"
echo "building (release)..."
cargo build --release --locked -p ballast -p ballast-load-tests --bin ballast --bin ballast-origin
bin="$CARGO_TARGET_DIR/release"

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

listen="" admin=""
free_port listen
free_port admin
origin_args=() backend_lines=""
for i in $(seq 1 "$backends"); do
  port=""
  free_port port
  origin_args+=(--origin "o$i@127.0.0.1:$port")
  backend_lines+="      - {addr: \"127.0.0.1:$port\"}"$'\n'
done
"$bin/ballast-origin" "${origin_args[@]}" >"$work/origins.log" 2>&1 &
pids+=("$!")

config="$work/ballast.yaml"
cat >"$config" <<YAML
listeners: [{address: "127.0.0.1:$listen"}]
admin: {address: "127.0.0.1:$admin"}
server: {threads: 1, drain_timeout: 1s}
pools:
  many:
    min_share: 0.001
    backends:
$backend_lines
routes: [{pool: many}]
YAML
"$bin/ballast" check -c "$config" >/dev/null
"$bin/ballast" --log-level warn run -c "$config" >"$work/ballast.log" 2>&1 &
ballast_pid=$!
pids+=("$ballast_pid")
for _ in $(seq 1 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$admin/readyz" && break
  sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$listen/" || { echo "ballast did not come up" >&2; cat "$work/ballast.log" >&2; exit 1; }

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$ballast_pid/status"; }
series() { curl -sf "http://127.0.0.1:$admin/metrics" | grep -c '^ballast_' || true; }

csv="$work/memory.csv"
echo "phase,requests_total,failed,rss_kb,metric_lines" >"$csv"
sleep 2
echo "idle,0,0,$(rss_kb),$(series)" >>"$csv"
echo "memory: $requests requests through $backends backends in $steps steps (oha -c $connections), proxy pid $ballast_pid"
per_step=$((requests / steps)) done_requests=0 failed_total=0
for i in $(seq 1 "$steps"); do
  report="$(timeout 600 oha -n "$per_step" -c "$connections" --no-tui --output-format json "http://127.0.0.1:$listen/m" 2>/dev/null || true)"
  ok="$(python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print(sum(v for k,v in d.get("statusCodeDistribution",{}).items() if k.startswith("2")))' <<<"$report" 2>/dev/null || echo 0)"
  done_requests=$((done_requests + per_step))
  failed_total=$((failed_total + per_step - ok))
  row="step$i,$done_requests,$failed_total,$(rss_kb),$(series)"
  echo "$row" >>"$csv"
  echo "  $row"
done
sleep 5
echo "after,$done_requests,$failed_total,$(rss_kb),$(series)" >>"$csv"
if [ -n "$out" ]; then mkdir -p "$out" && cp "$csv" "$out/memory.csv"; fi
column -s, -t <"$csv"

awk -F, '
  $1 == "idle" { idle = $4 }
  $1 == "step1" { first = $4 }
  /^step/ { max = ($4 > max ? $4 : max) }
  $1 == "after" { after = $4; failed = $3; total = $2 }
  END {
    printf "RSS: idle %.1f MiB, after the first step %.1f MiB, max %.1f MiB, after %d requests %.1f MiB; failed requests: %d\n",
      idle / 1024, first / 1024, max / 1024, total, after / 1024, failed
    ok = 1
    if (max > first * 1.25 + 8192) { print "FAIL: RSS grew with the requests served"; ok = 0 }
    if (failed > 0) { print "FAIL: requests failed"; ok = 0 }
    if (ok) print "memory check passed"
    exit ok ? 0 : 1
  }' "$csv"
