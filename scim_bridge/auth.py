"""Who may call the SCIM routes: scim-bridge bearer tokens, and optionally OAuth 2.0 JWTs.

Tokens are shown once at creation and stored as SHA-256 digests; a presented token is hashed
and looked up by digest, then compared in constant time. JWTs (Entra gallery apps use OAuth
client credentials) are validated with authlib against the configured JWKS, issuer and audience.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from authlib.deprecate import AuthlibDeprecationWarning

with warnings.catch_warnings():
    # authlib 1.x announces that authlib.jose moves to joserfc in 2.0; it works until then
    # (pinned below 2 in pyproject.toml) and the warning would only reach operators.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.jose import JsonWebKey, JsonWebToken
    from authlib.jose.errors import JoseError
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from .config import JwtSettings
from .store.db import Database
from .store.tables import TOKENS

TOKEN_PREFIX = "sbt_"
JWT_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384"]


class TokenError(Exception):
    """A token operation failed; the message says why and what to do."""


@dataclass(frozen=True)
class Principal:
    """Who a request authenticated as."""

    name: str
    kind: str  # "token" or "jwt"


def _utc(value: datetime) -> datetime:
    """SQLite hands timestamps back without their zone; they were written in UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Named bearer tokens in the database, per scope: "scim" (IdPs) or "admin" (admin API)."""

    # Looking a token up costs a query; a short cache keeps it off the hot path. A revoked
    # token stops working within this many seconds in other processes, at once in this one.
    CACHE_SECONDS = 5.0

    def __init__(self, database: Database):
        self.database = database
        self._cache: dict[tuple[str, str], tuple[str, float]] = {}

    async def create(self, name: str, scope: str = "scim") -> str:
        if not name or len(name) > 128:
            raise TokenError("a token name must have 1 to 128 characters, e.g. --name okta")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        try:
            async with self.database.transaction(write=True) as connection:
                await connection.execute(
                    insert(TOKENS).values(
                        name=name, scope=scope, digest=digest(token), created=datetime.now(UTC)
                    )
                )
        except IntegrityError as error:
            option = "" if scope == "scim" else f" --scope {scope}"
            raise TokenError(
                f"a {scope} token named {name!r} exists already; revoke it first "
                f"(scim-bridge token revoke{option} {name}) or choose another name"
            ) from error
        return token

    async def list(self, scope: str = "scim") -> list[dict[str, Any]]:
        async with self.database.transaction(write=False) as connection:
            rows = await connection.execute(
                select(TOKENS.c.name, TOKENS.c.created, TOKENS.c.last_used)
                .where(TOKENS.c.scope == scope)
                .order_by(TOKENS.c.name)
            )
            return [
                {
                    "name": row.name,
                    "created": _utc(row.created),
                    "last_used": _utc(row.last_used) if row.last_used else None,
                }
                for row in rows
            ]

    async def revoke(self, name: str, scope: str = "scim") -> None:
        async with self.database.transaction(write=True) as connection:
            result = await connection.execute(
                delete(TOKENS).where(TOKENS.c.name == name, TOKENS.c.scope == scope)
            )
        self._cache.clear()
        if result.rowcount == 0:
            option = "" if scope == "scim" else f" --scope {scope}"
            raise TokenError(f"no {scope} token named {name!r}; see scim-bridge token list{option}")

    async def verify(self, token: str, scope: str = "scim") -> Principal | None:
        presented = digest(token)
        cached = self._cache.get((scope, presented))
        if cached is not None and cached[1] > time.monotonic():
            return Principal(cached[0], "token")
        async with self.database.transaction(write=False) as connection:
            row = (
                await connection.execute(
                    select(TOKENS.c.id, TOKENS.c.name, TOKENS.c.digest).where(
                        TOKENS.c.digest == presented, TOKENS.c.scope == scope
                    )
                )
            ).first()
        if row is None or not hmac.compare_digest(row.digest, presented):
            return None
        self._cache[(scope, presented)] = (row.name, time.monotonic() + self.CACHE_SECONDS)
        await self._mark_used(row.id)
        return Principal(row.name, "token")

    async def _mark_used(self, token_id: int) -> None:
        async with self.database.transaction(write=True) as connection:
            await connection.execute(
                update(TOKENS).where(TOKENS.c.id == token_id).values(last_used=datetime.now(UTC))
            )


class JwtValidator:
    """Validates OAuth 2.0 bearer JWTs against a JWKS URL, issuer and audience."""

    REFRESH_SECONDS = 600.0

    def __init__(self, settings: JwtSettings, transport: httpx.AsyncBaseTransport | None = None):
        self.settings = settings
        self.transport = transport
        self._jwt = JsonWebToken(JWT_ALGORITHMS)
        self._keys: Any = None
        self._fetched_at = 0.0

    async def _key_set(self, force: bool = False) -> Any:
        stale = time.monotonic() - self._fetched_at > self.REFRESH_SECONDS
        if self._keys is None or stale or force:
            async with httpx.AsyncClient(transport=self.transport, timeout=10) as client:
                response = await client.get(self.settings.jwks_url)
                response.raise_for_status()
                self._keys = JsonWebKey.import_key_set(response.json())
                self._fetched_at = time.monotonic()
        return self._keys

    async def verify(self, token: str) -> Principal | None:
        if token.count(".") != 2:
            return None
        for force in (False, True):  # a rotated key: fetch the set again once
            try:
                keys = await self._key_set(force=force)
                claims = self._jwt.decode(
                    token,
                    keys,
                    claims_options={
                        "iss": {"essential": True, "value": self.settings.issuer},
                        "aud": {"essential": True, "value": self.settings.audience},
                        "exp": {"essential": True},
                    },
                )
                claims.validate(leeway=self.settings.leeway_seconds)
            except ValueError:  # no key with the token's kid
                continue
            except (JoseError, httpx.HTTPError):
                return None
            subject = claims.get("sub") or claims.get("appid") or claims.get("azp") or "jwt"
            return Principal(str(subject), "jwt")
        return None


class Authenticator:
    """Checks the ``Authorization: Bearer …`` header of a SCIM request."""

    def __init__(self, tokens: TokenStore, jwt: JwtValidator | None = None):
        self.tokens = tokens
        self.jwt = jwt

    async def authenticate(self, authorization: str | None) -> Principal | None:
        scheme, _, credentials = (authorization or "").partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials:
            return None
        if credentials.startswith(TOKEN_PREFIX):
            return await self.tokens.verify(credentials)
        if self.jwt is not None:
            return await self.jwt.verify(credentials)
        return None
