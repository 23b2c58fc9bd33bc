"""The Coder REST API client: where scim-bridge's decisions turn into HTTP calls to Coder.

Facts about the API are in coder-contract.md (cited by section). The client paces itself under
Coder's per-endpoint rate limit instead of running into it (§1.4), retries 5xx, timeouts and
429 with exponential backoff and jitter, and raises :class:`CoderError` carrying Coder's
``message``, ``detail`` and ``validations`` (§1.3) for everything else.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

log = logging.getLogger("scim_bridge.coder")
RATE_WINDOW_SECONDS = 60.0
RETRYABLE_STATUS = {429, 500, 502, 503, 504}
GROUP_IDS_PER_CALL = 100  # 100 UUIDs: a 3.7 kB query string
RATE_LIMITED_ATTEMPTS = 10  # 1 + 2 + … + 60 s: longer than any window of Coder's limiter


class CoderError(Exception):
    """Coder refused a call; ``message``/``detail``/``validations`` are Coder's own words."""

    def __init__(
        self,
        status: int,
        method: str,
        path: str,
        message: str,
        detail: str = "",
        validations: list[dict[str, str]] | None = None,
    ):
        self.status = status
        self.method = method
        self.path = path
        self.message = message
        self.detail = detail
        self.validations = validations or []
        text = f"Coder answered {status} to {method} {path}: {message}"
        if detail:
            text += f" ({detail})"
        for validation in self.validations:
            text += f"; {validation.get('field')}: {validation.get('detail')}"
        super().__init__(text)

    @property
    def retryable(self) -> bool:
        return self.status in RETRYABLE_STATUS or self.status == 0


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Organization(_Model):
    id: str
    name: str
    display_name: str = ""
    is_default: bool = False


class ReducedUser(_Model):
    id: str
    username: str
    email: str = ""
    status: str = ""
    login_type: str = ""


class CoderUser(ReducedUser):
    organization_ids: list[str] = Field(default_factory=list)


class CoderGroup(_Model):
    id: str
    name: str
    display_name: str = ""
    organization_id: str
    members: list[ReducedUser] = Field(default_factory=list)
    source: str = "user"

    @property
    def is_everyone(self) -> bool:
        """§3.4: the Everyone group's id is its organization's id."""
        return self.id == self.organization_id

    @property
    def member_ids(self) -> set[str]:
        return {member.id for member in self.members}


class GroupSyncSettings(_Model):
    field: str = ""
    mapping: dict[str, list[str]] | None = None
    regex_filter: str | None = None
    auto_create_missing_groups: bool = False


class Template(_Model):
    id: str
    name: str
    display_name: str = ""
    organization_id: str = ""
    deleted: bool = False


class AclGroup(_Model):
    id: str
    name: str
    display_name: str = ""
    role: str


class AclUser(_Model):
    id: str
    username: str
    email: str = ""
    role: str


class TemplateAcl(_Model):
    """`TemplateACL` (§7); Coder names the group list ``group``, singular."""

    users: list[AclUser] = Field(default_factory=list)
    groups: list[AclGroup] = Field(default_factory=list, alias="group")

    @field_validator("users", "groups", mode="before")
    @classmethod
    def _nil_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value  # Go encodes an empty slice as null


@dataclass
class RatePacer:
    """Stays under Coder's limit of ``per_minute`` requests per endpoint (§1.4: keyed by user
    and request path) by spacing the requests to one endpoint.

    Coder's limiter (httprate) estimates the rate as ``previous window × the share of it still
    in the last minute + current window``, so a burst of ``per_minute`` is refused again at
    the start of the next window; evenly spaced requests at ``per_minute - ½`` a minute are
    never refused, whatever the alignment of its windows.
    """

    per_minute: int
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    _next: dict[str, float] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    async def wait(self, key: str) -> None:
        if self.per_minute <= 0:
            return
        interval = RATE_WINDOW_SECONDS / (self.per_minute - 0.5)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            now = self.clock()
            due = self._next.get(key, now)
            if due > now:
                await self.sleep(due - now)
            self._next[key] = max(due, now) + interval


class CoderClient:
    """Typed access to the Coder endpoints the bridge uses."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        rate_limit_per_minute: int = 512,
        max_attempts: int = 6,
        backoff_seconds: float = 0.5,
        timeout_seconds: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        on_response: Callable[[str, int], None] | None = None,
    ):
        self.http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/api/v2",
            headers={"Coder-Session-Token": token, "Accept": "application/json"},
            transport=transport,
            timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 10.0)),
        )
        self.pacer = RatePacer(rate_limit_per_minute, clock, sleep)
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep
        self.calls = 0
        self.on_response = on_response  # (method, status; 0 = no answer) per attempt: metrics

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> CoderClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # -- transport --------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """Send one call, retrying what may succeed later; return the decoded JSON body."""
        attempt = 0
        while True:
            attempt += 1
            await self.pacer.wait(path)  # Coder limits per user and path (§1.4)
            self.calls += 1
            response: httpx.Response | None = None
            try:
                response = await self.http.request(method, path, json=json, params=params)
            except httpx.TransportError as error:
                failure = CoderError(0, method, path, f"no answer from Coder: {error!r}")
                self._observe(method, 0)
            else:
                self._observe(method, response.status_code)
                if response.status_code < 400:
                    return response.json() if response.content else None
                failure = _error_of(response, method, path)
            limit = RATE_LIMITED_ATTEMPTS if failure.status == 429 else self.max_attempts
            if not failure.retryable or attempt >= limit:
                raise failure
            delay = self._backoff(attempt, failure, response)
            log.warning("%s; retrying in %.1fs (attempt %d)", failure, delay, attempt)
            await self.sleep(delay)

    def _observe(self, method: str, status: int) -> None:
        if self.on_response is not None:
            self.on_response(method, status)

    def _backoff(self, attempt: int, failure: CoderError, response: httpx.Response | None) -> float:
        """Exponential backoff with jitter. A 429 waits longer (Coder sends no Retry-After by
        default, and its window can take up to a minute to clear): 1, 2, 4… up to 60 s."""
        if failure.status == 429:
            retry_after = response.headers.get("Retry-After", "") if response is not None else ""
            floor = float(retry_after) if retry_after.isdigit() else 2.0 ** (attempt - 1)
            return min(floor * random.uniform(1.0, 1.25), RATE_WINDOW_SECONDS)
        delay = random.uniform(0, self.backoff_seconds * 2 ** (attempt - 1))
        return min(delay, RATE_WINDOW_SECONDS)

    # -- organizations and users (§2, §4) -------------------------------------------------

    async def organization(self, organization: str) -> Organization:
        return Organization.model_validate(
            await self.request("GET", f"/organizations/{organization}")
        )

    async def users(self, page_size: int = 500) -> AsyncIterator[CoderUser]:
        """Every user, page by page (§4.1: ordered by lower(username))."""
        offset = 0
        while True:
            page = await self.request(
                "GET", "/users", params={"limit": page_size, "offset": offset}
            )
            users = page.get("users") or []
            for user in users:
                yield CoderUser.model_validate(user)
            offset += len(users)
            if not users or offset >= int(page.get("count", 0)):
                return

    async def search_users(self, text: str) -> list[CoderUser]:
        """Users whose email or username contains ``text`` (§4.2: a bare search word)."""
        page = await self.request("GET", "/users", params={"q": text})
        return [CoderUser.model_validate(user) for user in (page or {}).get("users") or []]

    async def create_user(
        self, *, email: str, username: str, name: str, organization_id: str, login_type: str
    ) -> CoderUser:
        body = {
            "email": email,
            "username": username,
            "name": name,
            "login_type": login_type,
            "organization_ids": [organization_id],
        }
        return CoderUser.model_validate(await self.request("POST", "/users", json=body))

    async def add_organization_member(self, organization: str, user_id: str) -> None:
        await self.request("POST", f"/organizations/{organization}/members/{user_id}")

    async def suspend_user(self, user_id: str) -> None:
        await self.request("PUT", f"/users/{user_id}/status/suspend")

    async def activate_user(self, user_id: str) -> None:
        await self.request("PUT", f"/users/{user_id}/status/activate")

    # -- groups (§3) ---------------------------------------------------------------------

    async def groups(self, organization: str) -> list[CoderGroup]:
        """Every group of the organization with its members, in one call (§3.1)."""
        found = await self.request("GET", f"/organizations/{organization}/groups")
        return [CoderGroup.model_validate(group) for group in found or []]

    async def groups_by_id(self, organization: str, group_ids: list[str]) -> list[CoderGroup]:
        """Only these groups, with their members (§3.1 ``group_ids``), a hundred per call to
        keep the URL short. Missing ones (deleted in Coder) are simply not returned."""
        found: list[CoderGroup] = []
        for start in range(0, len(group_ids), GROUP_IDS_PER_CALL):
            chunk = group_ids[start : start + GROUP_IDS_PER_CALL]
            params = {"organization": organization, "group_ids": ",".join(chunk)}
            page = await self.request("GET", "/groups", params=params)
            found += [CoderGroup.model_validate(group) for group in page or []]
        return found

    async def create_group(self, organization: str, name: str, display_name: str) -> CoderGroup:
        body = {"name": name, "display_name": display_name}
        created = await self.request("POST", f"/organizations/{organization}/groups", json=body)
        return CoderGroup.model_validate(created)

    async def patch_group(
        self,
        group_id: str,
        *,
        add_users: list[str] | None = None,
        remove_users: list[str] | None = None,
        name: str | None = None,
        display_name: str | None = None,
    ) -> CoderGroup:
        body: dict[str, Any] = {}
        if add_users:
            body["add_users"] = add_users
        if remove_users:
            body["remove_users"] = remove_users
        if name is not None:
            body["name"] = name
        if display_name is not None:
            body["display_name"] = display_name
        return CoderGroup.model_validate(
            await self.request("PATCH", f"/groups/{group_id}", json=body)
        )

    async def delete_group(self, group_id: str) -> None:
        await self.request("DELETE", f"/groups/{group_id}")

    # -- IdP group sync (§5.1) -----------------------------------------------------------

    async def group_sync_settings(self, organization: str) -> GroupSyncSettings:
        path = f"/organizations/{organization}/settings/idpsync/groups"
        return GroupSyncSettings.model_validate(await self.request("GET", path))

    async def patch_group_sync_mapping(
        self,
        organization: str,
        add: list[tuple[str, str]],
        remove: list[tuple[str, str]],
    ) -> GroupSyncSettings:
        path = f"/organizations/{organization}/settings/idpsync/groups/mapping"
        body = {
            "add": [{"given": given, "gets": gets} for given, gets in add],
            "remove": [{"given": given, "gets": gets} for given, gets in remove],
        }
        return GroupSyncSettings.model_validate(await self.request("PATCH", path, json=body))

    # -- templates and ACLs (§7) ------------------------------------------------------------

    async def templates(self, organization: str) -> list[Template]:
        found = await self.request("GET", f"/organizations/{organization}/templates")
        return [Template.model_validate(t) for t in found or []]

    async def template_acl(self, template_id: str) -> TemplateAcl:
        found = await self.request("GET", f"/templates/{template_id}/acl")
        return TemplateAcl.model_validate(found)

    async def patch_template_acl(
        self,
        template_id: str,
        group_perms: dict[str, str] | None = None,
        user_perms: dict[str, str] | None = None,
    ) -> None:
        body: dict[str, Any] = {}
        if group_perms:
            body["group_perms"] = group_perms
        if user_perms:
            body["user_perms"] = user_perms
        await self.request("PATCH", f"/templates/{template_id}/acl", json=body)


def _error_of(response: httpx.Response, method: str, path: str) -> CoderError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = str(body.get("message") or response.reason_phrase or "error")
    validations = body.get("validations") if isinstance(body.get("validations"), list) else None
    return CoderError(
        response.status_code, method, path, message, str(body.get("detail") or ""), validations
    )
