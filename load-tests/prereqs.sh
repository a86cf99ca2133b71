# Sourced by demo.sh and test.sh: make sure the build tools Ballast needs are
# present, installing them on Debian/Ubuntu when missing.
#   - cmake: Pingora builds a C dependency with it.
#   - curl: the demo's smoke check.
# Builds go to $CARGO_TARGET_DIR, by default ~/.cache/ballast-target, so that
# fresh clones on the same machine reuse compiled dependencies.

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ballast-target}"

ballast_missing=()
for tool in cmake curl; do
  command -v "$tool" >/dev/null 2>&1 || ballast_missing+=("$tool")
done
if [ "${#ballast_missing[@]}" -gt 0 ]; then
  echo "installing missing build tools: ${ballast_missing[*]}" >&2
  ballast_sudo=""
  [ "$(id -u)" -eq 0 ] || ballast_sudo="sudo"
  if command -v apt-get >/dev/null 2>&1; then
    $ballast_sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $ballast_sudo apt-get install -y -qq "${ballast_missing[@]}" >/dev/null
  else
    echo "error: please install ${ballast_missing[*]} (no apt-get on this machine)" >&2
    exit 1
  fi
fi
command -v cargo >/dev/null 2>&1 || { echo "error: cargo is required (https://rustup.rs)" >&2; exit 1; }
