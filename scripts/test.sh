#!/usr/bin/env bash
# Installs everything ghostwatch's test suite needs on a fresh Debian machine and
# runs it: system packages (Dovecot, Postfix, PostgreSQL 15) via apt when missing,
# Python dependencies into .venv, then ruff, mypy and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-system-deps.sh

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'

echo "== ruff"
.venv/bin/ruff check ghostwatch tests bench
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
# pytest exits 5 when it collected no test: that is a failure here, not a pass.
exit "$rc"
