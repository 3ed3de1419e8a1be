"""Retries, backoff, timeouts and logging of the one module that touches aiohttp."""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from collections.abc import AsyncIterator, Mapping
from types import SimpleNamespace

import aiohttp
import pytest
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from exotel_async import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
    SmsRecord,
)
from exotel_async._protocol import PageRequest, parse_page, sms_details_request
from exotel_async._transport import DEFAULT_MAX_RESPONSE_BYTES, RetryPolicy, Transport
from tests._virtual_time import FakeSleep

BASE = "https://api.exotel.com"
TOKEN = "tok-SECRET-123"
AUTH = "Basic " + base64.b64encode(f"key:{TOKEN}".encode()).decode()
PAGE_URL = re.compile(r"^https://api\.exotel\.com/v2/accounts/acc/sms-campaigns/c1/sms-details.*$")
OK = {
    "request_id": "ok-1",
    "metadata": {"count": 0, "offset": 0, "total": 0, "limit": 10},
    "response": [],
}


@pytest.fixture
def mocked() -> aioresponses:
    with aioresponses() as m:
        yield m


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


def make_transport(
    session: aiohttp.ClientSession,
    sleep: FakeSleep,
    *,
    max_retries: int = 3,
    auth: str = AUTH,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    **policy: float,
) -> Transport:
    return Transport(
        base_url=URL(BASE),
        headers={"Authorization": auth},
        session=session,
        timeout=5,
        connect_timeout=5,
        retry=RetryPolicy(max_retries=max_retries, **policy),
        sleep=sleep,
        clock=sleep.clock,
        max_response_bytes=max_response_bytes,
    )


def parse(status: int, headers: Mapping[str, str], body: bytes) -> object:
    return parse_page(SmsRecord, status, headers, body)


REQUEST = sms_details_request("acc", "c1", number="+919876543210").at(0, 10)


def request_count(mocked: aioresponses) -> int:
    return sum(len(calls) for calls in mocked.requests.values())


async def test_server_error_then_success_is_retried_once(
    mocked: aioresponses, session: aiohttp.ClientSession, sleep: FakeSleep
) -> None:
    """A 503 followed by a page returns the page after one backoff."""
    mocked.get(PAGE_URL, status=503)
    mocked.get(PAGE_URL, payload=OK)
    page = await make_transport(session, sleep).send(REQUEST, parse)
    assert getattr(page, "request_id", None) == "ok-1"
    assert len(sleep.delays) == 1


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 409])
async def test_client_errors_are_never_retried(
    mocked: aioresponses, session: aiohttp.ClientSession, sleep: FakeSleep, status: int
) -> None:
    """Statuses a retry cannot fix cost exactly one request."""
    mocked.get(PAGE_URL, status=status, repeat=True)
    with pytest.raises(APIError) as info:
        await make_transport(session, sleep).send(REQUEST, parse)
    assert info.value.status_code == status
    assert request_count(mocked) == 1
    assert sleep.delays == []


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_transient_statuses_are_retried_until_exhausted(
    mocked: aioresponses, session: aiohttp.ClientSession, sleep: FakeSleep, status: int
) -> None:
    """Throttling and server failures get ``max_retries`` more attempts, then raise."""
    mocked.get(PAGE_URL, status=status, repeat=True)
    with pytest.raises(APIError) as info:
        await make_transport(session, sleep, max_retries=3).send(REQUEST, parse)
    assert info.value.attempts == 4
    assert request_count(mocked) == 4


async def test_retry_after_seconds_is_honoured(
    mocked: aioresponses, session: aiohttp.ClientSession, sleep: FakeSleep
) -> None:
    """``Retry-After: 1`` waits one second before the next attempt."""
    mocked.get(PAGE_URL, status=429, headers={"Retry-After": "1"})
    mocked.get(PAGE_URL, payload=OK)
    await make_transport(session, sleep).send(REQUEST, parse)
    assert sleep.delays == [1.0]


async def test_retry_after_beyond_the_cap_raises_at_once(
    mocked: aioresponses, session: aiohttp.ClientSession, sleep: FakeSleep
) -> None:
    """A wait longer than ``max_retry_after`` raises RateLimitError with its advice."""
    mocked.get(PAGE_URL, status=429, headers={"Retry-After": "3600"}, repeat=True)
    with pytest.raises(RateLimitError) as info:
        await make_transport(session, sleep, max_retry_after=60).send(REQUEST, parse)
    assert info.value.retry_after == 3600.0
    assert request_count(mocked) == 1
    assert sleep.delays == []


async def test_backoff_is_full_jitter_exponential_and_capped(
    mocked: aioresponses, session: aiohttp.ClientSession, sleep: FakeSleep
) -> None:
    """Each wait lies in [0, min(cap, base * 2**retry)]."""
    mocked.get(PAGE_URL, status=500, repeat=True)
    with pytest.raises(ServerError):
        await make_transport(session, sleep, max_retries=6, base=1.0, cap=8.0).send(REQUEST, parse)
    bounds = [1, 2, 4, 8, 8, 8]
    assert len(sleep.delays) == 6
    assert all(0 <= d <= b for d, b in zip(sleep.delays, bounds, strict=True))


def test_backoff_uses_the_whole_jitter_range() -> None:
    """With the random draw at its top the wait is the full exponential step."""
    policy = RetryPolicy(base=1.0, cap=30.0)
    assert [policy.backoff(n, lambda: 1.0) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]


async def test_max_retries_zero_disables_retries(
    mocked: aioresponses, session: aiohttp.ClientSession, sleep: FakeSleep
) -> None:
    """``max_retries=0`` makes one attempt only."""
    mocked.get(PAGE_URL, status=503, repeat=True)
    with pytest.raises(ServerError):
        await make_transport(session, sleep, max_retries=0).send(REQUEST, parse)
    assert request_count(mocked) == 1


async def test_connection_errors_are_retried_then_raised_as_api_connection_error(
    mocked: aioresponses, session: aiohttp.ClientSession, sleep: FakeSleep
) -> None:
    """A refused or reset connection is retried, then surfaces as APIConnectionError."""
    mocked.get(PAGE_URL, exception=aiohttp.ServerDisconnectedError(), repeat=True)
    with pytest.raises(APIConnectionError) as info:
        await make_transport(session, sleep, max_retries=2).send(REQUEST, parse)
    assert info.value.attempts == 3


async def test_timeout_becomes_api_timeout_error(
    mocked: aioresponses, session: aiohttp.ClientSession, sleep: FakeSleep
) -> None:
    """A request that times out raises APITimeoutError once retries are spent."""
    mocked.get(PAGE_URL, exception=asyncio.TimeoutError(), repeat=True)
    with pytest.raises(APITimeoutError):
        await make_transport(session, sleep, max_retries=1).send(REQUEST, parse)
    assert request_count(mocked) == 2


async def test_malformed_success_body_is_retried(
    mocked: aioresponses, session: aiohttp.ClientSession, sleep: FakeSleep
) -> None:
    """A 200 whose JSON is garbled is asked for again."""
    mocked.get(PAGE_URL, status=200, body=b'{"request_id": "x", "respo')
    mocked.get(PAGE_URL, payload=OK)
    await make_transport(session, sleep).send(REQUEST, parse)
    assert request_count(mocked) == 2


async def test_well_formed_but_wrong_shape_is_not_retried(
    mocked: aioresponses, session: aiohttp.ClientSession, sleep: FakeSleep
) -> None:
    """Valid JSON of the wrong shape will not fix itself: one request, then raise."""
    mocked.get(PAGE_URL, status=200, payload={"response": "nope"}, repeat=True)
    with pytest.raises(ResponseDecodeError):
        await make_transport(session, sleep).send(REQUEST, parse)
    assert request_count(mocked) == 1


async def test_auth_goes_in_the_header_not_the_url(
    mocked: aioresponses, session: aiohttp.ClientSession, sleep: FakeSleep
) -> None:
    """The request carries ``Authorization: Basic``, and its URL has no userinfo."""
    mocked.get(PAGE_URL, payload=OK)
    await make_transport(session, sleep).send(REQUEST, parse)
    ((_method, url), calls) = next(iter(mocked.requests.items()))
    assert calls[0].kwargs["headers"]["Authorization"] == AUTH
    assert url.user is None
    assert TOKEN not in str(url)


async def test_logs_one_debug_line_per_attempt_and_a_warning_per_retry(
    mocked: aioresponses,
    session: aiohttp.ClientSession,
    sleep: FakeSleep,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each attempt logs at DEBUG, each retry at WARNING, with the number masked."""
    mocked.get(PAGE_URL, status=503)
    mocked.get(PAGE_URL, payload=OK)
    with caplog.at_level(logging.DEBUG, logger="exotel_async"):
        await make_transport(session, sleep).send(REQUEST, parse)
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(debug) == 2
    assert len(warnings) == 1
    assert "-> 503" in debug[0].getMessage()
    assert "-> 200 request_id=ok-1" in debug[1].getMessage()
    assert "number=***********10" in debug[0].getMessage()
    assert "9876543210" not in caplog.text


async def test_params_a_request_declares_personal_are_masked_in_logs(
    mocked: aioresponses,
    session: aiohttp.ClientSession,
    sleep: FakeSleep,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Any param named in ``PageRequest.personal`` shows only its last two characters."""
    mocked.get(re.compile(r"^https://api\.exotel\.com/v2/contacts.*"), payload=OK)
    request = PageRequest("/v2/contacts", (("email", "ravi@example.in"),), personal={"email"})
    with caplog.at_level(logging.DEBUG, logger="exotel_async"):
        await make_transport(session, sleep).send(request.at(0, 10), parse)
    assert "email=*************in" in caplog.text
    assert "ravi@" not in caplog.text


async def test_token_never_reaches_logs_or_errors(
    mocked: aioresponses,
    session: aiohttp.ClientSession,
    sleep: FakeSleep,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Neither the token nor its base64 form appears in logs, reprs or error texts."""
    mocked.get(PAGE_URL, status=500)
    mocked.get(PAGE_URL, exception=aiohttp.ClientConnectionError("reset"), repeat=True)
    transport = make_transport(session, sleep, max_retries=2)
    with (
        caplog.at_level(logging.DEBUG, logger="exotel_async"),
        pytest.raises(APIConnectionError) as info,
    ):
        await transport.send(REQUEST, parse)
    texts = [caplog.text, repr(transport), str(info.value), repr(info.value)]
    secret_forms = [TOKEN, AUTH.split()[1]]
    assert not any(secret in text for secret in secret_forms for text in texts)


async def test_aiohttp_errors_carrying_request_headers_do_not_leak_them(
    mocked: aioresponses, session: aiohttp.ClientSession, sleep: FakeSleep
) -> None:
    """An aiohttp error that holds the request's headers is not chained to ours."""
    from aiohttp.client_reqrep import RequestInfo
    from multidict import CIMultiDict, CIMultiDictProxy

    url = URL(BASE + REQUEST.path).with_query(dict(REQUEST.params))
    info = RequestInfo(url, "GET", CIMultiDictProxy(CIMultiDict({"Authorization": AUTH})), url)
    leaky = aiohttp.ClientResponseError(info, (), status=400, message="Invalid header")
    mocked.get(PAGE_URL, exception=leaky)
    with pytest.raises(APIConnectionError) as caught:
        await make_transport(session, sleep, max_retries=0).send(REQUEST, parse)
    error = caught.value
    assert error.__cause__ is None
    assert error.__context__ is None
    text = str(error) + repr(error)
    assert AUTH.split()[1] not in text
    assert "9876543210" not in text
    assert "Invalid header" in text


async def test_certificate_failure_is_not_retried(
    mocked: aioresponses, session: aiohttp.ClientSession, sleep: FakeSleep
) -> None:
    """A TLS verification failure is raised after one attempt."""
    import ssl

    mocked.get(PAGE_URL, exception=aiohttp.ClientSSLError(None, ssl.SSLError()), repeat=True)
    with pytest.raises(APIConnectionError) as caught:
        await make_transport(session, sleep).send(REQUEST, parse)
    assert not caught.value.retryable
    assert request_count(mocked) == 1


async def test_retry_after_on_503_replaces_the_backoff(
    mocked: aioresponses, session: aiohttp.ClientSession, sleep: FakeSleep
) -> None:
    """Exotel's 503 throttling with ``Retry-After: 3`` waits three seconds."""
    mocked.get(PAGE_URL, status=503, headers={"Retry-After": "3"})
    mocked.get(PAGE_URL, payload=OK)
    await make_transport(session, sleep).send(REQUEST, parse)
    assert sleep.delays == [3.0]


async def test_transport_error_text_names_the_attempts(
    mocked: aioresponses, session: aiohttp.ClientSession, sleep: FakeSleep
) -> None:
    """After retries, the message says how many attempts were made."""
    mocked.get(PAGE_URL, exception=aiohttp.ServerDisconnectedError(), repeat=True)
    with pytest.raises(APIConnectionError, match="after 3 attempts"):
        await make_transport(session, sleep, max_retries=2).send(REQUEST, parse)


SECRET_FORMS = (TOKEN, f"key:{TOKEN}", AUTH.split()[1])


@pytest.mark.parametrize(
    "body",
    [
        {"RestException": {"Status": 502, "Message": f"upstream refused {AUTH}"}},
        {"RestException": {"Status": 502, "Message": f"bad pair key:{TOKEN}"}},
        {"RestException": {"Status": 502, "Message": f"token {TOKEN} expired"}},
    ],
)
async def test_credentials_echoed_in_an_error_body_are_scrubbed(
    mocked: aioresponses, session: aiohttp.ClientSession, sleep: FakeSleep, body: object
) -> None:
    """A proxy's JSON message quoting the token, key:token or Basic value is redacted."""
    mocked.get(PAGE_URL, status=502, payload=body)
    with pytest.raises(ServerError) as caught:
        await make_transport(session, sleep, max_retries=0).send(REQUEST, parse)
    text = str(caught.value) + repr(caught.value)
    assert "[redacted]" in text
    assert not any(secret in text for secret in SECRET_FORMS)


async def test_credentials_with_json_escaped_slashes_are_scrubbed(
    mocked: aioresponses, session: aiohttp.ClientSession, sleep: FakeSleep
) -> None:
    """A Basic value written with ``\\/`` (as some JSON encoders do) is redacted too."""
    slashed = "Basic " + base64.b64encode(b"k?y:t?k?n-with-slashes").decode()
    assert "/" in slashed
    escaped = slashed.replace("/", "\\/")
    body = f'{{"RestException": {{"Status": 502, "Message": "echo {escaped}"}}}}'
    mocked.get(PAGE_URL, status=502, body=body)
    transport = make_transport(session, sleep, max_retries=0, auth=slashed)
    with pytest.raises(ServerError) as caught:
        await transport.send(REQUEST, parse)
    assert slashed.split()[1] not in str(caught.value)


async def test_credentials_in_a_decode_error_excerpt_are_scrubbed(
    mocked: aioresponses, session: aiohttp.ClientSession, sleep: FakeSleep
) -> None:
    """The excerpt of a 200 that is not JSON never quotes a credential."""
    mocked.get(PAGE_URL, status=200, body=f"<pre>Authorization: {AUTH}</pre>")
    with pytest.raises(ResponseDecodeError) as caught:
        await make_transport(session, sleep, max_retries=0).send(REQUEST, parse)
    assert not any(secret in str(caught.value) for secret in SECRET_FORMS)


async def test_announced_body_above_the_cap_is_refused_without_retry(
    mocked: aioresponses, session: aiohttp.ClientSession, sleep: FakeSleep
) -> None:
    """A Content-Length above max_response_bytes raises a decode error naming the limit."""
    mocked.get(PAGE_URL, status=200, body=b" " * 2000, headers={"Content-Length": "2000"})
    transport = make_transport(session, sleep, max_response_bytes=1000)
    with pytest.raises(ResponseDecodeError, match="max_response_bytes=1000"):
        await transport.send(REQUEST, parse)
    assert request_count(mocked) == 1


async def test_redirect_is_not_followed(
    mocked: aioresponses, session: aiohttp.ClientSession, sleep: FakeSleep
) -> None:
    """A 302 elsewhere is an APIError: the Authorization header never travels on."""
    mocked.get(PAGE_URL, status=302, headers={"Location": "https://evil.example/steal"})
    with pytest.raises(APIError) as caught:
        await make_transport(session, sleep).send(REQUEST, parse)
    assert caught.value.status_code == 302
    assert request_count(mocked) == 1


async def test_throttles_shared_with_progress_elsewhere_do_not_use_up_retries(
    mocked: aioresponses, session: aiohttp.ClientSession, sleep: FakeSleep
) -> None:
    """A request throttled 5 times with 2 retries completes while the client's others pass."""
    transport = make_transport(session, sleep, max_retries=2)
    # Past the slow start, so that two requests of the client may be in flight.
    transport.rate.learn(await transport.rate.acquire(), 200, {})
    sleep.now += 2.0

    async def another_request_gets_through(url: URL, **_: object) -> CallbackResult:
        # Another process on the account took this slot; one of ours got the next.
        transport.rate.learn(await transport.rate.acquire(), 200, {})
        return CallbackResult(status=429)

    for _ in range(5):
        mocked.get(PAGE_URL, callback=another_request_gets_through)
    mocked.get(PAGE_URL, payload=OK)
    page = await transport.send(REQUEST, parse)
    assert getattr(page, "request_id", None) == "ok-1"


async def test_throttles_announcing_the_budget_spent_do_not_use_up_retries(
    mocked: aioresponses, session: aiohttp.ClientSession, sleep: FakeSleep
) -> None:
    """A request throttled 5 times with 2 retries completes when each throttle says the
    account's budget is spent: another process may hold all of it for a while."""
    spent = {"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1"}
    mocked.get(PAGE_URL, status=429, headers={**spent, "Retry-After": "1"}, repeat=5)
    mocked.get(PAGE_URL, payload=OK)
    page = await make_transport(session, sleep, max_retries=2).send(REQUEST, parse)
    assert getattr(page, "request_id", None) == "ok-1"


async def test_throttles_announcing_the_budget_spent_forever_end_within_minutes(
    mocked: aioresponses, session: aiohttp.ClientSession, sleep: FakeSleep
) -> None:
    """A server that throttles every attempt, saying the budget is spent, fails the request
    once it has waited ``max_retry_after`` and then its retries, not after 100 attempts."""
    spent = {"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0", "Retry-After": "30"}
    mocked.get(PAGE_URL, status=429, headers=spent, repeat=True)
    started = sleep.now
    with pytest.raises(RateLimitError) as info:
        await make_transport(session, sleep, max_retries=2).send(REQUEST, parse)
    assert info.value.attempts < 10
    assert sleep.now - started <= 120 + 3 * 30


async def test_throttles_with_no_progress_anywhere_use_up_retries(
    mocked: aioresponses, session: aiohttp.ClientSession, sleep: FakeSleep
) -> None:
    """With nothing of the client getting through, each throttle counts against the retries."""
    mocked.get(PAGE_URL, status=429, repeat=True)
    with pytest.raises(RateLimitError) as info:
        await make_transport(session, sleep, max_retries=2).send(REQUEST, parse)
    assert info.value.attempts == 3


async def test_unresolvable_host_before_any_answer_fails_at_once(
    mocked: aioresponses, session: aiohttp.ClientSession, sleep: FakeSleep
) -> None:
    """A host name that does not resolve is a wrong region or URL: one attempt, one hint."""
    key = SimpleNamespace(host="api.in.exotel.com", port=443, ssl=True)
    dns = aiohttp.ClientConnectorDNSError(key, OSError(-2, "Name or service not known"))  # type: ignore[arg-type]
    mocked.get(PAGE_URL, exception=dns, repeat=True)
    with pytest.raises(APIConnectionError) as info:
        await make_transport(session, sleep).send(REQUEST, parse)
    assert info.value.attempts == 1
    assert "cannot resolve the host of https://api.exotel.com" in str(info.value)
    assert "EXOTEL_REGION" in str(info.value)
