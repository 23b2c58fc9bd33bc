"""The Coder client against the double in-process (httpx ASGI transport) with a manual clock:
retries, rate limits and Coder's error envelope, deterministically."""

from __future__ import annotations

from pathlib import Path

import pytest
from httpx import ASGITransport

from scim_bridge.coder.client import CoderClient, CoderError, RatePacer
from scim_bridge.coderdouble.app import create_coder_double
from scim_bridge.coderdouble.clock import ManualClock
from scim_bridge.coderdouble.config import DoubleConfig
from scim_bridge.coderdouble.state import CoderState
from scim_bridge.config import CoderSettings
from scim_bridge.store.db import Database
from scim_bridge.sync.engine import build_engine


def client_for(
    config: DoubleConfig, clock: ManualClock, **options: object
) -> tuple[CoderClient, CoderState]:
    app, state = create_coder_double(config, clock)
    token = state.create_token(state.first_user, "bridge")

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)  # waiting moves the double's time on

    client = CoderClient(
        "http://coder.test",
        token,
        transport=ASGITransport(app=app),
        sleep=sleep,
        clock=clock.time,
        **options,  # type: ignore[arg-type]
    )
    return client, state


async def test_429_is_retried_after_waiting_and_succeeds() -> None:
    clock = ManualClock()
    client, _ = client_for(DoubleConfig(rate_limit=2), clock, rate_limit_per_minute=0)
    async with client:
        for _ in range(3):  # the third call in the minute gets 429, then waits and succeeds
            groups = await client.groups("default")
        assert [g.name for g in groups] == ["Everyone"]
    assert client.calls > 3  # the third call was refused with 429 at least once, then sent again


async def test_pacing_stays_under_the_limit_without_any_429() -> None:
    clock = ManualClock()
    client, _ = client_for(DoubleConfig(rate_limit=2), clock, rate_limit_per_minute=2)
    async with client:
        for _ in range(5):
            await client.groups("default")
    assert client.calls == 5  # no retry: the client waited instead of running into 429s
    assert clock.time() > 1_767_225_600.0 + 60  # and the waiting took simulated minutes


async def test_server_errors_are_retried() -> None:
    clock = ManualClock()
    client, state = client_for(DoubleConfig(rate_limit=0), clock, rate_limit_per_minute=0)
    state.faults.configure(failure_rate=1.0)
    async with client:
        with pytest.raises(CoderError) as failure:
            await client.create_group("default", "java", "Java")
    assert failure.value.status == 500
    assert client.calls == 6  # max_attempts
    state.faults.clear()


async def test_refusal_carries_coders_message_and_validations() -> None:
    clock = ManualClock()
    client, _ = client_for(DoubleConfig(rate_limit=0), clock, rate_limit_per_minute=0)
    async with client:
        with pytest.raises(CoderError) as failure:
            await client.create_group("default", "Bad Name", "Bad")
    error = failure.value
    assert (error.status, error.message) == (400, "Validation failed.")
    assert error.validations and error.validations[0]["field"] == "name"
    assert "Coder answered 400 to POST /organizations/default/groups" in str(error)
    assert client.calls == 1  # a 400 is not retried


async def test_pacer_spaces_requests_to_one_endpoint() -> None:
    now = [0.0]
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)
        now[0] += seconds

    pacer = RatePacer(2, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        await pacer.wait("/groups/1")
    await pacer.wait("/groups/2")  # another endpoint has its own budget
    assert waited == [40.0, 40.0]  # 60 s / (2 - ½) between requests to one endpoint


def test_configured_http_timeout_bounds_each_answer_and_connecting_stays_short(
    tmp_path: Path,
) -> None:
    settings = CoderSettings(url="http://127.0.0.1:9", token="t", http_timeout_seconds=600)
    engine = build_engine(Database(f"sqlite:///{tmp_path / 'bridge.db'}"), settings)
    timeout = engine.client.http.timeout
    assert (timeout.read, timeout.connect) == (600, 10)
