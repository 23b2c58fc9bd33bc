"""A faithful in-process double of Coder's REST API (groups, users, organizations, IdP group
sync, template ACLs), built from the Coder contract (coder-contract.md), for the tests and
`scim-bridge demo`.

    app, state = create_coder_double()
    token = state.create_token(state.first_user)
"""

from .app import CoderDouble, create_coder_double
from .clock import Clock, ManualClock, SystemClock
from .config import TEMPLATE_RBAC, DoubleConfig, LegacyOidcGroupFlags
from .faults import CallCounter, FaultInjector, InjectedFault
from .models import (
    ApiToken,
    Group,
    GroupSyncSettings,
    Organization,
    OrganizationMember,
    Template,
    User,
)
from .state import CoderState, LoginRefused, LoginResult

__all__ = [
    "TEMPLATE_RBAC",
    "ApiToken",
    "CallCounter",
    "Clock",
    "CoderDouble",
    "CoderState",
    "DoubleConfig",
    "FaultInjector",
    "Group",
    "GroupSyncSettings",
    "InjectedFault",
    "LegacyOidcGroupFlags",
    "LoginRefused",
    "LoginResult",
    "ManualClock",
    "Organization",
    "OrganizationMember",
    "SystemClock",
    "Template",
    "User",
    "create_coder_double",
]
