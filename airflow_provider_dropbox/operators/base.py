"""The operators' public base class and the helpers every operator (and the sensor) shares.

``DropboxBaseOperator`` builds the hook in ``execute``, declares assets, reports lineage and refuses bad
rendered fields. The templating check and the bounded XCom results it re-exports live in
``operators.common``, which the sensor imports too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_dropbox.assets.dropbox import asset_uri, create_asset
from airflow_provider_dropbox.hooks.dropbox import DropboxHook
from airflow_provider_dropbox.operators.common import (
    XCOM_FILE_LIMIT,
    UnrenderedTemplateError,
    file_summary,
    reject_unrendered_fields,
    templated,
)

__all__ = [
    "XCOM_FILE_LIMIT",
    "DropboxBaseOperator",
    "DropboxInputPathOperator",
    "DropboxPermanentError",
    "UnrenderedTemplateError",
    "file_summary",
    "reject_unrendered_fields",
]


class DropboxPermanentError(AirflowFailException):
    """An error no retry can fix (bad input, bad credentials, a path of the wrong kind): the task fails at
    once, whatever its ``retries``. Raised as a subclass of the original error's class too, with its
    attributes, so ``except MalformedPathError`` (or a failure callback checking the type) still works."""


_FAIL_FAST_CLASSES: dict[type[BaseException], type[BaseException]] = {}


def _fail_fast_copy(exc: BaseException) -> BaseException:
    """``exc`` as an instance of ``(type(exc), DropboxPermanentError)``: same message, same attributes."""
    cls = type(exc)
    combined = _FAIL_FAST_CLASSES.get(cls)
    if combined is None:
        combined = type(cls.__name__, (cls, DropboxPermanentError), {"__module__": cls.__module__})
        _FAIL_FAST_CLASSES[cls] = combined
    copy = combined.__new__(combined, *exc.args)
    copy.args = exc.args
    copy.__dict__.update(exc.__dict__)
    return copy


def _fail_fast(execute: Callable[..., Any]) -> Callable[..., Any]:
    """Re-raise errors whose class says ``permanent = True`` as fail-fast errors (no retry)."""

    @functools.wraps(execute)
    def wrapper(self: BaseOperator, *args: Any, **kwargs: Any) -> Any:
        try:
            return execute(self, *args, **kwargs)
        except AirflowFailException:
            raise
        except Exception as exc:
            if getattr(exc, "permanent", False) is True:
                raise _fail_fast_copy(exc).with_traceback(exc.__traceback__) from exc.__cause__
            raise

    return wrapper


class DropboxBaseOperator(BaseOperator):
    """Shared plumbing: the hook (built lazily in ``execute``), asset declaration, lineage reporting,
    and the run-time check of the rendered fields (``_check_inputs``, first thing in every ``execute``)."""

    ui_color = "#0061fe"
    _local_path_fields: tuple[str, ...] = ()
    """Fields holding a local path: refused when blank, relative (both would depend on the worker's cwd)
    or ``/`` (the whole file system), before any request."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every operator's ``execute`` fails fast on errors no retry can fix (the error classes'
        ``permanent`` attribute decides; this is the one place it is mapped to Airflow)."""
        super().__init_subclass__(**kwargs)
        if "execute" in cls.__dict__:
            cls.execute = _fail_fast(cls.__dict__["execute"])  # type: ignore[method-assign]

    def __init__(self, *, dropbox_conn_id: str = DropboxHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dropbox_conn_id = dropbox_conn_id
        self._hook: DropboxHook | None = None

    @property
    def hook(self) -> DropboxHook:
        if self._hook is None:
            self._hook = DropboxHook(dropbox_conn_id=self.dropbox_conn_id, **self._hook_kwargs())
        return self._hook

    def _hook_kwargs(self) -> dict[str, Any]:
        return {}

    def _check_inputs(self) -> None:
        """Refuse bad rendered fields before any request or local write.

        Airflow renders a field once, so a value that itself holds a template (from ``dag_run.conf``,
        ``params`` or XCom) arrives here as ``/reports/{{ ds }}.csv`` and would name a file literally; a
        blank template renders a local path to ``""``, the worker's current directory, and a relative
        path lands wherever the executor started the task.
        """
        reject_unrendered_fields(self)
        for name in self._local_path_fields:
            DropboxHook.check_local_path(getattr(self, name), field=name, route=type(self).__name__)

    def _declare_assets(self, *, inlets: Sequence[Any] = (), outlets: Sequence[Any] = ()) -> None:
        """Add ``dropbox://`` assets for static Dropbox paths unless the user set inlets/outlets."""
        if templated(self.dropbox_conn_id):
            return

        def assets(paths: Sequence[Any]) -> list[Any]:
            out = []
            for path in paths:
                if isinstance(path, str) and path and not templated(path) and not path.startswith("id:"):
                    try:
                        out.append(create_asset(path=path, conn_id=self.dropbox_conn_id))
                    except ValueError:
                        continue
            return out

        if not self.inlets and (found := assets(inlets)):
            self.inlets = found
        if not self.outlets and (found := assets(outlets)):
            scheduling = self._scheduling_uris()
            self.outlets = [a for a in found if a.uri not in scheduling]

    def _scheduling_uris(self) -> set[str]:
        """URIs of the assets that schedule this task's DAG: an automatic outlet on one of them would queue
        the next run at the end of every run, back to back forever (e.g. a two-way sync scheduled by its
        own Dropbox folder's watcher)."""
        return {a.uri for a in self._scheduling_assets()}

    def _scheduling_assets(self) -> list[Any]:
        """The assets in this task's DAG's schedule (with their ``watchers``), as the DAG file made them."""
        try:
            dag = self.dag if self.has_dag() else None  # type: ignore[no-untyped-call]
            condition = getattr(getattr(dag, "timetable", None), "asset_condition", None)
        except Exception:  # an Airflow without timetables on the SDK DAG: nothing to avoid
            return []
        found: list[Any] = []
        stack: list[Any] = [condition]
        while stack:
            item = stack.pop()
            objects = getattr(item, "objects", None)
            if objects is not None:
                stack.extend(objects)
            elif isinstance(getattr(item, "uri", None), str):
                found.append(item)
        return found

    def _lineage(self, *, inputs: Sequence[str] = (), outputs: Sequence[str] = ()) -> None:
        """Report the rendered paths to hook lineage (OpenLineage); never fail the task over it."""
        try:
            from airflow.sdk.lineage import get_hook_lineage_collector

            collector = get_hook_lineage_collector()
            for path in inputs:
                collector.add_input_asset(context=self.hook, uri=asset_uri(path, self.dropbox_conn_id))
            for path in outputs:
                collector.add_output_asset(context=self.hook, uri=asset_uri(path, self.dropbox_conn_id))
        except Exception as exc:
            self.log.debug("Lineage not recorded: %s", exc)


class DropboxInputPathOperator(DropboxBaseOperator):
    """Base of the operators that read one Dropbox path (templated) and declare it as their inlet."""

    template_fields: Sequence[str] = ("path", "dropbox_conn_id")

    def __init__(self, *, path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = path
        self._declare_assets(inlets=[path])
