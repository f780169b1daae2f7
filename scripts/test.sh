#!/usr/bin/env bash
# The whole test suite: pinned install, lint, types, then every test (slow suites included).
# Pass --quick to skip tests marked slow during development; extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/ensure_chromium.sh
scripts/ensure_services.sh
export PATH="$PWD/.venv/bin:$PATH"
quick=()
if [[ "${1:-}" == "--quick" ]]; then quick=(-m "not slow"); shift; fi
echo "== ruff"; ruff check .
echo "== ruff format"; ruff format --check .
echo "== mypy"; mypy
echo "== pytest"
set +e
python -m pytest "${quick[@]}" "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then echo "pytest collected no tests" >&2; exit 1; fi
if [[ $rc -ne 0 ]]; then exit $rc; fi
if [[ ${#quick[@]} -eq 0 ]]; then echo "== release: sdist + wheel installed alone"; scripts/check_release.sh; fi
echo "== Airflow 3.2.2 compatibility (Airflow-facing suites)"
exec scripts/test-airflow-3.2.sh "$@"
