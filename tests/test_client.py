"""ExotelClient: configuration, lifecycle, argument checks, and its two methods."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator, Mapping
from operator import attrgetter
from typing import Any

import aiohttp
import attrs
import pytest
from aioresponses import aioresponses

from exotel_async import ExotelClient, PageRequest, PathForm, Region, SmsPage
from exotel_async.testing import Sandbox
from tests._virtual_time import FakeSleep

TOKEN = "tok-SECRET-123"
PAGE_URL = re.compile(r"^https://api\.exotel\.com/v2/accounts/acc/sms-campaigns/c1/sms-details.*")


def page_body(offset: int, count: int, total: int) -> dict[str, Any]:
    return {
        "request_id": f"r{offset}",
        "metadata": {"count": count, "offset": offset, "total": total, "limit": count},
        "response": [
            {
                "code": 200,
                "status": "success",
                "error_data": None,
                "data": {"sid": f"s{offset + i}", "number": "9876543210"},
            }
            for i in range(count)
        ],
    }


def client(**kwargs: Any) -> ExotelClient:
    options: dict[str, Any] = {"api_key": "key", "api_token": TOKEN, "account_sid": "acc"}
    options.update(kwargs)
    return ExotelClient(**options)


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    with aioresponses() as m:
        yield m


def sent_queries(mocked: aioresponses) -> list[dict[str, str]]:
    return [dict(url.query) for (_, url) in mocked.requests]


def test_region_selects_the_host() -> None:
    """Singapore is api.exotel.com, Mumbai api.in.exotel.com, by name or enum."""
    assert client().base_url.host == "api.exotel.com"
    assert client(region="mumbai").base_url.host == "api.in.exotel.com"
    assert client(region=Region.MUMBAI).base_url.host == "api.in.exotel.com"


def test_region_is_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    """``EXOTEL_REGION=Mumbai`` selects the Mumbai cluster, as ``mumbai`` does."""
    for name in ("EXOTEL_API_KEY", "EXOTEL_API_TOKEN", "EXOTEL_ACCOUNT_SID"):
        monkeypatch.setenv(name, "x")
    monkeypatch.setenv("EXOTEL_REGION", "Mumbai")
    monkeypatch.delenv("EXOTEL_BASE_URL", raising=False)
    assert ExotelClient.from_env().base_url.host == "api.in.exotel.com"


def test_unknown_region_is_refused() -> None:
    """A region Exotel does not have is a ValueError."""
    with pytest.raises(ValueError, match="region"):
        client(region="tokyo")


def test_base_url_overrides_region() -> None:
    """``base_url`` wins over ``region``."""
    assert str(client(region="mumbai", base_url="https://proxy.example").base_url) == (
        "https://proxy.example"
    )


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9", "http://127.9.9.9"]
)
def test_plain_http_is_allowed_on_loopback(url: str) -> None:
    """Tests and the sandbox run on loopback over plain http."""
    assert client(base_url=url).base_url.scheme == "http"


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("http://api.exotel.com", "https"),
        ("http://10.0.0.1", "https"),
        ("https://key:tok@api.exotel.com", "credentials"),
        ("https://api.exotel.com/?a=1", "query"),
        ("ftp://api.exotel.com", "http"),
        ("api.exotel.com", "http"),
    ],
)
def test_unsafe_base_url_is_refused(url: str, match: str) -> None:
    """Plain http off loopback, userinfo, queries and other schemes are refused."""
    with pytest.raises(ValueError, match=match):
        client(base_url=url)


@pytest.mark.parametrize(
    "url",
    [
        "htps://key:TOKEN-s3cr3t@api.exotel.com",
        "ftp://:TOKEN-s3cr3t@api.exotel.com",
        "http://key:TOKEN-s3cr3t@10.0.0.1",
        "https://key:TOKEN-s3cr3t@api.exotel.com/?a=1",
        "https://key:TOKEN-s3cr3t@[::1",
    ],
)
def test_base_url_errors_never_echo_credentials(url: str) -> None:
    """Whatever else is wrong with it, a base_url's token never reaches the message."""
    with pytest.raises(ValueError, match=r"base_url") as info:
        client(base_url=url)
    assert "TOKEN-s3cr3t" not in str(info.value)


@attrs.frozen
class Campaign:
    """A record class of another endpoint: a different path, and an ``id`` for its key."""

    id: str = attrs.field(metadata={"aliases": ("sid",)})
    name: str | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict)


def campaign_page(offset: int, ids: list[str], total: int) -> dict[str, Any]:
    items = [{"status": "success", "data": {"sid": i, "name": f"n-{i}"}} for i in ids]
    metadata = {"count": len(ids), "offset": offset, "total": total, "limit": 2}
    return {"request_id": f"r{offset}", "metadata": metadata, "response": items}


async def test_paginate_streams_another_endpoint_with_its_filters_and_key(
    mocked: aioresponses,
) -> None:
    """``paginate`` walks any path with its params, and dedupes by the given key."""
    url = re.compile(r"^https://api\.exotel\.com/v2/accounts/acc/sms-campaigns\?.*")
    # The server repeats campaign b at the start of the second page.
    for offset, ids in ((0, ["a", "b"]), (2, ["b", "c"]), (4, ["d"])):
        mocked.get(url, payload=campaign_page(offset, ids, 5))
    async with client() as c:
        stream = c.paginate(
            "/v2/accounts/acc/sms-campaigns",
            Campaign,
            key=attrgetter("id"),
            params={"status": "completed"},
            page_size=2,
        )
        got = [campaign async for campaign in stream]
    assert [(x.id, x.name) for x in got] == [("a", "n-a"), ("b", "n-b"), ("c", "n-c"), ("d", "n-d")]
    assert stream.stats.duplicates_dropped == 1
    assert [q["status"] for q in sent_queries(mocked)] == ["completed"] * 3


@pytest.mark.parametrize(
    ("request_", "error"),
    [("v2/no-slash", ValueError), (42, TypeError)],
)
async def test_paginate_refuses_a_bad_request_at_the_call(
    mocked: aioresponses, request_: Any, error: type[Exception]
) -> None:
    """A path that is not below the base URL, or not a path, fails before any request."""
    async with client() as c:
        with pytest.raises(error, match="request"):
            c.paginate(request_, Campaign, key=attrgetter("id"))
    assert mocked.requests == {}


async def test_paginate_masks_params_the_request_declares_personal(
    mocked: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    """A filter added through ``params`` is masked when the PageRequest names it personal."""
    url = re.compile(r"^https://api\.exotel\.com/v2/accounts/acc/sms-campaigns\?.*")
    mocked.get(url, payload=campaign_page(0, ["a"], 1))
    request = PageRequest("/v2/accounts/acc/sms-campaigns", personal={"number"})
    async with client() as c:
        stream = c.paginate(request, Campaign, key=id, params={"number": "+919876543210"})
        with caplog.at_level(logging.DEBUG, logger="exotel_async"):
            assert len([x async for x in stream]) == 1
    assert "number=***********10" in caplog.text
    assert "9876543210" not in caplog.text


@pytest.mark.parametrize("params", [{"offset": "0"}, {"limit": "10"}])
async def test_paginate_refuses_params_that_set_offset_or_limit(
    mocked: aioresponses, params: dict[str, str]
) -> None:
    """The walk owns offset and limit: a caller's own fails at the call."""
    async with client() as c:
        with pytest.raises(ValueError, match=r"offset|limit"):
            c.paginate("/v2/accounts/acc/sms-campaigns", Campaign, key=id, params=params)
    assert mocked.requests == {}


async def test_paginate_refuses_offset_inside_a_page_request(mocked: aioresponses) -> None:
    """A PageRequest that already carries offset fails at the call, not against the server."""
    request = PageRequest("/v2/accounts/acc/sms-campaigns", (("offset", "40"),))
    async with client() as c:
        with pytest.raises(ValueError, match="offset"):
            c.paginate(request, Campaign, key=id)
    assert mocked.requests == {}


@pytest.mark.parametrize("path", ["/v2/campaigns?limit=1", "/v2/campaigns#top"])
async def test_paginate_refuses_a_query_or_fragment_in_the_path(
    mocked: aioresponses, path: str
) -> None:
    """Filters go in params: a path holding '?' or '#' fails at the call."""
    async with client() as c:
        with pytest.raises(ValueError, match="query or fragment"):
            c.paginate(path, Campaign, key=id)
    assert mocked.requests == {}


@pytest.mark.parametrize("item_type", [int, dict, "Campaign"])
async def test_paginate_refuses_an_item_type_that_is_not_an_attrs_class(
    mocked: aioresponses, item_type: Any
) -> None:
    """An item type the converter cannot structure is a TypeError at the call."""
    async with client() as c:
        with pytest.raises(TypeError, match="item_type"):
            c.paginate("/v2/accounts/acc/sms-campaigns", item_type, key=id)
    assert mocked.requests == {}


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"api_key": ""}, ValueError, "api_key"),
        ({"api_token": None}, TypeError, "api_token"),
        ({"account_sid": "a/b"}, ValueError, "account_sid"),
        ({"timeout": 0}, ValueError, "timeout"),
        ({"timeout": "5"}, TypeError, "timeout"),
        ({"max_retries": -1}, ValueError, "max_retries"),
        ({"max_retries": True}, TypeError, "max_retries"),
        ({"timeout": float("inf")}, ValueError, "timeout"),
        ({"connect_timeout": float("nan")}, ValueError, "connect_timeout"),
        ({"max_requests_per_minute": float("inf")}, ValueError, "max_requests_per_minute"),
        ({"max_requests_per_minute": 1e-323}, ValueError, "at least 1"),
        ({"backoff_base": -1}, ValueError, "backoff_base"),
        ({"path_form": "nope"}, ValueError, "path_form"),
        ({"api_key": "key:with-colon"}, ValueError, "api_key must not contain ':'"),
        ({"max_response_bytes": 0}, ValueError, "max_response_bytes"),
        ({"max_response_bytes": 1.5}, TypeError, "max_response_bytes"),
        ({"clock": 0.0}, TypeError, "clock"),
        ({"sleep": None}, TypeError, "sleep"),
    ],
)
def test_bad_constructor_arguments_are_refused(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    """Each bad argument raises a ValueError or TypeError naming it."""
    with pytest.raises(error, match=match):
        client(**kwargs)


def test_repr_shows_account_and_host_never_the_token() -> None:
    """``repr`` is safe to log."""
    text = repr(client())
    assert "acc" in text
    assert "api.exotel.com" in text
    assert TOKEN not in text


def test_from_env_reads_every_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """``from_env`` takes credentials, region and base URL from EXOTEL_* variables."""
    monkeypatch.setenv("EXOTEL_API_KEY", "k")
    monkeypatch.setenv("EXOTEL_API_TOKEN", "t")
    monkeypatch.setenv("EXOTEL_ACCOUNT_SID", "sid1")
    monkeypatch.setenv("EXOTEL_REGION", "mumbai")
    c = ExotelClient.from_env()
    assert (c.account_sid, c.base_url.host) == ("sid1", "api.in.exotel.com")
    monkeypatch.setenv("EXOTEL_BASE_URL", "http://127.0.0.1:9999")
    assert ExotelClient.from_env().base_url.port == 9999


@pytest.mark.parametrize("missing", ["EXOTEL_API_KEY", "EXOTEL_API_TOKEN", "EXOTEL_ACCOUNT_SID"])
def test_from_env_names_the_missing_variable(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    """A missing variable is named in the error."""
    for name in ("EXOTEL_API_KEY", "EXOTEL_API_TOKEN", "EXOTEL_ACCOUNT_SID"):
        monkeypatch.setenv(name, "x")
    monkeypatch.delenv(missing)
    with pytest.raises(ValueError, match=missing):
        ExotelClient.from_env()


def test_from_env_names_every_missing_variable_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no credentials set, one error names all three variables."""
    for name in ("EXOTEL_API_KEY", "EXOTEL_API_TOKEN", "EXOTEL_ACCOUNT_SID"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="EXOTEL_API_KEY, EXOTEL_API_TOKEN and EXOTEL_ACCOUNT_SID"):
        ExotelClient.from_env()


async def test_page_is_exactly_one_get(mocked: aioresponses) -> None:
    """``sms_details_page`` makes one request and returns its typed page."""
    mocked.get(PAGE_URL, payload=page_body(40, 20, 100))
    async with client() as c:
        page = await c.sms_details_page("c1", offset=40, limit=20)
    assert isinstance(page, SmsPage)
    assert (page.metadata.offset, len(page.records), page.request_id) == (40, 20, "r40")
    assert sent_queries(mocked) == [{"offset": "40", "limit": "20"}]


async def test_filters_are_sent_on_every_page(mocked: aioresponses) -> None:
    """``number`` and ``sort_by`` go with each request of a stream."""
    for offset in (0, 10, 20):
        mocked.get(PAGE_URL, payload=page_body(offset, 10, 30))
    async with client() as c:
        got = [
            r.sid
            async for r in c.sms_details(
                "c1", page_size=10, number="+919876543210", sort_by="date_created:desc"
            )
        ]
    assert len(got) == 30
    queries = sent_queries(mocked)
    assert len(queries) == 3
    assert all(q["number"] == "+919876543210" for q in queries)
    assert all(q["sort_by"] == "date_created:desc" for q in queries)


def sids_page(offset: int, sids: list[str], total: int) -> dict[str, Any]:
    body = page_body(offset, len(sids), total)
    for item, sid in zip(body["response"], sids, strict=True):
        item["data"]["sid"] = sid
    return body


async def test_sms_stream_keeps_sids_apart_that_differ_only_in_spelling(
    mocked: aioresponses,
) -> None:
    """Sids that could spell the same bytes (case, zeros, spaces) are all yielded."""
    sids = ["ab", "0ab", "00ab", "AB", "a b", " ab", "ab ", "_ab", "0xab", "-ab", "", "abg"]
    mocked.get(PAGE_URL, payload=sids_page(0, sids, len(sids)))
    async with client() as c:
        stream = c.sms_details("c1", page_size=len(sids))
        got = [r.sid async for r in stream]
    assert got == sids
    assert stream.stats.duplicates_dropped == 0


async def test_sms_stream_drops_a_hex_sid_repeated_across_a_page_boundary(
    mocked: aioresponses,
) -> None:
    """A 32-digit hex sid served again at the start of the next page is yielded once."""
    sids = [f"{n:032x}" for n in range(5)]
    for offset, page in ((0, sids[:2]), (2, sids[1:3]), (4, sids[3:])):
        mocked.get(PAGE_URL, payload=sids_page(offset, page, 6))
    async with client() as c:
        stream = c.sms_details("c1", page_size=2, concurrency=1)
        got = [r.sid async for r in stream]
    assert got == sids
    assert stream.stats.duplicates_dropped == 1


async def test_message_campaigns_path_form(mocked: aioresponses) -> None:
    """The newer URL form is one option away and sends ``channel=sms``."""
    mocked.get(
        re.compile(r".*/v2/accounts/acc/message-campaigns/c1/message-details\?.*channel=sms.*"),
        payload=page_body(0, 1, 1),
    )
    async with client(path_form=PathForm.MESSAGE_CAMPAIGNS) as c:
        page = await c.sms_details_page("c1")
    assert len(page.records) == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"campaign_id": "../x"}, ValueError, "campaign_id"),
        ({"campaign_id": ""}, ValueError, "campaign_id"),
        ({"campaign_id": 5}, TypeError, "campaign_id"),
        ({"page_size": 0}, ValueError, "page_size"),
        ({"page_size": 1001}, ValueError, "page_size"),
        ({"page_size": True}, TypeError, "page_size"),
        ({"offset": -1}, ValueError, "offset"),
        ({"max_items": -1}, ValueError, "max_items"),
        ({"max_items": 2.5}, TypeError, "max_items"),
        ({"sort_by": "newest"}, ValueError, "sort_by"),
        ({"number": "98765 43210"}, ValueError, "number"),
        ({"concurrency": 0}, ValueError, "concurrency"),
        ({"skip_item_errors": "yes"}, TypeError, "skip_item_errors"),
    ],
)
async def test_bad_stream_arguments_fail_at_the_call_before_any_request(
    mocked: aioresponses, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    """``sms_details`` checks its arguments when called, not when iterated."""
    args: dict[str, Any] = {"campaign_id": "c1"}
    args.update(kwargs)
    async with client() as c:
        with pytest.raises(error, match=match):
            c.sms_details(**args)
    assert mocked.requests == {}


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"limit": 0}, ValueError), ({"limit": "20"}, TypeError), ({"offset": -5}, ValueError)],
)
async def test_bad_page_arguments_fail_before_any_request(
    mocked: aioresponses, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    """``sms_details_page`` refuses bad limits and offsets without a request."""
    async with client() as c:
        with pytest.raises(error):
            await c.sms_details_page("c1", **kwargs)
    assert mocked.requests == {}


async def test_closed_client_refuses_use_and_closes_twice_harmlessly() -> None:
    """After ``close`` a request is a clear RuntimeError; a second close is a no-op."""
    c = client()
    async with c:
        pass
    await c.close()
    with pytest.raises(RuntimeError, match="closed"):
        await c.sms_details_page("c1")


async def test_own_session_is_closed_on_exit() -> None:
    """The session the client opened is closed when the block ends."""
    c = client()
    async with c:
        session = c._transport.session()
    assert session.closed


async def test_injected_session_is_used_and_left_open(mocked: aioresponses) -> None:
    """A session passed in serves the requests and is never closed by the client."""
    mocked.get(PAGE_URL, payload=page_body(0, 1, 1))
    async with aiohttp.ClientSession() as session:
        async with client(session=session) as c:
            await c.sms_details_page("c1")
        assert not session.closed


async def test_client_used_without_async_with_opens_its_session_lazily(
    mocked: aioresponses,
) -> None:
    """Awaiting a method outside ``async with`` works; ``close()`` then cleans up."""
    mocked.get(PAGE_URL, payload=page_body(0, 1, 1))
    c = client()
    try:
        page = await c.sms_details_page("c1")
    finally:
        await c.close()
    assert len(page.records) == 1


async def test_max_requests_per_minute_spaces_requests(mocked: aioresponses) -> None:
    """A ceiling of 6000 a minute keeps requests 10 ms apart on the client's own clock."""
    mocked.get(PAGE_URL, payload=page_body(0, 1, 1), repeat=True)
    sleep = FakeSleep()
    started = sleep.now
    async with client(max_requests_per_minute=6000, clock=sleep.clock, sleep=sleep) as c:
        for _ in range(5):
            await c.sms_details_page("c1")
    assert sleep.now - started == pytest.approx(0.04)  # four gaps of 10 ms
    assert len(next(iter(mocked.requests.values()))) == 5


def test_number_without_country_code_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    """A number filter without '+' logs a warning (masked), since it likely matches nothing."""
    with caplog.at_level(logging.WARNING, logger="exotel_async"):
        client().sms_details("c1", number="8123456789")
    assert "not in E.164 form" in caplog.text
    assert "********89" in caplog.text
    assert "8123456789" not in caplog.text


def test_number_in_e164_form_is_not_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    """A number with '+' and country code passes silently."""
    with caplog.at_level(logging.WARNING, logger="exotel_async"):
        client().sms_details("c1", number="+919876543210")
    assert caplog.text == ""


@pytest.mark.parametrize("cap", [None, 2])
async def test_max_in_flight_caps_requests_across_streams(cap: int | None) -> None:
    """Three streams of four pages in flight each stay within max_in_flight together."""
    async with Sandbox(campaigns={"a": 200, "b": 200, "c": 200}) as sandbox:
        sandbox.hold()
        options = {"base_url": sandbox.base_url, "max_in_flight": cap}
        async with ExotelClient(
            sandbox.api_key, sandbox.api_token, sandbox.account_sid, **options
        ) as c:

            async def walk(campaign: str) -> int:
                return len([r async for r in c.sms_details(campaign, page_size=10)])

            walks = asyncio.gather(*(walk(campaign) for campaign in "abc"))
            # Uncapped, the three first pages wait at the server together; capped, two.
            await sandbox.held(3 if cap is None else 2)
            sandbox.release()
            assert await walks == [200, 200, 200]
    if cap is None:
        assert sandbox.stats.max_in_flight >= 3  # the test can tell a cap from none
    else:
        assert sandbox.stats.max_in_flight <= cap


def test_max_in_flight_must_be_positive() -> None:
    """max_in_flight=0 is a ValueError at construction."""
    with pytest.raises(ValueError, match="max_in_flight"):
        client(max_in_flight=0)
