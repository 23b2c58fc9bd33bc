"""The tables scim-bridge keeps: SCIM users and groups, group members, the filter index, tokens.

A resource's attributes live in ``data`` (JSON, as SCIM returns them), except what must be
relational: identifiers, uniqueness keys, the version, and group members (the tree is made of
them). ``attribute_index`` flattens every attribute so that any SCIM filter becomes an indexed
SQL query (see ``store/filters.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Column, DateTime, Index, String, Table, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

# Sort keys and string comparisons must follow code-point order, like Python's; PostgreSQL's
# default collation (e.g. en_US.UTF-8) would not, so string columns compared in filters use "C".
C_COLLATION = String().with_variant(String(collation="C"), "postgresql")
C_TEXT = Text().with_variant(Text(collation="C"), "postgresql")


def _utc() -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=False)


class ScimUser(SQLModel, table=True):
    __tablename__ = "scim_user"
    # Pages without sortBy come in (created, id) order.
    __table_args__ = (Index("ix_scim_user_created", "created", "id"),)

    id: str = Field(primary_key=True, max_length=36)
    user_name: str = Field(max_length=512)
    user_name_key: str = Field(sa_type=C_COLLATION, unique=True, max_length=512)
    display_name: str | None = Field(default=None, max_length=512)
    external_id: str | None = Field(default=None, max_length=512, index=True)
    active: bool = True
    data: str = Field(sa_type=Text)
    version: int = 1
    created: datetime = Field(sa_column=_utc())
    last_modified: datetime = Field(sa_column=_utc())


class ScimGroup(SQLModel, table=True):
    __tablename__ = "scim_group"
    __table_args__ = (Index("ix_scim_group_created", "created", "id"),)

    id: str = Field(primary_key=True, max_length=36)
    display_name: str = Field(max_length=512)
    display_name_key: str = Field(sa_type=C_COLLATION, unique=True, max_length=512)
    external_id: str | None = Field(default=None, max_length=512, index=True)
    data: str = Field(sa_type=Text)
    version: int = 1
    created: datetime = Field(sa_column=_utc())
    last_modified: datetime = Field(sa_column=_utc())


class GroupMember(SQLModel, table=True):
    """A direct member of a group: a user, or a group (a parent→child edge of the tree)."""

    __tablename__ = "group_member"
    __table_args__ = (Index("ix_group_member_member", "member_id", "group_id"),)

    group_id: str = Field(primary_key=True, foreign_key="scim_group.id", ondelete="CASCADE")
    member_id: str = Field(primary_key=True, max_length=36)
    member_type: str = Field(max_length=5)  # "User" or "Group"
    display: str | None = Field(default=None, max_length=512)  # as the client sent it


class AttributeIndex(SQLModel, table=True):
    """One attribute value of a resource, in the form SCIM comparisons use.

    ``path`` names the attribute (see ``store/flatten.py``); ``item`` tells the entries of a
    multi-valued attribute apart, so that ``emails[type eq "work" and value co "x"]`` can ask
    for both conditions on the same entry. ``text`` holds strings (already case-folded when
    the attribute is not caseExact), booleans and ISO timestamps; ``number`` holds numbers.
    """

    __tablename__ = "attribute_index"
    __table_args__ = (
        Index("ix_attribute_lookup", "resource_type", "path", "text"),
        Index("ix_attribute_number", "resource_type", "path", "number"),
        Index("ix_attribute_resource", "resource_id", "path"),
    )

    id: int | None = Field(default=None, primary_key=True)
    resource_type: str = Field(max_length=5)
    resource_id: str = Field(max_length=36)
    path: str = Field(max_length=255)
    item: int = 0
    kind: str = Field(max_length=1)  # s: string, b: boolean, n: number, d: datetime, e: entry
    text: str | None = Field(default=None, sa_type=C_TEXT)
    number: float | None = None


class ApiToken(SQLModel, table=True):
    """A bearer token of a SCIM client; only its SHA-256 digest is stored."""

    __tablename__ = "api_token"
    __table_args__ = (UniqueConstraint("name", "scope"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128)
    scope: str = Field(default="scim", max_length=16)
    digest: str = Field(max_length=64, unique=True)
    created: datetime = Field(sa_column=_utc())
    last_used: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class EffectiveMember(SQLModel, table=True):
    """A user's effective membership of a group, with how many source groups give it.

    ``sources`` counts the groups in sources(G) (see hierarchy/graph.py) the user is a direct
    member of; the membership exists while it is positive. Deactivated users keep their rows
    and are filtered out when read.
    """

    __tablename__ = "effective_member"
    __table_args__ = (Index("ix_effective_member_user", "user_id", "group_id"),)

    group_id: str = Field(primary_key=True, max_length=36)
    user_id: str = Field(primary_key=True, max_length=36)
    sources: int


class HierarchyState(SQLModel, table=True):
    """The shared state of the group tree: its version, and the hierarchy file in force.

    ``version`` changes with every change of structure; each process caches the tree and
    reloads it when the version differs. Its row is also the lock that orders structure
    changes against member changes on PostgreSQL.
    """

    __tablename__ = "hierarchy_state"

    id: int = Field(default=1, primary_key=True)
    version: str = Field(max_length=32)
    spec: str | None = Field(default=None, sa_type=Text)
    spec_source: str | None = Field(default=None, max_length=1024)
    naming_delimiter: str | None = Field(default=None, max_length=16)


class SyncChange(SQLModel, table=True):
    """The change journal: what a SCIM write changed, committed with it, until synced to Coder.

    ``kind`` is "group" (its effective members, name or existence changed) or "user" (its
    active flag, e-mail or userName changed: every group it is in, and its Coder account).
    """

    __tablename__ = "sync_change"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=8)
    ref_id: str = Field(max_length=36)
    created: datetime = Field(sa_column=_utc())


class CoderGroupLink(SQLModel, table=True):
    """The Coder group a SCIM group is written to. A row with no ``coder_group_id`` records a
    creation under way (so a crash between Coder's answer and our commit is adopted by name,
    never duplicated); ``owned`` is false for groups adopted by name, which are never deleted."""

    __tablename__ = "coder_group_link"

    scim_group_id: str = Field(primary_key=True, max_length=36)
    coder_group_id: str | None = Field(default=None, max_length=36, unique=True)
    coder_name: str = Field(max_length=255)
    owned: bool = True


class SyncLease(SQLModel, table=True):
    """Only the holder of an unexpired lease syncs, so replicas can share one database."""

    __tablename__ = "sync_lease"

    name: str = Field(primary_key=True, max_length=32)
    holder: str | None = Field(default=None, max_length=64)
    expires_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class MappingKey(SQLModel, table=True):
    """A key of Coder's group-sync mapping the bridge has written (mapping mode), so that the
    key of a renamed or deleted SCIM group is emptied, not left granting its old groups."""

    __tablename__ = "coder_mapping_key"

    given: str = Field(primary_key=True, max_length=1024)


class SyncStatus(SQLModel, table=True):
    """The last sync run, for the admin API (a JSON report)."""

    __tablename__ = "sync_status"

    name: str = Field(primary_key=True, max_length=32)
    report: str = Field(sa_type=Text)
    updated: datetime = Field(sa_column=_utc())


def table_of(model: type[SQLModel]) -> Table:
    """The SQLAlchemy Core table of a SQLModel table class (queries here use Core)."""
    return cast(Table, model.__table__)  # type: ignore[attr-defined]


USERS = table_of(ScimUser)
GROUPS = table_of(ScimGroup)
MEMBERS = table_of(GroupMember)
INDEX = table_of(AttributeIndex)
TOKENS = table_of(ApiToken)
EFFECTIVE = table_of(EffectiveMember)
HIERARCHY_STATE = table_of(HierarchyState)
SYNC_CHANGES = table_of(SyncChange)
CODER_LINKS = table_of(CoderGroupLink)
MAPPING_KEYS = table_of(MappingKey)
SYNC_LEASES = table_of(SyncLease)
SYNC_STATUS = table_of(SyncStatus)
