#!/usr/bin/env bash
# The three-region demo of docker/compose.yaml, natively on loopback: Ballast
# on docker/ballast/ballast.yaml (only its addresses rewritten to loopback
# ports) in front of simulated origins for us-east (two origins and a canary,
# 5 ms), us-west (30 ms) and eu-west (80 ms), with traffic from clients of
# each region (X-Client-Region). Then the story:
#
#   1. us-east turns slow (300 ms) through the simulator's control API: its
#      latency passes spillover.latency_above and Ballast spills us-east's
#      clients to us-west, a step at a time; then us-east recovers;
#   2. the us-east canary starts failing half its requests: its breaker trips
#      and it gets no more traffic.
#
#   load-tests/demo-regions.sh          run the story, then keep everything up
#                                       (and the traffic going) for 10 minutes or until Ctrl-C
#   load-tests/demo-regions.sh --smoke  run the story and check, through the admin API
#                                       (/api/v1/state regions[].spill, /api/v1/decisions
#                                       kind=spill and kind=canary_tripped), that both
#                                       happened within 40 s of the start; exit 0 if so
#
# Every process it starts is stopped on exit, on failure and on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
. load-tests/prereqs.sh
ballast_require jq jq

smoke=false
case "${1:-}" in
  "") ;;
  --smoke) smoke=true ;;
  *) echo "usage: $0 [--smoke]" >&2; exit 2 ;;
esac
budget=40 # seconds the smoke run may take once built

echo "building (release)..."
cargo build --release --locked -p ballast -p ballast-load-tests
bin="$CARGO_TARGET_DIR/release"

tmp="$(mktemp -d)"
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# The compose services' origins: compose address, name, latency.
origins=(
  "172.28.0.11:9101 us-east-1 5ms"
  "172.28.0.11:9102 us-east-2 5ms"
  "172.28.0.11:9103 us-east-canary 5ms"
  "172.28.0.12:9101 us-west-1 30ms"
  "172.28.0.13:9101 eu-west-1 80ms"
)
listen_port="" admin_port="" control_port=""
free_port listen_port
free_port admin_port
free_port control_port
rewrite=(-e "s/0\.0\.0\.0:8080/127.0.0.1:$listen_port/" -e "s/0\.0\.0\.0:9901/127.0.0.1:$admin_port/"
  -e "s#172\.28\.0\.0/24#127.0.0.0/8#")
origin_args=()
for origin in "${origins[@]}"; do
  read -r compose_addr name latency <<<"$origin"
  port=""
  free_port port
  rewrite+=(-e "s/${compose_addr//./\\.}/127.0.0.1:$port/")
  origin_args+=(--origin "$name@127.0.0.1:$port/$latency")
done
config="$tmp/ballast.yaml"
sed "${rewrite[@]}" docker/ballast/ballast.yaml >"$config"
if grep -q '172\.28\.' "$config"; then
  echo "error: docker/ballast/ballast.yaml has addresses this script does not know:" >&2
  grep -n '172\.28\.' "$config" >&2
  exit 1
fi
export BALLAST_ADMIN_TOKEN=demo-admin-token
"$bin/ballast" check -c "$config" >/dev/null

admin="http://127.0.0.1:$admin_port"
control="http://127.0.0.1:$control_port"
api() { curl -sf -m 2 -H "Authorization: Bearer $BALLAST_ADMIN_TOKEN" "$admin$1"; }
set_origin() { # set_origin NAME JSON
  curl -sf -m 2 -X PUT "$control/origins/$1" -d "$2" >/dev/null || { echo "error: control API: $1 $2" >&2; exit 1; }
}
started=$(date +%s%N)
elapsed() { echo "$(( ($(date +%s%N) - started) / 100000000 ))" | sed 's/.$/.&/;s/^\./0./'; }
say() { printf '[%5ss] %s\n' "$(elapsed)" "$*"; }
deadline_passed() { $smoke && [ $(( ($(date +%s%N) - started) / 1000000000 )) -ge "$budget" ]; }

setsid "$bin/ballast-origin" "${origin_args[@]}" --control "127.0.0.1:$control_port" >"$tmp/origins.log" 2>&1 &
pids+=("$!")
setsid "$bin/ballast" --log-level info,ballast::access=warn run -c "$config" >"$tmp/ballast.log" 2>&1 &
ballast_pid=$!
pids+=("$ballast_pid")

# Readiness, bounded: the admin /readyz, the control API and a proxied request.
ready=false
for _ in $(seq 1 100); do
  if curl -sf -m 1 -o /dev/null "$admin/readyz" && curl -sf -m 1 -o /dev/null "$control/origins" \
    && curl -sf -m 1 -o /dev/null "http://127.0.0.1:$listen_port/api/ready"; then
    ready=true
    break
  fi
  kill -0 "$ballast_pid" 2>/dev/null || break
  sleep 0.1
done
if ! $ready; then
  echo "error: ballast or the origins did not come up within 10 s" >&2
  tail -n 20 "$tmp/ballast.log" "$tmp/origins.log" >&2
  exit 1
fi
say "ballast on 127.0.0.1:$listen_port (admin $admin, token $BALLAST_ADMIN_TOKEN), origins' control API $control"

# Traffic, in its own session so that cleanup stops every curl: rounds of 40
# us-east, 10 us-west and 10 eu-west requests (8 at a time per region).
traffic_seconds=600
$smoke && traffic_seconds=$budget
# shellcheck disable=SC2016 # the loop's variables expand in the inner shell
setsid bash -c '
  end=$(( $(date +%s) + $1 ))
  while [ "$(date +%s)" -lt "$end" ]; do
    for spec in us-east:40 us-west:10 eu-west:10; do
      curl -s -m 5 --parallel --parallel-max 8 -H "X-Client-Region: ${spec%%:*}" \
        "$2/api/demo?n=[1-${spec##*:}]" >/dev/null 2>&1 &
    done
    wait
    sleep 0.2
  done' traffic "$traffic_seconds" "http://127.0.0.1:$listen_port" &
pids+=("$!")

# wait_for DESCRIPTION TIMEOUT_S COMMAND...: poll COMMAND every 0.25 s.
wait_for() {
  local description="$1" timeout="$2" until
  shift 2
  until=$(( $(date +%s) + timeout ))
  while ! "$@"; do
    if [ "$(date +%s)" -ge "$until" ] || deadline_passed; then
      say "gave up waiting: $description"
      return 1
    fi
    sleep 0.25
  done
}

region_spill() { # region_spill REGION: its spill fraction in pool api
  api /api/v1/state | jq -r --arg r "$1" '.pools[] | select(.name == "api") | .regions[] | select(.region == $r) | .spill'
}
us_east_spilling() { [ "$(region_spill us-east | awk '{print ($1 > 0)}')" = 1 ]; }
spill_decisions() { api '/api/v1/decisions?kind=spill' | jq -r '.decisions[] | select(.reason | startswith("spill:us-east->")) | .reason'; }
has_spill_decision() { [ -n "$(spill_decisions)" ]; }
trip_decisions() { api '/api/v1/decisions?kind=canary_tripped' | jq -r '.decisions[] | "\(.backend): \(.reason)"'; }
has_trip_decision() { [ -n "$(trip_decisions)" ]; }
us_east_requests() { # requests counted by us-east's three backends
  api /api/v1/state | jq '[.pools[] | select(.name == "api") | .backends[] | select(.region == "us-east") | .requests] | add'
}
warmed_up() { [ "$(us_east_requests)" -ge 100 ]; }

failures=()
wait_for "traffic through us-east" 10 warmed_up || failures+=("no traffic reached us-east")
say "traffic flowing: $(us_east_requests) requests on us-east's backends so far"

# seconds_since START_EPOCH KIND: from START to the first decision of KIND.
seconds_since() {
  api "/api/v1/decisions?kind=$2" \
    | jq -r --argjson start "$1" '[.decisions[].at] | min // empty | . - $start | . * 10 | round / 10'
}

say "1. us-east turns slow: its three origins answer in 300 ms"
slow_at="$(date +%s.%N)"
for name in us-east-1 us-east-2 us-east-canary; do
  set_origin "$name" '{"latency": {"kind": "fixed", "ms": 300}}'
done
if wait_for "us-east spilling" 20 us_east_spilling && wait_for "a spill decision" 5 has_spill_decision; then
  sleep 1.5 # a few more steps
  say "first spill decision $(seconds_since "$slow_at" spill) s after the slowdown;" \
    "us-east spill fraction now $(region_spill us-east); spill decisions:"
  spill_decisions | sed 's/^/          /'
else
  failures+=("us-east never spilled")
fi
say "us-east recovers (5 ms)"
for name in us-east-1 us-east-2 us-east-canary; do
  set_origin "$name" '{"latency": {"kind": "fixed", "ms": 5}}'
done

say "2. the us-east canary fails half its requests"
failing_at="$(date +%s.%N)"
set_origin us-east-canary '{"error_rate": 0.5}'
if wait_for "the canary breaker" 15 has_trip_decision; then
  say "canary breaker tripped $(seconds_since "$failing_at" canary_tripped) s after the errors began:"
  trip_decisions | sed 's/^/          /'
else
  failures+=("the canary breaker never tripped")
fi

metrics="$(api /metrics)"
say "metrics:"
grep -E '^ballast_(region_spill_fraction|spilled_requests_total|canary_breaker_trips_total)' <<<"$metrics" \
  | sed 's/^/          /'
echo "$metrics" | awk '/^ballast_requests_total/ { split($1, a, "status_class=\""); split(a[2], b, "\""); n[b[1]] += $2 }
  END { printf "          requests by status class:"; for (c in n) printf " %s=%d", c, n[c]; print "" }'

if $smoke; then
  took="$(elapsed)"
  if [ "${#failures[@]}" -ne 0 ]; then
    for failure in "${failures[@]}"; do echo "demo-regions smoke check failed: $failure" >&2; done
    tail -n 30 "$tmp/ballast.log" >&2
    exit 1
  fi
  echo "demo-regions smoke check passed in ${took} s (spillover and canary trip seen through the admin API)"
  exit 0
fi

set_origin us-east-canary '{"error_rate": 0}'
cat <<TXT

The three-region demo keeps running with traffic for 10 minutes (Ctrl-C stops it):
  curl -s -H 'X-Client-Region: us-west' http://127.0.0.1:$listen_port/api/hello
  curl -s -H 'Authorization: Bearer $BALLAST_ADMIN_TOKEN' $admin/api/v1/state | jq '.pools[].regions'
  open $admin/dashboard (token $BALLAST_ADMIN_TOKEN)
  curl -X PUT $control/origins/us-east-1 -d '{"latency": {"kind": "fixed", "ms": 300}}'
The canary's error rate is back at 0: it returns after its 30 s cool-down, through slow start.
TXT
wait "${pids[-1]}" || true
