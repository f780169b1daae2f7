"""Plain settings objects: where Dropbox lives and which credentials to use."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Endpoints:
    """Base URLs of the Dropbox hosts; ``single_host`` points every route at one server (the emulator)."""

    api: str = "https://api.dropboxapi.com"
    content: str = "https://content.dropboxapi.com"
    notify: str = "https://notify.dropboxapi.com"
    authorize: str = "https://www.dropbox.com/oauth2/authorize"
    token: str = "https://api.dropboxapi.com/oauth2/token"

    @classmethod
    def single_host(cls, base_url: str) -> Endpoints:
        base = base_url.rstrip("/")
        return cls(
            api=base,
            content=base,
            notify=base,
            authorize=f"{base}/oauth2/authorize",
            token=f"{base}/oauth2/token",
        )


@dataclass(frozen=True)
class Credentials:
    """App key/secret + refresh token (long-lived), or just an access token (4 h). ``repr`` hides secrets.

    PKCE apps have no secret: give ``app_key`` and ``refresh_token`` only."""

    app_key: str | None = None
    app_secret: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        def shown(value: str | None) -> str:
            return "None" if value is None else "'***'"

        return (
            f"Credentials(app_key={self.app_key!r}, app_secret={shown(self.app_secret)}, "
            f"refresh_token={shown(self.refresh_token)}, access_token={shown(self.access_token)})"
        )
