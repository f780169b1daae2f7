#!/usr/bin/env bash
# Create or refresh a virtualenv from a pinned lock file (default: .venv from requirements/lock.txt).
# Idempotent: does nothing when the virtualenv already matches the lock file and pyproject.toml.
# VENV=.venv-airflow-3.2 LOCK=requirements/lock-airflow-3.2.txt builds the compatibility one.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/${VENV:-.venv}"
LOCK="${LOCK:-requirements/lock.txt}"
UV_VERSION=0.13.8
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
stamp="$VENV/.lock-sha256"
want=$(cat "$LOCK" pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$VENV/bin/python" ]]; then
  exit 0
fi
echo "bootstrap: installing $LOCK into $(basename "$VENV") (first run takes a minute or two)" >&2
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet "uv==$UV_VERSION"
"$VENV/bin/uv" pip sync --quiet --python "$VENV/bin/python" "$LOCK"
echo "$want" > "$stamp"
