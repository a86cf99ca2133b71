#!/usr/bin/env bash
# Where a request's CPU goes: instructions per request counted by
# valgrind's callgrind, grouped by crate, for Ballast and for the bare
# Pingora proxies it is measured against in load-tests/bench.sh.
#
#   load-tests/cpu-profile.sh [--requests N] [--top K] [--profile NAME] [--out DIR]
#
# Each proxy (one thread, one backend: a `ballast-origin` answering at
# once) runs under callgrind twice — serving SMALL requests, then SMALL + N
# — over one keep-alive connection (curl); the difference divided by N is
# one request, start-up and shutdown cancelled out. Each function's self
# cost is differenced the same way and summed by crate
# (load-tests/callgrind-crates.py). The proxies:
#   - ballast: the bench's `ballast latency` (latency mode, `threads: 1`,
#     `--log-level warn`), mimalloc;
#   - bare pingora: `ballast-bare-pingora` (one fixed peer), glibc malloc;
#   - bare pingora mimalloc: the same with mimalloc.
# Instructions leave out the kernel (system calls) and cache misses: they
# rank the user-space costs; bench.sh measures the time.
# Report: DIR/cpu-profile.md (default load-tests/results/DATE), with the
# K costliest functions of Ballast (default 25) and the K where it spends
# the most beyond the bare proxy with mimalloc.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=load-tests/prereqs.sh disable=SC1091
. load-tests/prereqs.sh

requests=2000 small=200 top=25 profile=release out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --requests) requests="${2:?--requests needs a value}"; shift ;;
    --top) top="${2:?--top needs a value}"; shift ;;
    --profile) profile="${2:?--profile needs a value}"; shift ;;
    --out) out="${2:?--out needs a value}"; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
for value in "$requests" "$top"; do
  [[ "$value" =~ ^[1-9][0-9]*$ ]] || { echo "error: \"$value\" is not a positive integer" >&2; exit 2; }
done
out="${out:-load-tests/results/$(date -u +%Y-%m-%d)}"
command -v valgrind >/dev/null || ballast_require valgrind valgrind

echo "building (profile $profile)..." >&2
cargo build --profile "$profile" --locked -p ballast -p ballast-load-tests --bin ballast \
  --bin ballast-bare-pingora --bin ballast-bare-pingora-mimalloc --bin ballast-origin >&2
bin="$CARGO_TARGET_DIR/$profile"
[ "$profile" = dev ] && bin="$CARGO_TARGET_DIR/debug"

tmp="$(mktemp -d)"
origin_pid=""
cleanup() {
  [ -z "$origin_pid" ] || kill "$origin_pid" 2>/dev/null || true
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

command_of() { # LABEL: the proxy's command line
  case "$1" in
    ballast) echo "$bin/ballast --log-level warn run -c $tmp/config/ballast.yaml" ;;
    bare-pingora) echo "$bin/ballast-bare-pingora --listen 127.0.0.1:$port --upstream 127.0.0.1:$origin_port --threads 1" ;;
    bare-pingora-mimalloc) echo "$bin/ballast-bare-pingora-mimalloc --listen 127.0.0.1:$port --upstream 127.0.0.1:$origin_port --threads 1" ;;
  esac
}

# measure LABEL COUNT: run the proxy under callgrind for COUNT requests; its
# output file is $tmp/LABEL-COUNT.out.
measure() {
  local label="$1" count="$2" urls=() pid served
  # shellcheck disable=SC2046 # the command is split on purpose
  valgrind --tool=callgrind --callgrind-out-file="$tmp/$label-$count.out" \
    $(command_of "$label") >/dev/null 2>"$tmp/$label-$count.log" &
  pid=$!
  local deadline=$((SECONDS + 120))
  # Ready when a request goes through (one more in every run: it cancels out).
  until curl -sf -o /dev/null "http://127.0.0.1:$port/"; do
    kill -0 "$pid" 2>/dev/null || { echo "error: $label exited under valgrind:" >&2; tail -n 20 "$tmp/$label-$count.log" >&2; exit 1; }
    [ "$SECONDS" -lt "$deadline" ] || { echo "error: $label under valgrind did not start" >&2; exit 1; }
    sleep 0.2
  done
  for _ in $(seq "$count"); do urls+=("http://127.0.0.1:$port/"); done
  curl -s -w '%{stderr}%{http_code}\n' "${urls[@]}" >/dev/null 2>"$tmp/$label-$count.codes" || true
  served=$(grep -c '^200$' "$tmp/$label-$count.codes" || true)
  kill -TERM "$pid"
  local waited=0
  while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 600 ]; do
    sleep 0.1
    waited=$((waited + 1))
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  [ "$served" -eq "$count" ] || {
    echo "error: $label: $served of $count requests answered 200; its log:" >&2
    tail -n 20 "$tmp/$label-$count.log" >&2
    exit 1
  }
  [ -s "$tmp/$label-$count.out" ] || { echo "error: $label: callgrind wrote no counts" >&2; exit 1; }
}

total() { awk '/^summary:|^totals:/ { print $2; exit }' "$1"; }
labels=(ballast bare-pingora bare-pingora-mimalloc)
for label in "${labels[@]}"; do
  echo "measuring $label..." >&2
  measure "$label" "$small"
  measure "$label" "$((small + requests))"
  load-tests/callgrind-crates.py "$tmp/$label-$small.out" "$tmp/$label-$((small + requests)).out" \
    "$requests" 100000 >"$tmp/$label.tsv"
  echo $(( ($(total "$tmp/$label-$((small + requests)).out") - $(total "$tmp/$label-$small.out")) / requests )) >"$tmp/$label.total"
done

cost_of() { # LABEL KIND NAME
  awk -F'\t' -v k="$2" -v n="$3" '$1 == k && $2 == n { print $3; found = 1 } END { if (!found) print 0 }' "$tmp/$1.tsv"
}
mkdir -p "$out"
report="$out/cpu-profile.md"
{
  echo "# Instructions per request by crate, $(date -u +%Y-%m-%d)"
  echo
  echo "Produced by \`load-tests/cpu-profile.sh --requests $requests --top $top --profile $profile\` at commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
  echo
  echo "Each proxy under callgrind, one thread, one keep-alive client (curl), one backend;"
  echo "per request = (count for $((small + requests)) requests − count for $small) ÷ $requests."
  echo "User-space instructions only: system calls and cache misses are not in them."
  echo
  echo "| crate | ballast | bare pingora (glibc) | bare pingora (mimalloc) | ballast − bare (mimalloc) |"
  echo "|---|---:|---:|---:|---:|"
  cut -f1,2 "$tmp"/*.tsv | awk -F'\t' '$1 == "crate" { print $2 }' | sort -u | while read -r crate; do
    a=$(cost_of ballast crate "$crate") b=$(cost_of bare-pingora crate "$crate") c=$(cost_of bare-pingora-mimalloc crate "$crate")
    printf '%s\t| %s | %s | %s | %s | %+d |\n' "$a" "$crate" "$a" "$b" "$c" $((a - c))
  done | sort -t$'\t' -k1,1 -gr | cut -f2-
  a=$(cat "$tmp/ballast.total") b=$(cat "$tmp/bare-pingora.total") c=$(cat "$tmp/bare-pingora-mimalloc.total")
  printf '| **all** | **%s** | **%s** | **%s** | **%+d** |\n' "$a" "$b" "$c" $((a - c))
  echo
  echo "Ballast's $top costliest functions (self instructions per request):"
  echo
  echo "| instructions | function |"
  echo "|---:|---|"
  awk -F'\t' -v top="$top" '$1 == "function" && ++n <= top { gsub(/\|/, "\\|", $2); printf "| %s | `%s` |\n", $3, $2 }' "$tmp/ballast.tsv"
  echo
  echo "The $top functions where Ballast spends the most beyond the bare proxy with mimalloc"
  echo "(self instructions per request):"
  echo
  echo "| ballast − bare (mimalloc) | ballast | bare (mimalloc) | function |"
  echo "|---:|---:|---:|---|"
  awk -F'\t' '
    FNR == NR && $1 == "function" { bare[$2] = $3; next }
    $1 == "function" { print $3 - bare[$2] "\t" $3 "\t" ($2 in bare ? bare[$2] : 0) "\t" $2 }
  ' "$tmp/bare-pingora-mimalloc.tsv" "$tmp/ballast.tsv" | sort -t$'\t' -k1,1 -gr | head -n "$top" |
    awk -F'\t' '{ gsub(/\|/, "\\|", $4); printf "| %+d | %s | %s | `%s` |\n", $1, $2, $3, $4 }'
  echo
  echo "valgrind: $(valgrind --version); $(uname -srm)"
} >"$report"
cat "$report"
