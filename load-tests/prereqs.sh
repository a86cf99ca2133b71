# shellcheck shell=bash
# Sourced by demo.sh and test.sh: make sure the tools Ballast needs are
# present, installing them on Debian/Ubuntu when missing.
#   - cmake: Pingora builds a C dependency with it.
#   - curl: the demo's smoke check.
#   - protoc: the etcd client's protocol definitions are compiled at build time.
# Builds go to $CARGO_TARGET_DIR, by default ~/.cache/ballast-target, so that
# fresh clones on the same machine reuse compiled dependencies.

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ballast-target}"

# ballast_require COMMAND PACKAGE: install PACKAGE with apt-get unless COMMAND exists.
ballast_require() {
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "installing missing tool: $2" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: please install $2 (no apt-get on this machine)" >&2
    exit 1
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$2" >/dev/null
}

ballast_require cmake cmake
ballast_require curl curl
ballast_require protoc protobuf-compiler
command -v cargo >/dev/null 2>&1 || { echo "error: cargo is required (https://rustup.rs)" >&2; exit 1; }

ballast_used_ports=" "
# free_port VARIABLE: set it to a loopback port that nothing listens on and
# that was not handed out before, below Linux's default ephemeral range
# (32768-60999) so that no outgoing connection holds it.
free_port() {
  local candidate
  while :; do
    candidate=$((20000 + RANDOM % 12000))
    case "$ballast_used_ports" in *" $candidate "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
      ballast_used_ports+="$candidate "
      printf -v "$1" '%s' "$candidate"
      return
    fi
  done
}
