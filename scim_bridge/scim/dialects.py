"""Normalisation of what Okta and Microsoft Entra send, before scim2-models validates it.

Most IdP deviations need nothing here:

- scim2-models reads PATCH ``op`` case-insensitively (Entra's ``Add``/``Replace``/``Remove``)
  and, in its lax mode, reads ``"True"``/``"False"`` strings as booleans (Entra's ``active``);
- its ScimPolicy (see ``scim/provider.py``) applies a ``remove`` whose ``value`` lists the
  members to remove, and creates the entry an unmatched ``emails[type eq "work"].value``
  describes;
- scim2-server ignores query parameters it does not know (Entra's ``aadOptscim062020``) and
  the read-only attributes of a PUT body (Okta's GET-then-PUT sends ``groups`` and ``meta``).

What remains is rewritten here, one function per documented deviation. Every rule rewrites
only a shape that RFC 7643/7644 does not allow (or, for an unqualified extension attribute,
one that scim2-models refuses) into the one meaning it can have, so an RFC-conformant request
reaches the handler unchanged, byte for byte (see tests/test_dialects.py). docs/entra.md and
docs/okta.md list the deviations and the rule that handles each.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from scim2_models import EnterpriseUser, Group, Path, Resource, User

Json = dict[str, Any]
ResourceModel = type[Resource[Any]]

ENTERPRISE_USER = str(EnterpriseUser.__schema__)
MICROSOFT_GROUP_SCHEMA = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"

# The resource models of the endpoints scim-bridge serves (as scim/provider.py declares them).
MODELS: dict[str, ResourceModel] = {"users": User[EnterpriseUser], "groups": Group}


def normalize_request(method: str, path: str, body: bytes) -> bytes:
    """Return the body with IdP deviations rewritten to RFC 7644 form.

    ``path`` is the request path below the SCIM root (``/Users/2819c223``). A body that no
    rule changes, or that is not a JSON object, is returned as it came.
    """
    model = MODELS.get(path.strip("/").split("/")[0].lower())
    if model is None or not body:
        return body
    try:
        payload = json.loads(body)
    except ValueError:
        return body  # the service answers invalidSyntax
    if not isinstance(payload, dict):
        return body
    if method.upper() == "PATCH":
        normalized = normalize_patch(model, payload)
    elif method.upper() in ("POST", "PUT"):
        normalized = normalize_resource(model, payload)
    else:
        return body
    if normalized == payload:
        return body
    return json.dumps(normalized, ensure_ascii=False).encode()


# -- PATCH operations ------------------------------------------------------------------------

OperationRule = Callable[[ResourceModel, Json], list[Json]]


def normalize_patch(model: ResourceModel, payload: Json) -> Json:
    """Apply every operation rule, in order, to each operation of a PatchOp."""
    operations = payload.get("Operations")
    if not isinstance(operations, list):
        return payload
    for rule in OPERATION_RULES:
        rewritten: list[Any] = []
        for operation in operations:
            rewritten += rule(model, operation) if isinstance(operation, dict) else [operation]
        operations = rewritten
    return {**payload, "Operations": operations}


def drop_nulls_in_remove_value(model: ResourceModel, operation: Json) -> list[Json]:
    """Entra (tutorial, "Update Group [Remove Members]"): ``{"$ref": null, "value": id}``.

    Entra lists the members a ``Remove`` deletes in its ``value``, each with a null ``$ref``.
    ScimPolicy ``remove_value_as_filter=apply`` turns the keys of each entry into a filter
    (``members[value eq id and $ref eq null]``), which matches no stored member, since every
    stored member has a ``$ref``: the member would silently stay. A null key selects nothing,
    so it is dropped. RFC 7644 §3.5.2.2 gives ``remove`` no ``value`` at all.
    """
    if _op(operation) != "remove" or "value" not in operation:
        return [operation]
    value = operation["value"]
    if isinstance(value, dict):
        return [{**operation, "value": _without_nulls(value)}]
    if isinstance(value, list):
        entries = [_without_nulls(e) if isinstance(e, dict) else e for e in value]
        return [{**operation, "value": entries}]
    return [operation]


def qualify_extension_paths(model: ResourceModel, operation: Json) -> list[Json]:
    """Entra (tutorial, "Example 5. … update a user"): ``"path": "manager"``.

    Entra names the enterprise extension's ``manager`` without its schema URN. RFC 7644 §3.10
    says clients SHOULD qualify extension attributes, and scim2-models resolves only qualified
    ones (``invalidPath``). A bare name that the core schema does not declare and exactly one
    extension does can mean only that attribute, so it gets that extension's URN.
    """
    path = operation.get("path")
    if not isinstance(path, str) or not path or _path(model, path) is not None:
        return [operation]
    candidates = [
        f"{urn}:{path}"
        for urn in model.get_extension_models()
        if _path(model, f"{urn}:{path}") is not None
    ]
    if len(candidates) != 1:
        return [operation]
    return [{**operation, "path": candidates[0]}]


def split_filtered_value_keys(model: ResourceModel, operation: Json) -> list[Json]:
    """Entra (known issues, aadOptscim062020, "Requests to replace multiple attributes").

    With the flag, Entra sends one path-less ``replace`` whose value mixes attribute paths,
    some with a value filter: ``{"name.givenName": …, "emails[type eq \\"work\\"].value": …}``.
    scim2-models writes dotted and URN keys itself; a key with a filter is not an attribute
    (RFC 7644 §3.5.2.3) and is refused. Each such key becomes an operation of its own, with
    the key as its path, so that ScimPolicy can create the entry when it is missing.
    """
    value = operation.get("value")
    if operation.get("path") or _op(operation) not in ("add", "replace"):
        return [operation]
    if not isinstance(value, dict) or not any("[" in key for key in value):
        return [operation]
    plain = {key: item for key, item in value.items() if "[" not in key}
    split = [
        {"op": operation["op"], "path": key, "value": item}
        for key, item in value.items()
        if "[" in key
    ]
    kept = [{**operation, "value": plain}] if plain else []
    return [*kept, *split]


def unwrap_single_valued_list(model: ResourceModel, operation: Json) -> list[Json]:
    """Entra without aadOptscim062020: a single value wrapped in a list of one entry.

    Entra writes single-valued attributes as it writes multi-valued ones:
    ``{"op": "Add", "path": "nickName", "value": [{"value": "Babs"}]}`` (known issues, before
    the flag) and ``{"op": "Add", "path": "manager", "value": [{"$ref": …, "value": id}]}``
    (tutorial, Example 5). A single-valued attribute never takes a list (RFC 7643 §2.4), so
    the one entry is the value: its ``value`` for a simple attribute, the entry itself, less
    null keys, for a complex one.
    """
    value = operation.get("value")
    if _op(operation) not in ("add", "replace") or not isinstance(value, list) or len(value) != 1:
        return [operation]
    binding = _binding(model, operation.get("path"))
    if binding is None or binding.is_multivalued:
        return [operation]
    entry = value[0]
    if _is_complex(binding.field_type) and binding.sub_field_name is None:
        if not isinstance(entry, dict):
            return [operation]
        return [{**operation, "value": _without_nulls(entry)}]
    if isinstance(entry, dict):
        rest = {k: v for k, v in _without_nulls(entry).items() if k != "value"}
        if "value" not in entry or rest:
            return [operation]
        entry = entry["value"]
    return [{**operation, "value": entry}]


def wrap_bare_reference(model: ResourceModel, operation: Json) -> list[Json]:
    """Entra without aadOptscim062020: the enterprise ``manager`` sent as a bare id.

    ``{"op": "Add", "path": "urn:…:enterprise:2.0:User:manager", "value": "<id>"}``, and the
    same key in a path-less value. ``manager`` is complex (RFC 7643 §4.3): the id is its
    ``value`` sub-attribute. Any single-valued complex attribute with a ``value``
    sub-attribute that is given a string is read the same way.
    """
    if _op(operation) not in ("add", "replace"):
        return [operation]
    path = operation.get("path")
    value = operation.get("value")
    if path and isinstance(value, str):
        binding = _binding(model, path)
        if binding is not None and _takes_value_object(binding):
            return [{**operation, "value": {"value": value}}]
        return [operation]
    if isinstance(value, dict):
        prefix = f"{path}:" if path else ""
        wrapped = {key: _wrapped(model, prefix + key, item) for key, item in value.items()}
        if wrapped != value:
            return [{**operation, "value": wrapped}]
    return [operation]


OPERATION_RULES: tuple[OperationRule, ...] = (
    drop_nulls_in_remove_value,
    qualify_extension_paths,
    split_filtered_value_keys,
    unwrap_single_valued_list,
    wrap_bare_reference,
)


# -- resource bodies (POST and PUT) ----------------------------------------------------------

ResourceRule = Callable[[ResourceModel, Json], Json]


def normalize_resource(model: ResourceModel, payload: Json) -> Json:
    """Apply every resource rule, in order, to a POST or PUT body."""
    for rule in RESOURCE_RULES:
        payload = rule(model, payload)
    return payload


def drop_microsoft_group_schema(model: ResourceModel, payload: Json) -> Json:
    """Entra (tutorial, "Create Group"): an extra schema URI with no attribute.

    Entra lists ``http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group``
    in ``schemas`` when it creates a group, but sends no attribute of it. scim-bridge does not
    announce that schema, so scim2-models refuses the body (RFC 7643 §3: ``schemas`` lists
    the schemas of the attributes present). With no attribute under it, it is dropped; a
    body that does carry attributes of it is still refused.
    """
    schemas = payload.get("schemas")
    if not isinstance(schemas, list) or MICROSOFT_GROUP_SCHEMA not in schemas:
        return payload
    if any(key.lower() == MICROSOFT_GROUP_SCHEMA.lower() for key in payload):
        return payload
    return {**payload, "schemas": [s for s in schemas if s != MICROSOFT_GROUP_SCHEMA]}


RESOURCE_RULES: tuple[ResourceRule, ...] = (drop_microsoft_group_schema,)


# -- helpers ---------------------------------------------------------------------------------


def _op(operation: Json) -> str | None:
    op = operation.get("op")
    return op.lower() if isinstance(op, str) else None


def _without_nulls(entry: Json) -> Json:
    return {key: item for key, item in entry.items() if item is not None}


def _path(model: ResourceModel, text: str) -> Any:
    """The binding of an attribute path on ``model``, or None when it names no attribute."""
    try:
        return Path.__class_getitem__(model)(text).resolve()
    except Exception:  # an invalid path is for the handler to refuse, not for a rule
        return None


def _binding(model: ResourceModel, path: Any) -> Any:
    return _path(model, path) if isinstance(path, str) and path else None


def _is_complex(field_type: Any) -> bool:
    return isinstance(field_type, type) and hasattr(field_type, "model_fields")


def _takes_value_object(binding: Any) -> bool:
    """A single-valued complex attribute whose sub-attributes include ``value``."""
    return (
        not binding.is_multivalued
        and binding.sub_field_name is None
        and _is_complex(binding.field_type)
        and "value" in binding.field_type.model_fields
    )


def _wrapped(model: ResourceModel, key: str, item: Any) -> Any:
    if not isinstance(item, str):
        return item
    binding = _path(model, key)
    return {"value": item} if binding is not None and _takes_value_object(binding) else item
