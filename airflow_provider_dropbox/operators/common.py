"""Helpers shared by the operators and the sensor: the templating check and bounded XCom results.

They sit beside the operators' base class, not inside an operator module, so the sensor (and any
operator module) imports them from here rather than from another module's internals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException


def templated(value: Any) -> bool:
    """True for a string still holding Jinja (``{{ ... }}`` or ``{% ... %}``)."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


class UnrenderedTemplateError(AirflowFailException):
    """A template field still holds ``{{ ... }}`` or ``{% ... %}`` at run time (a retry would not help)."""


def reject_unrendered_fields(task: BaseOperator) -> None:
    """Raise ``UnrenderedTemplateError`` if a template field of ``task`` still holds Jinja at run time."""
    for name in task.template_fields:
        value = getattr(task, name, None)
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if templated(item):
                raise UnrenderedTemplateError(
                    f"{type(task).__name__}: {name}={item!r} still holds a Jinja template at run time; "
                    "it was not rendered (Airflow renders a field once: values from dag_run.conf, params "
                    "or XCom are not rendered again). Render the value upstream or pass a plain path; "
                    "nothing was sent to Dropbox"
                )


XCOM_FILE_LIMIT = 100
"""Entries listed in a transfer or change result by default; counts always cover all of them."""


def bounded_list(
    items: Sequence[Any], *, key: str, noun: str, rest: str, full_list: bool, **counts: Any
) -> dict[str, Any]:
    """``counts``, at most ``XCOM_FILE_LIMIT`` of ``items`` under ``key``, and how many more and where.

    XCom lives in the metadata database, so thousands of entries must not be pushed on every run;
    ``full_list=True`` lists them all (``truncated`` is then 0).
    """
    listed = list(items) if full_list else list(items[:XCOM_FILE_LIMIT])
    more = len(items) - len(listed)
    return {
        "count": len(items),
        **counts,
        key: listed,
        "truncated": more,
        "rest": f"{more} more {noun} not listed: {rest}; pass full_list=True for every entry"
        if more
        else None,
    }


def file_summary(
    files: Sequence[Any], *, where: str, full_list: bool, **counts: Any
) -> dict[str, Any] | list[Any]:
    """The XCom result of a transfer: counts, at most ``XCOM_FILE_LIMIT`` files and where the rest are.

    ``full_list=True`` returns the whole list (the operator's argument of that name) instead.
    """
    if full_list:
        return list(files)
    return bounded_list(
        files, key="files", noun="file(s)", rest=f"they are under {where}", full_list=False, **counts
    )
