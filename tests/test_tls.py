"""TLS: certificates are verified by default, and a private CA can be trusted."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import pytest
import trustme
from aiohttp import web

from exotel_async import APIConnectionError, ExotelClient

PAGE = {
    "request_id": "tls-1",
    "metadata": {"count": 0, "offset": 0, "total": 0, "limit": 20},
    "response": [],
}


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def https_url(ca: trustme.CA) -> AsyncIterator[tuple[str, list[int]]]:
    """An https server on loopback with a certificate from a private CA."""
    hits: list[int] = []

    async def page(request: web.Request) -> web.Response:
        hits.append(1)
        return web.json_response(PAGE)

    app = web.Application()
    app.router.add_get("/v2/accounts/acc/sms-campaigns/c1/sms-details", page)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"https://127.0.0.1:{port}", hits
    finally:
        await runner.cleanup()


async def test_default_client_refuses_an_untrusted_certificate(
    https_url: tuple[str, list[int]],
) -> None:
    """Without the CA, the handshake fails and is not retried."""
    url, hits = https_url
    async with ExotelClient("key", "tok", "acc", base_url=url) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.sms_details_page("c1")
    assert info.value.attempts == 1
    assert hits == []


async def test_client_with_the_private_ca_succeeds(
    https_url: tuple[str, list[int]], ca: trustme.CA
) -> None:
    """Passing an SSLContext that trusts the CA lets the request through."""
    url, hits = https_url
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with ExotelClient("key", "tok", "acc", base_url=url, ssl_context=context) as client:
        page = await client.sms_details_page("c1")
    assert page.request_id == "tls-1"
    assert hits == [1]
