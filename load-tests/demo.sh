#!/usr/bin/env bash
# The Ballast demo: build, start three simulated origins on loopback and the
# proxy on conf/ballast.yaml, and print where to send requests. Ctrl-C stops
# everything (the proxy drains in-flight requests first).
#
#   load-tests/demo.sh           run until Ctrl-C
#   load-tests/demo.sh --smoke   start, check a few requests through every listener, stop
set -euo pipefail
cd "$(dirname "$0")/.."
. load-tests/prereqs.sh

smoke=false
[ "${1:-}" = "--smoke" ] && smoke=true

echo "building (release)..."
cargo build --release --locked -p ballast -p ballast-load-tests
bin="$CARGO_TARGET_DIR/release"

if [ ! -f certs/dev.crt ] || [ ! -f certs/dev.key ]; then
  "$bin/ballast" gen-cert --out certs
fi
"$bin/ballast" check -c conf/ballast.yaml >/dev/null

"$bin/ballast-origin" \
  --origin big@127.0.0.1:9101/5ms \
  --origin small@127.0.0.1:9102/40ms \
  --origin static@127.0.0.1:9103 &
origin_pid=$!
ballast_pid=""
cleanup() {
  [ -n "$ballast_pid" ] && kill -TERM "$ballast_pid" 2>/dev/null && wait "$ballast_pid" 2>/dev/null
  kill "$origin_pid" 2>/dev/null || true
  wait "$origin_pid" 2>/dev/null || true
}
trap cleanup EXIT

"$bin/ballast" run -c conf/ballast.yaml &
ballast_pid=$!

# Wait (bounded) until the proxy answers.
for _ in $(seq 1 100); do
  curl -s -o /dev/null http://127.0.0.1:9901/readyz && break
  sleep 0.1
done

cat <<TXT

Ballast is running (config: conf/ballast.yaml).
  curl -s http://127.0.0.1:8080/api/hello          # pool "api" (latency mode): big (5 ms) gets more than small (40 ms)
  curl -s http://127.0.0.1:8080/                   # pool "static"
  curl -s --cacert certs/ca.crt https://localhost:8443/api/hello --http2
  curl -s -X POST --data-binary @README.md http://127.0.0.1:8080/api/echo
  curl -s http://127.0.0.1:9901/healthz            # admin endpoint
Origins: big 127.0.0.1:9101 (5 ms), small 127.0.0.1:9102 (40 ms), static 127.0.0.1:9103.
TXT

if $smoke; then
  fail() { echo "demo smoke check failed: $*" >&2; exit 1; }
  declare -A seen=()
  for _ in $(seq 1 200); do
    body=$(curl -sf http://127.0.0.1:8080/api/hello) || fail "GET /api/hello"
    origin="${body%% *}"
    seen["$origin"]=$(( ${seen["$origin"]:-0} + 1 ))
    [ "${#seen[@]}" -eq 2 ] && [ "${seen[big]:-0}" -ge 20 ] && break
  done
  echo "api origins served: big ${seen[big]:-0}, small ${seen[small]:-0}"
  [ "${#seen[@]}" -eq 2 ] || fail "expected both api origins, saw: ${!seen[*]}"
  curl -sf http://127.0.0.1:8080/ | grep -q '^static GET /' || fail "GET / on static"
  curl -sf --cacert certs/ca.crt --http2 https://localhost:8443/api/x | grep -q 'GET /api/x' || fail "https + h2"
  [ "$(curl -sf -X POST --data-binary 'ping' http://127.0.0.1:8080/api/echo)" = "ping" ] || fail "POST echo"
  curl -sf http://127.0.0.1:9901/healthz >/dev/null || fail "admin /healthz"
  echo "demo smoke check passed"
  exit 0
fi

echo "Press Ctrl-C to stop."
wait "$ballast_pid"
