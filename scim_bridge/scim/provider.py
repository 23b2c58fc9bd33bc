"""What the SCIM service serves and announces: schemas, resource types, capabilities, tolerances."""

from __future__ import annotations

import email_validator
from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    EnterpriseUser,
    ETag,
    External,
    Filter,
    Group,
    Pagination,
    Patch,
    Reference,
    ResourceType,
    ScimPolicy,
    ScimProvider,
    ServiceProviderConfig,
    Sort,
    User,
)

from ..config import Settings

# email-validator (behind scim2-models' Email.value) refuses special-use domains. Corporate
# directories often mail on `.local` (Active Directory, Okta's own samples use okta.local);
# such users must be provisioned, so `.local` is accepted. The other reserved names stay refused.
if "local" in email_validator.SPECIAL_USE_DOMAIN_NAMES:
    email_validator.SPECIAL_USE_DOMAIN_NAMES.remove("local")

BEARER = AuthenticationScheme(
    type=AuthenticationScheme.Type.oauthbearertoken,
    name="OAuth Bearer Token",
    description="Authentication with a bearer token: a scim-bridge token "
    "(scim-bridge token create), or an OAuth 2.0 access token when JWT validation is configured",
    spec_uri=Reference[External]("https://www.rfc-editor.org/rfc/rfc6750"),
    primary=True,
)

# Tolerances for what Microsoft Entra sends (documented in docs/entra.md). Neither changes the
# meaning of an RFC-conformant request: a `remove` carrying a `value` is outside the RFC, and an
# `add`/`replace` whose filter matches nothing creates the entry the filter describes instead of
# failing with noTarget.
IDP_POLICY = ScimPolicy(
    unknown=ScimPolicy.Unknown.forbid,
    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
)


def service_provider_config(settings: Settings) -> ServiceProviderConfig:
    """The capabilities scim-bridge really has (bulk and password changes it does not)."""
    return ServiceProviderConfig(
        documentation_uri=Reference[External](
            "https://github.com/scim-bridge/scim-bridge/blob/main/docs/scim.md"
        ),
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=settings.max_page_size),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=True),
        etag=ETag(supported=True),
        pagination=Pagination(
            index=True,
            cursor=False,
            default_pagination_method=Pagination.DefaultPaginationMethod.index,
            default_page_size=min(settings.default_page_size, settings.max_page_size),
            max_page_size=settings.max_page_size,
        ),
        authentication_schemes=[BEARER],
    )


def build_provider(settings: Settings) -> ScimProvider:
    """Users (with the Enterprise extension) and Groups, as RFC 7643 defines them."""
    return ScimProvider(
        [User, Group, EnterpriseUser],
        [ResourceType.from_resource(User[EnterpriseUser]), ResourceType.from_resource(Group)],
        config=service_provider_config(settings),
        policy=IDP_POLICY,
    )
