"""Conformance of the Coder double to docs/coder-contract.md, over real HTTP.

One behaviour per test; each docstring cites the contract section it pins. The double
is served by uvicorn on 127.0.0.1 (tests/coder_fixtures.py); every test gets a fresh
double (default organization `coder`, owner `admin`, non-owner `bridge` with site roles
`user-admin` + `template-admin`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from scim_bridge.coderdouble import (
    DoubleConfig,
    GroupSyncSettings,
    LegacyOidcGroupFlags,
    LoginRefused,
    ManualClock,
    User,
)
from tests.coder_fixtures import DoubleServer, LiveCoder, coder_double_server, run_coder_double

SIGNED_OUT = "You are signed out or your session has expired. Please sign in again to continue."
NOT_FOUND = "Resource not found or you do not have access to this resource"
PREMIUM = "Template RBAC is a Premium feature. Contact sales!"


@pytest.fixture(scope="module")
def server() -> Iterator[DoubleServer]:
    with coder_double_server() as running:
        yield running


@pytest.fixture
def coder(server: DoubleServer) -> Iterator[LiveCoder]:
    with server.serve() as live:
        yield live


@pytest.fixture
def owner(coder: LiveCoder) -> Iterator[httpx.Client]:
    with coder.client() as client:
        yield client


@pytest.fixture
def bridge(coder: LiveCoder) -> Iterator[httpx.Client]:
    with coder.client(coder.token) as client:
        yield client


def org_id(coder: LiveCoder) -> str:
    return str(coder.state.default_org.id)


def groups_url(coder: LiveCoder) -> str:
    return f"/api/v2/organizations/{org_id(coder)}/groups"


def new_group(client: httpx.Client, coder: LiveCoder, name: str, **fields: Any) -> dict[str, Any]:
    response = client.post(groups_url(coder), json={"name": name, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def new_user(coder: LiveCoder, username: str, **options: Any) -> User:
    return coder.state.create_user(username, f"{username}@example.com", **options)


def member_token(coder: LiveCoder, username: str = "plain") -> str:
    return coder.state.create_token(new_user(coder, username))


def usernames(group: dict[str, Any]) -> list[str]:
    return [m["username"] for m in group["members"]]


# --- §1.1 authentication, §1.3 errors -------------------------------------------------------


def test_session_token_header_authenticates(coder: LiveCoder) -> None:
    """§1.1: the `Coder-Session-Token` header carries the API token."""
    with coder.client(coder.token) as client:
        response = client.get("/api/v2/users/me")
    assert response.status_code == 200
    assert response.json()["username"] == "bridge"


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_authorization_bearer_authenticates(coder: LiveCoder, scheme: str) -> None:
    """§1.1: `Authorization: Bearer <token>` (prefix case-insensitive) is accepted too."""
    with coder.client("", Authorization=f"{scheme} {coder.token}") as client:
        response = client.get("/api/v2/users/me")
    assert response.json()["username"] == "bridge"


def test_missing_token_is_401_signed_out(coder: LiveCoder) -> None:
    """§1.1: unauthenticated → 401 with Coder's signed-out message."""
    with coder.client("") as client:
        response = client.get("/api/v2/users")
    assert response.status_code == 401
    assert response.json()["message"] == SIGNED_OUT


def test_unknown_token_is_401_signed_out(coder: LiveCoder) -> None:
    """§1.1: a token that is not `<10-char id>-<secret>` of a live key → 401."""
    with coder.client("abcdefghij-notasecret") as client:
        response = client.get("/api/v2/users")
    assert (response.status_code, response.json()["message"]) == (401, SIGNED_OUT)


def test_expired_token_is_401(server: DoubleServer) -> None:
    """§1.1/§1.2: a token past its lifetime no longer authenticates."""
    clock = ManualClock()
    with server.serve(clock=clock) as coder:
        token = coder.state.create_token(coder.admin, "short", timedelta(hours=1))
        with coder.client(token) as client:
            assert client.get("/api/v2/users/me").status_code == 200
            clock.advance(3601)
            assert client.get("/api/v2/users/me").status_code == 401


def test_error_envelope_omits_empty_detail_and_validations(owner: httpx.Client) -> None:
    """§1.3: `detail` and `validations` are omitempty."""
    response = owner.get("/api/v2/no-such-route")
    assert (response.status_code, response.json()) == (404, {"message": "Route not found."})


def test_validation_failure_lists_field_and_detail(owner: httpx.Client, coder: LiveCoder) -> None:
    """§1.3: struct validation → 400 `Validation failed.` + validations keyed by JSON name."""
    response = owner.post(groups_url(coder), json={"name": "Bad Name"})
    assert response.status_code == 400
    assert response.json() == {
        "message": "Validation failed.",
        "validations": [
            {
                "field": "name",
                "detail": 'Validation failed for tag "group_name" with value: "Bad Name"',
            }
        ],
    }


@pytest.mark.parametrize("body", [b"{not json", b"", b"[1, 2]"])
def test_body_that_is_not_json_is_400(owner: httpx.Client, coder: LiveCoder, body: bytes) -> None:
    """§1.3: a body that is not JSON (or not an object) → 400 `Request body must be valid JSON.`"""
    response = owner.post(groups_url(coder), content=body)
    assert response.status_code == 400
    assert response.json()["message"] == "Request body must be valid JSON."


def test_body_field_of_wrong_type_is_400_invalid_json(
    owner: httpx.Client, coder: LiveCoder
) -> None:
    """§1.3: a bad type in the body → 400 `Request body must be valid JSON.` + detail."""
    response = owner.post(groups_url(coder), json={"name": "ok", "quota_allowance": "5"})
    assert response.status_code == 400
    assert response.json()["message"] == "Request body must be valid JSON."
    assert "quota_allowance" in response.json()["detail"]


def test_body_keys_match_case_insensitively(owner: httpx.Client, coder: LiveCoder) -> None:
    """§5.1 (Go's decoder, which every body goes through): keys match fields in any case."""
    response = owner.post(groups_url(coder), json={"NAME": "dept-eng", "Display_Name": "Eng"})
    assert response.status_code == 201
    assert (response.json()["name"], response.json()["display_name"]) == ("dept-eng", "Eng")


def test_bad_uuid_in_path_is_400(owner: httpx.Client) -> None:
    """§1.3: `Invalid UUID "<x>".` for a path parameter that must be a UUID."""
    response = owner.get("/api/v2/groups/not-a-uuid")
    assert response.status_code == 400
    assert response.json()["message"] == 'Invalid UUID "not-a-uuid".'


def test_unreadable_resource_is_404(coder: LiveCoder, owner: httpx.Client) -> None:
    """§1.3: not authorized to read → 404 `Resource not found or ...` (`Is404Error`)."""
    group = new_group(owner, coder, "secret-team")
    with coder.client(member_token(coder)) as client:
        response = client.get(f"/api/v2/groups/{group['id']}")
    assert response.status_code == 404
    assert response.json() == {"message": NOT_FOUND}


def test_group_list_only_returns_groups_the_caller_may_read(
    coder: LiveCoder, owner: httpx.Client
) -> None:
    """§3.1: only groups the caller may read are returned (a member sees its own)."""
    plain = new_user(coder, "plain")
    new_group(owner, coder, "hidden")
    mine = new_group(owner, coder, "mine")
    owner.patch(f"/api/v2/groups/{mine['id']}", json={"add_users": [str(plain.id)]})
    with coder.client(coder.state.create_token(plain)) as client:
        names = {g["name"] for g in client.get(groups_url(coder)).json()}
    assert names == {"Everyone", "mine"}


def test_dormant_user_becomes_active_when_it_uses_the_api(coder: LiveCoder) -> None:
    """§4.3: a dormant user becomes active on its next activity."""
    sleeper = new_user(coder, "sleeper", status="dormant")
    with coder.client(coder.state.create_token(sleeper)) as client:
        assert client.get("/api/v2/users/me").json()["status"] == "active"


# --- §1.4 rate limiting -------------------------------------------------------------------


@pytest.fixture
def limited(server: DoubleServer) -> Iterator[tuple[LiveCoder, ManualClock]]:
    clock = ManualClock(start=1_800_000_000.0)  # a whole minute: windows start with the test
    with server.serve(DoubleConfig(rate_limit=5), clock) as live:
        yield live, clock


def test_rate_limit_answers_429_past_n_requests_a_minute(
    limited: tuple[LiveCoder, ManualClock],
) -> None:
    """§1.4: N requests per minute per user and endpoint, then 429 with Coder's message."""
    coder, _ = limited
    with coder.client(coder.token) as client:
        statuses = [client.get("/api/v2/users").status_code for _ in range(6)]
        refused = client.get("/api/v2/users")
    assert statuses == [200] * 5 + [429]
    assert refused.json() == {
        "message": "You've been rate limited for sending more than 5 requests in 1m0s."
    }


def test_rate_limit_is_per_endpoint_path(limited: tuple[LiveCoder, ManualClock]) -> None:
    """§1.4: keyed by endpoint (`httprate.KeyByEndpoint`): another path has its own budget."""
    coder, _ = limited
    with coder.client(coder.token) as client:
        for _ in range(5):
            client.get("/api/v2/users")
        assert client.get("/api/v2/users").status_code == 429
        assert client.get("/api/v2/organizations").status_code == 200


def test_rate_limit_is_per_user(limited: tuple[LiveCoder, ManualClock]) -> None:
    """§1.4: keyed by user ID: another user's budget is untouched."""
    coder, _ = limited
    with coder.client(coder.token) as bridge_client, coder.client() as owner_client:
        for _ in range(5):
            bridge_client.get("/api/v2/users")
        assert bridge_client.get("/api/v2/users").status_code == 429
        assert owner_client.get("/api/v2/users").status_code == 200


def test_rate_limit_recovers_after_the_window(limited: tuple[LiveCoder, ManualClock]) -> None:
    """§1.4: the limit is per minute: two windows later the budget is whole again."""
    coder, clock = limited
    with coder.client(coder.token) as client:
        for _ in range(5):
            client.get("/api/v2/users")
        assert client.get("/api/v2/users").status_code == 429
        clock.advance(120)
        assert client.get("/api/v2/users").status_code == 200


def test_rate_limit_window_slides(limited: tuple[LiveCoder, ManualClock]) -> None:
    """§1.4 (httprate): half a minute into the next window, the previous one counts half."""
    coder, clock = limited
    with coder.client(coder.token) as client:
        for _ in range(4):
            client.get("/api/v2/users")
        clock.advance(90)  # previous window: 4 requests weigh 2
        statuses = [client.get("/api/v2/users").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_rate_limit_zero_disables(server: DoubleServer) -> None:
    """§1.4: a limit ≤ 0 disables rate limiting."""
    with server.serve(DoubleConfig(rate_limit=0)) as coder, coder.client() as client:
        assert {client.get("/api/v2/users").status_code for _ in range(20)} == {200}


def test_rate_limit_default_is_512(coder: LiveCoder) -> None:
    """§1.4: `CODER_API_RATE_LIMIT` defaults to 512 requests per minute."""
    assert coder.state.config.rate_limit == 512


@pytest.mark.parametrize("value", ["true", "1", "True"])
def test_bypass_header_is_honoured_for_an_owner(
    limited: tuple[LiveCoder, ManualClock], value: str
) -> None:
    """§1.4: `X-Coder-Bypass-Ratelimit: true` from an owner is not limited."""
    coder, _ = limited
    with coder.client(**{"X-Coder-Bypass-Ratelimit": value}) as client:
        assert {client.get("/api/v2/users").status_code for _ in range(10)} == {200}


def test_bypass_header_from_a_non_owner_is_428(limited: tuple[LiveCoder, ManualClock]) -> None:
    """§1.4: a non-owner sending the bypass header gets 428 Precondition Required."""
    coder, _ = limited
    with coder.client(coder.token, **{"X-Coder-Bypass-Ratelimit": "true"}) as client:
        response = client.get("/api/v2/users")
    assert response.status_code == 428


def test_unauthenticated_requests_are_limited_by_ip(limited: tuple[LiveCoder, ManualClock]) -> None:
    """§1.4: unauthenticated requests are keyed by IP (and still limited)."""
    coder, _ = limited
    with coder.client("") as client:
        statuses = [client.get("/api/v2/users").status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]


def test_rate_limit_headers_are_not_sent_by_default(
    limited: tuple[LiveCoder, ManualClock],
) -> None:
    """§1.4: httprate's X-RateLimit-* headers are unverified in Coder: not sent unless asked."""
    coder, _ = limited
    with coder.client() as client:
        response = client.get("/api/v2/users")
    assert not [h for h in response.headers if h.lower().startswith("x-ratelimit")]


def test_rate_limit_headers_can_be_enabled(server: DoubleServer) -> None:
    """§1.4: optionally, httprate's headers (limit, remaining, reset; Retry-After on 429)."""
    config = DoubleConfig(rate_limit=1, rate_limit_headers=True)
    with server.serve(config, ManualClock()) as coder, coder.client() as client:
        first = client.get("/api/v2/users")
        second = client.get("/api/v2/users")
    assert first.headers["X-RateLimit-Limit"] == "1"
    assert (second.status_code, second.headers["Retry-After"]) == (429, "60")


# --- §2 organizations -------------------------------------------------------------------


def test_list_organizations(owner: httpx.Client, coder: LiveCoder) -> None:
    """§2: `GET /organizations` → 200 [Organization] with the documented fields."""
    orgs = owner.get("/api/v2/organizations").json()
    assert [o["id"] for o in orgs] == [org_id(coder)]
    assert set(orgs[0]) >= {
        "id",
        "name",
        "display_name",
        "icon",
        "description",
        "created_at",
        "updated_at",
        "is_default",
        "default_org_member_roles",
    }
    assert orgs[0]["is_default"] is True


@pytest.mark.parametrize("ref", ["uuid", "coder", "CODER", "default", str(uuid.UUID(int=0))])
def test_get_organization_by_uuid_name_or_default(
    owner: httpx.Client, coder: LiveCoder, ref: str
) -> None:
    """§2: `{organization}` = UUID, name (case-insensitive), `default` or the nil UUID."""
    target = org_id(coder) if ref == "uuid" else ref
    response = owner.get(f"/api/v2/organizations/{target}")
    assert (response.status_code, response.json()["id"]) == (200, org_id(coder))


def test_unknown_organization_is_404(owner: httpx.Client) -> None:
    """§2: an unknown organization → 404."""
    response = owner.get("/api/v2/organizations/nope")
    assert (response.status_code, response.json()["message"]) == (404, NOT_FOUND)


def test_add_member_returns_organization_member(owner: httpx.Client, coder: LiveCoder) -> None:
    """§2: `POST .../members/{user}` (no body) → 200 OrganizationMember."""
    other = coder.state.create_organization("second")
    alice = new_user(coder, "alice")
    response = owner.post(f"/api/v2/organizations/{other.id}/members/alice")
    assert response.status_code == 200
    assert response.json()["user_id"] == str(alice.id)
    assert set(response.json()) == {
        "user_id",
        "organization_id",
        "created_at",
        "updated_at",
        "roles",
    }


def test_add_existing_member_is_400(owner: httpx.Client, coder: LiveCoder) -> None:
    """§2: already a member → 400 `User is already an organization member`."""
    new_user(coder, "alice")
    response = owner.post(f"/api/v2/organizations/{org_id(coder)}/members/alice")
    assert response.status_code == 400
    assert response.json()["message"] == "User is already an organization member"


def test_add_oidc_member_is_refused_when_organization_sync_is_on(server: DoubleServer) -> None:
    """§2: with organization sync enabled, manual membership of OIDC users → 400."""
    with server.serve(DoubleConfig(organization_sync_enabled=True)) as coder:
        other = coder.state.create_organization("second")
        new_user(coder, "alice", login_type="oidc")
        with coder.client() as client:
            response = client.post(f"/api/v2/organizations/{other.id}/members/alice")
    assert response.status_code == 400
    assert response.json()["message"].startswith("Organization sync is enabled for OIDC users")


def test_remove_member_is_204(owner: httpx.Client, coder: LiveCoder) -> None:
    """§2: `DELETE .../members/{user}` → 204."""
    alice = new_user(coder, "alice")
    response = owner.delete(f"/api/v2/organizations/{org_id(coder)}/members/{alice.id}")
    assert response.status_code == 204
    assert not coder.state.is_member(coder.state.default_org.id, alice.id)


def test_removing_member_removes_its_groups_in_that_organization_only(
    owner: httpx.Client, coder: LiveCoder
) -> None:
    """§2: deleting a member deletes its group memberships in that organization (trigger)."""
    state = coder.state
    other = state.create_organization("second")
    alice = new_user(coder, "alice", organizations=[state.default_org, other])
    here = state.create_group(state.default_org, "here", members=[alice])
    there = state.create_group(other, "there", members=[alice])
    owner.delete(f"/api/v2/organizations/{org_id(coder)}/members/alice")
    assert state.member_usernames(here) == set()
    assert state.member_usernames(there) == {"alice"}


def test_remove_self_from_organization_is_400(owner: httpx.Client, coder: LiveCoder) -> None:
    """§2: removing yourself → 400 `cannot remove self from an organization`."""
    response = owner.delete(f"/api/v2/organizations/{org_id(coder)}/members/me")
    assert (response.status_code, response.json()["message"]) == (
        400,
        "cannot remove self from an organization",
    )


def test_list_members_includes_user_data(owner: httpx.Client, coder: LiveCoder) -> None:
    """§2: `GET .../members` → all OrganizationMemberWithUserData."""
    members = owner.get(f"/api/v2/organizations/{org_id(coder)}/members").json()
    assert [m["username"] for m in members] == ["admin", "bridge"]
    assert {
        "user_id",
        "organization_id",
        "email",
        "status",
        "login_type",
        "global_roles",
        "user_created_at",
        "has_ai_seat",
    } <= set(members[0])


def test_paginated_members_returns_members_and_count(owner: httpx.Client, coder: LiveCoder) -> None:
    """§2: `paginated-members?limit&offset` → `{"members": [...], "count": total}`."""
    for name in ("carol", "alice", "bob"):
        new_user(coder, name)
    page = owner.get(
        f"/api/v2/organizations/{org_id(coder)}/paginated-members", params={"limit": 2, "offset": 1}
    ).json()
    assert page["count"] == 5
    assert [m["username"] for m in page["members"]] == ["alice", "bob"]


def test_update_member_roles(owner: httpx.Client, coder: LiveCoder) -> None:
    """§2: `PUT .../members/{user}/roles` sets organization roles."""
    new_user(coder, "alice")
    response = owner.put(
        f"/api/v2/organizations/{org_id(coder)}/members/alice/roles",
        json={"roles": ["organization-user-admin"]},
    )
    assert response.status_code == 200
    assert response.json()["roles"] == [
        {
            "name": "organization-user-admin",
            "display_name": "Organization User Admin",
            "organization_id": org_id(coder),
        }
    ]


def test_organization_user_admin_manages_that_orgs_groups(coder: LiveCoder) -> None:
    """§1.2: `organization-user-admin` manages groups within its organization."""
    lead = new_user(coder, "lead")
    coder.state.members[(coder.state.default_org.id, lead.id)].roles.append(
        "organization-user-admin"
    )
    with coder.client(coder.state.create_token(lead)) as client:
        assert client.post(groups_url(coder), json={"name": "team"}).status_code == 201


# --- §3 groups ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v2/organizations/{org}/groups"),
        ("POST", "/api/v2/organizations/{org}/groups"),
        ("GET", "/api/v2/organizations/{org}/groups/Everyone"),
        ("GET", "/api/v2/organizations/{org}/groups/Everyone/members"),
        ("GET", "/api/v2/groups"),
        ("GET", "/api/v2/groups/{org}"),
        ("PATCH", "/api/v2/groups/{org}"),
        ("DELETE", "/api/v2/groups/{org}"),
        ("GET", "/api/v2/groups/{org}/members"),
        ("GET", "/api/v2/templates/{template}/acl"),
        ("PATCH", "/api/v2/templates/{template}/acl"),
    ],
)
def test_premium_gate_without_template_rbac(
    owner: httpx.Client, coder: LiveCoder, method: str, path: str
) -> None:
    """§3/§7: without the `template_rbac` entitlement every group/ACL call → 403."""
    template = coder.state.create_template(coder.state.default_org, "t")
    coder.state.set_entitlement("template_rbac", False)
    url = path.format(org=org_id(coder), template=template.id)
    response = owner.request(method, url, json={})
    assert (response.status_code, response.json()) == (403, {"message": PREMIUM})


def test_premium_gate_on_global_groups_comes_before_authentication(coder: LiveCoder) -> None:
    """§3 (route middleware order): `/groups` checks the licence before the token; the
    organization routes authenticate first."""
    coder.state.set_entitlement("template_rbac", False)
    with coder.client("") as client:
        assert client.get("/api/v2/groups").status_code == 403
        assert client.get(groups_url(coder)).status_code == 401


def test_create_group_is_201_with_no_members(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.1/§3.2: POST → 201 Group, members `[]`, total 0, source `user`."""
    response = owner.post(
        groups_url(coder),
        json={
            "name": "dept-eng",
            "display_name": "Engineering",
            "avatar_url": "",
            "quota_allowance": 3,
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert body == {
        "id": body["id"],
        "name": "dept-eng",
        "display_name": "Engineering",
        "organization_id": org_id(coder),
        "members": [],
        "total_member_count": 0,
        "avatar_url": "",
        "quota_allowance": 3,
        "source": "user",
        "organization_name": "coder",
        "organization_display_name": "Coder",
    }


@pytest.mark.parametrize(
    "name",
    [
        "dept_eng",
        "dept.eng",
        "dept eng",
        "-dept",
        "dept-",
        "dept--eng",
        "new",
        "create",
        "a" * 256,
        "ünï",
    ],
)
def test_create_group_rejects_invalid_names(
    owner: httpx.Client, coder: LiveCoder, name: str
) -> None:
    """§6: group names match `^[a-zA-Z0-9]+(?:-[a-zA-Z0-9]+)*$`, ≤255, not new/create."""
    response = owner.post(groups_url(coder), json={"name": name})
    assert response.status_code == 400
    assert response.json()["validations"][0]["field"] == "name"


def test_create_group_requires_a_name(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.2/§6: `name` is required."""
    response = owner.post(groups_url(coder), json={"display_name": "No name"})
    assert response.status_code == 400
    assert response.json()["validations"] == [
        {"field": "name", "detail": 'Validation failed for tag "required" with value: ""'}
    ]


@pytest.mark.parametrize("name", ["a" * 255, "Dept-Eng-2", "x"])
def test_create_group_accepts_valid_names(owner: httpx.Client, coder: LiveCoder, name: str) -> None:
    """§6: up to 255 chars of letters/digits/single hyphens."""
    assert owner.post(groups_url(coder), json={"name": name}).status_code == 201


@pytest.mark.parametrize("display", [" Eng", "Eng ", "x" * 65, "\tEng"])
def test_create_group_rejects_invalid_display_names(
    owner: httpx.Client, coder: LiveCoder, display: str
) -> None:
    """§6: display names ≤64 chars, no leading/trailing whitespace."""
    response = owner.post(groups_url(coder), json={"name": "ok", "display_name": display})
    assert response.status_code == 400
    assert response.json()["validations"][0]["field"] == "display_name"


def test_create_group_accepts_any_inner_display_name(owner: httpx.Client, coder: LiveCoder) -> None:
    """§6: anything else is allowed in a display name (spaces, slashes, unicode)."""
    body = new_group(owner, coder, "ok", display_name="Engineering / Java ☕")
    assert body["display_name"] == "Engineering / Java ☕"


def test_create_group_named_everyone_is_reserved(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.3: `Everyone` → 400 `Invalid group name.` + reserved-name validation."""
    response = owner.post(groups_url(coder), json={"name": "Everyone"})
    assert response.status_code == 400
    assert response.json() == {
        "message": "Invalid group name.",
        "validations": [{"field": "name", "detail": '"Everyone" is a reserved group name'}],
    }


def test_create_duplicate_group_is_409(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.3: a duplicate name in the organization → 409 with the uniqueness validation."""
    new_group(owner, coder, "dept-eng")
    response = owner.post(groups_url(coder), json={"name": "dept-eng"})
    assert response.status_code == 409
    assert response.json() == {
        "message": 'A group named "dept-eng" already exists.',
        "validations": [{"field": "name", "detail": "Group names must be unique"}],
    }


def test_group_names_are_case_sensitive(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.3/§6: uniqueness is case-sensitive: `Dept-Eng` and `dept-eng` coexist."""
    new_group(owner, coder, "dept-eng")
    assert owner.post(groups_url(coder), json={"name": "Dept-Eng"}).status_code == 201


def test_same_group_name_in_two_organizations(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.3: uniqueness is per organization."""
    other = coder.state.create_organization("second")
    new_group(owner, coder, "dept-eng")
    response = owner.post(f"/api/v2/organizations/{other.id}/groups", json={"name": "dept-eng"})
    assert response.status_code == 201


def test_get_group_by_name_is_exact_and_case_sensitive(
    owner: httpx.Client, coder: LiveCoder
) -> None:
    """§3.1: `GET .../groups/{groupName}` looks up the exact, case-sensitive name."""
    created = new_group(owner, coder, "dept-eng")
    assert owner.get(f"{groups_url(coder)}/dept-eng").json()["id"] == created["id"]
    assert owner.get(f"{groups_url(coder)}/Dept-Eng").status_code == 404


def test_everyone_group_is_the_organization(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.4: Everyone has `id = organization_id` and every organization member."""
    new_user(coder, "alice")
    everyone = owner.get(f"{groups_url(coder)}/Everyone").json()
    assert everyone["id"] == everyone["organization_id"] == org_id(coder)
    assert usernames(everyone) == ["admin", "alice", "bridge"]
    assert everyone["total_member_count"] == 3


def test_everyone_follows_organization_membership(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.4: Everyone's membership is implicit: leaving the organization leaves Everyone."""
    new_user(coder, "alice")
    owner.delete(f"/api/v2/organizations/{org_id(coder)}/members/alice")
    assert "alice" not in usernames(owner.get(f"/api/v2/groups/{org_id(coder)}").json())


def test_everyone_cannot_be_renamed(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.3 patch 1: renaming Everyone → 400."""
    response = owner.patch(f"/api/v2/groups/{org_id(coder)}", json={"name": "all"})
    assert (response.status_code, response.json()["message"]) == (
        400,
        'Cannot rename the "Everyone" group!',
    )


def test_everyone_patch_with_its_own_name_is_not_a_rename(
    owner: httpx.Client, coder: LiveCoder
) -> None:
    """§3.2: a name equal to the current one is no rename (so Everyone accepts it)."""
    response = owner.patch(f"/api/v2/groups/{org_id(coder)}", json={"name": "Everyone"})
    assert response.status_code == 200


def test_everyone_display_name_cannot_be_set(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.3 patch 1: a non-empty display name for Everyone → 400 (an empty one is fine)."""
    url = f"/api/v2/groups/{org_id(coder)}"
    response = owner.patch(url, json={"display_name": "All"})
    assert (response.status_code, response.json()["message"]) == (
        400,
        'Cannot update the Display Name for the "Everyone" group!',
    )
    assert owner.patch(url, json={"display_name": ""}).status_code == 200


def test_rename_to_everyone_is_reserved(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.3 patch 2: a new name `Everyone` → 400."""
    group = new_group(owner, coder, "dept-eng")
    response = owner.patch(f"/api/v2/groups/{group['id']}", json={"name": "Everyone"})
    assert (response.status_code, response.json()["message"]) == (
        400,
        '"Everyone" is a reserved group name!',
    )


def test_everyone_membership_cannot_be_edited(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.3 patch 3: add/remove on Everyone → 403."""
    response = owner.patch(
        f"/api/v2/groups/{org_id(coder)}", json={"remove_users": [str(coder.admin.id)]}
    )
    assert (response.status_code, response.json()["message"]) == (
        403,
        'Cannot add or remove users from the "Everyone" group!',
    )


def test_everyone_cannot_be_deleted(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.3 delete: Everyone → 400."""
    response = owner.delete(f"/api/v2/groups/{org_id(coder)}")
    assert (response.status_code, response.json()["message"]) == (
        400,
        '"Everyone" is a reserved group and cannot be deleted!',
    )


@pytest.mark.parametrize("field", ["add_users", "remove_users"])
def test_patch_user_ids_must_be_uuids(owner: httpx.Client, coder: LiveCoder, field: str) -> None:
    """§3.3 patch 4: ids are user UUIDs, not usernames → 400."""
    group = new_group(owner, coder, "dept-eng")
    response = owner.patch(f"/api/v2/groups/{group['id']}", json={field: ["bridge"]})
    assert (response.status_code, response.json()["message"]) == (
        400,
        'ID "bridge" must be a valid user UUID.',
    )


def test_patch_user_outside_the_organization_names_the_group(
    owner: httpx.Client, coder: LiveCoder
) -> None:
    """§3.3 patch 4: a non-member → 400 whose message prints the *group* name."""
    outsider = new_user(coder, "outsider", organizations=[])
    group = new_group(owner, coder, "dept-eng")
    response = owner.patch(f"/api/v2/groups/{group['id']}", json={"add_users": [str(outsider.id)]})
    assert (response.status_code, response.json()["message"]) == (
        400,
        'User must be a member of organization "dept-eng"',
    )


def test_patch_removing_a_user_who_left_the_organization_fails(
    owner: httpx.Client, coder: LiveCoder
) -> None:
    """§3.3 patch 4: remove_users is checked too: an org-leaver cannot be removed."""
    leaver = new_user(coder, "leaver")
    group = new_group(owner, coder, "dept-eng")
    owner.patch(f"/api/v2/groups/{group['id']}", json={"add_users": [str(leaver.id)]})
    coder.state.remove_org_member(coder.state.default_org, leaver)
    response = owner.patch(f"/api/v2/groups/{group['id']}", json={"remove_users": [str(leaver.id)]})
    assert response.status_code == 400


def test_patch_adding_an_existing_member_rolls_back_the_whole_patch(
    owner: httpx.Client, coder: LiveCoder
) -> None:
    """§3.3 patch 6: a duplicate add → 400 and nothing of the patch is applied."""
    alice, bob = new_user(coder, "alice"), new_user(coder, "bob")
    group = new_group(owner, coder, "dept-eng")
    url = f"/api/v2/groups/{group['id']}"
    owner.patch(url, json={"add_users": [str(alice.id)]})
    response = owner.patch(
        url,
        json={"name": "renamed", "display_name": "X", "add_users": [str(bob.id), str(alice.id)]},
    )
    assert (response.status_code, response.json()["message"]) == (
        400,
        "Cannot add the same user to a group twice!",
    )
    after = owner.get(url).json()
    assert (after["name"], after["display_name"], usernames(after)) == ("dept-eng", "", ["alice"])


def test_patch_removing_a_non_member_is_a_no_op(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.3 patch 6: removing someone not in the group succeeds silently."""
    alice = new_user(coder, "alice")
    group = new_group(owner, coder, "dept-eng")
    response = owner.patch(f"/api/v2/groups/{group['id']}", json={"remove_users": [str(alice.id)]})
    assert (response.status_code, response.json()["members"]) == (200, [])


def test_patch_user_in_both_lists_ends_up_removed(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.3 patch 6: inserted, then deleted."""
    alice = new_user(coder, "alice")
    group = new_group(owner, coder, "dept-eng")
    response = owner.patch(
        f"/api/v2/groups/{group['id']}",
        json={"add_users": [str(alice.id)], "remove_users": [str(alice.id)]},
    )
    assert (response.status_code, response.json()["members"]) == (200, [])


def test_patch_rename_onto_an_existing_name_is_409(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.3 patch 5: rename to an existing name → 409."""
    new_group(owner, coder, "taken")
    group = new_group(owner, coder, "dept-eng")
    response = owner.patch(f"/api/v2/groups/{group['id']}", json={"name": "taken"})
    assert (response.status_code, response.json()) == (
        409,
        {"message": 'A group with name "taken" already exists.'},
    )


def test_patch_returns_the_group_with_members(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.1: PATCH → 200 Group with members and total_member_count."""
    alice, bob = new_user(coder, "alice"), new_user(coder, "bob")
    group = new_group(owner, coder, "dept-eng")
    body = owner.patch(
        f"/api/v2/groups/{group['id']}", json={"add_users": [str(bob.id), str(alice.id)]}
    ).json()
    assert (usernames(body), body["total_member_count"]) == (["alice", "bob"], 2)
    assert set(body["members"][0]) >= {
        "id",
        "username",
        "email",
        "created_at",
        "updated_at",
        "last_seen_at",
        "status",
        "login_type",
    }


def test_patch_null_display_name_keeps_it_and_empty_clears_it(
    owner: httpx.Client, coder: LiveCoder
) -> None:
    """§3.2: nullable fields: null/absent = unchanged, `""` clears the display name."""
    group = new_group(owner, coder, "dept-eng", display_name="Engineering")
    url = f"/api/v2/groups/{group['id']}"
    assert owner.patch(url, json={"display_name": None}).json()["display_name"] == "Engineering"
    assert owner.patch(url, json={"quota_allowance": 5}).json()["display_name"] == "Engineering"
    assert owner.patch(url, json={"display_name": ""}).json()["display_name"] == ""


def test_patch_renames_the_group(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.2: a new valid `name` renames; the id stays."""
    group = new_group(owner, coder, "dept-eng")
    body = owner.patch(f"/api/v2/groups/{group['id']}", json={"name": "dept-engineering"}).json()
    assert (body["id"], body["name"]) == (group["id"], "dept-engineering")


def test_patch_validates_a_new_name(owner: httpx.Client, coder: LiveCoder) -> None:
    """§6: the name rules apply on patch too (optional there)."""
    group = new_group(owner, coder, "dept-eng")
    response = owner.patch(f"/api/v2/groups/{group['id']}", json={"name": "Dept Eng"})
    assert (response.status_code, response.json()["message"]) == (400, "Validation failed.")


def test_delete_group_answers_a_message(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.1: DELETE → 200 `{"message": "Successfully deleted group!"}`."""
    group = new_group(owner, coder, "dept-eng")
    response = owner.delete(f"/api/v2/groups/{group['id']}")
    assert (response.status_code, response.json()) == (
        200,
        {"message": "Successfully deleted group!"},
    )
    assert owner.get(f"/api/v2/groups/{group['id']}").status_code == 404


def test_deleted_group_leaves_dangling_references(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.3: ACL entries and IdP mapping UUIDs of a deleted group are not cleaned up."""
    group = new_group(owner, coder, "dept-eng")
    template = coder.state.create_template(
        coder.state.default_org, "t", group_acl={group["id"]: "use"}
    )
    mapping_url = f"/api/v2/organizations/{org_id(coder)}/settings/idpsync/groups"
    owner.patch(mapping_url, json={"field": "groups", "mapping": {"eng": [group["id"]]}})
    owner.delete(f"/api/v2/groups/{group['id']}")
    assert group["id"] in coder.state.templates[template.id].group_acl
    assert owner.get(mapping_url).json()["mapping"] == {"eng": [group["id"]]}


@pytest.mark.parametrize("url", ["/api/v2/groups", "/api/v2/organizations/{org}/groups"])
def test_group_lists_reject_unknown_query_parameters(
    owner: httpx.Client, coder: LiveCoder, url: str
) -> None:
    """§3.1: only organization/has_member/group_ids; anything else → 400."""
    response = owner.get(url.format(org=org_id(coder)), params={"limit": "10"})
    assert response.status_code == 400
    assert response.json() == {
        "message": "Query parameters have invalid values.",
        "validations": [{"field": "limit", "detail": '"limit" is not a valid query param'}],
    }


@pytest.mark.parametrize("ref", ["uuid", "coder", "Coder"])
def test_group_list_filters_by_organization(
    owner: httpx.Client, coder: LiveCoder, ref: str
) -> None:
    """§3.1: `organization` = UUID or name."""
    other = coder.state.create_organization("second")
    coder.state.create_group(other, "elsewhere")
    new_group(owner, coder, "dept-eng")
    value = org_id(coder) if ref == "uuid" else ref
    names = [g["name"] for g in owner.get("/api/v2/groups", params={"organization": value}).json()]
    assert names == ["Everyone", "dept-eng"]


@pytest.mark.parametrize("ref", ["uuid", "username"])
def test_group_list_has_member_includes_everyone(
    owner: httpx.Client, coder: LiveCoder, ref: str
) -> None:
    """§3.1/§9: `has_member` (UUID or username) — Everyone included."""
    alice = new_user(coder, "alice")
    group = new_group(owner, coder, "dept-eng")
    new_group(owner, coder, "other")
    owner.patch(f"/api/v2/groups/{group['id']}", json={"add_users": [str(alice.id)]})
    value = str(alice.id) if ref == "uuid" else "alice"
    names = [g["name"] for g in owner.get("/api/v2/groups", params={"has_member": value}).json()]
    assert names == ["Everyone", "dept-eng"]


def test_group_list_filters_by_group_ids(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.1: `group_ids` = comma-separated UUIDs."""
    first, _, third = (new_group(owner, coder, n) for n in ("a", "b", "c"))
    listed = owner.get("/api/v2/groups", params={"group_ids": f"{first['id']},{third['id']}"})
    assert [g["name"] for g in listed.json()] == ["a", "c"]


def test_group_list_returns_full_members(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.1: no pagination: every group comes with its full `members` array."""
    names = [f"user{i:02d}" for i in range(30)]
    users = [new_user(coder, n) for n in names]
    group = new_group(owner, coder, "big")
    owner.patch(f"/api/v2/groups/{group['id']}", json={"add_users": [str(u.id) for u in users]})
    listed = {g["name"]: g for g in owner.get(groups_url(coder)).json()}
    assert usernames(listed["big"]) == names


def test_get_group_by_id(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.1: `GET /groups/{group}` by UUID."""
    group = new_group(owner, coder, "dept-eng")
    assert owner.get(f"/api/v2/groups/{group['id']}").json() == group


def test_get_group_can_exclude_members(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.1: `exclude_members=true` → `members: []` but the count stays."""
    body = owner.get(f"/api/v2/groups/{org_id(coder)}", params={"exclude_members": "true"}).json()
    assert (body["members"], body["total_member_count"]) == ([], 2)


def test_group_members_paginate_with_total_count(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.1: `/members?limit&offset` → `{"users": [...], "count": total}`."""
    for name in ("carol", "alice", "bob"):
        new_user(coder, name)
    page = owner.get(
        f"/api/v2/groups/{org_id(coder)}/members", params={"limit": 2, "offset": 1}
    ).json()
    assert page["count"] == 5
    assert [u["username"] for u in page["users"]] == ["alice", "bob"]


def test_group_members_after_id_cursor(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.1/§4.1: `after_id` continues after that user's username."""
    alice = new_user(coder, "alice")
    new_user(coder, "bob")
    page = owner.get(f"/api/v2/groups/{org_id(coder)}/members", params={"after_id": str(alice.id)})
    assert [u["username"] for u in page.json()["users"]] == ["bob", "bridge"]


def test_group_members_users_is_null_on_zero_matches(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.1: with zero matches `users` is `null`."""
    group = new_group(owner, coder, "empty")
    assert owner.get(f"/api/v2/groups/{group['id']}/members").json() == {"users": None, "count": 0}


def test_group_members_search_uses_user_query_syntax(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.1: `q` uses the user search syntax (§4.2)."""
    new_user(coder, "alice")
    new_user(coder, "bob", status="suspended")
    url = f"/api/v2/groups/{org_id(coder)}/members"
    assert [u["username"] for u in owner.get(url, params={"q": "ALI"}).json()["users"]] == ["alice"]
    found = owner.get(url, params={"q": "status:suspended"}).json()["users"]
    assert [u["username"] for u in found] == ["bob"]


def test_group_members_by_organization_and_name(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.1: `GET /organizations/{org}/groups/{groupName}/members`."""
    page = owner.get(f"{groups_url(coder)}/Everyone/members").json()
    assert (page["count"], [u["username"] for u in page["users"]]) == (2, ["admin", "bridge"])


def test_api_edits_oidc_sourced_groups(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.3: no check on `source`: an `oidc` group's membership is editable by API."""
    alice = new_user(coder, "alice")
    synced = coder.state.create_group(coder.state.default_org, "Synced Team", source="oidc")
    response = owner.patch(f"/api/v2/groups/{synced.id}", json={"add_users": [str(alice.id)]})
    assert (response.status_code, response.json()["source"]) == (200, "oidc")


def test_total_member_count_counts_members(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.2: `total_member_count` counts the group's members."""
    users = [new_user(coder, n) for n in ("a1", "a2", "a3")]
    group = new_group(owner, coder, "g")
    owner.patch(f"/api/v2/groups/{group['id']}", json={"add_users": [str(u.id) for u in users]})
    assert owner.get(f"/api/v2/groups/{group['id']}").json()["total_member_count"] == 3


def test_non_admin_cannot_create_groups(coder: LiveCoder) -> None:
    """§1.2: group writes need user-admin/org-admin-like roles: a member gets 403."""
    with coder.client(member_token(coder)) as client:
        assert client.post(groups_url(coder), json={"name": "mine"}).status_code == 403


def test_user_admin_manages_groups(bridge: httpx.Client, coder: LiveCoder) -> None:
    """§1.2: site `user-admin` can create/update/delete groups."""
    group = new_group(bridge, coder, "dept-eng")
    assert bridge.patch(f"/api/v2/groups/{group['id']}", json={"name": "x"}).status_code == 200
    assert bridge.delete(f"/api/v2/groups/{group['id']}").status_code == 200


# --- §4 users -------------------------------------------------------------------------------


def listed(client: httpx.Client, **params: Any) -> list[str]:
    response = client.get("/api/v2/users", params=params)
    assert response.status_code == 200, response.text
    return [u["username"] for u in response.json()["users"]]


def test_users_bare_word_is_a_substring_of_email_or_username(
    owner: httpx.Client, coder: LiveCoder
) -> None:
    """§4.2: bare words search `email ILIKE %x% OR username ILIKE %x%`."""
    coder.state.create_user("alice", "wonder@corp.example")
    coder.state.create_user("bob", "alice.b@corp.example")
    coder.state.create_user("carol", "carol@corp.example")
    assert listed(owner, q="alice") == ["alice", "bob"]


def test_users_query_is_lower_cased(owner: httpx.Client, coder: LiveCoder) -> None:
    """§4.2: the whole query is lower-cased (and ILIKE is case-insensitive)."""
    coder.state.create_user("alice", "Alice.Smith@Corp.Example")
    assert listed(owner, q="ALICE.SMITH@CORP.EXAMPLE") == ["alice"]


def test_users_search_by_exact_email_needs_client_side_filtering(
    owner: httpx.Client, coder: LiveCoder
) -> None:
    """§4.2: `q=<email>` is a substring search: the caller filters for the exact email."""
    coder.state.create_user("al", "al@corp.example")
    coder.state.create_user("sal", "sal@corp.example")
    assert listed(owner, q="al@corp.example") == ["al", "sal"]


def test_users_email_key_is_400(owner: httpx.Client) -> None:
    """§4.2: there is no `email:` key → 400 `Invalid user search query.`"""
    response = owner.get("/api/v2/users", params={"q": "email:a@b.c"})
    assert response.status_code == 400
    assert response.json() == {
        "message": "Invalid user search query.",
        "validations": [{"field": "email", "detail": '"email" is not a valid query param'}],
    }


def test_users_username_key_is_400(owner: httpx.Client) -> None:
    """§4.2: there is no `username:` key either."""
    assert owner.get("/api/v2/users", params={"q": "username:alice"}).status_code == 400


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status:suspended", ["sam"]),
        ("status:active,suspended", ["admin", "bridge", "olga", "sam"]),
        ("login_type:oidc", ["olga", "sam"]),
        ("name:olg", ["olga"]),
        ("role:owner", ["admin"]),
        ("service_account:false", ["admin", "bridge", "olga", "sam"]),
        ("status:active login_type:oidc", ["olga"]),
    ],
)
def test_users_accepted_query_keys(
    owner: httpx.Client, coder: LiveCoder, query: str, expected: list[str]
) -> None:
    """§4.2: `name`, `status` (csv), `login_type` (csv), `role`, `service_account`."""
    new_user(coder, "olga", name="Olga O", login_type="oidc")
    new_user(coder, "sam", status="suspended", login_type="oidc")
    assert listed(owner, q=query) == expected


@pytest.mark.parametrize("query", ["status:asleep", "login_type:saml", "a:b:c", ":x", "x:"])
def test_users_bad_query_terms_are_400(owner: httpx.Client, query: str) -> None:
    """§4.2: bad values, two `:` in a term, or a term starting/ending with `:` → 400."""
    response = owner.get("/api/v2/users", params={"q": query})
    assert (response.status_code, response.json()["message"]) == (400, "Invalid user search query.")


def test_users_created_after_filters(server: DoubleServer) -> None:
    """§4.2: `created_after` (RFC 3339; quoted, as a term may contain only one `:`)."""
    clock = ManualClock()
    with server.serve(clock=clock) as coder, coder.client() as client:
        clock.advance(3600)
        new_user(coder, "late")
        after = (clock.now() - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
        assert listed(client, q=f'created_after:"{after}"') == ["late"]


def test_users_paginate_with_total_count(owner: httpx.Client, coder: LiveCoder) -> None:
    """§4.1: limit/offset; `count` is every matching row, not the page size."""
    for name in ("dave", "carol", "alice"):
        new_user(coder, name)
    body = owner.get("/api/v2/users", params={"limit": 2, "offset": 1}).json()
    assert body["count"] == 5
    assert [u["username"] for u in body["users"]] == ["alice", "bridge"]


def test_users_are_ordered_by_lower_username(owner: httpx.Client, coder: LiveCoder) -> None:
    """§4.1: rows are ordered by LOWER(username)."""
    for name in ("Zed", "bob", "Carl"):
        new_user(coder, name)
    assert listed(owner) == ["admin", "bob", "bridge", "Carl", "Zed"]


def test_users_after_id_is_a_username_cursor(owner: httpx.Client, coder: LiveCoder) -> None:
    """§4.1: `after_id` = the usernames after that user's."""
    bob = new_user(coder, "bob")
    new_user(coder, "carl")
    assert listed(owner, after_id=str(bob.id), limit=2) == ["bridge", "carl"]


@pytest.mark.parametrize("params", [{"limit": "-1"}, {"offset": "x"}, {"after_id": "nope"}])
def test_users_bad_pagination_is_400(owner: httpx.Client, params: dict[str, str]) -> None:
    """§4.1: negative or garbage pagination → 400."""
    response = owner.get("/api/v2/users", params=params)
    assert (response.status_code, response.json()["message"]) == (
        400,
        "Query parameters have invalid values.",
    )


def test_users_limit_zero_means_no_limit(owner: httpx.Client, coder: LiveCoder) -> None:
    """§4.1: `limit=0` = no limit."""
    for i in range(5):
        new_user(coder, f"u{i}")
    assert len(listed(owner, limit=0)) == 7


@pytest.mark.parametrize("ref", ["uuid", "alice", "ALICE", "me"])
def test_get_user_by_uuid_username_or_me(owner: httpx.Client, coder: LiveCoder, ref: str) -> None:
    """§4.1: `{user}` = `me`, a UUID, or a username (case-insensitive)."""
    alice = new_user(coder, "alice")
    target = {"uuid": str(alice.id), "me": "me"}.get(ref, ref)
    expected = "admin" if ref == "me" else "alice"
    assert owner.get(f"/api/v2/users/{target}").json()["username"] == expected


def test_get_user_by_email_is_404(owner: httpx.Client, coder: LiveCoder) -> None:
    """§4.1: not by email."""
    new_user(coder, "alice")
    assert owner.get("/api/v2/users/alice@example.com").status_code == 404


def test_user_shape(owner: httpx.Client, coder: LiveCoder) -> None:
    """§4.3: `User` fields; `name`, `avatar_url`, `is_service_account`, `theme_preference`
    are omitempty."""
    alice = new_user(coder, "alice")
    body = owner.get(f"/api/v2/users/{alice.id}").json()
    assert body == {
        "id": str(alice.id),
        "username": "alice",
        "email": "alice@example.com",
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
        "last_seen_at": "0001-01-01T00:00:00Z",
        "status": "active",
        "login_type": "oidc",
        "organization_ids": [org_id(coder)],
        "roles": [],
        "has_ai_seat": False,
    }


def create_user_body(coder: LiveCoder, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "email": "alice@example.com",
        "username": "alice",
        "name": "Alice A",
        "login_type": "oidc",
        "organization_ids": [org_id(coder)],
    }
    body.update(fields)
    return body


def test_create_user_defaults_to_dormant(owner: httpx.Client, coder: LiveCoder) -> None:
    """§4.3: → 201 User; `user_status` defaults to `dormant`."""
    response = owner.post("/api/v2/users", json=create_user_body(coder))
    assert response.status_code == 201
    assert (response.json()["status"], response.json()["login_type"]) == ("dormant", "oidc")
    assert response.json()["organization_ids"] == [org_id(coder)]


def test_create_user_with_explicit_status(owner: httpx.Client, coder: LiveCoder) -> None:
    """§4.3: `user_status` may be given."""
    response = owner.post("/api/v2/users", json=create_user_body(coder, user_status="active"))
    assert response.json()["status"] == "active"


def test_create_user_requires_organization_ids(owner: httpx.Client, coder: LiveCoder) -> None:
    """§4.3: `organization_ids` must be non-empty → 400 with field `organization_ids`."""
    response = owner.post("/api/v2/users", json=create_user_body(coder, organization_ids=[]))
    assert response.status_code == 400
    assert response.json()["validations"][0]["field"] == "organization_ids"
    assert response.json()["message"].startswith("No organization specified")


def test_create_user_nil_uuid_means_default_org(owner: httpx.Client, coder: LiveCoder) -> None:
    """§4.3: the nil UUID is the default organization."""
    body = create_user_body(coder, organization_ids=[str(uuid.UUID(int=0))])
    assert owner.post("/api/v2/users", json=body).json()["organization_ids"] == [org_id(coder)]


def test_create_user_legacy_organization_id_is_appended(
    owner: httpx.Client, coder: LiveCoder
) -> None:
    """§4.3: the legacy single `organization_id` is still accepted."""
    body = create_user_body(coder, organization_ids=None, organization_id=org_id(coder))
    assert owner.post("/api/v2/users", json=body).status_code == 201


def test_create_user_unknown_org_is_404(owner: httpx.Client, coder: LiveCoder) -> None:
    """§4.3: an unknown organization → 404."""
    body = create_user_body(coder, organization_ids=[str(uuid.uuid4())])
    assert owner.post("/api/v2/users", json=body).status_code == 404


@pytest.mark.parametrize(
    "fields",
    [
        {"username": "ALICE", "email": "x@example.com"},
        {"username": "x", "email": "ALICE@EXAMPLE.COM"},
    ],
)
def test_create_user_duplicate_is_409(
    owner: httpx.Client, coder: LiveCoder, fields: dict[str, str]
) -> None:
    """§4.3: same username or email (case-insensitive) → 409 `User already exists.`"""
    new_user(coder, "alice")
    response = owner.post("/api/v2/users", json=create_user_body(coder, **fields))
    assert (response.status_code, response.json()) == (409, {"message": "User already exists."})


def test_create_oidc_user_needs_oidc_configured(server: DoubleServer) -> None:
    """§4.3: `login_type: oidc` without OIDC configured → 400."""
    with server.serve(DoubleConfig(oidc_configured=False)) as coder, coder.client() as client:
        response = client.post("/api/v2/users", json=create_user_body(coder))
    assert (response.status_code, response.json()["message"]) == (
        400,
        "You must configure OIDC before creating OIDC users.",
    )


def test_create_user_password_with_other_login_type_is_400(
    owner: httpx.Client, coder: LiveCoder
) -> None:
    """§4.3: a password with a non-password login type → 400."""
    response = owner.post("/api/v2/users", json=create_user_body(coder, password="s3cret-pw"))
    assert response.status_code == 400


def test_create_user_unsupported_login_type_is_400(owner: httpx.Client, coder: LiveCoder) -> None:
    """§4.3: login types other than password/none/oidc/github → 400."""
    response = owner.post("/api/v2/users", json=create_user_body(coder, login_type="token"))
    assert response.status_code == 400


@pytest.mark.parametrize("username", ["al ice", "a_b", "x" * 33, "new", ""])
def test_create_user_validates_username(
    owner: httpx.Client, coder: LiveCoder, username: str
) -> None:
    """§4.3/§6: usernames are 1-32 chars of the name pattern, not new/create."""
    response = owner.post("/api/v2/users", json=create_user_body(coder, username=username))
    assert response.status_code == 400
    assert response.json()["validations"][0]["field"] == "username"


def test_create_user_needs_user_admin(coder: LiveCoder) -> None:
    """§1.2: creating users needs owner or `user-admin`."""
    with coder.client(member_token(coder)) as client:
        response = client.post("/api/v2/users", json=create_user_body(coder))
    assert response.status_code == 403


def test_user_admin_creates_users(bridge: httpx.Client, coder: LiveCoder) -> None:
    """§1.2: site `user-admin` can create users."""
    assert bridge.post("/api/v2/users", json=create_user_body(coder)).status_code == 201


def test_suspend_then_activate(owner: httpx.Client, coder: LiveCoder) -> None:
    """§4.1: suspend → `suspended`; activate → `active`."""
    new_user(coder, "alice")
    assert owner.put("/api/v2/users/alice/status/suspend").json()["status"] == "suspended"
    assert owner.put("/api/v2/users/alice/status/activate").json()["status"] == "active"


def test_cannot_suspend_yourself(bridge: httpx.Client) -> None:
    """§4.3: suspending yourself → 400."""
    assert bridge.put("/api/v2/users/me/status/suspend").status_code == 400


def test_cannot_suspend_an_owner(bridge: httpx.Client) -> None:
    """§4.3: suspending an `owner` → 400."""
    assert bridge.put("/api/v2/users/admin/status/suspend").status_code == 400


def test_delete_user_is_a_soft_delete(owner: httpx.Client, coder: LiveCoder) -> None:
    """§4.1: DELETE soft-deletes: gone from reads and memberships; the username is free."""
    alice = new_user(coder, "alice")
    coder.state.create_group(coder.state.default_org, "g", members=[alice])
    response = owner.delete(f"/api/v2/users/{alice.id}")
    assert (response.status_code, response.json()) == (200, {"message": "User has been deleted!"})
    assert owner.get("/api/v2/users/alice").status_code == 404
    assert "alice" not in listed(owner)
    assert coder.state.users[alice.id].deleted
    assert coder.state.member_usernames(coder.state.groups_named()["g"]) == set()
    assert owner.post("/api/v2/users", json=create_user_body(coder)).status_code == 201


def test_user_organizations(owner: httpx.Client, coder: LiveCoder) -> None:
    """§4.1: `GET /users/{user}/organizations` → [Organization]."""
    other = coder.state.create_organization("second")
    new_user(coder, "alice", organizations=[other])
    assert [o["name"] for o in owner.get("/api/v2/users/alice/organizations").json()] == ["second"]


def test_update_site_roles(owner: httpx.Client, coder: LiveCoder) -> None:
    """§4.1: `PUT /users/{user}/roles` sets site roles."""
    new_user(coder, "alice")
    body = owner.put("/api/v2/users/alice/roles", json={"roles": ["user-admin"]}).json()
    assert body["roles"] == [{"name": "user-admin", "display_name": "User Admin"}]


def test_owner_token_lifetime_is_capped_at_168h(owner: httpx.Client) -> None:
    """§1.2: `CODER_MAX_ADMIN_TOKEN_LIFETIME` 168h for owners → longer is refused."""
    week = 168 * 3600 * 10**9
    ok = owner.post("/api/v2/users/me/keys/tokens", json={"lifetime": week, "token_name": "a"})
    too_long = owner.post(
        "/api/v2/users/me/keys/tokens", json={"lifetime": week + 10**9, "token_name": "b"}
    )
    assert ok.status_code == 201 and ok.json()["key"].count("-") == 1
    assert too_long.status_code == 400


def test_non_owner_token_may_live_long(bridge: httpx.Client) -> None:
    """§1.2: non-owners default to ≈100 years: a one-year token is fine."""
    year = 365 * 24 * 3600 * 10**9
    response = bridge.post(
        "/api/v2/users/me/keys/tokens", json={"lifetime": year, "token_name": "b"}
    )
    assert response.status_code == 201
    with httpx.Client(base_url=str(bridge.base_url)) as fresh:
        me = fresh.get("/api/v2/users/me", headers={"Coder-Session-Token": response.json()["key"]})
    assert me.json()["username"] == "bridge"


# --- §5.1 IdP group-sync settings --------------------------------------------------------


def sync_url(coder: LiveCoder, suffix: str = "") -> str:
    return f"/api/v2/organizations/{org_id(coder)}/settings/idpsync/groups{suffix}"


def test_group_sync_settings_start_empty(owner: httpx.Client, coder: LiveCoder) -> None:
    """§5.1: GET → settings with `mapping: {}` when unset."""
    assert owner.get(sync_url(coder)).json() == {
        "field": "",
        "mapping": {},
        "regex_filter": None,
        "auto_create_missing_groups": False,
    }


def test_patch_group_sync_replaces_everything(owner: httpx.Client, coder: LiveCoder) -> None:
    """§5.1: PATCH is a full replace."""
    group_id = str(uuid.uuid4())
    owner.patch(
        sync_url(coder),
        json={
            "field": "groups",
            "mapping": {"eng": [group_id]},
            "regex_filter": "^x",
            "auto_create_missing_groups": True,
        },
    )
    response = owner.patch(sync_url(coder), json={"field": "roles"})
    assert response.json() == {
        "field": "roles",
        "mapping": None,
        "regex_filter": None,
        "auto_create_missing_groups": False,
    }


def test_omitted_mapping_clears_it_and_get_shows_empty(
    owner: httpx.Client, coder: LiveCoder
) -> None:
    """§5.1: an omitted mapping clears it; PATCH answers `null`, GET answers `{}`."""
    owner.patch(sync_url(coder), json={"field": "groups", "mapping": {"a": [str(uuid.uuid4())]}})
    assert owner.patch(sync_url(coder), json={"field": "groups"}).json()["mapping"] is None
    assert owner.get(sync_url(coder)).json()["mapping"] == {}


def test_mapping_group_ids_are_not_validated(owner: httpx.Client, coder: LiveCoder) -> None:
    """§5.1: mapping values are UUIDs but need not exist."""
    ghost = str(uuid.uuid4())
    response = owner.patch(sync_url(coder), json={"field": "groups", "mapping": {"x": [ghost]}})
    assert (response.status_code, response.json()["mapping"]) == (200, {"x": [ghost]})


def test_mapping_values_must_be_uuids(owner: httpx.Client, coder: LiveCoder) -> None:
    """§5.1: `map[string][]uuid` — a non-UUID fails decoding → 400 invalid JSON."""
    response = owner.patch(
        sync_url(coder), json={"field": "groups", "mapping": {"x": ["dept-eng"]}}
    )
    assert (response.status_code, response.json()["message"]) == (
        400,
        "Request body must be valid JSON.",
    )


@pytest.mark.parametrize("pattern", ["(unclosed", "(?=lookahead)", "a{2,1}"])
def test_invalid_regex_filter_is_400_invalid_json(
    owner: httpx.Client, coder: LiveCoder, pattern: str
) -> None:
    """§5.1: an invalid (RE2) regex fails JSON decoding → 400 `Request body must be valid JSON.`"""
    response = owner.patch(sync_url(coder), json={"field": "groups", "regex_filter": pattern})
    assert (response.status_code, response.json()["message"]) == (
        400,
        "Request body must be valid JSON.",
    )


def test_legacy_group_name_mapping_is_refused(owner: httpx.Client, coder: LiveCoder) -> None:
    """§5.1: a non-empty `legacy_group_name_mapping` in a PATCH → 400."""
    response = owner.patch(
        sync_url(coder), json={"field": "groups", "legacy_group_name_mapping": {"a": "b"}}
    )
    assert response.status_code == 400
    assert response.json()["message"] == (
        "Unexpected field 'legacy_group_name_mapping'. Field not allowed, set to null or remove it."
    )
    assert response.json()["validations"][0]["field"] == "legacy_group_name_mapping"


def test_legacy_group_name_mapping_null_or_empty_is_accepted(
    owner: httpx.Client, coder: LiveCoder
) -> None:
    """§5.1: null or empty legacy mapping is fine."""
    for value in (None, {}):
        body = {"field": "groups", "legacy_group_name_mapping": value}
        assert owner.patch(sync_url(coder), json=body).status_code == 200


def test_patch_config_keeps_mapping_and_zeroes_omitted_fields(
    owner: httpx.Client, coder: LiveCoder
) -> None:
    """§5.1: `/config` replaces field/regex/auto-create (omitted = zero), keeps the mapping."""
    ghost = str(uuid.uuid4())
    owner.patch(
        sync_url(coder),
        json={"field": "groups", "mapping": {"x": [ghost]}, "auto_create_missing_groups": True},
    )
    body = owner.patch(sync_url(coder, "/config"), json={"regex_filter": "^eng"}).json()
    assert body == {
        "field": "",
        "mapping": {"x": [ghost]},
        "regex_filter": "^eng",
        "auto_create_missing_groups": False,
    }


@pytest.mark.parametrize(
    ("add", "given", "gets"), [("add", "given", "gets"), ("Add", "Given", "Gets")]
)
def test_patch_mapping_accepts_keys_in_any_case(
    owner: httpx.Client, coder: LiveCoder, add: str, given: str, gets: str
) -> None:
    """§5.1: `/mapping` keys as the Go SDK sends them (`Add`/`Given`) or as documented."""
    target = str(uuid.uuid4())
    owner.patch(sync_url(coder), json={"field": "groups"})
    body = owner.patch(sync_url(coder, "/mapping"), json={add: [{given: "eng", gets: target}]})
    assert (body.status_code, body.json()["mapping"], body.json()["field"]) == (
        200,
        {"eng": [target]},
        "groups",
    )


def test_patch_mapping_adds_once_and_remove_wins(owner: httpx.Client, coder: LiveCoder) -> None:
    """§5.1: adds append if absent; removes apply after adds (remove wins); an emptied
    list stays `[]`."""
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    url = sync_url(coder, "/mapping")
    owner.patch(
        url, json={"add": [{"given": "eng", "gets": first}, {"given": "eng", "gets": first}]}
    )
    body = owner.patch(
        url,
        json={
            "add": [{"given": "eng", "gets": second}, {"given": "ops", "gets": first}],
            "remove": [{"given": "eng", "gets": first}, {"given": "ops", "gets": first}],
        },
    ).json()
    assert body["mapping"] == {"eng": [second], "ops": []}


def test_patch_mapping_keeps_other_settings(owner: httpx.Client, coder: LiveCoder) -> None:
    """§5.1: `/mapping` keeps the config."""
    owner.patch(
        sync_url(coder),
        json={"field": "groups", "regex_filter": "^e", "auto_create_missing_groups": True},
    )
    body = owner.patch(
        sync_url(coder, "/mapping"), json={"add": [{"given": "e", "gets": str(uuid.uuid4())}]}
    ).json()
    assert (body["field"], body["regex_filter"], body["auto_create_missing_groups"]) == (
        "groups",
        "^e",
        True,
    )


def test_legacy_flags_apply_to_default_org_until_first_patch(server: DoubleServer) -> None:
    """§5.1: with no stored settings, the default org's settings come from the deployment
    flags (legacy mapping shown); the first PATCH stores settings and ends that."""
    flags = LegacyOidcGroupFlags(group_field="groups", group_mapping={"okta-eng": "dept-eng"})
    with server.serve(DoubleConfig(oidc=flags)) as coder, coder.client() as client:
        legacy = client.get(sync_url(coder)).json()
        assert legacy == {
            "field": "groups",
            "mapping": {},
            "regex_filter": ".*",
            "auto_create_missing_groups": False,
            "legacy_group_name_mapping": {"okta-eng": "dept-eng"},
        }
        other = coder.state.create_organization("second")
        assert (
            client.get(f"/api/v2/organizations/{other.id}/settings/idpsync/groups").json()["field"]
            == ""
        )
        client.patch(sync_url(coder), json={"field": "groups"})
        assert "legacy_group_name_mapping" not in client.get(sync_url(coder)).json()


def test_group_sync_settings_need_idpsync_rights(coder: LiveCoder) -> None:
    """§5.1: without read/update on `idpsync_settings` → 403 `Forbidden.`"""
    with coder.client(member_token(coder)) as client:
        response = client.get(sync_url(coder))
    assert (response.status_code, response.json()["message"]) == (403, "Forbidden.")


def test_user_admin_manages_group_sync(bridge: httpx.Client, coder: LiveCoder) -> None:
    """§1.2/§5.1: site `user-admin` reads and updates IdP-sync settings."""
    assert bridge.patch(sync_url(coder), json={"field": "groups"}).status_code == 200


def test_group_sync_settings_are_not_license_gated(owner: httpx.Client, coder: LiveCoder) -> None:
    """§5.1: the idpsync routes work without `template_rbac`."""
    coder.state.set_entitlement("template_rbac", False)
    assert owner.patch(sync_url(coder), json={"field": "groups"}).status_code == 200


def test_available_fields_and_field_values(owner: httpx.Client, coder: LiveCoder) -> None:
    """§5.1: claim names and values seen at logins."""
    coder.state.login(new_user(coder, "alice"), {"groups": ["eng", "ops"], "email": "a@x"})
    base = f"/api/v2/organizations/{org_id(coder)}/settings/idpsync"
    assert owner.get(f"{base}/available-fields").json() == ["email", "groups"]
    values = owner.get(f"{base}/field-values", params={"claimField": "groups"}).json()
    assert values == ["eng", "ops"]


# --- §7 templates and ACLs ---------------------------------------------------------------


def test_list_organization_templates(owner: httpx.Client, coder: LiveCoder) -> None:
    """§7: `GET /organizations/{org}/templates` → [Template] with the bridge's fields."""
    coder.state.create_template(coder.state.default_org, "java", display_name="Java")
    templates = owner.get(f"/api/v2/organizations/{org_id(coder)}/templates").json()
    assert [t["name"] for t in templates] == ["java"]
    assert {
        "id",
        "name",
        "display_name",
        "organization_id",
        "organization_name",
        "created_by_id",
        "created_by_name",
        "deprecated",
        "deleted",
        "active_version_id",
    } <= set(templates[0])


def test_get_template_by_name(owner: httpx.Client, coder: LiveCoder) -> None:
    """§7: `GET /organizations/{org}/templates/{templatename}`."""
    template = coder.state.create_template(coder.state.default_org, "java")
    response = owner.get(f"/api/v2/organizations/{org_id(coder)}/templates/java")
    assert response.json()["id"] == str(template.id)
    assert owner.get(f"/api/v2/organizations/{org_id(coder)}/templates/cobol").status_code == 404


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("exact_name:java", ["java"]),
        ("organization:second", ["cobol"]),
        ("name:ja", ["java", "javascript"]),
        ("deprecated:true", ["javascript"]),
        ("py", ["python"]),  # bare words match the display name
    ],
)
def test_templates_search(
    owner: httpx.Client, coder: LiveCoder, query: str, expected: list[str]
) -> None:
    """§7: `GET /templates?q=` keys."""
    state = coder.state
    state.create_template(state.default_org, "java")
    state.create_template(state.default_org, "javascript", deprecation_message="old")
    state.create_template(state.default_org, "python", display_name="Python 3")
    state.create_template(state.create_organization("second"), "cobol")
    response = owner.get("/api/v2/templates", params={"q": query})
    assert [t["name"] for t in response.json()] == expected


def test_templates_search_unknown_key_is_400(owner: httpx.Client) -> None:
    """§7: an unknown `q` key → 400."""
    response = owner.get("/api/v2/templates", params={"q": "color:blue"})
    assert response.status_code == 400
    assert response.json()["validations"][0]["detail"] == '"color" is not a valid query param'


def test_new_template_grants_everyone_use(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.4/§7: a new template gives Everyone `use`."""
    template = coder.state.create_template(coder.state.default_org, "java")
    acl = owner.get(f"/api/v2/templates/{template.id}/acl").json()
    assert [(g["name"], g["role"]) for g in acl["group"]] == [("Everyone", "use")]


def test_template_created_without_everyone(owner: httpx.Client, coder: LiveCoder) -> None:
    """§3.4/§7: `disable_everyone_group_access` on create leaves Everyone out."""
    template = coder.state.create_template(
        coder.state.default_org, "java", disable_everyone_group_access=True
    )
    assert owner.get(f"/api/v2/templates/{template.id}/acl").json() == {"users": [], "group": []}


def test_patch_template_disable_everyone_group_access(
    owner: httpx.Client, coder: LiveCoder
) -> None:
    """§7: PATCHing a template with `disable_everyone_group_access: true` drops Everyone."""
    template = coder.state.create_template(coder.state.default_org, "java")
    response = owner.patch(
        f"/api/v2/templates/{template.id}", json={"disable_everyone_group_access": True}
    )
    assert response.status_code == 200
    assert owner.get(f"/api/v2/templates/{template.id}/acl").json()["group"] == []


def test_acl_uses_the_singular_group_key(owner: httpx.Client, coder: LiveCoder) -> None:
    """§7: `TemplateACL` = `{"users": [User + role], "group": [Group + role]}`."""
    alice = new_user(coder, "alice")
    group = new_group(owner, coder, "dept-eng")
    owner.patch(f"/api/v2/groups/{group['id']}", json={"add_users": [str(alice.id)]})
    template = coder.state.create_template(
        coder.state.default_org,
        "java",
        disable_everyone_group_access=True,
        user_acl={str(alice.id): "admin"},
        group_acl={group["id"]: "use"},
    )
    acl = owner.get(f"/api/v2/templates/{template.id}/acl").json()
    assert set(acl) == {"users", "group"}
    assert (acl["users"][0]["username"], acl["users"][0]["role"]) == ("alice", "admin")
    assert (acl["group"][0]["name"], acl["group"][0]["role"], usernames(acl["group"][0])) == (
        "dept-eng",
        "use",
        ["alice"],
    )


def test_acl_patch_is_a_partial_merge(owner: httpx.Client, coder: LiveCoder) -> None:
    """§7: keys not mentioned are left unchanged."""
    group = new_group(owner, coder, "dept-eng")
    template = coder.state.create_template(coder.state.default_org, "java")
    url = f"/api/v2/templates/{template.id}/acl"
    response = owner.patch(url, json={"group_perms": {group["id"]: "admin"}})
    assert response.json() == {"message": "Successfully updated template ACL list."}
    roles = {g["name"]: g["role"] for g in owner.get(url).json()["group"]}
    assert roles == {"Everyone": "use", "dept-eng": "admin"}


def test_acl_empty_role_removes_the_entry(owner: httpx.Client, coder: LiveCoder) -> None:
    """§7: role `""` removes an entry (here Everyone, keyed by the org id)."""
    template = coder.state.create_template(coder.state.default_org, "java")
    url = f"/api/v2/templates/{template.id}/acl"
    assert owner.patch(url, json={"group_perms": {org_id(coder): ""}}).status_code == 200
    assert owner.get(url).json()["group"] == []


@pytest.mark.parametrize(
    ("perms", "detail"),
    [
        ({"group_perms": {"{org}": "owner"}}, 'role "owner" is not a valid template role'),
        ({"group_perms": {"dept-eng": "use"}}, "dept-eng is not a valid UUID."),
        ({"group_perms": {"{ghost}": "use"}}, "group with ID {ghost} does not exist"),
    ],
)
def test_acl_patch_validation(
    owner: httpx.Client, coder: LiveCoder, perms: dict[str, dict[str, str]], detail: str
) -> None:
    """§7: invalid role, non-UUID key, unknown group → 400 with `group_perms` validations."""
    ghost = str(uuid.uuid4())
    template = coder.state.create_template(coder.state.default_org, "java")
    body = {
        k: {key.format(org=org_id(coder), ghost=ghost): role for key, role in v.items()}
        for k, v in perms.items()
    }
    response = owner.patch(f"/api/v2/templates/{template.id}/acl", json=body)
    assert response.status_code == 400
    assert response.json() == {
        "message": "Invalid request to update template ACL",
        "validations": [{"field": "group_perms", "detail": detail.format(ghost=ghost)}],
    }


def test_acl_removing_an_unknown_group_is_accepted(owner: httpx.Client, coder: LiveCoder) -> None:
    """§7: only non-removal keys must exist."""
    template = coder.state.create_template(coder.state.default_org, "java")
    response = owner.patch(
        f"/api/v2/templates/{template.id}/acl", json={"group_perms": {str(uuid.uuid4()): ""}}
    )
    assert response.status_code == 200


def test_acl_accepts_a_group_of_another_organization(owner: httpx.Client, coder: LiveCoder) -> None:
    """§7: existence only — the group is not checked to be in the template's organization."""
    foreign = coder.state.create_group(coder.state.create_organization("second"), "foreign")
    template = coder.state.create_template(coder.state.default_org, "java")
    response = owner.patch(
        f"/api/v2/templates/{template.id}/acl", json={"group_perms": {str(foreign.id): "use"}}
    )
    assert response.status_code == 200


def test_acl_unknown_user_is_400(owner: httpx.Client, coder: LiveCoder) -> None:
    """§7: `user_perms` keys must exist too (field `user_perms`)."""
    template = coder.state.create_template(coder.state.default_org, "java")
    response = owner.patch(
        f"/api/v2/templates/{template.id}/acl", json={"user_perms": {str(uuid.uuid4()): "use"}}
    )
    assert response.json()["validations"][0]["field"] == "user_perms"


def test_acl_admin_group_members_can_edit_that_templates_acl(
    owner: httpx.Client, coder: LiveCoder
) -> None:
    """§7: the ACL `admin` role (via a group) allows editing that template's ACL only."""
    lead = new_user(coder, "lead")
    admins = coder.state.create_group(coder.state.default_org, "java-admins", members=[lead])
    mine = coder.state.create_template(
        coder.state.default_org, "java", group_acl={str(admins.id): "admin"}
    )
    theirs = coder.state.create_template(coder.state.default_org, "cobol")
    with coder.client(coder.state.create_token(lead)) as client:
        ok = client.patch(
            f"/api/v2/templates/{mine.id}/acl", json={"group_perms": {org_id(coder): ""}}
        )
        refused = client.patch(
            f"/api/v2/templates/{theirs.id}/acl", json={"group_perms": {org_id(coder): ""}}
        )
    assert (ok.status_code, refused.status_code) == (200, 403)


def test_template_visible_only_through_the_acl(owner: httpx.Client, coder: LiveCoder) -> None:
    """§7: only templates the caller can read are listed (a `use` grant through a group)."""
    dev = new_user(coder, "dev")
    team = coder.state.create_group(coder.state.default_org, "java-devs", members=[dev])
    coder.state.create_template(
        coder.state.default_org,
        "java",
        disable_everyone_group_access=True,
        group_acl={str(team.id): "use"},
    )
    coder.state.create_template(
        coder.state.default_org, "cobol", disable_everyone_group_access=True
    )
    with coder.client(coder.state.create_token(dev)) as client:
        names = [
            t["name"] for t in client.get(f"/api/v2/organizations/{org_id(coder)}/templates").json()
        ]
    assert names == ["java"]


def test_acl_available_lists_users_and_groups_without_members(
    owner: httpx.Client, coder: LiveCoder
) -> None:
    """§7: `/acl/available?q=&limit=` → users and groups (groups without members)."""
    template = coder.state.create_template(coder.state.default_org, "java")
    body = owner.get(f"/api/v2/templates/{template.id}/acl/available", params={"q": "bri"}).json()
    assert [u["username"] for u in body["users"]] == ["bridge"]
    assert [(g["name"], g["members"]) for g in body["groups"]] == [("Everyone", [])]


def test_template_admin_edits_acls(bridge: httpx.Client, coder: LiveCoder) -> None:
    """§1.2/§7: site `template-admin` may edit any template ACL."""
    template = coder.state.create_template(coder.state.default_org, "java")
    response = bridge.patch(
        f"/api/v2/templates/{template.id}/acl", json={"group_perms": {org_id(coder): ""}}
    )
    assert response.status_code == 200


# --- §9 login-time group sync --------------------------------------------------------------


def sync_on(coder: LiveCoder, **settings: Any) -> None:
    coder.state.set_group_sync(
        coder.state.default_org, GroupSyncSettings(field="groups", **settings)
    )


def group_names_of(coder: LiveCoder, user: User) -> set[str]:
    return {g.name for g in coder.state.groups_of_user(user.id)}


def test_login_sets_groups_to_claim_plus_everyone(coder: LiveCoder) -> None:
    """§9 steps 3-6: expected = claim names + Everyone; others are removed, missing added."""
    state = coder.state
    alice = new_user(coder, "alice")
    state.create_group(state.default_org, "eng")
    state.create_group(state.default_org, "old", members=[alice])
    sync_on(coder)
    result = state.login(alice, {"groups": ["eng"]})
    assert group_names_of(coder, alice) == {"Everyone", "eng"}
    assert (len(result.added), len(result.removed)) == (1, 1)


def test_login_without_the_claim_wipes_memberships(coder: LiveCoder) -> None:
    """§9 step 3: an absent claim expects nothing: every group but Everyone goes."""
    alice = new_user(coder, "alice")
    coder.state.create_group(coder.state.default_org, "eng", members=[alice])
    sync_on(coder)
    coder.state.login(alice, {"email": "alice@example.com"})
    assert group_names_of(coder, alice) == {"Everyone"}


def test_login_leaves_orgs_without_a_field_untouched(coder: LiveCoder) -> None:
    """§9 step 2: `field == ""` → the organization is skipped entirely."""
    alice = new_user(coder, "alice")
    coder.state.create_group(coder.state.default_org, "eng", members=[alice])
    result = coder.state.login(alice, {"groups": []})
    assert group_names_of(coder, alice) == {"Everyone", "eng"}
    assert result.skipped_organizations == [coder.state.default_org.id]


def test_login_only_touches_orgs_with_sync(coder: LiveCoder) -> None:
    """§9: settings are per organization: a synced org is reset, another is not."""
    state = coder.state
    other = state.create_organization("second")
    alice = new_user(coder, "alice", organizations=[state.default_org, other])
    state.create_group(state.default_org, "here", members=[alice])
    state.create_group(other, "there", members=[alice])
    sync_on(coder)
    state.login(alice, {})
    assert group_names_of(coder, alice) == {"Everyone", "there"}


def test_login_mapping_expects_group_ids(coder: LiveCoder) -> None:
    """§9 step 3: `mapping[value]` expects those group IDs (one value → many groups)."""
    state = coder.state
    alice = new_user(coder, "alice")
    java = state.create_group(state.default_org, "dept-java")
    eng = state.create_group(state.default_org, "engineering")
    state.create_group(state.default_org, "okta-java")  # same name as the claim: not used
    sync_on(coder, mapping={"okta-java": [str(java.id), str(eng.id)]})
    state.login(alice, {"groups": ["okta-java"]})
    assert group_names_of(coder, alice) == {"Everyone", "dept-java", "engineering"}


def test_login_claim_values_are_case_sensitive(coder: LiveCoder) -> None:
    """§9 step 4: names compare case-sensitively."""
    alice = new_user(coder, "alice")
    coder.state.create_group(coder.state.default_org, "Eng")
    sync_on(coder)
    coder.state.login(alice, {"groups": ["eng"]})
    assert group_names_of(coder, alice) == {"Everyone"}


def test_login_regex_filters_claims_not_existing_groups(coder: LiveCoder) -> None:
    """§9 steps 3-4: the regex drops claim values; it does not protect existing groups."""
    state = coder.state
    alice = new_user(coder, "alice")
    state.create_group(state.default_org, "coder-eng")
    state.create_group(state.default_org, "other")
    state.create_group(state.default_org, "manual", members=[alice])
    sync_on(coder, regex_filter="^coder-")
    state.login(alice, {"groups": ["coder-eng", "other"]})
    assert group_names_of(coder, alice) == {"Everyone", "coder-eng"}


def test_login_legacy_name_mapping_applies_before_the_regex(coder: LiveCoder) -> None:
    """§9 step 3 / §5.3: legacy mapping first, then the regex on the mapped name."""
    alice = new_user(coder, "alice")
    coder.state.create_group(coder.state.default_org, "coder-eng")
    sync_on(
        coder,
        regex_filter="^coder-",
        legacy_group_name_mapping={"Okta Engineering": "coder-eng"},
    )
    coder.state.login(alice, {"groups": ["Okta Engineering"]})
    assert group_names_of(coder, alice) == {"Everyone", "coder-eng"}


def test_login_auto_creates_missing_groups_with_source_oidc(coder: LiveCoder) -> None:
    """§9 step 5/§6: auto-created groups are named exactly the claim value, source `oidc`."""
    alice = new_user(coder, "alice")
    sync_on(coder, auto_create_missing_groups=True)
    result = coder.state.login(alice, {"groups": ["Dev Team", "3f2c-object-id"]})
    created = [coder.state.groups[i] for i in result.created_groups]
    assert [(g.name, g.display_name, g.source) for g in created] == [
        ("Dev Team", "", "oidc"),
        ("3f2c-object-id", "", "oidc"),
    ]
    assert group_names_of(coder, alice) == {"Everyone", "Dev Team", "3f2c-object-id"}


def test_login_drops_unknown_names_without_auto_create(coder: LiveCoder) -> None:
    """§9 step 5: unknown names are dropped when auto-create is off."""
    alice = new_user(coder, "alice")
    sync_on(coder)
    result = coder.state.login(alice, {"groups": ["nowhere"]})
    assert (result.created_groups, group_names_of(coder, alice)) == ([], {"Everyone"})


def test_login_ignores_mapping_ids_that_no_longer_exist(coder: LiveCoder) -> None:
    """§9 consequences: mapping UUIDs that no longer exist are silently ignored."""
    alice = new_user(coder, "alice")
    sync_on(coder, mapping={"eng": [str(uuid.uuid4())]})
    assert coder.state.login(alice, {"groups": ["eng"]}).added == []


@pytest.mark.parametrize("claim", ["eng,ops", 42, {"a": 1}, [1, 2]])
def test_login_with_a_malformed_claim_skips_the_org(coder: LiveCoder, claim: Any) -> None:
    """§9 step 3: a claim of the wrong type (or a comma string) → the org is skipped."""
    alice = new_user(coder, "alice")
    coder.state.create_group(coder.state.default_org, "eng", members=[alice])
    sync_on(coder)
    coder.state.login(alice, {"groups": claim})
    assert group_names_of(coder, alice) == {"Everyone", "eng"}


def test_login_accepts_a_single_string_claim(coder: LiveCoder) -> None:
    """§9 step 3 (`ParseStringSliceClaim`): a single string is one value."""
    alice = new_user(coder, "alice")
    coder.state.create_group(coder.state.default_org, "eng")
    sync_on(coder)
    coder.state.login(alice, {"groups": "eng"})
    assert group_names_of(coder, alice) == {"Everyone", "eng"}


def test_login_removes_api_added_memberships(owner: httpx.Client, coder: LiveCoder) -> None:
    """§9 step 4: removals ignore `source` and who added the membership (the bridge's REST
    memberships are wiped in a synced org)."""
    alice = new_user(coder, "alice")
    group = new_group(owner, coder, "bridge-managed")
    owner.patch(f"/api/v2/groups/{group['id']}", json={"add_users": [str(alice.id)]})
    sync_on(coder)
    coder.state.login(alice, {"groups": []})
    assert owner.get(f"/api/v2/groups/{group['id']}").json()["members"] == []


def test_login_group_sync_needs_template_rbac(coder: LiveCoder) -> None:
    """§9: a no-op unless the deployment is entitled to `template_rbac`."""
    alice = new_user(coder, "alice")
    coder.state.create_group(coder.state.default_org, "eng", members=[alice])
    sync_on(coder)
    coder.state.set_entitlement("template_rbac", False)
    coder.state.login(alice, {})
    assert group_names_of(coder, alice) == {"Everyone", "eng"}


def test_login_uses_legacy_flags_for_the_default_org(server: DoubleServer) -> None:
    """§5.1 legacy fallback + §9 step 2: `CODER_OIDC_GROUP_FIELD` drives the default org."""
    flags = LegacyOidcGroupFlags(group_field="groups", group_auto_create=True)
    with server.serve(DoubleConfig(oidc=flags)) as coder:
        alice = new_user(coder, "alice")
        coder.state.login(alice, {"groups": ["auto"]})
        assert group_names_of(coder, alice) == {"Everyone", "auto"}


def test_login_refuses_suspended_users(coder: LiveCoder) -> None:
    """§4.3: a suspended user cannot log in (nothing is synced)."""
    sam = new_user(coder, "sam", status="suspended")
    with pytest.raises(LoginRefused):
        coder.state.login(sam, {"groups": []})


def test_login_activates_a_dormant_user(coder: LiveCoder) -> None:
    """§4.3: a dormant user becomes active on login."""
    sleeper = new_user(coder, "sleeper", status="dormant")
    coder.state.login(sleeper, {})
    assert coder.state.users[sleeper.id].status == "active"


def test_login_refused_outside_allowed_groups(server: DoubleServer) -> None:
    """§5.3: `CODER_OIDC_ALLOWED_GROUPS` compares raw claim values; a miss → refused."""
    flags = LegacyOidcGroupFlags(group_field="groups", allowed_groups=["coder-users"])
    with server.serve(DoubleConfig(oidc=flags)) as coder:
        alice = new_user(coder, "alice")
        with pytest.raises(LoginRefused, match="Not a member of an allowed group"):
            coder.state.login(alice, {"groups": ["other"]})
        coder.state.login(alice, {"groups": ["coder-users"]})


def test_login_over_http(coder: LiveCoder) -> None:
    """§9 as a test-only endpoint outside /api/v2: `POST /__double__/login`."""
    alice = new_user(coder, "alice")
    eng = coder.state.create_group(coder.state.default_org, "eng")
    sync_on(coder)
    with coder.client("") as client:
        response = client.post(
            "/__double__/login", json={"user": "alice", "claims": {"groups": ["eng"]}}
        )
    assert response.status_code == 200
    assert response.json()["added"] == [str(eng.id)]
    assert group_names_of(coder, alice) == {"Everyone", "eng"}


# --- test instruments: faults, latency, call counter --------------------------------------


def test_fault_injector_fails_a_seeded_share_of_writes(
    owner: httpx.Client, coder: LiveCoder
) -> None:
    """Fault injector: a configurable share of writes answers 500; reads never fail; the
    same seed gives the same sequence."""

    def run() -> list[int]:
        coder.state.faults.configure(failure_rate=0.5, seed=7)
        return [
            owner.post(groups_url(coder), json={"name": f"g{time.monotonic_ns()}"}).status_code
            for _ in range(20)
        ]

    first, second = run(), run()
    assert first == second
    assert set(first) == {201, 500} and 4 <= first.count(500) <= 16
    assert {owner.get("/api/v2/users").status_code for _ in range(10)} == {200}


def test_fault_before_the_write_changes_nothing(owner: httpx.Client, coder: LiveCoder) -> None:
    """Fault injector: a `before` fault answers Coder's 500 and applies nothing."""
    coder.state.faults.configure(failure_rate=1.0)
    response = owner.post(groups_url(coder), json={"name": "dept-eng"})
    assert (response.status_code, response.json()["message"]) == (
        500,
        "An internal server error occurred.",
    )
    assert "dept-eng" not in coder.state.groups_named()


def test_fault_after_the_write_applies_it(owner: httpx.Client, coder: LiveCoder) -> None:
    """Fault injector: an `after` fault applies the write then answers 500 (a retry then
    meets e.g. `Cannot add the same user to a group twice!`)."""
    alice = new_user(coder, "alice")
    group = new_group(owner, coder, "dept-eng")
    coder.state.faults.configure(failure_after_apply_rate=1.0)
    url = f"/api/v2/groups/{group['id']}"
    assert owner.patch(url, json={"add_users": [str(alice.id)]}).status_code == 500
    coder.state.faults.clear()
    assert owner.patch(url, json={"add_users": [str(alice.id)]}).status_code == 400


def test_fault_predicate_limits_faults_to_some_calls(owner: httpx.Client, coder: LiveCoder) -> None:
    """Fault injector: a predicate on (method, path template) picks the calls to fail."""
    coder.state.faults.configure(
        failure_rate=1.0, predicate=lambda method, template: method == "DELETE"
    )
    group = new_group(owner, coder, "dept-eng")
    assert owner.delete(f"/api/v2/groups/{group['id']}").status_code == 500


def test_latency_is_added(owner: httpx.Client, coder: LiveCoder) -> None:
    """Fault injector: `latency` seconds are added to each call."""
    coder.state.faults.configure(latency=0.2)
    started = time.monotonic()
    owner.get("/api/v2/users")
    assert time.monotonic() - started >= 0.2


def test_call_counter_counts_per_method_and_path_template(
    owner: httpx.Client, coder: LiveCoder
) -> None:
    """Call counter: per (METHOD, path template); `writes()` holds only writes."""
    first, second = new_group(owner, coder, "a"), new_group(owner, coder, "b")
    owner.patch(f"/api/v2/groups/{first['id']}", json={"display_name": "A"})
    owner.patch(f"/api/v2/groups/{second['id']}", json={"display_name": "B"})
    owner.get(groups_url(coder))
    calls = coder.state.calls
    assert calls.count("PATCH", "/api/v2/groups/{group}") == 2
    assert calls.writes() == {
        ("POST", "/api/v2/organizations/{organization}/groups"): 2,
        ("PATCH", "/api/v2/groups/{group}"): 2,
    }
    assert calls.write_count() == 4


def test_call_counter_shows_a_read_only_pass_made_no_writes(
    owner: httpx.Client, coder: LiveCoder
) -> None:
    """Call counter: after `reset()`, a pass of reads counts zero writes."""
    new_group(owner, coder, "a")
    coder.state.calls.reset()
    owner.get(groups_url(coder))
    owner.get("/api/v2/users")
    assert coder.state.calls.write_count() == 0
    assert coder.state.calls.count() == 2


def test_run_coder_double_serves_on_loopback() -> None:
    """tests/coder_fixtures.py: `run_coder_double` yields a URL on 127.0.0.1, an owner and
    a non-owner token, and the state."""
    with run_coder_double() as coder:
        assert coder.url.startswith("http://127.0.0.1:")
        with coder.client() as owner_client, coder.client(coder.token) as bridge_client:
            assert owner_client.get("/api/v2/users/me").json()["username"] == "admin"
            assert bridge_client.get("/api/v2/users/me").json()["username"] == "bridge"
        assert coder.state.first_user.roles == ["owner"]
