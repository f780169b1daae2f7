"""Upload a small sample tree to a Dropbox API endpoint (the emulator) over plain HTTP.

Used by the demo and by docker-compose's one-shot seed service. Standard library only, so it runs
in any Python 3.11 without the project's virtualenv.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
import urllib.request

SAMPLE_FILES: dict[str, bytes] = {
    "/Reports/2026/sales-q1.csv": b"region,amount\nnorth,1200\nsouth,950\n",
    "/Reports/2026/sales-q2.csv": b"region,amount\nnorth,1310\nsouth,1005\n",
    "/Reports/summary.txt": b"Quarterly sales, mirrored from Dropbox by Airflow.\n",
    "/Inbox/r\u00e9sum\u00e9 \U0001f4c4.txt": b"unicode and emoji names survive the round trip\n",
    "/Inbox/data/large.bin": bytes(range(256)) * 4096 * 5,  # 5 MiB: more than one 4 MiB hash block
}


def _token(base_url: str, app_key: str, app_secret: str, refresh_token: str) -> str:
    body = urllib.parse.urlencode(
        {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": app_key,
            "client_secret": app_secret,
        }
    ).encode()
    with urllib.request.urlopen(f"{base_url}/oauth2/token", data=body, timeout=30) as resp:
        return str(json.load(resp)["access_token"])


def upload(base_url: str, token: str, path: str, data: bytes) -> dict[str, object]:
    arg = json.dumps({"path": path, "mode": "overwrite"})  # ASCII-escaped, as the API requires
    req = urllib.request.Request(
        f"{base_url}/2/files/upload",
        data=data,
        headers={
            "Authorization": f"Bearer {token}",
            "Dropbox-API-Arg": arg,
            "Content-Type": "application/octet-stream",
        },
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        result: dict[str, object] = json.load(resp)
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", default="http://127.0.0.1:8765")
    parser.add_argument("--app-key", default="dev-app-key")
    parser.add_argument("--app-secret", default="dev-app-secret")
    parser.add_argument("--refresh-token", default="dev-refresh-token")
    args = parser.parse_args(argv)
    base_url = args.base_url.rstrip("/")
    token = _token(base_url, args.app_key, args.app_secret, args.refresh_token)
    for path, data in SAMPLE_FILES.items():
        meta = upload(base_url, token, path, data)
        print(f"seeded {meta['path_display']} ({meta['size']} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
