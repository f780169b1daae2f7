#!/usr/bin/env bash
# Re-resolve requirements/lock.txt from requirements/lock.in (Airflow 3.3.2, Python 3.11, Linux x86_64).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/uv pip compile requirements/lock.in --python-version 3.11 \
  --python-platform x86_64-unknown-linux-gnu --no-header -o requirements/lock.txt
