"""docker-compose.yaml is checked statically: no Docker engine runs here or in CI."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
SCHEMA_FILE = Path(__file__).with_name("compose-spec.json")
AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
}
LONG_RUNNING = AIRFLOW_SERVICES - {"airflow-init"} | {"postgres", "dropbox-emulator"}
VAR_REF = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(:?-[^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _spec_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft201909Validator(json.loads(SCHEMA_FILE.read_text()))
    return [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(document)]


def test_valid_against_compose_spec(compose: dict[str, Any]) -> None:
    assert _spec_errors(compose) == []


def test_schema_check_rejects_a_broken_file(compose: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["airflow-scheduler"]["helthcheck"] = {}
    broken["services"]["postgres"]["ports"] = "5432"
    assert len(_spec_errors(broken)) == 2


def test_has_the_full_airflow_stack_and_the_emulator(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert AIRFLOW_SERVICES | {"postgres", "dropbox-emulator"} <= set(services)
    for name in LONG_RUNNING:
        assert "healthcheck" in services[name], f"{name} has no health check"
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert env["AIRFLOW__CORE__TEST_CONNECTION"] == "Enabled"
        assert services[name]["build"]["dockerfile"] == "docker/Dockerfile", f"{name} lacks the provider"


def test_build_contexts_dockerfiles_and_mounts_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            context = ROOT / build["context"]
            assert context.is_dir(), f"{name}: build context {context} missing"
            assert (context / build["dockerfile"]).is_file(), f"{name}: Dockerfile missing"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: mounted path {source} missing"
            else:
                assert source in compose["volumes"], f"{name}: named volume {source} not declared"
        for dep in service.get("depends_on", {}):
            assert dep in compose["services"], f"{name} depends on unknown service {dep}"


def test_dockerfile_builds_on_the_pinned_official_image() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert re.search(r"^FROM apache/airflow:3\.3\.2\b", dockerfile, re.MULTILINE)
    for line in dockerfile.splitlines():
        if line.startswith("COPY"):
            for source in line.split()[2:-1]:
                assert (ROOT / source).exists(), f"COPY source {source} missing"


def test_every_referenced_variable_has_a_default() -> None:
    text = COMPOSE_FILE.read_text()
    refs = VAR_REF.findall(text)
    assert refs, "expected ${...} references (image name, uid, fernet key)"
    missing = [name for name, default in refs if not default]
    assert not missing, f"variables without a default: {missing}"


def test_connection_points_at_the_emulator_service(compose: dict[str, Any]) -> None:
    env = compose["services"]["airflow-scheduler"]["environment"]
    conn = json.loads(env["AIRFLOW_CONN_DROPBOX_DEFAULT"])
    emulator = compose["services"]["dropbox-emulator"]
    port = emulator["command"][emulator["command"].index("--port") + 1]
    assert conn["conn_type"] == "dropbox"
    assert conn["host"] == f"http://dropbox-emulator:{port}"
    assert conn["extra"]["allow_insecure_http"] is True  # http to a non-loopback host is refused otherwise
    assert conn["extra"]["refresh_token"]


# -- issue 16 item 5: ownership, seeding, the Celery variant ------------------------------------------------

CELERY_FILE = ROOT / "docker-compose.celery.yaml"


def _merge(base: Any, override: Any) -> Any:
    """Compose's merge for what these files use: mappings merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = _merge(base.get(key), value) if key in base else value
        return out
    return override


def test_emulator_data_dir_is_made_in_the_image_for_its_user(compose: dict[str, Any]) -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    emulator = compose["services"]["dropbox-emulator"]
    data_dir = emulator["command"][emulator["command"].index("--data-dir") + 1]
    mounted = {v.split(":")[1] for v in emulator["volumes"]}
    assert data_dir in mounted
    assert re.search(rf"mkdir -p [^\n]*{re.escape(data_dir)}\b", dockerfile)
    assert re.search(rf"chown airflow:0 [^\n]*{re.escape(data_dir)}\b", dockerfile)
    # the image ends as the unprivileged user, which is who the emulator runs as
    users = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] == "airflow"
    # every named volume an Airflow container writes is created in the image too
    for volume in compose["services"]["airflow-scheduler"]["volumes"]:
        source, target = volume.split(":")[:2]
        if not source.startswith((".", "/")) and target != "/opt/airflow/logs":
            assert target in dockerfile, f"{target} not created in the image"


def test_no_service_changes_ownership_or_runs_as_root(compose: dict[str, Any]) -> None:
    text = COMPOSE_FILE.read_text() + CELERY_FILE.read_text()
    assert "chown" not in text and "chmod" not in text
    for name, service in compose["services"].items():
        assert str(service.get("user", "")).split(":")[0] not in ("0", "root"), name


def test_seed_runs_only_on_request(compose: dict[str, Any]) -> None:
    seed = compose["services"]["dropbox-emulator-seed"]
    assert seed["profiles"] == ["seed"]  # `up` does not seed; `--profile seed run` does
    assert seed.get("restart") == "no"
    seeder = (ROOT / "scripts" / "seed_demo.py").read_text()
    assert '"mode": "overwrite"' in seeder  # running it twice leaves the same files, not "(1)" copies


def test_celery_variant_is_valid_and_complete(compose: dict[str, Any]) -> None:
    override = yaml.safe_load(CELERY_FILE.read_text())
    assert _spec_errors(override) == []
    merged = _merge(compose, override)
    assert _spec_errors(merged) == []
    services = merged["services"]
    assert {"redis", "airflow-worker", "flower"} <= set(services)
    assert services["flower"]["profiles"] == ["flower"]
    for name in AIRFLOW_SERVICES | {"airflow-worker", "flower"}:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:") or env[
            "AIRFLOW__CELERY__BROKER_URL"
        ].startswith("redis://:@redis:"), name
    worker = services["airflow-worker"]
    assert worker["command"] == "celery worker" and "healthcheck" in worker
    assert "mirror-data:/opt/airflow/mirror" in worker["volumes"]  # workers share the mirror destination
    scheduler_env = services["airflow-scheduler"]["environment"]
    assert (
        worker["environment"]["AIRFLOW_CONN_DROPBOX_DEFAULT"] == scheduler_env["AIRFLOW_CONN_DROPBOX_DEFAULT"]
    )
    for dep in worker["depends_on"]:
        assert dep in services
    # the LocalExecutor file alone is unchanged by the variant
    assert (
        compose["services"]["airflow-scheduler"]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    )
