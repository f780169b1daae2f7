"""Which OAuth scope each route needs, so a token refreshed with a narrower ``scope`` is refused the rest
(401 ``missing_scope`` with ``required_scope``, as Dropbox answers). Tokens without a recorded scope list
carry every scope the app has."""

from __future__ import annotations

from .wire import ApiFail, api_error

_BY_PREFIX: tuple[tuple[str, str], ...] = (
    ("users/", "account_info.read"),
    ("team/members/", "members.read"),
    ("team/groups/", "groups.read"),
    ("sharing/create_shared_link", "sharing.write"),
    ("sharing/modify_shared_link", "sharing.write"),
    ("sharing/revoke_shared_link", "sharing.write"),
    ("sharing/", "sharing.read"),
    ("files/download", "files.content.read"),
    ("files/get_temporary_link", "files.content.read"),
    ("files/get_thumbnail", "files.content.read"),
    ("files/upload", "files.content.write"),
    ("files/delete", "files.content.write"),
    ("files/create_folder", "files.content.write"),
    ("files/copy", "files.content.write"),
    ("files/move", "files.content.write"),
    ("files/restore", "files.content.write"),
    ("files/", "files.metadata.read"),
)


def required_scope(func: str) -> str | None:
    for prefix, scope in _BY_PREFIX:
        if func.startswith(prefix):
            return scope
    return None


def check_scope(granted: list[str] | None, func: str) -> None:
    """Raise 401 ``missing_scope`` when ``granted`` (None: unrestricted) lacks the route's scope."""
    if granted is None:
        return
    need = required_scope(func)
    if need is not None and need not in granted:
        raise api_error({".tag": "missing_scope", "required_scope": need}, status=401)


def parse_scope(raw: str | None) -> list[str] | None:
    """The ``scope`` form field of a refresh grant: space-separated; absent or empty means unrestricted."""
    if raw is None or not raw.strip():
        return None
    return raw.split()


__all__ = ["ApiFail", "check_scope", "parse_scope", "required_scope"]
