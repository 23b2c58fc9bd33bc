"""Who may call the SCIM routes.

Every route refuses missing, wrong and revoked tokens; tokens are managed with the CLI and stored
hashed; OAuth JWTs are validated against a JWKS, an issuer and an audience.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from authlib.jose import JsonWebKey, jwt
from sqlalchemy import create_engine, text

from scim_bridge import cli
from scim_bridge.auth import TOKEN_PREFIX, TokenStore
from scim_bridge.config import JwtSettings, Settings
from scim_bridge.store.db import Database, sync_url
from tests.server import LiveServer, create_token, run_server

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


# -- every route, every method ---------------------------------------------------------------------


def scim_paths(user_id: str, group_id: str) -> list[str]:
    """Every SCIM route (RFC 7644 §3.2), with the ids of existing resources."""
    return [
        "/Users",
        f"/Users/{user_id}",
        "/Users/.search",
        "/Groups",
        f"/Groups/{group_id}",
        "/Groups/.search",
        "/ServiceProviderConfig",
        "/ResourceTypes",
        "/ResourceTypes/User",
        "/Schemas",
        f"/Schemas/{USER}",
        "/.search",
        "/Bulk",
        "/Me",
        "/",
    ]


def body_for(method: str, path: str) -> dict[str, Any] | None:
    """A well-formed body, so that only the credentials can be the reason for a refusal."""
    if method in ("GET", "DELETE", "OPTIONS"):
        return None
    if method == "PATCH":
        return {
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": "displayName", "value": "intruder"}],
        }
    if path.endswith(".search"):
        return {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}
    if path.startswith("/Groups"):
        return {"schemas": [GROUP], "displayName": "intruders"}
    return {"schemas": [USER], "userName": "intruder"}


def assert_unauthorized(response: httpx.Response) -> None:
    request = f"{response.request.method} {response.request.url.path}"
    assert response.status_code == 401, f"{request}: {response.status_code} {response.text}"
    assert response.headers["content-type"].startswith("application/scim+json"), request
    body = response.json()
    assert body["schemas"] == [ERROR], f"{request}: {body}"
    assert body["status"] == "401", f"{request}: {body}"
    assert response.headers.get("WWW-Authenticate", "").startswith("Bearer"), request


def snapshot(scim: httpx.Client) -> dict[str, Any]:
    return {
        endpoint: sorted(
            scim.get(f"/{endpoint}", params={"count": 1000}).json()["Resources"],
            key=lambda r: r["id"],
        )
        for endpoint in ("Users", "Groups")
    }


@dataclass
class Resources:
    user_id: str
    group_id: str


@pytest.fixture
def resources(scim: httpx.Client) -> Resources:
    user = scim.post("/Users", json={"schemas": [USER], "userName": "alice"})
    assert user.status_code == 201, user.text
    group = scim.post(
        "/Groups",
        json={"schemas": [GROUP], "displayName": "Eng", "members": [{"value": user.json()["id"]}]},
    )
    assert group.status_code == 201, group.text
    return Resources(user.json()["id"], group.json()["id"])


def revoked_token(live_server: LiveServer, scim: httpx.Client) -> str:
    """A token that worked, then was revoked; returned once the server refuses it."""
    database_url = live_server.settings.database_url
    token = asyncio.run(create_token(database_url, "to-revoke"))
    assert scim.get("/Users", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    asyncio.run(_revoke(database_url, "to-revoke"))
    wait_until_refused(scim, token)
    return token


def wait_until_refused(scim: httpx.Client, token: str) -> float:
    """Seconds until the server refuses ``token``; at most TokenStore.CACHE_SECONDS (plus slack)."""
    start = time.monotonic()
    deadline = start + TokenStore.CACHE_SECONDS + 2
    while True:
        status = scim.get("/Users", headers={"Authorization": f"Bearer {token}"}).status_code
        if status == 401:
            return time.monotonic() - start
        assert status == 200, status
        assert time.monotonic() < deadline, (
            f"a revoked token still worked after {TokenStore.CACHE_SECONDS + 2}s"
        )
        time.sleep(0.1)


CREDENTIALS: dict[str, Callable[[str], dict[str, str]]] = {
    "no token": lambda _: {},
    "scheme alone": lambda _: {"Authorization": "Bearer"},
    "wrong token": lambda _: {"Authorization": f"Bearer {TOKEN_PREFIX}{uuid.uuid4().hex}"},
    "not a token": lambda _: {"Authorization": "Bearer hello"},
    "token without scheme": lambda token: {"Authorization": token},
    "basic scheme": lambda token: {"Authorization": f"Basic {token}"},
    "revoked token": lambda revoked: {"Authorization": f"Bearer {revoked}"},
}


@pytest.mark.parametrize("credentials", list(CREDENTIALS))
def test_every_route_refuses_bad_credentials_with_401(
    live_server: LiveServer, scim: httpx.Client, resources: Resources, credentials: str
) -> None:
    token = (
        revoked_token(live_server, scim) if credentials == "revoked token" else live_server.token
    )
    headers = CREDENTIALS[credentials](token)
    before = snapshot(scim)
    paths = scim_paths(resources.user_id, resources.group_id)
    with httpx.Client(base_url=live_server.scim_url, timeout=30) as anonymous:
        for path in paths:
            for method in METHODS:
                response = anonymous.request(
                    method, path, json=body_for(method, path), headers=headers
                )
                assert_unauthorized(response)
            head = anonymous.head(path, headers=headers)  # HEAD has no body to check
            assert head.status_code == 401, f"HEAD {path}: {head.status_code}"
    assert snapshot(scim) == before


def test_every_route_exists_for_a_valid_token(scim: httpx.Client) -> None:
    """The enumeration above is of real routes: with a valid token none of them answers 401."""
    paths = scim_paths(str(uuid.uuid4()), str(uuid.uuid4()))
    for path in paths:
        for method in METHODS:
            response = scim.request(method, path, json=body_for(method, path))
            assert response.status_code != 401, f"{method} {path}: {response.text}"
            if response.status_code >= 400:
                assert response.json()["schemas"] == [ERROR], f"{method} {path}"


def test_revoked_token_stops_working_within_the_cache_time(
    live_server: LiveServer, scim: httpx.Client
) -> None:
    database_url = live_server.settings.database_url
    token = asyncio.run(create_token(database_url, "short-lived"))
    headers = {"Authorization": f"Bearer {token}"}
    assert scim.get("/Users", headers=headers).status_code == 200
    asyncio.run(_revoke(database_url, "short-lived"))
    assert wait_until_refused(scim, token) <= TokenStore.CACHE_SECONDS + 1


async def _revoke(database_url: str, name: str) -> None:
    database = Database(database_url)
    try:
        await TokenStore(database).revoke(name)
    finally:
        await database.dispose()


# -- tokens through the CLI ------------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> str:
    """The CLI pointed at the test database through the environment alone."""
    for name in ("SCIM_BRIDGE_CONFIG", "SCIM_BRIDGE_PORT", "SCIM_BRIDGE_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SCIM_BRIDGE_DATABASE_URL", database_url)
    return database_url


def api_token_rows(database_url: str) -> list[dict[str, Any]]:
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT * FROM api_token ORDER BY id"))
            return [dict(row._mapping) for row in rows]
    finally:
        engine.dispose()


def test_cli_token_create_shows_it_once_and_stores_only_a_hash(
    cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["token", "create", "--name", "okta"]) == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert token.startswith(TOKEN_PREFIX) and len(token) > 40, out
    assert out.count(token) == 1 and token not in err
    assert "only once" in err

    rows = api_token_rows(cli_env)
    assert [row["name"] for row in rows] == ["okta"]
    stored = json.dumps(rows, default=str)
    assert token not in stored
    assert token[len(TOKEN_PREFIX) :] not in stored
    assert rows[0]["digest"] == hashlib.sha256(token.encode()).hexdigest()

    assert cli.main(["token", "list"]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith("okta\t") and "last used never" in out
    assert token not in out


def test_cli_created_token_authenticates_and_revoked_token_is_refused(
    cli_env: str, live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["token", "create", "--name", "entra"]) == 0
    token = capsys.readouterr().out.strip()
    with httpx.Client(
        base_url=live_server.scim_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as entra:
        created = entra.post("/Users", json={"schemas": [USER], "userName": "bob"})
        assert created.status_code == 201, created.text
        assert cli.main(["token", "list"]) == 0
        listing = capsys.readouterr().out
        entra_line = next(line for line in listing.splitlines() if line.startswith("entra\t"))
        assert "last used never" not in entra_line

        assert cli.main(["token", "revoke", "entra"]) == 0
        assert "revoked" in capsys.readouterr().out
        assert "entra" not in {row["name"] for row in api_token_rows(cli_env)}
        wait_until_refused(entra, token)
        assert_unauthorized(entra.get("/Users"))

    assert cli.main(["token", "list"]) == 0
    assert "entra" not in capsys.readouterr().out


def test_cli_refuses_a_duplicate_token_name(
    cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["token", "create", "--name", "okta"]) == 0
    first = capsys.readouterr().out.strip()
    assert cli.main(["token", "create", "--name", "okta"]) == 1
    out, err = capsys.readouterr()
    assert out == "", "no token may be printed when creation fails"
    assert "'okta' exists already" in err
    assert "token revoke okta" in err, err
    rows = api_token_rows(cli_env)
    assert [row["name"] for row in rows] == ["okta"]
    assert rows[0]["digest"] == hashlib.sha256(first.encode()).hexdigest()


def test_cli_revoke_of_unknown_token_says_so(
    cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["token", "revoke", "nobody"]) == 1
    err = capsys.readouterr().err
    assert "no scim token named 'nobody'" in err
    assert "token list" in err


def test_cli_refuses_an_empty_token_name(cli_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["token", "create", "--name", ""]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "1 to 128 characters" in err
    assert api_token_rows(cli_env) == []


# -- OAuth JWT bearer tokens -----------------------------------------------------------------------

ISSUER = "https://login.example.test/tenant/v2.0"
AUDIENCE = "api://scim-bridge"


class Jwks:
    """A JSON Web Key Set served over HTTP on 127.0.0.1."""

    def __init__(self) -> None:
        self.key = JsonWebKey.generate_key("RSA", 2048, is_private=True, options={"kid": "good"})
        self.requests = 0
        keys = {"keys": [self.key.as_dict(is_private=False)]}
        payload = json.dumps(keys).encode()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                status = 200 if self.path == "/keys" else 404
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload) if status == 200 else 0))
                self.end_headers()
                if status == 200:
                    self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/keys"

    def sign(self, key: Any = None, kid: str | None = "good", **claims: Any) -> str:
        now = int(time.time())
        payload = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "entra-provisioning",
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            **claims,
        }
        payload = {name: value for name, value in payload.items() if value is not None}
        header = {"alg": "RS256", **({"kid": kid} if kid else {})}
        return bytes(jwt.encode(header, payload, key or self.key)).decode()


@pytest.fixture
def jwks() -> Iterator[Jwks]:
    served = Jwks()
    served.thread.start()
    try:
        yield served
    finally:
        served.server.shutdown()
        served.server.server_close()


@pytest.fixture
def jwt_server(settings: Settings, jwks: Jwks) -> Iterator[LiveServer]:
    configured = settings.model_copy(
        update={"jwt": JwtSettings(jwks_url=jwks.url, issuer=ISSUER, audience=AUDIENCE)}
    )
    token = asyncio.run(create_token(settings.database_url, "tests"))
    with run_server(configured, token) as server:
        yield server


def call(server: LiveServer, bearer: str) -> httpx.Response:
    with httpx.Client(base_url=server.scim_url, timeout=30) as client:
        return client.post(
            "/Users",
            json={"schemas": [USER], "userName": f"u-{uuid.uuid4().hex[:8]}"},
            headers={"Authorization": f"Bearer {bearer}"},
        )


def test_valid_jwt_is_accepted(jwt_server: LiveServer, jwks: Jwks) -> None:
    created = call(jwt_server, jwks.sign())
    assert created.status_code == 201, created.text
    assert jwks.requests >= 1
    # The bridge's own tokens keep working alongside JWTs.
    assert call(jwt_server, jwt_server.token).status_code == 201


def test_jwt_within_leeway_is_accepted(jwt_server: LiveServer, jwks: Jwks) -> None:
    """A token expired a few seconds ago (clock skew) is within leeway_seconds (60)."""
    assert call(jwt_server, jwks.sign(exp=int(time.time()) - 5)).status_code == 201


@pytest.mark.parametrize(
    "case",
    [
        "wrong issuer",
        "wrong audience",
        "expired",
        "wrong signing key",
        "unknown key id",
        "no expiry",
        "no issuer",
        "not yet valid",
        "unsigned (alg none)",
        "HMAC signed with the public key",
        "tampered claims",
    ],
)
def test_bad_jwt_is_refused_with_401(jwt_server: LiveServer, jwks: Jwks, case: str) -> None:
    now = int(time.time())
    other = JsonWebKey.generate_key("RSA", 2048, is_private=True, options={"kid": "good"})
    if case == "wrong issuer":
        token = jwks.sign(iss="https://evil.example.test/")
    elif case == "wrong audience":
        token = jwks.sign(aud="api://some-other-app")
    elif case == "expired":
        token = jwks.sign(iat=now - 7200, nbf=now - 7200, exp=now - 3600)
    elif case == "wrong signing key":
        token = jwks.sign(key=other)  # same kid, other key
    elif case == "unknown key id":
        token = jwks.sign(key=other, kid="unknown")
    elif case == "no expiry":
        token = jwks.sign(exp=None)
    elif case == "no issuer":
        token = jwks.sign(iss=None)
    elif case == "not yet valid":
        token = jwks.sign(nbf=now + 3600, exp=now + 7200)
    elif case == "unsigned (alg none)":
        token = _unsigned(jwks.sign())
    elif case == "HMAC signed with the public key":
        # Algorithm confusion: HS256 keyed with the public key the server knows.
        public_pem = jwks.key.as_pem(is_private=False)
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": now + 600}
        signing_input = (
            f"{_b64(json.dumps({'alg': 'HS256', 'kid': 'good'}))}.{_b64(json.dumps(claims))}"
        )
        mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        token = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    else:  # tampered claims: a valid signature over other claims
        header, _, signature = jwks.sign().split(".")
        forged = _b64(
            json.dumps({"iss": ISSUER, "aud": AUDIENCE, "sub": "admin", "exp": now + 600})
        )
        token = f"{header}.{forged}.{signature}"
    response = call(jwt_server, token)
    assert_unauthorized(response)
    with httpx.Client(
        base_url=jwt_server.scim_url,
        headers={"Authorization": f"Bearer {jwt_server.token}"},
        timeout=30,
    ) as scim:
        assert scim.get("/Users").json()["totalResults"] == 0, "a refused request wrote"


def test_jwt_is_refused_when_jwt_is_not_configured(live_server: LiveServer, jwks: Jwks) -> None:
    assert live_server.settings.jwt is None
    assert_unauthorized(call(live_server, jwks.sign()))
    assert jwks.requests == 0


def _b64(data: str) -> str:
    return base64.urlsafe_b64encode(data.encode()).rstrip(b"=").decode()


def _unsigned(token: str) -> str:
    _, payload, _ = token.split(".")
    return f"{_b64(json.dumps({'alg': 'none', 'typ': 'JWT'}))}.{payload}."
