#!/usr/bin/env bash
# Create or refresh the repo's virtualenv (.venv) from the pinned lock file.
# Idempotent: does nothing when .venv already matches requirements/lock.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
UV_VERSION=0.13.8
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
stamp="$VENV/.lock-sha256"
want=$(cat requirements/lock.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$VENV/bin/python" ]]; then
  exit 0
fi
echo "bootstrap: installing pinned dependencies into .venv (first run takes a minute or two)" >&2
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet "uv==$UV_VERSION"
"$VENV/bin/uv" pip sync --quiet --python "$VENV/bin/python" requirements/lock.txt
echo "$want" > "$stamp"
