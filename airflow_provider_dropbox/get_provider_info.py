"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any

from airflow_provider_dropbox import __version__

_PKG = "airflow_provider_dropbox"
_INTEGRATION = "Dropbox"


def _connection_type() -> dict[str, Any]:
    # Airflow 3.2+ builds the connection form only from these declarative fields.
    return {
        "connection-type": "dropbox",
        "hook-class-name": f"{_PKG}.hooks.dropbox.DropboxHook",
        "hook-name": "Dropbox",
        "ui-field-behaviour": {
            # Port stays visible: Airflow 3.3.2's Test button sends port 0 for a connection stored
            # without one and is then refused (apache/airflow#73298); a stored port avoids that.
            "hidden-fields": ["schema"],
            "relabeling": {"login": "App key", "password": "App secret", "host": "API base URL"},
            "placeholders": {
                "host": "empty = real Dropbox; http://127.0.0.1 for the local emulator",
                "port": "optional: 443, or the emulator's port (8765)",
                "login": "app key from the Dropbox App Console",
                "password": "app secret (leave empty for a PKCE app)",
            },
        },
        "conn-fields": {
            "refresh_token": {
                "label": "Refresh token",
                "description": "Long-lived refresh token from `airflow-dropbox-auth` (offline access).",
                "schema": {"type": ["string", "null"], "format": "password"},
            },
            "access_token": {
                "label": "Access token",
                "description": "Optional short-lived token (4 h) for a quick try; not refreshed.",
                "schema": {"type": ["string", "null"], "format": "password"},
            },
            "root_namespace_id": {
                "label": "Root namespace id",
                "description": "Optional: team space root namespace (Dropbox-API-Path-Root).",
                "schema": {"type": ["string", "null"]},
            },
            "team_member_id": {
                "label": "Team member id",
                "description": "Optional: act as this team member (Dropbox-API-Select-User, dbmid:...).",
                "schema": {"type": ["string", "null"]},
            },
            "ca_bundle": {
                "label": "CA bundle",
                "description": "Optional: path on the workers to a PEM file of CA certificates to trust (a "
                "TLS-inspecting company proxy, a private CA). Default: the certifi store.",
                "schema": {"type": ["string", "null"]},
            },
            "timeout": {
                "label": "Timeout (s)",
                "description": "Per-request socket timeout in seconds.",
                "schema": {"type": ["integer", "null"], "default": 100, "minimum": 1},
            },
            "retry_deadline": {
                "label": "Retry deadline (s)",
                "description": "Seconds after which retries of one call give up (unreachable host, 5xx, "
                "rate limits). Lower it to fail fast on a dead host.",
                "schema": {"type": ["integer", "null"], "default": 600, "minimum": 1},
            },
            "connect_retry_deadline": {
                "label": "Connect retry deadline (s)",
                "description": "Seconds of retries for a host that refuses connections or does not resolve "
                "(capped by the retry deadline). Raise it for flaky networks.",
                "schema": {"type": ["integer", "null"], "default": 30, "minimum": 1},
            },
        },
    }


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-dropbox",
        "name": "Dropbox",
        "description": "Dropbox (HTTP API v2) hook, transfers, change sensor, event trigger and safe mirror.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://www.dropbox.com/developers/documentation/http/documentation",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PKG}.hooks.dropbox"]}],
        "operators": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": [
                    f"{_PKG}.operators.dropbox",
                    f"{_PKG}.operators.mirror",
                    f"{_PKG}.operators.two_way",
                    f"{_PKG}.operators.dropbox_extra",
                ],
            }
        ],
        "sensors": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PKG}.sensors.dropbox"]}],
        "triggers": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": [f"{_PKG}.triggers.dropbox", f"{_PKG}.triggers.local_folder"],
            }
        ],
        "asset-uris": [
            {
                "schemes": ["dropbox"],
                "handler": f"{_PKG}.assets.dropbox.sanitize_uri",
                "factory": f"{_PKG}.assets.dropbox.create_asset",
                "to_openlineage_converter": f"{_PKG}.assets.dropbox.convert_asset_to_openlineage",
            }
        ],
        "filesystems": [f"{_PKG}.fs.dropbox"],
        "connection-types": [_connection_type()],
    }
