#!/usr/bin/env bash
# Fuzzes every target of bench/fuzz.py in turn and prints one table (see bench/fuzz.py).
# Crashing inputs go to bench/fuzz-crashes/ (git-ignored). Exits 1 when any target
# crashed or could not run, 0 otherwise.
#
#   bash bench/fuzz_all.sh            # 30 seconds per target
#   bash bench/fuzz_all.sh 120        # 120 seconds per target
#   PYTHON=/path/to/venv/bin/python bash bench/fuzz_all.sh
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-30}"
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then
        PYTHON=.venv/bin/python
    else
        PYTHON=python3
    fi
fi

targets=(header threads classify commands replytext config)
logdir="$(mktemp -d)"
trap 'rm -rf "$logdir"' EXIT
status=0

for target in "${targets[@]}"; do
    echo "== $target (${seconds}s)"
    if ! "$PYTHON" bench/fuzz.py --target "$target" --seconds "$seconds" >"$logdir/$target.log" 2>&1; then
        status=1
    fi
    grep -E '^(SUMMARY|  crash:|==ERROR)' "$logdir/$target.log" || tail -n 5 "$logdir/$target.log"
done

echo
printf '%-10s %8s %10s %8s %7s %7s %8s %8s\n' target seconds execs exec/s cov ft corpus crashes
for target in "${targets[@]}"; do
    line="$(grep -E '^SUMMARY' "$logdir/$target.log" | tail -n 1 || true)"
    if [ -z "$line" ]; then
        printf '%-10s %8s\n' "$target" "did not run (see output above)"
        status=1
        continue
    fi
    field() { sed -nE "s/.* $1=([^ ]*).*/\\1/p" <<<"$line"; }
    printf '%-10s %8s %10s %8s %7s %7s %8s %8s\n' "$target" "$(field seconds)" "$(field execs)" \
        "$(field exec_per_sec)" "$(field cov)" "$(field ft)" "$(field corpus)" "$(field crashes)"
done
echo
echo "crashing inputs, if any: bench/fuzz-crashes/"
exit "$status"
