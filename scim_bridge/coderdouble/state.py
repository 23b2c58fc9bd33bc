"""The double's in-memory Coder: organizations, users, memberships, groups, templates,
tokens and group-sync settings, with the invariants of Coder's schema (Everyone group,
trigger-deleted group memberships, soft-deleted users).

Every read and write of the HTTP handlers happens under `lock`, so a handler is a
transaction. The fixture helpers (`create_user`, `create_template`, ...) are for tests and
the demo: they keep the invariants but skip the API's validation where noted.
"""

from __future__ import annotations

import hmac
import secrets
import string
import threading
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from .clock import Clock, SystemClock
from .config import DoubleConfig
from .faults import CallCounter, FaultInjector
from .groupsync import LoginRefused, LoginResult, oidc_login
from .models import (
    ApiToken,
    Group,
    GroupSyncSettings,
    Organization,
    OrganizationMember,
    Template,
    User,
)
from .validation import EVERYONE, parse_go_uuid

NIL_UUID = uuid.UUID(int=0)
_TOKEN_ALPHABET = string.ascii_letters + string.digits

UserRef = User | uuid.UUID | str
OrgRef = Organization | uuid.UUID | str
GroupRef = Group | uuid.UUID


class CoderState:
    """The whole double's data. Create one per test (or through `create_coder_double`)."""

    def __init__(
        self,
        config: DoubleConfig | None = None,
        clock: Clock | None = None,
        *,
        default_organization: str = "coder",
        first_username: str = "admin",
        first_email: str = "admin@example.com",
    ) -> None:
        self.config = config if config is not None else DoubleConfig()
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.lock = threading.RLock()
        self.organizations: dict[uuid.UUID, Organization] = {}
        self.users: dict[uuid.UUID, User] = {}
        self.members: dict[tuple[uuid.UUID, uuid.UUID], OrganizationMember] = {}
        self.groups: dict[uuid.UUID, Group] = {}
        self.templates: dict[uuid.UUID, Template] = {}
        self.tokens: dict[str, ApiToken] = {}
        self.group_sync: dict[uuid.UUID, GroupSyncSettings] = {}
        self.claims_seen: list[tuple[uuid.UUID, dict[str, Any]]] = []
        self.calls = CallCounter()
        self.faults = FaultInjector()
        self.default_org = self.create_organization(
            default_organization, default_organization.capitalize(), is_default=True
        )
        self.first_user = self.create_user(
            first_username, first_email, roles=["owner"], login_type="password", name="Admin"
        )

    # --- time and ids --------------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock.now()

    # --- lookups -------------------------------------------------------------------------

    def find_org(self, ref: OrgRef) -> Organization | None:
        """`ExtractOrganizationParam`: a UUID (the nil UUID = default), a name
        (case-insensitive), or `default`."""
        with self.lock:
            if isinstance(ref, Organization):
                return self.organizations.get(ref.id)
            if isinstance(ref, uuid.UUID):
                return self.default_org if ref == NIL_UUID else self.organizations.get(ref)
            if ref == "default":
                return self.default_org
            parsed = parse_go_uuid(ref)
            if parsed is not None:
                return self.find_org(parsed)
            for org in self.organizations.values():
                if org.name.lower() == ref.lower():
                    return org
            return None

    def org(self, ref: OrgRef) -> Organization:
        found = self.find_org(ref)
        if found is None:
            raise KeyError(f"no organization {ref!r}")
        return found

    def find_user(self, ref: UserRef) -> User | None:
        """A live (not deleted) user by UUID or username (case-insensitive)."""
        with self.lock:
            if isinstance(ref, User):
                found = self.users.get(ref.id)
            elif isinstance(ref, uuid.UUID):
                found = self.users.get(ref)
            else:
                parsed = parse_go_uuid(ref)
                if parsed is not None:
                    found = self.users.get(parsed)
                else:
                    found = next(
                        (
                            u
                            for u in self.users.values()
                            if u.username.lower() == ref.lower() and not u.deleted
                        ),
                        None,
                    )
            return None if found is None or found.deleted else found

    def user(self, ref: UserRef) -> User:
        found = self.find_user(ref)
        if found is None:
            raise KeyError(f"no user {ref!r}")
        return found

    def find_user_by_email_or_username(self, email: str, username: str) -> User | None:
        """`GetUserByEmailOrUsername`: case-insensitive, live users only."""
        with self.lock:
            for candidate in self.users.values():
                if candidate.deleted:
                    continue
                if username and candidate.username.lower() == username.lower():
                    return candidate
                if email and candidate.email.lower() == email.lower():
                    return candidate
            return None

    def live_users(self) -> list[User]:
        """Live users ordered like Coder's user queries: by lower(username)."""
        with self.lock:
            return sorted(
                (u for u in self.users.values() if not u.deleted),
                key=lambda u: (u.username.lower(), str(u.id)),
            )

    def is_member(self, org_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        return (org_id, user_id) in self.members

    def member(self, org_id: uuid.UUID, user_id: uuid.UUID) -> OrganizationMember | None:
        return self.members.get((org_id, user_id))

    def org_members(self, org_id: uuid.UUID) -> list[User]:
        with self.lock:
            return [u for u in self.live_users() if self.is_member(org_id, u.id)]

    def user_org_ids(self, user_id: uuid.UUID) -> list[uuid.UUID]:
        with self.lock:
            return [
                org.id
                for org in sorted(self.organizations.values(), key=lambda o: o.created_at)
                if self.is_member(org.id, user_id)
            ]

    def find_group(self, group_id: uuid.UUID) -> Group | None:
        return self.groups.get(group_id)

    def group_by_name(self, org_id: uuid.UUID, name: str) -> Group | None:
        """`GetGroupByOrgAndName`: exact, case-sensitive."""
        with self.lock:
            return next(
                (g for g in self.groups.values() if g.organization_id == org_id and g.name == name),
                None,
            )

    def everyone(self, org: OrgRef) -> Group:
        return self.groups[self.org(org).id]

    def group_members(self, group: Group) -> list[User]:
        """`group_members_expanded`: Everyone = every organization member; others = the
        stored members. Ordered by lower(username)."""
        with self.lock:
            if group.is_everyone:
                return self.org_members(group.organization_id)
            return [u for u in self.live_users() if u.id in group.members]

    def user_in_group(self, group: Group, user_id: uuid.UUID) -> bool:
        if group.is_everyone:
            return self.is_member(group.organization_id, user_id)
        return user_id in group.members

    def groups_of_user(self, user_id: uuid.UUID) -> list[Group]:
        """`GetGroups(HasMemberID)`: every group the user is in, Everyone included."""
        with self.lock:
            return [g for g in self.groups.values() if self.user_in_group(g, user_id)]

    def find_template(self, template_id: uuid.UUID) -> Template | None:
        return self.templates.get(template_id)

    # --- tokens --------------------------------------------------------------------------

    def create_token(self, user: UserRef, name: str = "", lifetime: timedelta | None = None) -> str:
        """Issue an API token `<10-char id>-<secret>` for a user (fixture helper)."""
        with self.lock:
            owner = self.user(user)
            token_id = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(10))
            secret = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(22))
            expires = None if lifetime is None else self.now() + lifetime
            token = ApiToken(token_id, secret, owner.id, name or f"token-{token_id}", expires)
            self.tokens[token_id] = token
            return token.key

    def peek(self, key: str) -> User | None:
        """The live user of a valid token, without the side effects of authenticating."""
        with self.lock:
            token_id, _, secret = key.partition("-")
            token = self.tokens.get(token_id)
            if token is None or not hmac.compare_digest(token.secret, secret):
                return None
            if token.expires_at is not None and token.expires_at <= self.now():
                return None
            owner = self.users.get(token.user_id)
            return None if owner is None or owner.deleted else owner

    def authenticate(self, key: str) -> tuple[User | None, str]:
        """The user of an API token, or None and why (`SplitAPIToken` then lookup). Like
        Coder's middleware, it marks the user seen and wakes a dormant one."""
        with self.lock:
            token_id, dash, secret = key.partition("-")
            if not dash or len(token_id) != 10 or not secret:
                return None, "Invalid API key format: " + key[:20]
            token = self.tokens.get(token_id)
            if token is None or not hmac.compare_digest(token.secret, secret):
                return None, "API key is invalid."
            if token.expires_at is not None and token.expires_at <= self.now():
                return None, "API key expired."
            owner = self.users.get(token.user_id)
            if owner is None or owner.deleted:
                return None, "API key is invalid."
            if owner.status == "suspended":
                return None, "Your account is suspended. Contact an admin to reactivate it."
            if owner.status == "dormant":  # ActivateDormantUser
                owner.status = "active"
                owner.updated_at = self.now()
            owner.last_seen_at = self.now()
            return owner, ""

    # --- fixture helpers -------------------------------------------------------------------

    def create_organization(
        self, name: str, display_name: str = "", *, is_default: bool = False
    ) -> Organization:
        """An organization and its Everyone group (`id = organization id`)."""
        with self.lock:
            now = self.now()
            org = Organization(uuid.uuid4(), name, display_name or name, now, now, is_default)
            self.organizations[org.id] = org
            self.groups[org.id] = Group(org.id, org.id, EVERYONE)
            return org

    def create_user(
        self,
        username: str,
        email: str,
        *,
        name: str = "",
        status: str = "active",
        login_type: str = "oidc",
        roles: Iterable[str] = (),
        organizations: Iterable[OrgRef] | None = None,
        service_account: bool = False,
    ) -> User:
        """A user, member of `organizations` (default: the default organization).
        Refuses duplicates like the API does (case-insensitive username/email)."""
        with self.lock:
            if self.find_user_by_email_or_username(email, username) is not None:
                raise ValueError(f"user {username!r} or {email!r} already exists")
            now = self.now()
            user = User(
                uuid.uuid4(),
                username,
                email,
                now,
                now,
                name=name,
                status=status,
                login_type=login_type,
                roles=list(roles),
                is_service_account=service_account,
            )
            self.users[user.id] = user
            targets = [self.default_org] if organizations is None else list(organizations)
            for org in targets:
                self.add_org_member(org, user)
            return user

    def add_org_member(
        self, org: OrgRef, user: UserRef, roles: Iterable[str] = ()
    ) -> OrganizationMember:
        with self.lock:
            organization = self.org(org)
            member_user = self.user(user)
            existing = self.member(organization.id, member_user.id)
            if existing is not None:
                return existing
            now = self.now()
            membership = OrganizationMember(member_user.id, organization.id, now, now, list(roles))
            self.members[(organization.id, member_user.id)] = membership
            return membership

    def remove_org_member(self, org: OrgRef, user: UserRef) -> None:
        """Remove a membership and, like the trigger
        `trigger_delete_group_members_on_org_member_delete`, the user's groups there."""
        with self.lock:
            organization = self.org(org)
            member_user = self.user(user)
            self.members.pop((organization.id, member_user.id), None)
            for group in self.groups.values():
                if group.organization_id == organization.id:
                    group.members.pop(member_user.id, None)

    def delete_user(self, user: UserRef) -> None:
        """Soft delete: tokens revoked, organization (and so group) memberships removed."""
        with self.lock:
            target = self.user(user)
            for org_id in self.user_org_ids(target.id):
                self.remove_org_member(org_id, target)
            for token_id in [t.id for t in self.tokens.values() if t.user_id == target.id]:
                del self.tokens[token_id]
            target.deleted = True
            target.updated_at = self.now()

    def create_group(
        self,
        org: OrgRef,
        name: str,
        *,
        display_name: str = "",
        source: str = "user",
        members: Iterable[UserRef] = (),
        avatar_url: str = "",
        quota_allowance: int = 0,
    ) -> Group:
        """A group, without the API's name validation (like group sync's auto-create)."""
        with self.lock:
            organization = self.org(org)
            if self.group_by_name(organization.id, name) is not None:
                raise ValueError(f"group {name!r} already exists in {organization.name}")
            group = Group(
                uuid.uuid4(),
                organization.id,
                name,
                display_name,
                avatar_url,
                quota_allowance,
                source,
            )
            self.groups[group.id] = group
            self.add_group_members(group, members)
            return group

    def add_group_members(self, group: GroupRef, users: Iterable[UserRef]) -> None:
        with self.lock:
            target = self.groups[group.id if isinstance(group, Group) else group]
            if target.is_everyone:
                raise ValueError("the Everyone group cannot be edited")
            for ref in users:
                member_user = self.user(ref)
                if not self.is_member(target.organization_id, member_user.id):
                    raise ValueError(f"{member_user.username} is not an organization member")
                target.members[member_user.id] = None

    def remove_group_members(self, group: GroupRef, users: Iterable[UserRef]) -> None:
        with self.lock:
            target = self.groups[group.id if isinstance(group, Group) else group]
            for ref in users:
                target.members.pop(self.user(ref).id, None)

    def delete_group(self, group: GroupRef) -> None:
        with self.lock:
            self.groups.pop(group.id if isinstance(group, Group) else group, None)

    def create_template(
        self,
        org: OrgRef,
        name: str,
        *,
        display_name: str = "",
        description: str = "",
        created_by: UserRef | None = None,
        disable_everyone_group_access: bool = False,
        deprecation_message: str = "",
        user_acl: dict[str, str] | None = None,
        group_acl: dict[str, str] | None = None,
    ) -> Template:
        """A template as `POST /organizations/{org}/templates` makes it: Everyone gets `use`
        unless `disable_everyone_group_access` (contract §3.4)."""
        with self.lock:
            organization = self.org(org)
            creator = self.first_user if created_by is None else self.user(created_by)
            now = self.now()
            acl: dict[str, str] = {}
            if not disable_everyone_group_access:
                acl[str(organization.id)] = "use"
            acl.update(group_acl or {})
            template = Template(
                uuid.uuid4(),
                organization.id,
                name,
                now,
                now,
                creator.id,
                uuid.uuid4(),
                display_name=display_name,
                description=description,
                deprecation_message=deprecation_message,
                user_acl=dict(user_acl or {}),
                group_acl=acl,
            )
            self.templates[template.id] = template
            return template

    def delete_template(self, template: Template | uuid.UUID) -> None:
        with self.lock:
            self.templates[
                template.id if isinstance(template, Template) else template
            ].deleted = True

    def set_group_sync(self, org: OrgRef, settings: GroupSyncSettings) -> None:
        """Store runtime group-sync settings for an organization (as a PATCH would)."""
        with self.lock:
            self.group_sync[self.org(org).id] = settings.copy()

    def set_entitlement(self, feature: str, enabled: bool) -> None:
        with self.lock:
            if enabled:
                self.config.entitlements.add(feature)
            else:
                self.config.entitlements.discard(feature)

    # --- login-time group sync (contract §9) -------------------------------------------------

    def login(self, user: UserRef, claims: dict[str, Any]) -> LoginResult:
        """Simulate an OIDC login of `user` carrying `claims` (the merged ID token and
        userinfo claims): Coder's `SyncGroups` steps 1-6. Raises LoginRefused."""
        with self.lock:
            return oidc_login(self, self.user(user), claims)

    # --- inspection (for assertions) -----------------------------------------------------------

    def member_usernames(self, group: GroupRef) -> set[str]:
        with self.lock:
            target = self.groups[group.id if isinstance(group, Group) else group]
            return {u.username for u in self.group_members(target)}

    def groups_named(self, org: OrgRef | None = None) -> dict[str, Group]:
        with self.lock:
            organization = self.default_org if org is None else self.org(org)
            return {g.name: g for g in self.groups.values() if g.organization_id == organization.id}


__all__ = ["CoderState", "LoginRefused", "LoginResult"]
