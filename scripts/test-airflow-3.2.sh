#!/usr/bin/env bash
# Compatibility run on the lowest supported Airflow (3.2.2): the Airflow-facing suites, fast ones only.
# The Airflow-free client, emulator and mirror suites do not depend on the Airflow version and run once,
# on 3.3.2, in scripts/test.sh. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-airflow-3.2 LOCK=requirements/lock-airflow-3.2.txt scripts/bootstrap.sh
set +e
.venv-airflow-3.2/bin/python -m pytest -m "not slow" -p no:cacheprovider \
  tests/hooks tests/operators tests/sensors tests/triggers tests/assets tests/fs tests/dags_examples \
  tests/hardening "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then echo "pytest collected no tests" >&2; exit 1; fi
exit $rc
