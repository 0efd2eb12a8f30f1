"""Shared builders of the social tests."""

from __future__ import annotations

from datetime import datetime

from social.connections import connection_save
from social.models import Connection, Platform


def make_connection(
    tenant,
    club,
    *,
    platform: str = Platform.X,
    account_id: str = "1001",
    access_token: str = "access-token-1",  # noqa: S107 (a fake token)
    refresh_token: str | None = "refresh-token-1",  # noqa: S107
    token_expires_at: datetime | None = None,
) -> Connection:
    return connection_save(
        tenant=tenant,
        club=club,
        platform=platform,
        account_id=account_id,
        account_name=f"acct {account_id}",
        account_type="test",
        access_token=access_token,
        refresh_token=refresh_token,
        token_expires_at=token_expires_at,
        scopes=["tweet.write"],
        user=None,
    )
