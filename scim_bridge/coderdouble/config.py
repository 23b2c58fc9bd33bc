"""How a double is set up: licence entitlements, rate limit, OIDC, token lifetimes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

TEMPLATE_RBAC = "template_rbac"

FEATURE_TITLES: dict[str, str] = {
    TEMPLATE_RBAC: "Template RBAC",
    "service_accounts": "Service Accounts",
    "multiple_organizations": "Multiple Organizations",
    "scim": "SCIM",
    "custom_roles": "Custom Roles",
}


@dataclass
class LegacyOidcGroupFlags:
    """The deployment flags of contract §5.3 (`CODER_OIDC_GROUP_*`, `CODER_OIDC_ALLOWED_GROUPS`).
    They give the default organization its group-sync settings until the first PATCH
    stores runtime settings (the legacy fallback of §5.1)."""

    group_field: str = ""
    group_mapping: dict[str, str] = field(default_factory=dict)
    group_regex_filter: str | None = ".*"
    group_auto_create: bool = False
    allowed_groups: list[str] = field(default_factory=list)


@dataclass
class DoubleConfig:
    """Everything a test may want to vary. Mutable at run time (under `CoderState.lock`)."""

    rate_limit: int = 512  # CODER_API_RATE_LIMIT; <= 0 disables
    rate_limit_window: float = 60.0  # seconds; Coder uses one minute
    rate_limit_headers: bool = False  # httprate's X-RateLimit-*/Retry-After (unverified, §1.4)
    entitlements: set[str] = field(default_factory=lambda: {TEMPLATE_RBAC})
    oidc_configured: bool = True
    oidc: LegacyOidcGroupFlags = field(default_factory=LegacyOidcGroupFlags)
    organization_sync_enabled: bool = False
    max_token_lifetime: timedelta = timedelta(hours=876_600)  # CODER_MAX_TOKEN_LIFETIME
    max_admin_token_lifetime: timedelta = timedelta(hours=168)  # CODER_MAX_ADMIN_TOKEN_LIFETIME

    def entitled(self, feature: str) -> bool:
        return feature in self.entitlements
