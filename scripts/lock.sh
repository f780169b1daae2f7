#!/usr/bin/env bash
# Re-resolve the lock files from their .in files (Python 3.11, Linux x86_64):
# requirements/lock.txt (Airflow 3.3.2) and requirements/lock-airflow-3.2.txt (the lowest supported).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
for name in lock lock-airflow-3.2; do
  .venv/bin/uv pip compile "requirements/$name.in" --python-version 3.11 \
    --python-platform x86_64-unknown-linux-gnu --no-header -o "requirements/$name.txt"
done
