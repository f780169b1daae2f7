#!/usr/bin/env bash
# What a user installing from a package index gets: build the sdist and the wheel (the wheel from the
# sdist), check their metadata with twine, install the wheel alone into clean virtualenvs pinned by the
# lock files (Airflow 3.3.2 and 3.2.2 on Python 3.11; Airflow 3.3.2 on Python 3.10 when this machine has
# it), then tests/release checks each: provider registered, CLIs run, the README's connection and the
# example mirror DAG work against the emulator with `airflow dags test`.
# Output in build/release/ (rebuilt each run; the uv cache keeps it to a minute or two).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
ROOT=$(pwd)
OUT="$ROOT/build/release"
UV="$ROOT/.venv/bin/uv"
TWINE_VERSION=7.0.0
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
rm -rf "$OUT"
mkdir -p "$OUT/dist"

echo "== build sdist + wheel"
"$UV" build --quiet --out-dir "$OUT/dist" .
echo "== twine check"
"$UV" tool run --quiet --from "twine==$TWINE_VERSION" --with cmarkgfm twine check --strict "$OUT"/dist/*
wheel=$(ls "$OUT"/dist/*.whl)

# A pinned install the way Airflow documents it (pip install ... --constraint): the lock file, minus
# the editable install of this checkout, constrains; only what the wheel and Airflow need is installed.
make_venv() {  # name python lock airflow_version
  local name=$1 python=$2 lock=$3 airflow=$4
  grep -v '^-e ' "$lock" > "$OUT/constraints-$name.txt"
  "$UV" venv --quiet --python "$python" "$OUT/$name"
  "$UV" pip install --quiet --python "$OUT/$name/bin/python" "$wheel" "apache-airflow==$airflow" \
    -c "$OUT/constraints-$name.txt"
  echo "$name: $("$OUT/$name/bin/python" --version), apache-airflow $airflow, $(basename "$wheel")"
}
echo "== clean virtualenvs with the wheel"
make_venv airflow-3.3 "$PY" requirements/lock.txt 3.3.2
make_venv airflow-3.2 "$PY" requirements/lock-airflow-3.2.txt 3.2.2
py310=""
for candidate in python3.10 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10.*/bin/python3.10; do
  if "$candidate" -c 'import ssl, sqlite3, venv' 2>/dev/null; then py310=$candidate; break; fi
done  # pyenv's shim exists without a working python3.10 unless that version is selected
if [[ -n "$py310" ]]; then
  make_venv py310 "$py310" requirements/lock-py310.txt 3.3.2
else
  echo "py310: no Python 3.10 on this machine; the 3.10 install check is skipped (ruff/mypy still target 3.10)"
fi

echo "== tests/release"
export DROPBOX_RELEASE_DIR="$OUT"
exec .venv/bin/python -m pytest -p no:cacheprovider -q tests/release "$@"
