"""The double's records: what Coder keeps in its tables, reduced to what the contract needs."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from datetime import datetime

ZERO_TIME = datetime(1, 1, 1)  # Go's zero time.Time: "0001-01-01T00:00:00Z"

SITE_ROLES: dict[str, str] = {
    "owner": "Owner",
    "user-admin": "User Admin",
    "template-admin": "Template Admin",
    "auditor": "Auditor",
    "member": "Member",
}
ORG_ROLES: dict[str, str] = {
    "organization-admin": "Organization Admin",
    "organization-user-admin": "Organization User Admin",
    "organization-template-admin": "Organization Template Admin",
    "organization-auditor": "Organization Auditor",
    "organization-member": "Organization Member",
}


@dataclass
class Organization:
    id: uuid.UUID
    name: str
    display_name: str
    created_at: datetime
    updated_at: datetime
    is_default: bool = False
    icon: str = ""
    description: str = ""
    default_org_member_roles: list[str] = field(default_factory=list)


@dataclass
class User:
    id: uuid.UUID
    username: str
    email: str
    created_at: datetime
    updated_at: datetime
    name: str = ""
    avatar_url: str = ""
    last_seen_at: datetime | None = None
    status: str = "dormant"
    login_type: str = "password"
    is_service_account: bool = False
    theme_preference: str = ""
    roles: list[str] = field(default_factory=list)  # site roles; `member` is implicit
    deleted: bool = False
    password: str = ""


@dataclass
class OrganizationMember:
    user_id: uuid.UUID
    organization_id: uuid.UUID
    created_at: datetime
    updated_at: datetime
    roles: list[str] = field(default_factory=list)


@dataclass
class Group:
    """A group. The Everyone group (`id == organization_id`) has no stored members: its
    membership is every organization member (the `group_members_expanded` view)."""

    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    display_name: str = ""
    avatar_url: str = ""
    quota_allowance: int = 0
    source: str = "user"
    members: dict[uuid.UUID, None] = field(default_factory=dict)  # an ordered set

    @property
    def is_everyone(self) -> bool:
        return self.id == self.organization_id


@dataclass
class Template:
    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    created_at: datetime
    updated_at: datetime
    created_by_id: uuid.UUID
    active_version_id: uuid.UUID
    display_name: str = ""
    description: str = ""
    icon: str = ""
    deprecation_message: str = ""
    deleted: bool = False
    user_acl: dict[str, str] = field(default_factory=dict)  # user uuid -> "admin" | "use"
    group_acl: dict[str, str] = field(default_factory=dict)  # group uuid -> "admin" | "use"


@dataclass
class GroupSyncSettings:
    """`GroupSyncSettings` (contract §5.1). `mapping` None = Go's nil map; a mapping value
    None = a nil slice (what removing from an absent key leaves behind)."""

    field: str = ""
    mapping: dict[str, list[str] | None] | None = None
    regex_filter: str | None = None
    auto_create_missing_groups: bool = False
    legacy_group_name_mapping: dict[str, str] = dataclasses.field(default_factory=dict)

    def copy(self) -> GroupSyncSettings:
        return GroupSyncSettings(
            field=self.field,
            mapping=None
            if self.mapping is None
            else {k: None if v is None else list(v) for k, v in self.mapping.items()},
            regex_filter=self.regex_filter,
            auto_create_missing_groups=self.auto_create_missing_groups,
            legacy_group_name_mapping=dict(self.legacy_group_name_mapping),
        )


@dataclass
class ApiToken:
    id: str
    secret: str
    user_id: uuid.UUID
    name: str
    expires_at: datetime | None = None

    @property
    def key(self) -> str:
        return f"{self.id}-{self.secret}"
