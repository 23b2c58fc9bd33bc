"""Helpers shared by handlers: user filtering (§4.2) and the `after_id` cursor (§4.1)."""

from __future__ import annotations

import uuid

from ..models import User
from ..query import UserFilter, ilike_contains
from ..state import CoderState


def user_matches(user: User, query: UserFilter) -> bool:
    """`GetUsers`' WHERE clause for the parsed `q`."""
    if query.search and not (
        ilike_contains(user.email, query.search) or ilike_contains(user.username, query.search)
    ):
        return False
    if query.name and not ilike_contains(user.name, query.name):
        return False
    if query.status and user.status not in query.status:
        return False
    if query.login_type and user.login_type not in query.login_type:
        return False
    if query.service_account is not None and user.is_service_account != query.service_account:
        return False
    if query.roles and "member" not in query.roles and not set(query.roles) & set(user.roles):
        return False
    if query.github_com_user_id:
        return False  # the double keeps no GitHub ids
    if query.created_after and not user.created_at > query.created_after:
        return False
    if query.created_before and not user.created_at < query.created_before:
        return False
    seen = user.last_seen_at
    if query.last_seen_after and (seen is None or not seen > query.last_seen_after):
        return False
    return not (query.last_seen_before and seen is not None and not seen < query.last_seen_before)


def filter_users(users: list[User], query: UserFilter) -> list[User]:
    return [u for u in users if user_matches(u, query)]


def after_cursor(state: CoderState, users: list[User], after_id: uuid.UUID | None) -> list[User]:
    """Rows are ordered by lower(username); `after_id` keeps the usernames after that
    user's. An unknown cursor matches nothing (SQL comparison with NULL)."""
    if after_id is None:
        return users
    cursor = state.users.get(after_id)
    if cursor is None:
        return []
    return [u for u in users if u.username.lower() > cursor.username.lower()]
