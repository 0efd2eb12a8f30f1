from __future__ import annotations

from rest_framework.routers import SimpleRouter


class OptionalSlashRouter(SimpleRouter):
    """Routes that answer with or without a trailing slash (``/api/v1/clubs`` is canonical),
    so clients never meet a redirect that drops their POST body."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"
