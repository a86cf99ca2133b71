#!/usr/bin/env bash
# Build a statically linked `ballast` for docker/Dockerfile.scratch, and
# check that it really is static and really works.
#
#   docker/build-static.sh              build into docker/dist/ballast, then verify
#   docker/build-static.sh --no-verify  build only
#
# How: the glibc target with the C runtime linked in
# (RUSTFLAGS="-C target-feature=+crt-static"), so no musl toolchain is
# needed; libc.a comes from Debian's libc6-dev. glibc warns at link time
# that getaddrinfo in a static binary needs the shared NSS libraries of the
# same glibc at run time: Ballast never resolves a name (every address in
# its configuration is IP:port), so this does not matter for it; only
# `ballast probe http://NAME/...` would, so probe an IP address.
#
# The verification (bounded: about 15 s at most once built) checks that
# `file` and `ldd` call the binary static, that `ballast check -c
# conf/ballast.yaml` passes, and that the binary proxies a request on
# loopback in front of a `ballast-origin`, answers `ballast probe` on its
# admin /readyz, and exits 0 on SIGTERM. Every process it starts is stopped
# on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. load-tests/prereqs.sh

verify=true
case "${1:-}" in
  "") ;;
  --no-verify) verify=false ;;
  *) echo "usage: $0 [--no-verify]" >&2; exit 2 ;;
esac

host="$(rustc -vV | sed -n 's/^host: //p')"
case "$host" in
  *-linux-gnu) ;;
  *) echo "error: static glibc builds need a *-linux-gnu host, this is $host" >&2; exit 1 ;;
esac

echo "==> building a static ballast for $host"
# --target keeps these artifacts apart from the ordinary (dynamic) build in
# the same target directory, and keeps RUSTFLAGS away from build scripts.
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --profile production --locked --target "$host" -p ballast
static_bin="$CARGO_TARGET_DIR/$host/production/ballast"
mkdir -p docker/dist/tmp
# Symbols stripped: about a fifth smaller, and the image has no debugger.
if command -v strip >/dev/null 2>&1; then
  strip -o docker/dist/ballast "$static_bin"
else
  cp "$static_bin" docker/dist/ballast
fi
echo "wrote docker/dist/ballast ($(du -h docker/dist/ballast | cut -f1))"
$verify || exit 0

fail() { echo "static binary check failed: $*" >&2; exit 1; }
bin=docker/dist/ballast

echo "==> is it static?"
description="$(file -b "$bin")"
echo "file: $description"
case "$description" in
  *"statically linked"* | *"static-pie linked"*) ;;
  *) fail "file does not call it static" ;;
esac
# ldd exits non-zero on a static binary; its words are what count.
ldd_says="$(ldd "$bin" 2>&1 || true)"
echo "ldd: $ldd_says"
case "$ldd_says" in
  *"not a dynamic executable"* | *"statically linked"*) ;;
  *) fail "ldd lists shared libraries" ;;
esac

echo "==> ballast check -c conf/ballast.yaml"
if [ ! -f certs/dev.crt ] || [ ! -f certs/dev.key ]; then
  "$bin" gen-cert --out certs
fi
"$bin" check -c conf/ballast.yaml >/dev/null || fail "ballast check"
echo "configuration OK"

echo "==> serving a request in front of an origin"
# The same build as load-tests/demo.sh's, so that its artifacts are reused.
cargo build --release --locked -p ballast -p ballast-load-tests
origin_bin="$CARGO_TARGET_DIR/release/ballast-origin"

tmp="$(mktemp -d)"
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

origin_port="" listen_port="" admin_port=""
free_port origin_port
free_port listen_port
free_port admin_port

"$origin_bin" --origin "static-check@127.0.0.1:$origin_port" >"$tmp/origin.log" 2>&1 &
pids+=("$!")
cat >"$tmp/ballast.yaml" <<YAML
listeners: [{address: "127.0.0.1:$listen_port"}]
admin: {address: "127.0.0.1:$admin_port"}
server: {threads: 1, drain_timeout: 2s}
pools: {p: {backends: [{addr: "127.0.0.1:$origin_port"}]}}
routes: [{pool: p}]
YAML
"$bin" run -c "$tmp/ballast.yaml" >"$tmp/ballast.log" 2>&1 &
ballast_pid=$!
pids+=("$ballast_pid")

ready=false
for _ in $(seq 1 100); do
  if "$bin" probe --timeout 1s "http://127.0.0.1:$admin_port/readyz" >/dev/null 2>&1; then
    ready=true
    break
  fi
  kill -0 "$ballast_pid" 2>/dev/null || { cat "$tmp/ballast.log" >&2; fail "ballast exited at startup"; }
  sleep 0.1
done
$ready || { cat "$tmp/ballast.log" >&2; fail "the admin /readyz never answered (10 s)"; }
echo "ballast probe http://127.0.0.1:$admin_port/readyz: ok"

answer="$(curl -sf -m 5 "http://127.0.0.1:$listen_port/hello")" || fail "GET /hello through the static ballast"
echo "GET /hello -> $answer"
[ "$answer" = "static-check GET /hello" ] || fail "unexpected answer"

kill -TERM "$ballast_pid"
for _ in $(seq 1 50); do
  kill -0 "$ballast_pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$ballast_pid" 2>/dev/null && fail "still running 5 s after SIGTERM"
status=0
wait "$ballast_pid" || status=$?
[ "$status" -eq 0 ] || { cat "$tmp/ballast.log" >&2; fail "exit status $status after SIGTERM"; }
echo "SIGTERM: drained and exited 0"
echo "static binary check passed"
