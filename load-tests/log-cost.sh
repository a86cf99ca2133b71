#!/usr/bin/env bash
# What the access log costs per request, in CPU instructions counted by
# valgrind's callgrind: repeatable whatever else the machine does, where a
# throughput run on a shared 2-CPU machine cannot resolve a few percent.
#
#   load-tests/log-cost.sh [--requests N] [--repeat R] [--profile NAME] [--out DIR]
#
# One Ballast (`threads: 1`, latency mode, one backend: a `ballast-origin`
# answering at once) runs under callgrind twice per log setting — once
# serving SMALL requests, once SMALL + N — over one keep-alive connection
# (curl), so that the difference divided by N is the instructions of one
# request, start-up and shutdown cancelled out; repeated R times (default 3),
# the median reported (background work that runs by the clock, such as the
# weight engine, still varies with how long the run takes: a percent or
# two). The settings:
#   - `--log-level warn`: no access log;
#   - `--log-level info`: the default access log, text, to a file;
#   - `--log-level info --log-format json`: the same in JSON;
#   - `--log-level info,ballast::access=warn`: every other info line, no
#     access line (what the log level alone costs).
# Report: DIR/log-cost.md (default load-tests/results/DATE).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=load-tests/prereqs.sh disable=SC1091
. load-tests/prereqs.sh

requests=2000 small=200 repeat=3 profile=release out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --requests) requests="${2:?--requests needs a value}"; shift ;;
    --repeat) repeat="${2:?--repeat needs a value}"; shift ;;
    --profile) profile="${2:?--profile needs a value}"; shift ;;
    --out) out="${2:?--out needs a value}"; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
out="${out:-load-tests/results/$(date -u +%Y-%m-%d)}"
command -v valgrind >/dev/null || ballast_require valgrind valgrind

echo "building (profile $profile)..." >&2
cargo build --profile "$profile" --bin ballast --bin ballast-origin >&2
bin="$CARGO_TARGET_DIR/$profile"
[ "$profile" = dev ] && bin="$CARGO_TARGET_DIR/debug"

tmp="$(mktemp -d)"
origin_pid=""
cleanup() {
  [ -n "$origin_pid" ] && kill "$origin_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

origin_port=""
free_port origin_port
"$bin/ballast-origin" --origin "o@127.0.0.1:$origin_port" >"$tmp/origin.log" 2>&1 &
origin_pid=$!
for _ in $(seq 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$origin_port/" && break
  sleep 0.1
done

port="" admin_port=""
free_port port
free_port admin_port
# The configuration in a directory of its own: Ballast watches it, and the
# files the measurement writes beside it would wake the watcher per request.
mkdir "$tmp/config"
cat >"$tmp/config/ballast.yaml" <<YAML
listeners: [{address: "127.0.0.1:$port"}]
admin: {address: "127.0.0.1:$admin_port"}
server: {threads: 1, drain_timeout: 1s}
pools: {origin: {mode: latency, backends: [{addr: "127.0.0.1:$origin_port"}]}}
routes: [{name: all, pool: origin}]
YAML
"$bin/ballast" check -c "$tmp/config/ballast.yaml" >/dev/null

# instructions LABEL COUNT LOG_ARGS...: callgrind's total for start-up,
# COUNT requests and shutdown.
instructions() {
  local label="$1" count="$2"; shift 2
  local file="$tmp/callgrind-$label-$count.out" urls=() pid
  valgrind --tool=callgrind --callgrind-out-file="$file" \
    "$bin/ballast" "$@" run -c "$tmp/config/ballast.yaml" >/dev/null 2>"$tmp/$label-$count.log" &
  pid=$!
  local deadline=$((SECONDS + 120))
  # Ready when a request goes through (one more in every run: it cancels out).
  until curl -sf -o /dev/null "http://127.0.0.1:$port/"; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "error: Ballast under valgrind did not start" >&2; exit 1; }
    sleep 0.2
  done
  for _ in $(seq "$count"); do urls+=("http://127.0.0.1:$port/"); done
  local served
  curl -s -w '%{stderr}%{http_code}\n' "${urls[@]}" >/dev/null 2>"$tmp/$label-$count.codes" || true
  served=$(grep -c '^200$' "$tmp/$label-$count.codes" || true)
  # SIGTERM: a graceful stop (`drain_timeout: 1s`), after which callgrind
  # writes its counts; SIGKILL only if that never comes.
  kill -TERM "$pid"
  local waited=0
  while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 600 ]; do
    sleep 0.1
    waited=$((waited + 1))
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [ "$served" -ne "$count" ]; then
    echo "error: $label: $served of $count requests answered 200 (answers by status: $(sort "$tmp/$label-$count.codes" | uniq -c | tr -s ' \n' ' ')); nothing to compare. Ballast's warnings:" >&2
    grep -E 'WARN|ERROR' "$tmp/$label-$count.log" | head -n 20 >&2
    exit 1
  fi
  awk '/^summary:|^totals:/ {print $2; exit}' "$file"
}

rows=()
baseline=""
for setting in "warn" "info" "info json" "info,ballast::access=warn"; do
  read -r level format <<<"$setting"
  args=(--log-level "$level")
  [ -n "${format:-}" ] && args+=(--log-format "$format")
  label="${setting// /-}"
  label="${label//[^a-z-]/_}"
  echo "measuring: ${args[*]}" >&2
  samples=()
  for _ in $(seq "$repeat"); do
    few=$(instructions "$label" "$small" "${args[@]}")
    many=$(instructions "$label" "$((small + requests))" "${args[@]}")
    samples+=($(( (many - few) / requests )))
  done
  per=$(printf '%s\n' "${samples[@]}" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
  [ -z "$baseline" ] && baseline=$per
  lines=$(grep -cE 'INFO ballast::access:|"target":"ballast::access"' "$tmp/$label-$((small + requests)).log" || true)
  rows+=("| \`${args[*]}\` | $per | ${samples[*]} | $(awk -v a="$per" -v b="$baseline" 'BEGIN{printf "%+.1f %%", (a/b-1)*100}') | $lines |")
done

mkdir -p "$out"
{
  echo "# Access-log cost in instructions, $(date -u +%Y-%m-%d)"
  echo
  echo "Produced by \`load-tests/log-cost.sh --requests $requests --repeat $repeat --profile $profile\` at commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
  echo
  echo "Ballast under callgrind, one thread, one keep-alive client (curl), one backend;"
  echo "instructions per request = (total for $((small + requests)) requests − total for $small) ÷ $requests,"
  echo "the median of $repeat repeats (background work that runs by the clock varies with the run's length)."
  echo "Instructions, not time: the count repeats whatever else the machine does; it leaves out"
  echo "the kernel's share (the log file's writes: one per 64 KiB of lines)."
  echo
  echo "| log setting | instructions per request (median) | each repeat | against no access log | access lines written |"
  echo "|---|---:|---|---:|---:|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "valgrind: $(valgrind --version); $(uname -srm)"
} >"$out/log-cost.md"
cat "$out/log-cost.md"
