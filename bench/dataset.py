"""The benchmark's data: deterministic SCIM Users and Groups, the same for every server.

Every user, group and identifier derives from the index and the seed, so the SQL preload,
the in-memory reference and the load generator agree on ids without sharing state.
"""

from __future__ import annotations

import functools
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@dataclass(frozen=True)
class Dataset:
    """``users`` users, ``groups`` groups of ``members`` users each."""

    users: int
    groups: int
    members: int = 20
    seed: int = 7

    def __post_init__(self) -> None:
        if self.users < 1 or self.groups < 0 or self.members < 0:
            raise ValueError("users must be >= 1, groups and members >= 0")
        if self.members > self.users:
            raise ValueError(f"groups of {self.members} members need at least as many users")

    def user_ids(self) -> list[str]:
        return _ids(self.seed, "user", self.users)

    def group_ids(self) -> list[str]:
        return _ids(self.seed, "group", self.groups)

    def member_indexes(self, group: int) -> list[int]:
        """The users of group ``group``: consecutive users, so each user is in about
        ``groups * members / users`` groups (one, at the default scale)."""
        start = group * self.members
        return [(start + k) % self.users for k in range(self.members)]

    def iter_users(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for index, user_id in enumerate(self.user_ids()):
            yield user_id, user_payload(index)

    def iter_groups(self) -> Iterator[tuple[str, dict[str, Any], list[str]]]:
        """(group id, payload without members, member user ids) of each group."""
        user_ids = self.user_ids()
        for index, group_id in enumerate(self.group_ids()):
            members = [user_ids[i] for i in self.member_indexes(index)]
            yield group_id, group_payload(index), members


@functools.lru_cache(maxsize=8)
def _ids(seed: int, kind: str, count: int) -> list[str]:
    """``count`` uuid4-shaped ids, the same for the same seed (cached: lists are long)."""
    rng = random.Random(f"{seed}:{kind}")
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]


def user_name(index: int) -> str:
    return f"user{index:07d}@example.com"


def group_name(index: int) -> str:
    return f"group-{index:05d}"


def user_payload(index: int, prefix: str = "user") -> dict[str, Any]:
    """A user as an IdP provisions it (Okta/Entra send about this much)."""
    given, family = f"Given{index}", f"Family{index}"
    name = f"{prefix}{index:07d}@example.com"
    return {
        "schemas": [CORE_USER, ENTERPRISE_USER],
        "userName": name,
        "externalId": f"{prefix}-ext-{index:07d}",
        "name": {"givenName": given, "familyName": family, "formatted": f"{given} {family}"},
        "displayName": f"{given} {family}",
        "emails": [{"value": name, "type": "work", "primary": True}],
        "active": True,
        ENTERPRISE_USER: {"employeeNumber": str(index), "department": f"dept-{index % 50}"},
    }


def group_payload(index: int) -> dict[str, Any]:
    return {
        "schemas": [CORE_GROUP],
        "displayName": group_name(index),
        "externalId": f"group-ext-{index:05d}",
    }


def patch_add_member(user_id: str) -> dict[str, Any]:
    return {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": user_id}]}],
    }
