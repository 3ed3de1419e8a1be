"""The real client against the sandbox over loopback: faults, throttling, secrets."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from exotel_async import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    ExotelClient,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from exotel_async.testing import Faults, RateLimit, Sandbox
from tests._clients import fast_client
from tests._virtual_time import FakeSleep, VirtualTime

TOTAL = 2500


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(campaigns={"c1": TOTAL}, seed=7) as sb:
        yield sb


def client_for(sandbox: Sandbox, **kwargs: Any) -> ExotelClient:
    """A fast client with room for many retries: faults here hit 30 % of requests."""
    return fast_client(sandbox, **{"max_retries": 10, **kwargs})


async def stream_sids(client: ExotelClient, **kwargs: Any) -> list[str]:
    async with client:
        return [r.sid async for r in client.sms_details("c1", **kwargs)]


FAULTS = {
    "500 html": Faults(p_500=0.3),
    "502": Faults(p_502=0.3),
    "503": Faults(p_503=0.3),
    "429": Faults(p_429=0.3, retry_after=0),
    "connection reset": Faults(p_reset=0.3),
    "truncated body": Faults(p_truncated=0.3),
    "malformed json": Faults(p_malformed=0.3),
    "mix": Faults(
        p_500=0.04,
        p_502=0.04,
        p_503=0.04,
        p_429=0.04,
        p_reset=0.04,
        p_truncated=0.04,
        p_malformed=0.04,
        retry_after=0,
    ),
}


@pytest.mark.parametrize("faults", FAULTS.values(), ids=FAULTS.keys())
async def test_stream_yields_every_record_once_in_order_through_faults(
    sandbox: Sandbox, faults: Faults
) -> None:
    """Whatever fault hits 30% of requests, every record arrives once and in order."""
    sandbox.faults = faults
    got = await stream_sids(client_for(sandbox), concurrency=4)
    assert got == [r["sid"] for r in sandbox.records("c1")]
    assert sum(sandbox.stats.by_fault.values()) > 0


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"api_token": "wrong"}, AuthenticationError),
        ({"account_sid": "someone-else"}, PermissionDeniedError),
        ({"campaign": "missing"}, NotFoundError),
        ({"page_size": 51}, BadRequestError),
    ],
)
async def test_client_errors_cost_exactly_one_request(
    sandbox: Sandbox, change: dict[str, Any], error: type[Exception]
) -> None:
    """401, 403, 404 and 400 from the sandbox are raised after one request."""
    creds = {"api_key": sandbox.api_key, "api_token": sandbox.api_token}
    creds["account_sid"] = change.get("account_sid", sandbox.account_sid)
    creds["api_token"] = change.get("api_token", creds["api_token"])
    client = ExotelClient(**creds, base_url=sandbox.base_url)
    async with client:
        stream = client.sms_details(
            change.get("campaign", "c1"), page_size=change.get("page_size", 50)
        )
        with pytest.raises(error) as info:
            async for _ in stream:
                pass
    assert sandbox.stats.requests == 1
    assert getattr(info.value, "request_id", None)


async def test_constant_429_fails_after_max_retries(sandbox: Sandbox) -> None:
    """With every answer a 429, the stream raises RateLimitError after 1 + max_retries."""
    sandbox.faults = Faults(p_429=1.0, retry_after=0)
    sleep = FakeSleep()
    with pytest.raises(RateLimitError) as info:
        await stream_sids(client_for(sandbox, max_retries=4, clock=sleep.clock, sleep=sleep))
    assert info.value.attempts == 5
    assert sandbox.stats.requests == 5
    # Retry-After: 0 asks for no hold: the five attempts cost no time on the client's clock.
    assert sum(sleep.delays) < 1.0


async def test_retry_after_beyond_the_cap_raises_at_once(sandbox: Sandbox) -> None:
    """A 429 asking for longer than ``max_retry_after`` is raised without waiting."""
    sandbox.faults = Faults(p_429=1.0, retry_after=600)
    with pytest.raises(RateLimitError) as info:
        await stream_sids(client_for(sandbox, max_retry_after=60))
    assert info.value.retry_after == 600
    assert sandbox.stats.requests == 1


async def test_growing_campaign_is_followed_to_its_end(sandbox: Sandbox) -> None:
    """A campaign that grows on every request is read to its new end, each record once."""
    sandbox.add_campaign("c1", 500)
    sandbox.faults = Faults(grow_per_request=3)
    got = await stream_sids(client_for(sandbox), concurrency=3)
    assert len(got) == len(set(got)) > 500
    assert got == [r["sid"] for r in sandbox.records("c1")][: len(got)]


async def test_item_failures_are_collected_when_skipping(sandbox: Sandbox) -> None:
    """Per-item failures inside 200 pages are listed, and the rest is streamed."""
    sandbox.faults = Faults(p_item_failure=0.02)
    client = client_for(sandbox)
    async with client:
        stream = client.sms_details("c1", skip_item_errors=True)
        got = [r.sid async for r in stream]
    assert stream.item_errors
    assert len(got) + len(stream.item_errors) == TOTAL


async def test_filters_and_sorts_match_the_sandbox(sandbox: Sandbox) -> None:
    """``number`` and each ``sort_by`` return what the sandbox says they should."""
    number = sandbox.records("c1")[7]["number"]
    async with client_for(sandbox) as client:
        for sort_by in (None, "schedule_time:asc", "schedule_time:desc", "date_created:desc"):
            got = [r.sid async for r in client.sms_details("c1", number=number, sort_by=sort_by)]
            want = [r["sid"] for r in sandbox.records("c1", number=number, sort_by=sort_by)]
            assert got == want
            assert got


async def test_break_leaves_no_open_connections_or_tasks(sandbox: Sandbox) -> None:
    """Leaving a stream early closes its requests; the session's connector is idle."""
    import asyncio

    # Rate headers with a budget to spare: no slow start, all eight pages go at once.
    sandbox.faults = Faults(rate_limit=RateLimit(1000, 1.0))
    sandbox.hold(after=2)  # two pages answer; the seven launched after them stay in flight
    async with client_for(sandbox) as client:
        async with client.sms_details("c1", page_size=50, concurrency=8) as stream:
            async for record in stream:
                if record.sid == sandbox.records("c1")[50]["sid"]:  # the second page's first
                    await asyncio.wait_for(sandbox.held(7), timeout=30)
                    break
        sandbox.release()
        # The abandoned generator's aclose() runs as a task of its own: give it its turns.
        for _ in range(3):
            await asyncio.sleep(0)
        client_tasks = {
            t
            for t in asyncio.all_tasks()
            # The sandbox shares this loop: its server-side handlers are not ours.
            if t is not asyncio.current_task() and "RequestHandler" not in repr(t.get_coro())
        }
        assert client_tasks == set()
        connector = client._transport.session().connector
        assert connector is not None
        # aiohttp keeps the connections lent out to requests in _acquired.
        assert connector._acquired == set()


async def test_test_clients_back_off_on_a_fake_clock(sandbox: Sandbox) -> None:
    """The suite's clients ride out hour-long backoffs at once: they never wait for real."""
    import asyncio

    sandbox.faults = Faults(p_500=1.0)
    client = client_for(sandbox, max_retries=2, backoff_base=3600.0, backoff_cap=3600.0)
    with pytest.raises(ServerError):
        # A guard against hanging, not a measure: real backoffs would last up to two hours.
        await asyncio.wait_for(stream_sids(client), timeout=30)
    assert sandbox.stats.requests == 3


async def test_rate_limit_headers_keep_429s_rare_and_rate_high() -> None:
    """At 20 requests per 2 s with headers, 120 pages draw at most 3 429s at >= 85% rate."""
    time = VirtualTime()
    faults = Faults(rate_limit=(20, 2.0))
    async with Sandbox(campaigns={"c1": 120 * 50}, faults=faults, clock=time.clock) as sandbox:
        client = ExotelClient(
            sandbox.api_key,
            sandbox.api_token,
            sandbox.account_sid,
            base_url=sandbox.base_url,
            clock=time.clock,
            sleep=time.sleep,
        )
        started = time.now
        got = await time.run(stream_sids(client))
        elapsed = time.now - started
    assert len(got) == 6000
    assert sandbox.stats.by_status.get(429, 0) <= 3
    # The first 20 are free; the other 100 need 100 / (20 / 2 s) = 10 s at the allowed rate.
    assert 10.0 / elapsed >= 0.85


async def test_secrets_never_reach_logs_reprs_or_errors(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """After successes, retries and failures, neither the token nor its base64 appears."""
    token = sandbox.api_token
    encoded = base64.b64encode(f"{sandbox.api_key}:{token}".encode()).decode()
    number = sandbox.records("c1")[0]["number"]
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG, logger="exotel_async"):
        sandbox.faults = Faults(p_503=0.3, p_reset=0.2)
        client = client_for(sandbox)
        texts.append(repr(client))
        async with client:
            async for _ in client.sms_details("c1", number=number):
                pass
        sandbox.faults = Faults(p_500=1.0)
        try:
            await stream_sids(client_for(sandbox, max_retries=1))
        except Exception as exc:
            texts += [str(exc), repr(exc), repr(exc.__cause__)]
        sandbox.faults = Faults()
        bad = ExotelClient("k", token, sandbox.account_sid, base_url=sandbox.base_url)
        try:
            await stream_sids(bad)
        except AuthenticationError as exc:
            texts += [str(exc), repr(exc)]
    texts.append(caplog.text)
    assert "retrying" in caplog.text
    blob = "\n".join(texts)
    assert token not in blob
    assert encoded not in blob
    assert number not in blob
    assert number[-2:] in caplog.text


async def closed_port() -> int:
    """A loopback port nothing listens on: one a sandbox used and gave back."""
    async with Sandbox() as gone:
        return gone.port


async def test_refused_first_connection_fails_fast_naming_the_address() -> None:
    """A refused connection before any answer is not retried, and names where it went."""
    port = await closed_port()
    async with ExotelClient(
        "key", "token", "sid", base_url=f"http://127.0.0.1:{port}", backoff_base=0.001
    ) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.sms_details_page("c1")
    assert info.value.attempts == 1
    assert f"connection refused by http://127.0.0.1:{port}" in str(info.value)
    assert "EXOTEL_BASE_URL" in str(info.value)


async def test_refused_connection_after_answers_keeps_the_full_retry_policy() -> None:
    """Once the server has answered, a refused connection is a restart: all retries apply."""
    async with (
        Sandbox(campaigns={"c1": 10}) as sandbox,
        client_for(sandbox, max_retries=3) as client,
    ):
        await client.sms_details_page("c1")
        await sandbox.close()
        with pytest.raises(APIConnectionError) as info:
            await client.sms_details_page("c1")
    assert info.value.attempts == 4
