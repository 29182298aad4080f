"""Personal access tokens: long-lived Bearer credentials for scripts, revocable at once.

A token is ``pft_`` and 43 URL-safe characters (256 random bits). Only its SHA-256 is
stored (pacsflow.archive.models.ApiToken); it is shown once, when issued. Every request
that carries one is checked against the table, so a revoked or expired token is refused
from the next request on.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import Engine, Table, insert, select, update

from pacsflow.archive.ingest import utc_now
from pacsflow.archive.models import ApiToken

TOKEN_PREFIX = "pft_"
MAX_DAYS = 365
TOKENS = cast(Table, ApiToken.__table__)


@dataclass(frozen=True)
class TokenInfo:
    """What a user sees of a token (never the secret itself)."""

    id: int
    name: str
    created_at: str
    expires_at: str
    revoked: bool


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def is_access_token(token: str) -> bool:
    return token.startswith(TOKEN_PREFIX)


def issue(engine: Engine, user_id: int, name: str, days: int) -> tuple[TokenInfo, str]:
    """A new token for the user, valid ``days`` days: its description and the token."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utc_now()
    with engine.begin() as conn:
        token_id = conn.execute(
            insert(TOKENS).returning(TOKENS.c.id),
            {
                "user_id": user_id,
                "name": name,
                "secret_hash": _digest(token),
                "created_at": now,
                "expires_at": now + timedelta(days=days),
            },
        ).scalar_one()
    info = TokenInfo(token_id, name, _iso(now), _iso(now + timedelta(days=days)), False)
    return info, token


def user_of(engine: Engine, token: str) -> int | None:
    """The id of the user a valid token belongs to; None if unknown, revoked or expired."""
    with engine.connect() as conn:
        return conn.execute(
            select(TOKENS.c.user_id).where(
                TOKENS.c.secret_hash == _digest(token),
                TOKENS.c.revoked_at.is_(None),
                TOKENS.c.expires_at > utc_now(),
            )
        ).scalar_one_or_none()


def tokens_of(engine: Engine, user_id: int) -> list[TokenInfo]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(TOKENS).where(TOKENS.c.user_id == user_id).order_by(TOKENS.c.id)
        ).all()
    return [
        TokenInfo(r.id, r.name, _iso(r.created_at), _iso(r.expires_at), r.revoked_at is not None)
        for r in rows
    ]


def revoke(engine: Engine, token_id: int, user_id: int | None) -> bool:
    """Revoke a token of ``user_id`` (None: of anyone, for admins); False if there is none."""
    query = update(TOKENS).where(TOKENS.c.id == token_id, TOKENS.c.revoked_at.is_(None))
    if user_id is not None:
        query = query.where(TOKENS.c.user_id == user_id)
    with engine.begin() as conn:
        return bool(conn.execute(query.values(revoked_at=utc_now())).rowcount)


def _iso(moment: datetime) -> str:
    return moment.replace(tzinfo=UTC).isoformat()
