"""Airflow version flags for optional features (copied per provider, like the official ones, on purpose)."""

from __future__ import annotations


def get_base_airflow_version_tuple() -> tuple[int, int, int]:
    from airflow import __version__
    from packaging.version import Version

    airflow_version = Version(__version__)
    return airflow_version.major, airflow_version.minor, airflow_version.micro


AIRFLOW_V_3_2_PLUS: bool = get_base_airflow_version_tuple() >= (3, 2, 0)
# 3.3 adds BaseEventTrigger.asset_state_store (AIP-103), where the watcher keeps its cursor.
AIRFLOW_V_3_3_PLUS: bool = get_base_airflow_version_tuple() >= (3, 3, 0)

__all__ = ["AIRFLOW_V_3_2_PLUS", "AIRFLOW_V_3_3_PLUS", "get_base_airflow_version_tuple"]
