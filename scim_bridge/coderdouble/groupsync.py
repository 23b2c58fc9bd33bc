"""IdP group sync: the effective settings of an organization (runtime settings or the legacy
deployment flags, contract §5.1) and the login-time algorithm of contract §9."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .config import TEMPLATE_RBAC
from .models import Group, GroupSyncSettings, User
from .validation import compile_go_regex, parse_go_uuid

if TYPE_CHECKING:
    from .state import CoderState


@dataclass
class LoginResult:
    """What a simulated OIDC login did to the user's group memberships (contract §9)."""

    user_id: uuid.UUID
    added: list[uuid.UUID] = field(default_factory=list)
    removed: list[uuid.UUID] = field(default_factory=list)
    created_groups: list[uuid.UUID] = field(default_factory=list)
    synced_organizations: list[uuid.UUID] = field(default_factory=list)
    skipped_organizations: list[uuid.UUID] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": str(self.user_id),
            "added": [str(i) for i in self.added],
            "removed": [str(i) for i in self.removed],
            "created_groups": [str(i) for i in self.created_groups],
            "synced_organizations": [str(i) for i in self.synced_organizations],
            "skipped_organizations": [str(i) for i in self.skipped_organizations],
        }


class LoginRefused(Exception):
    """The simulated login was refused before group sync (suspended user, wrong login type,
    `CODER_OIDC_ALLOWED_GROUPS`)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def effective_settings(state: CoderState, org_id: uuid.UUID) -> GroupSyncSettings:
    """`AGPLIDPSync.GroupSyncSettings`: the stored runtime settings; else, for the default
    organization only and when `CODER_OIDC_GROUP_FIELD` is set, settings built from the
    deployment flags; else empty settings (field "" = sync off)."""
    stored = state.group_sync.get(org_id)
    if stored is not None:
        return stored.copy()
    flags = state.config.oidc
    org = state.organizations[org_id]
    if org.is_default and flags.group_field:
        return GroupSyncSettings(
            field=flags.group_field,
            mapping=None,
            regex_filter=flags.group_regex_filter,
            auto_create_missing_groups=flags.group_auto_create,
            legacy_group_name_mapping=dict(flags.group_mapping),
        )
    return GroupSyncSettings()


class ClaimError(Exception):
    """A claim of the wrong type: the organization is skipped (logged in Coder)."""


def parse_string_slice_claim(claim: Any) -> list[str]:
    """`idpsync.ParseStringSliceClaim`: null -> [], array of strings, a single string
    ("" -> []); a comma in a single string or any other type is an error."""
    if claim is None:
        return []
    if isinstance(claim, list):
        out: list[str] = []
        for index, item in enumerate(claim):
            if not isinstance(item, str):
                raise ClaimError(f"invalid claim type. Element {index} expected a string")
            out.append(item)
        return out
    if isinstance(claim, str):
        if claim == "":
            return []
        if "," in claim:
            raise ClaimError(
                f"invalid claim type. Got a csv string ({claim!r}), change this claim to "
                "return an array of strings instead."
            )
        return [claim]
    raise ClaimError(f"invalid claim type. Expected an array of strings, got: {type(claim)}")


@dataclass(frozen=True)
class ExpectedGroup:
    """`idpsync.ExpectedGroup`: a group known by ID, by name, or (existing ones) both."""

    organization_id: uuid.UUID
    group_id: uuid.UUID | None = None
    name: str | None = None

    def equal(self, other: ExpectedGroup) -> bool:
        """`ExpectedGroup.Equal`: same org; by ID when both have one, else by name
        (case-sensitive)."""
        if self.organization_id != other.organization_id:
            return False
        if self.group_id is not None and other.group_id is not None:
            return self.group_id == other.group_id
        if self.name is not None and other.name is not None:
            return self.name == other.name
        return False


def parse_claims(
    settings: GroupSyncSettings, org_id: uuid.UUID, claims: dict[str, Any]
) -> list[ExpectedGroup]:
    """`GroupSyncSettings.ParseClaims`: an absent claim expects nothing; each value goes
    through the legacy name mapping, then the regex filter, then the mapping (IDs) or is
    expected by name. Raises ClaimError."""
    if settings.field not in claims:
        return []
    values = parse_string_slice_claim(claims[settings.field])
    pattern = None
    if settings.regex_filter is not None:
        try:
            pattern = compile_go_regex(settings.regex_filter)
        except ValueError:
            pattern = None
    mapping = settings.mapping or {}
    expected: list[ExpectedGroup] = []
    for raw in values:
        value = settings.legacy_group_name_mapping.get(raw, raw)
        if pattern is not None and pattern.search(value) is None:
            continue
        if value in mapping:
            for group_id in mapping[value] or []:
                parsed = parse_go_uuid(group_id)
                if parsed is not None:
                    expected.append(ExpectedGroup(org_id, group_id=parsed))
            continue
        expected.append(ExpectedGroup(org_id, name=value))
    return expected


def _handle_missing_groups(
    state: CoderState,
    settings: GroupSyncSettings,
    org_id: uuid.UUID,
    add: list[ExpectedGroup],
    result: LoginResult,
) -> list[uuid.UUID]:
    """`HandleMissingGroups`: name-only expectations are created (source `oidc`, no name
    validation, empty display name) when auto-create is on, then resolved by exact name;
    unknown names are dropped."""
    ids = [e.group_id for e in add if e.group_id is not None]
    missing = list(dict.fromkeys(e.name for e in add if e.group_id is None and e.name is not None))
    if settings.auto_create_missing_groups:
        for name in missing:
            if state.group_by_name(org_id, name) is None:
                created = Group(uuid.uuid4(), org_id, name, source="oidc")
                state.groups[created.id] = created
                result.created_groups.append(created.id)
    for name in missing:
        group = state.group_by_name(org_id, name)
        if group is not None:
            ids.append(group.id)
    return ids


def oidc_login(state: CoderState, user: User, claims: dict[str, Any]) -> LoginResult:
    """An OIDC login of `user` with `claims` (call under `state.lock`)."""
    flags = state.config.oidc
    if not state.config.oidc_configured:
        raise LoginRefused(404, "OIDC is not configured.")
    if user.login_type != "oidc":
        raise LoginRefused(
            403,
            f'Incorrect login type, attempting to use "oidc" but user is of login type '
            f'"{user.login_type}"',
        )
    if user.status == "suspended":
        raise LoginRefused(
            403, "Your account is suspended. Contact an admin to reactivate your account."
        )
    if flags.allowed_groups and flags.group_field:
        try:
            raw = parse_string_slice_claim(claims.get(flags.group_field))
        except ClaimError:
            raw = []
        if not set(raw) & set(flags.allowed_groups):
            raise LoginRefused(403, "Not a member of an allowed group")

    state.claims_seen.append((user.id, dict(claims)))
    now = state.now()
    user.last_seen_at = now
    if user.status == "dormant":
        user.status = "active"
        user.updated_at = now

    result = LoginResult(user.id)
    if not state.config.entitled(TEMPLATE_RBAC):  # GroupSyncEntitled
        return result

    # 1. Every group the user is in (Everyone included), per organization.
    by_org: dict[uuid.UUID, list[Group]] = {}
    for group in state.groups_of_user(user.id):
        by_org.setdefault(group.organization_id, []).append(group)

    to_add: list[uuid.UUID] = []
    to_remove: list[uuid.UUID] = []
    for org_id, existing_groups in by_org.items():
        # 2. The organization's settings; an empty field leaves it untouched.
        settings = effective_settings(state, org_id)
        if settings.field == "":
            result.skipped_organizations.append(org_id)
            continue
        # 3. Expected groups from the claim, plus Everyone.
        try:
            expected = parse_claims(settings, org_id, claims)
        except ClaimError:
            result.skipped_organizations.append(org_id)
            continue
        expected.append(ExpectedGroup(org_id, group_id=org_id))
        existing = [ExpectedGroup(org_id, g.id, g.name) for g in existing_groups]
        # 4. The symmetric difference: remove is every existing group not expected.
        add = [e for e in expected if not any(e.equal(x) for x in existing)]
        remove = [x for x in existing if not any(x.equal(e) for e in expected)]
        # 5. Missing groups by name.
        to_add.extend(_handle_missing_groups(state, settings, org_id, add, result))
        to_remove.extend(x.group_id for x in remove if x.group_id is not None)
        result.synced_organizations.append(org_id)

    # 6. Delete the removals, then insert the additions (one transaction: we hold the lock).
    for group_id in dict.fromkeys(to_remove):
        leaving = state.groups.get(group_id)
        if leaving is not None and not leaving.is_everyone and user.id in leaving.members:
            del leaving.members[user.id]
            result.removed.append(group_id)
    for group_id in dict.fromkeys(to_add):
        joining = state.groups.get(group_id)
        if (
            joining is None
            or joining.is_everyone
            or not state.is_member(joining.organization_id, user.id)
            or user.id in joining.members
        ):
            continue  # unknown IDs are ignored; existing memberships: ON CONFLICT DO NOTHING
        joining.members[user.id] = None
        result.added.append(group_id)
    return result
