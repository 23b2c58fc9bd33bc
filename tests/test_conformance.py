"""scim2-tester's RFC 7643/7644 conformance checks, run against the live server on both databases.

Every check must pass. A check may only be skipped where the ServiceProviderConfig announces the
feature it needs as unsupported (bulk, changePassword, cursor pagination); each skip is printed
(``pytest -s`` shows them) and any other skip fails the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import httpx2
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import ServiceProviderConfig
from scim2_tester import CheckResult, Status, check_server

from scim_bridge.config import Settings
from scim_bridge.store.migrate import upgrade
from tests.conftest import BACKENDS, _create_pg_database, _drop_pg_database
from tests.server import create_token, run_server

PASSED = {Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE}

# Features the ServiceProviderConfig may announce unsupported, and the words by which a skipped
# check's title, tags or reason shows that it needed the feature.
UNSUPPORTED_FEATURES = {
    "bulk": ("bulk",),
    "changePassword": ("changepassword", "change_password", "change password"),
    "cursor pagination": ("cursor",),
}


@dataclass(frozen=True)
class ScimTesterRun:
    backend: str
    results: list[CheckResult]
    config: ServiceProviderConfig


@pytest.fixture(scope="module", params=BACKENDS)
def tester_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ScimTesterRun]:
    """One full scim2-tester run per database, against a fresh live server."""
    backend = str(request.param)
    pg: tuple[str, str] | None = None
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('conformance') / 'scim-bridge.db'}"
    else:
        admin_url = request.getfixturevalue("postgres_admin_url")
        name, url = _create_pg_database(admin_url)
        pg = (admin_url, name)
    try:
        upgrade(url)
        token = asyncio.run(create_token(url, "scim2-tester"))
        with (
            run_server(Settings(database_url=url), token) as server,
            httpx2.Client(
                base_url=server.scim_url,
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            ) as http,
        ):
            client = SyncSCIMClient(http)
            results = check_server(client, raise_exceptions=False)
            config = client.query(ServiceProviderConfig)
            assert isinstance(config, ServiceProviderConfig)
        yield ScimTesterRun(backend, results, config)
    finally:
        if pg is not None:
            _drop_pg_database(*pg)


def _describe(result: CheckResult) -> str:
    where = f"[{result.resource_type}] " if result.resource_type else ""
    data = f" — data: {result.data!r}"[:800] if result.data is not None else ""
    return f"{where}{result.title}: {result.status.name}: {result.reason}{data}"


def _unsupported_features(config: ServiceProviderConfig) -> set[str]:
    unsupported = set()
    if config.bulk is None or not config.bulk.supported:
        unsupported.add("bulk")
    if config.change_password is None or not config.change_password.supported:
        unsupported.add("changePassword")
    if config.pagination is None or not config.pagination.cursor:
        unsupported.add("cursor pagination")
    return unsupported


def _feature_of_skip(result: CheckResult) -> str | None:
    text = " ".join([result.title or "", result.reason or "", *sorted(result.tags)]).lower()
    for feature, words in UNSUPPORTED_FEATURES.items():
        if any(word in text for word in words):
            return feature
    return None


def _problems(run: ScimTesterRun) -> list[CheckResult]:
    """Checks that neither passed nor were skipped for a feature announced unsupported."""
    unsupported = _unsupported_features(run.config)
    problems = []
    for result in run.results:
        if result.status in PASSED:
            continue
        feature = _feature_of_skip(result) if result.status is Status.SKIPPED else None
        if feature is not None and feature in unsupported:
            print(
                f"[{run.backend}] skipped (ServiceProviderConfig: {feature} unsupported): "
                f"{_describe(result)}"
            )
            continue
        problems.append(result)
    return problems


def test_every_check_passes(tester_run: ScimTesterRun) -> None:
    """Every check passes, or is skipped for a feature the ServiceProviderConfig says is
    unsupported."""
    results = tester_run.results
    assert len(results) > 100, f"scim2-tester ran only {len(results)} checks: {results}"
    problems = _problems(tester_run)
    passed = sum(r.status in PASSED for r in results)
    print(f"[{tester_run.backend}] scim2-tester: {passed} of {len(results)} checks passed")
    assert not problems, (
        f"{len(problems)} of {len(results)} scim2-tester checks did not pass "
        f"on {tester_run.backend}:\n" + "\n".join(_describe(r) for r in problems)
    )


def test_checks_exercised_users_and_groups(tester_run: ScimTesterRun) -> None:
    """The run is only worth something if it went through both resource types' CRUD and PATCH."""
    passed = {(r.resource_type, r.title) for r in tester_run.results if r.status in PASSED}
    for resource_type in ("User", "Group"):
        for title in (
            "object_creation",
            "object_query",
            "object_query_without_id",
            "object_replacement",
            "object_deletion",
            "check_add_attribute",
            "check_remove_attribute",
            "check_replace_attribute",
        ):
            assert (resource_type, title) in passed, f"{title} never passed for {resource_type}"
    for title in ("service_provider_config_endpoint", "query_all_schemas", "random_url"):
        assert any(t == title for _, t in passed), f"{title} never passed"
