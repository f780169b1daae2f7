#!/usr/bin/env bash
# Re-resolve the lock files from their .in files (Python 3.11, Linux x86_64).
# requirements/lock.txt: Airflow 3.3.2 with current packages.
# requirements/lock-airflow-3.2.txt: the lowest supported Airflow, resolved as of its release (May 2026)
# the way Airflow's own constraint files pin it (3.2.2's task runner breaks with later pydantic/fastapi);
# only the test-only packages are allowed to be newer.
# requirements/lock-py310.txt: Airflow 3.3.2 on Python 3.10, runtime only (the release check's 3.10 virtualenv).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
common=(--python-version 3.11 --python-platform x86_64-unknown-linux-gnu --no-header)
.venv/bin/uv pip compile requirements/lock.in "${common[@]}" -o requirements/lock.txt
test_only=()
for pkg in dropbox stone playwright pyee greenlet hypothesis; do
  test_only+=(--exclude-newer-package "$pkg=2026-11-30")
done
.venv/bin/uv pip compile requirements/lock-airflow-3.2.in "${common[@]}" --exclude-newer 2026-06-01 \
  "${test_only[@]}" -o requirements/lock-airflow-3.2.txt
.venv/bin/uv pip compile requirements/lock-py310.in --python-version 3.10 --python-platform x86_64-unknown-linux-gnu \
  --no-header -o requirements/lock-py310.txt
