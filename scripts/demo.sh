#!/usr/bin/env bash
# The demo: local Dropbox emulator, sample files, the mirror DAG run by real Airflow, result shown.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/python scripts/demo.py "$@"
