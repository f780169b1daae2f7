"""The demo: emulator up, sample files in, the mirror DAG run twice by real Airflow, the result shown.

Run it with ``scripts/demo.sh`` (which builds the pinned virtualenv first). Everything it creates lives
in ``demo-output/`` and is recreated on each run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "demo-output"
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "scripts"))

import seed_demo  # noqa: E402

from airflow_provider_dropbox.client import Credentials, DropboxClient, Endpoints  # noqa: E402
from airflow_provider_dropbox.client.content_hash import content_hash_file  # noqa: E402

DEV = {"app_key": "dev-app-key", "app_secret": "dev-app-secret", "refresh_token": "dev-refresh-token"}


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def start_emulator(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    cmd = [str(BIN / "python"), "-m", "airflow_provider_dropbox.emulator", "--port", "0"]
    proc = subprocess.Popen(
        [*cmd, "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=(OUT / "emulator.log").open("w"),
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("http"):
            return proc, line.strip()
    raise SystemExit(f"emulator did not start; see {OUT / 'emulator.log'}")


def airflow_env(base_url: str, mirror_dir: Path) -> dict[str, str]:
    conn = {"conn_type": "dropbox", "host": base_url, "login": DEV["app_key"], "password": DEV["app_secret"],
            "extra": {"refresh_token": DEV["refresh_token"]}}  # fmt: skip
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(OUT / "airflow-home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_DROPBOX_DEFAULT": json.dumps(conn),
        "DROPBOX_MIRROR_LOCAL_PATH": str(mirror_dir),
    }


def run_mirror_dag(env: dict[str, str], attempt: int) -> dict[str, Any]:
    log = OUT / f"dags-test-{attempt}.log"
    with log.open("w") as fh:
        rc = subprocess.call([str(BIN / "airflow"), "dags", "test", "dropbox_mirror"], env=env, stdout=fh,
                             stderr=subprocess.STDOUT)  # fmt: skip
    text = log.read_text()
    if rc != 0 or "Dropbox mirror" not in text:
        raise SystemExit(f"the mirror DAG failed (exit {rc}); see {log}")
    summary = next(line for line in text.splitlines() if "Dropbox mirror / ->" in line)
    print("   ", summary[summary.index("Dropbox mirror") :].split(" [")[0])
    print(f"    (full Airflow output: {log.relative_to(ROOT)})")
    return {"log": str(log)}


def show_tree(mirror_dir: Path, client: DropboxClient) -> None:
    remote = {e["path_lower"]: e for e in client.list_folder("", recursive=True) if e[".tag"] == "file"}
    for path in sorted(p for p in mirror_dir.rglob("*") if p.is_file() and ".dropbox-mirror" not in p.parts):
        rel = "/" + path.relative_to(mirror_dir).as_posix()
        entry = remote.get(rel.lower())
        verified = entry is not None and entry["content_hash"] == content_hash_file(path)
        print(f"    {'verified' if verified else 'MISMATCH'}  {path.stat().st_size:>9}  {rel}")
    local = {"/" + p.relative_to(mirror_dir).as_posix().lower() for p in mirror_dir.rglob("*")}
    missing = set(remote) - local
    if missing:
        raise SystemExit(f"not mirrored: {sorted(missing)}")


def main() -> int:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    mirror_dir = OUT / "mirror"
    step("Starting the local Dropbox API v2 emulator")
    emulator, base_url = start_emulator(OUT / "emulator-data")
    try:
        print(f"    listening on {base_url}")
        step("Seeding sample files into the emulated Dropbox")
        seed_demo.main(["--base-url", base_url])
        client = DropboxClient(Credentials(**DEV), endpoints=Endpoints.single_host(base_url))
        env = airflow_env(base_url, mirror_dir)
        step("Preparing a throw-away Airflow (SQLite) in demo-output/airflow-home")
        subprocess.check_call([str(BIN / "airflow"), "db", "migrate"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
        step("Run 1: `airflow dags test dropbox_mirror` (first run: full listing and download)")
        run_mirror_dag(env, 1)
        show_tree(mirror_dir, client)

        step("Changing Dropbox: editing one file, deleting one, adding one")
        token = seed_demo._token(base_url, DEV["app_key"], DEV["app_secret"], DEV["refresh_token"])
        seed_demo.upload(base_url, token, "/Reports/summary.txt", b"Quarterly sales, now with Q3.\n")
        client.delete("/Reports/2026/sales-q1.csv")
        seed_demo.upload(base_url, token, "/Reports/2026/sales-q3.csv", b"region,amount\nnorth,1400\n")
        stats_before = _stats(base_url)
        time.sleep(0.1)
        step("Run 2: the same DAG again (incremental: continues from the stored cursor)")
        run_mirror_dag(env, 2)
        after = _stats(base_url)
        calls = {k: n - stats_before.get(k, 0) for k, n in after.items() if n != stats_before.get(k, 0)}
        print(f"    API calls made by run 2: {calls}")
        show_tree(mirror_dir, client)
        step(f"Done. The mirror is in {mirror_dir.relative_to(ROOT)}/; the emulator is stopping.")
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
    return 0


def _stats(base_url: str) -> dict[str, int]:
    import urllib.request

    with urllib.request.urlopen(f"{base_url}/_emulator/stats", timeout=10) as resp:
        return dict(json.load(resp)["requests"])


if __name__ == "__main__":
    sys.exit(main())
