"""The real client against the sandbox's rate limits over loopback, on one virtual clock.

The sandbox counts its windows and the client paces its requests on the same
``VirtualTime``, which moves only when every task waits: no test waits for a window.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from exotel_async import ExotelClient, SmsDetailsStream
from exotel_async.testing import Faults, RateLimit, Sandbox
from tests._virtual_time import VirtualTime

PAGE = 10
#: A server that says nothing until it throttles, with a 503 and no Retry-After.
SILENT = RateLimit(10, 0.1, window="sliding", reset="none", status=503, retry_after=False)
#: Each allows 10 requests per 0.1 s: 30 pages take about 0.2 s at the allowed rate.
CELLS = {
    "sliding, epoch_ms": RateLimit(10, 0.1, window="sliding", reset="epoch_ms"),
    "fixed, epoch_ms": RateLimit(10, 0.1, window="fixed", reset="epoch_ms"),
    "token_bucket, epoch_ms": RateLimit(10, 0.1, window="token_bucket", reset="epoch_ms"),
    "sliding, none, 503": SILENT,
}


def client_for(sandbox: Sandbox, limit: RateLimit, time: VirtualTime) -> ExotelClient:
    """A client with short backoff; against a silent server, holds of a window's order."""
    # Against a server without hints the holds are all the client has to pace by, and
    # holds far shorter than the window spend a page's retries before the window frees.
    base, cap = (0.05, 0.5) if limit.reset == "none" else (0.01, 0.05)
    return ExotelClient(
        sandbox.api_key,
        sandbox.api_token,
        sandbox.account_sid,
        base_url=sandbox.base_url,
        backoff_base=base,
        backoff_cap=cap,
        clock=time.clock,
        sleep=time.sleep,
    )


def sids(sandbox: Sandbox, campaign_id: str) -> list[str]:
    """Every sid of a campaign, in the order the API serves them."""
    return [record["sid"] for record in sandbox.records(campaign_id)]


async def read(stream: SmsDetailsStream) -> list[str]:
    """The sids a stream yields, in the order it yields them."""
    async with stream:
        return [record.sid async for record in stream]


def throttles(sandbox: Sandbox) -> int:
    """Answers the sandbox throttled for its rate limit."""
    return sandbox.stats.by_fault.get("rate_limit", 0)


async def walk(limit: RateLimit, pages: int) -> tuple[Sandbox, SmsDetailsStream, list[str]]:
    """Stream a campaign of ``pages`` pages through ``limit``; the sandbox, stream and sids."""
    time = VirtualTime()
    sandbox = sandbox_on(time, {"c": pages * PAGE}, limit)
    async with sandbox as sb, client_for(sb, limit, time) as client:
        stream = client.sms_details("c", page_size=PAGE)
        got = await time.run(read(stream))
    return sb, stream, got


def sandbox_on(time: VirtualTime, campaigns: dict[str, int], limit: RateLimit) -> Sandbox:
    """A sandbox counting ``limit`` on ``time``."""
    return Sandbox(campaigns=campaigns, faults=Faults(rate_limit=limit), clock=time.clock)


@pytest.mark.parametrize("limit", CELLS.values(), ids=CELLS.keys())
async def test_every_record_arrives_once_in_order_with_few_throttles(limit: RateLimit) -> None:
    """30 pages through each limit: every record once, in order, and few throttles."""
    sb, _, got = await walk(limit, pages=30)
    assert got == sids(sb, "c")
    assert throttles(sb) == sb.stats.by_status.get(limit.status, 0)
    # Measured: none with headers; 5 of 35 without, 4 of them the requests in
    # flight at the first throttle.
    assert throttles(sb) <= (0.4 if limit is SILENT else 0.1) * sb.stats.requests


@pytest.mark.parametrize("limit", [CELLS["sliding, epoch_ms"], SILENT], ids=["epoch_ms", "none"])
async def test_stream_stats_count_the_servers_throttles_and_the_wait(limit: RateLimit) -> None:
    """stats.throttled equals the server's throttles and stats.rate_wait is above zero."""
    sb, stream, _ = await walk(limit, pages=30)
    assert stream.stats.throttled == throttles(sb)
    assert stream.stats.rate_wait > 0


async def test_two_clients_share_one_limit_without_a_store() -> None:
    """Two clients streaming one campaign at once through one limit both get every record."""
    limit = CELLS["sliding, epoch_ms"]
    time = VirtualTime()
    async with sandbox_on(time, {"c": 30 * PAGE}, limit) as sb:
        clients = [client_for(sb, limit, time) for _ in range(2)]

        async def one(client: ExotelClient) -> list[str]:
            async with client:
                return await read(client.sms_details("c", page_size=PAGE))

        got = await time.run(asyncio.gather(*(one(client) for client in clients)))
    assert got == [sids(sb, "c")] * 2


async def test_one_client_streams_three_campaigns_through_one_limit() -> None:
    """Three streams of one client at once share the limit, and each gets its campaign whole."""
    limit = CELLS["sliding, epoch_ms"]
    campaigns = {"a": 20 * PAGE, "b": 15 * PAGE, "c": 10 * PAGE}
    time = VirtualTime()
    async with sandbox_on(time, campaigns, limit) as sb, client_for(sb, limit, time) as client:
        streams = [client.sms_details(cid, page_size=PAGE) for cid in campaigns]
        got: list[Any] = await time.run(asyncio.gather(*(read(stream) for stream in streams)))
    assert got == [sids(sb, cid) for cid in campaigns]
    assert sum(stream.stats.throttled for stream in streams) == throttles(sb)
