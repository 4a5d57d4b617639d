#!/usr/bin/env bash
# Runs every benchmark in bench/ (see bench/README.md). Benchmarks measure; they exit 0
# even when a target is missed (the table says FAIL), and non-zero only when they could
# not run at all. Needs root: the sync benchmark starts a real Dovecot + Postfix.
#
#   bash bench/run_all.sh            # full size
#   PYTHON=/path/to/venv/bin/python bash bench/run_all.sh
#
# Arguments are passed to every benchmark (e.g. --keep).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then
        PYTHON=.venv/bin/python
    else
        PYTHON=python3
    fi
fi

status=0
run() {
    echo "== $*"
    "$PYTHON" "$@" || status=1
}

run bench/sync_bench.py "$@"
run bench/sync_budget.py
run bench/plan_100k.py

exit "$status"
