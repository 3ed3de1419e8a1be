"""The real client against the sandbox's hostile servers: every resource stays bounded."""

from __future__ import annotations

import base64
import gzip
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from exotel_async import (
    ExotelClient,
    NoProgressError,
    ResponseDecodeError,
    ServerError,
)
from exotel_async.export import ExportRequest, checkpoint_path, load_checkpoint, run_export
from exotel_async.testing import Faults, Sandbox
from tests._clients import fast_client


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(campaigns={"c1": 500, "huge": 10**9}) as sb:
        yield sb


async def first_page(sandbox: Sandbox, **kwargs: Any) -> None:
    async with fast_client(sandbox, **kwargs) as client:
        await client.sms_details_page("c1", limit=50)


async def test_body_announced_above_the_cap_is_refused_once(sandbox: Sandbox) -> None:
    """A Content-Length above max_response_bytes raises at once, naming the limit."""
    sandbox.faults = Faults(oversized_body=500_000)
    with pytest.raises(ResponseDecodeError, match="max_response_bytes=100000"):
        await first_page(sandbox, max_response_bytes=100_000)
    assert sandbox.stats.requests == 1


async def test_endless_body_is_cut_at_the_cap_and_not_retried(sandbox: Sandbox) -> None:
    """A body that never ends raises once the cap is passed; asking again would not help."""
    sandbox.faults = Faults(endless_body=True)
    with pytest.raises(ResponseDecodeError, match="max_response_bytes=100000") as info:
        await first_page(sandbox, max_response_bytes=100_000)
    assert not info.value.retryable
    assert sandbox.stats.requests == 1


async def test_page_within_the_cap_is_read_whole(sandbox: Sandbox) -> None:
    """Padding below the cap leaves a valid page that parses."""
    sandbox.faults = Faults(oversized_body=10_000)
    async with fast_client(sandbox, max_response_bytes=100_000) as client:
        page = await client.sms_details_page("c1", limit=50)
    assert len(page.records) == 50


@pytest.mark.parametrize("campaign", ["huge", "c1"])
async def test_server_ignoring_offset_stops_the_walk_after_a_few_requests(
    sandbox: Sandbox, campaign: str
) -> None:
    """Pages that repeat the first one raise NoProgressError instead of looping or ending short."""
    sandbox.faults = Faults(ignore_offset=True)
    async with fast_client(sandbox) as client:
        with pytest.raises(NoProgressError, match="not honouring offset"):
            async for _ in client.sms_details(campaign, concurrency=4):
                pass
    assert sandbox.stats.requests <= 8


async def test_deeply_nested_unknown_field_is_refused_naming_the_offset(sandbox: Sandbox) -> None:
    """A field orjson could not write back fails the page at once, naming the item's offset."""
    sandbox.faults = Faults(nesting_depth=1000)
    with pytest.raises(ResponseDecodeError, match=r"item at offset 0 .*nested.*deeper than 64"):
        await first_page(sandbox)
    assert sandbox.stats.requests == 1


async def test_body_nested_past_the_parsers_limit_is_not_retried(sandbox: Sandbox) -> None:
    """Nesting beyond what JSON parsers accept is the server's answer, not a glitch."""
    sandbox.faults = Faults(nesting_depth=5000)
    with pytest.raises(ResponseDecodeError, match="not valid JSON"):
        await first_page(sandbox)
    assert sandbox.stats.requests == 1


async def test_deeply_nested_record_stops_an_export_with_its_checkpoint(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """An export meeting such a record raises a typed error and keeps its checkpoint."""

    def nest_after_the_first_page(progress: object) -> None:
        sandbox.faults = Faults(nesting_depth=1000)

    out = tmp_path / "sms.jsonl"
    async with fast_client(sandbox) as client:
        with pytest.raises(ResponseDecodeError):
            await run_export(
                client,
                ExportRequest("c1", out, concurrency=1),
                on_page=nest_after_the_first_page,
            )
    assert load_checkpoint(checkpoint_path(out)).records_written >= 50


async def test_reflected_authorization_header_never_reaches_the_error(sandbox: Sandbox) -> None:
    """A proxy page quoting the request's headers is scrubbed of every credential form."""
    sandbox.faults = Faults(reflect_headers=True)
    with pytest.raises(ServerError) as info:
        await first_page(sandbox, max_retries=0)
    pair = f"{sandbox.api_key}:{sandbox.api_token}"
    text = f"{info.value} {info.value.args} {info.value.description}"
    assert "[redacted]" in text
    for secret in (sandbox.api_token, pair, base64.b64encode(pair.encode()).decode()):
        assert secret not in text


async def test_compressed_body_is_bounded_by_its_decompressed_size() -> None:
    """A small gzip body that inflates past max_response_bytes is refused, not read whole."""
    inflated = gzip.compress(b" " * 2_000_000)

    async def bomb(request: web.Request) -> web.Response:
        return web.Response(body=inflated, headers={"Content-Encoding": "gzip"})

    app = web.Application()
    app.router.add_get("/{tail:.*}", bomb)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        client = ExotelClient(
            "key", "token", "sid", base_url=f"http://127.0.0.1:{port}", max_response_bytes=100_000
        )
        async with client:
            with pytest.raises(ResponseDecodeError, match="kept coming"):
                await client.sms_details_page("c1")
    finally:
        await runner.cleanup()
