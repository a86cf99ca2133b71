#!/usr/bin/env bash
# A bounded soak of a release Ballast on loopback: steady moderate load from
# wrk in slices, a configuration reload every third slice, and a backend
# flapping (its listener closed, then reopened) every fourth. After every
# slice it records the requests, errors, RSS and open file descriptors of the
# proxy, then checks that the RSS and descriptor counts stay flat and that no
# slice has errors.
#
#   load-tests/soak.sh                       10 minutes, 10 s slices
#   load-tests/soak.sh --duration 30 --slice 5   the short version CI runs
#   load-tests/soak.sh --out DIR             keep soak.csv and the logs in DIR
#
# Limits checked at the end (after the first slice, which warms up):
#   RSS at most 1.25 × its value after the first slice (+ 8 MiB of slack);
#   open descriptors at most 16 more than after the first slice;
#   every slice under 0.1% errors (non-2xx answers and socket errors).
set -euo pipefail
cd "$(dirname "$0")/.."
. load-tests/prereqs.sh

duration=600 slice=10 out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --slice) slice="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$duration$slice" in *[!0-9]*) echo "--duration and --slice take whole seconds" >&2; exit 2 ;; esac
if [ "$slice" -lt 2 ] || [ "$duration" -lt $((2 * slice)) ]; then
  echo "need --slice >= 2 and --duration >= 2 slices" >&2
  exit 2
fi

ballast_require wrk wrk
echo "building (release)..."
cargo build --release --locked -p ballast -p ballast-load-tests
bin="$CARGO_TARGET_DIR/release"

work="$(mktemp -d)"
[ -n "$out" ] && mkdir -p "$out"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$out" ]; then cp "$work"/*.log "$out"/ 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT


listen="" admin="" control="" o1="" o2="" o3=""
for var in listen admin control o1 o2 o3; do free_port "$var"; done

"$bin/ballast-origin" --control "127.0.0.1:$control" \
  --origin "a@127.0.0.1:$o1/5ms" --origin "b@127.0.0.1:$o2/5ms" --origin "c@127.0.0.1:$o3/10ms" \
  >"$work/origins.log" 2>&1 &
pids+=("$!")

config="$work/ballast.yaml"
# write_config MIN_SHARE: the soak configuration, with a tunable to reload.
write_config() {
  cat >"$config.tmp" <<YAML
listeners: [{address: "127.0.0.1:$listen"}]
admin: {address: "127.0.0.1:$admin"}
server: {threads: 2, drain_timeout: 2s}
pools:
  soak:
    recompute_interval: 250ms
    min_share: $1
    outlier: {consecutive_failures: 3, base_ejection: 2s}
    health: {check: http, path: /healthz, interval: 1s, healthy_after: 1, unhealthy_after: 1}
    backends:
      - {addr: "127.0.0.1:$o1"}
      - {addr: "127.0.0.1:$o2"}
      - {addr: "127.0.0.1:$o3"}
routes: [{pool: soak}]
YAML
  mv "$config.tmp" "$config"
}
write_config 0.02
"$bin/ballast" check -c "$config" >/dev/null
"$bin/ballast" run -c "$config" >"$work/ballast.log" 2>&1 &
ballast_pid=$!
pids+=("$ballast_pid")

for _ in $(seq 1 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$admin/readyz" && break
  sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$listen/warm" || { echo "ballast did not come up" >&2; cat "$work/ballast.log" >&2; exit 1; }

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$ballast_pid/status"; }
fds() { find "/proc/$ballast_pid/fd" -mindepth 1 -maxdepth 1 | wc -l; }
generation() {
  curl -sf "http://127.0.0.1:$admin/api/v1/state" | grep -o '"generation": *[0-9]*' | grep -o '[0-9]*$'
}
set_failure() {
  curl -sf -o /dev/null -X PUT "http://127.0.0.1:$control/origins/$1" -d "{\"failure\": \"$2\"}"
}

csv="$work/soak.csv"
echo "slice,seconds,event,requests,errors,rss_kb,fds,reload_generation" >"$csv"
slices=$((duration / slice))
echo "soak: $slices slices of ${slice}s (wrk -t1 -c8), proxy pid $ballast_pid"
min_share=0.02
for i in $(seq 1 "$slices"); do
  event=""
  if [ $((i % 3)) -eq 0 ]; then
    min_share=$([ "$min_share" = 0.02 ] && echo 0.05 || echo 0.02)
    write_config "$min_share"
    event="reload"
  fi
  if [ $((i % 4)) -eq 0 ]; then
    set_failure c refuse
    event="${event:+$event+}flap"
  fi
  event="${event:--}"
  report="$(wrk -t1 -c8 -d"${slice}s" "http://127.0.0.1:$listen/soak" 2>&1)"
  if [ $((i % 4)) -eq 0 ]; then set_failure c healthy; fi
  requests=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' <<<"$report")
  non2xx=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' <<<"$report")
  socket=$(sed -n 's/^ *Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1 \2 \3 \4/p' <<<"$report")
  errors=$(( ${non2xx:-0} + $(tr ' ' '+' <<<"${socket:-0}") ))
  row="$i,$((i * slice)),$event,${requests:-0},$errors,$(rss_kb),$(fds),$(generation)"
  echo "$row" >>"$csv"
  echo "  $row"
done
[ -n "$out" ] && cp "$csv" "$out/"

# The verdict, from the CSV (the first slice is the warm baseline).
awk -F, -v slices="$slices" '
  NR == 2 { base_rss = $6; base_fds = $7 }
  NR > 1 {
    total += $4; errors += $5
    if ($4 > 0 && $5 / $4 > 0.001) { bad_slices++ }
    last_rss = $6; last_fds = $7; max_rss = ($6 > max_rss ? $6 : max_rss); max_fds = ($7 > max_fds ? $7 : max_fds)
    generation = $8
  }
  END {
    printf "requests %d, errors %d; RSS %d -> %d KiB (max %d); fds %d -> %d (max %d); reloads applied: %d\n",
      total, errors, base_rss, last_rss, max_rss, base_fds, last_fds, max_fds, generation - 1
    ok = 1
    if (max_rss > base_rss * 1.25 + 8192) { print "FAIL: RSS grew"; ok = 0 }
    if (max_fds > base_fds + 16) { print "FAIL: open descriptors grew"; ok = 0 }
    if (bad_slices > 0) { printf "FAIL: %d slice(s) over 0.1%% errors\n", bad_slices; ok = 0 }
    if (total == 0) { print "FAIL: no requests were served"; ok = 0 }
    if (slices >= 3 && generation < 2) { print "FAIL: no reload was applied"; ok = 0 }
    if (ok) print "soak passed"
    exit ok ? 0 : 1
  }' "$csv"
