"""Operators over the hook's temporary-link and restore methods."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_dropbox.operators.base import DropboxBaseOperator, DropboxInputPathOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class DropboxGetTemporaryLinkOperator(DropboxInputPathOperator):
    """
    Return a direct download URL for a Dropbox file (valid four hours, no token needed) by XCom.

    The URL itself grants read access to the file: pass it only to systems that may read it. It is not
    written to the task log.

    :param path: Dropbox file path. Templated.
    :param dropbox_conn_id: Connection id of type ``dropbox``. Templated.
    :return: The URL.
    """

    def execute(self, context: Context) -> str:
        self._check_inputs()
        url = self.hook.get_temporary_link(self.path)
        self._lineage(inputs=[self.path])
        self.log.info("Temporary link made for Dropbox %s (returned by XCom, valid 4 h)", self.path)
        return url


class DropboxRestoreOperator(DropboxBaseOperator):
    """
    Restore an earlier revision of a Dropbox file as its newest revision (also brings back a deleted file).

    :param path: Dropbox file path. Templated.
    :param rev: Revision to restore (a file's ``rev``). Templated.
    :param dropbox_conn_id: Connection id of type ``dropbox``. Templated.
    :return: Metadata of the new revision.
    """

    template_fields: Sequence[str] = ("path", "rev", "dropbox_conn_id")

    def __init__(self, *, path: str, rev: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.rev = rev
        self._declare_assets(outlets=[path])

    def execute(self, context: Context) -> dict[str, Any]:
        self._check_inputs()
        md = self.hook.restore(self.path, self.rev)
        self._lineage(outputs=[self.path])
        self.log.info(
            "Restored Dropbox %s to revision %s (new revision %s)", self.path, self.rev, md.get("rev")
        )
        return md
