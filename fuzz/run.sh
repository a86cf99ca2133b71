#!/usr/bin/env bash
# Fuzz every target in fuzz/fuzz_targets/, one after another, for
# SECONDS_PER_TARGET seconds each (default 60), and print per target the
# runs executed, the corpus size and the crashes found. Exits 1 if any
# target crashed (or failed to run), 2 on bad usage.
#
#   fuzz/run.sh [SECONDS_PER_TARGET]
#
# Needs a nightly toolchain (FUZZ_TOOLCHAIN, default `nightly`); installs
# cargo-fuzz when it is missing. Builds go to CARGO_TARGET_DIR (default
# ~/.cache/ballast-fuzz-target): sanitizer builds do not mix with others.
# The committed seeds in fuzz/corpus/<target>/ are read, never written;
# what a run discovers goes to fuzz/generated/<target>/, crashes to
# fuzz/artifacts/<target>/ and the fuzzer's output to fuzz/logs/<target>.log
# (all three ignored by git, and reused by the next run).
set -euo pipefail

usage() {
  echo "usage: $0 [SECONDS_PER_TARGET]" >&2
  exit 2
}

[ "$#" -le 1 ] || usage
seconds="${1:-60}"
case "$seconds" in
  '' | *[!0-9]* | 0*) usage ;;
esac

fuzz_dir="$(cd "$(dirname "$0")" && pwd)"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"
rss_limit_mb="${FUZZ_RSS_LIMIT_MB:-2048}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ballast-fuzz-target}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

targets=()
for source in "$fuzz_dir"/fuzz_targets/*.rs; do
  name="$(basename "$source" .rs)"
  targets+=("$name")
done

cd "$fuzz_dir/.."
echo "building ${targets[*]}" >&2
cargo "+$toolchain" fuzz build

# The last value of `field` (e.g. "corp:") in a libFuzzer log, or "?".
last_field() {
  local field="$1" log="$2"
  awk -v field="$field" '
    { for (i = 1; i < NF; i++) if ($i == field) value = $(i + 1) }
    END { print (value == "" ? "?" : value) }
  ' "$log"
}

# Runs executed: the final statistics, or the last status line if the
# fuzzer died before printing them.
runs_executed() {
  local log="$1" runs
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  if [ -z "$runs" ]; then
    runs="$(sed -n 's/^#\([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)"
  fi
  echo "${runs:-?}"
}

mkdir -p "$fuzz_dir/logs"
failed=0
results=()
for target in "${targets[@]}"; do
  generated="$fuzz_dir/generated/$target"
  artifacts="$fuzz_dir/artifacts/$target"
  log="$fuzz_dir/logs/$target.log"
  mkdir -p "$generated" "$artifacts"
  options=(
    "-max_total_time=$seconds"
    "-rss_limit_mb=$rss_limit_mb"
    "-timeout=10"
    "-print_final_stats=1"
  )
  case "$target" in
    # Inputs are short edit lists read by `arbitrary`, not text: let them
    # reach full length at once instead of growing slowly from the seeds.
    config_mutate) options+=("-max_len=512" "-len_control=0") ;;
  esac
  if [ -f "$fuzz_dir/dict/$target.dict" ]; then
    options+=("-dict=$fuzz_dir/dict/$target.dict")
  fi

  stamp="$(mktemp)"
  echo "fuzzing $target for ${seconds}s (log: $log)" >&2
  status=0
  cargo "+$toolchain" fuzz run "$target" "$generated" "$fuzz_dir/corpus/$target" \
    -- "${options[@]}" >"$log" 2>&1 || status=$?

  mapfile -t found < <(find "$artifacts" -type f -newer "$stamp" \
    \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \))
  rm -f "$stamp"
  crashes="${#found[@]}"
  if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
    echo "$target: the fuzzer exited with status $status; see $log" >&2
    crashes="failed"
  fi
  if [ "$crashes" != 0 ]; then
    failed=1
    for artifact in "${found[@]}"; do
      echo "$target: $artifact" >&2
      echo "  reproduce: cargo +$toolchain fuzz run $target $artifact" >&2
      echo "  minimise:  cargo +$toolchain fuzz tmin $target $artifact" >&2
    done
  fi
  results+=("$(printf '%-14s %12s %16s %8s' \
    "$target" "$(runs_executed "$log")" "$(last_field corp: "$log")" "$crashes")")
done

printf '\n%-14s %12s %16s %8s\n' target runs "corpus (n/size)" crashes
printf '%s\n' "${results[@]}"
exit "$failed"
