"""Contract tests of the sandbox, spoken to with a plain aiohttp session over 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import exotel_async.testing
from exotel_async.testing import SORT_ORDERS, Faults, Sandbox
from exotel_async.testing._data import CampaignData
from tests._virtual_time import FakeSleep

HEX32 = re.compile(r"[0-9a-f]{32}")
MOBILE = re.compile(r"\+91[6-9][0-9]{9}")
PROJECT_ROOT = str(Path(exotel_async.testing.__file__).resolve().parents[2])
PATH = "/v2/accounts/sandbox-sid/sms-campaigns/{cid}/sms-details"
PATH_FORMS = (
    "/v2/accounts/sandbox-sid/sms-campaigns/demo/sms-details",
    "/v2/accounts/sandbox-sid/sms-campaign/demo/sms-details",
    "/v2/accounts/sandbox-sid/message-campaigns/demo/message-details?channel=sms",
)


def basic(key: str = "sandbox-key", token: str = "sandbox-token") -> dict[str, str]:
    """Return an Authorization header for HTTP Basic credentials."""
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:{token}".encode()).decode()}


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """A sandbox with a small campaign and an empty one."""
    async with Sandbox(campaigns={"demo": 120, "empty": 0}) as sb:
        yield sb


@pytest.fixture
async def session(sandbox: Sandbox) -> AsyncIterator[aiohttp.ClientSession]:
    """A session authenticated against ``sandbox``."""
    async with aiohttp.ClientSession(sandbox.base_url, headers=basic()) as http:
        yield http


async def get(
    http: aiohttp.ClientSession, path: str = PATH.format(cid="demo"), **params: Any
) -> tuple[int, Any]:
    """GET ``path`` and return the status and decoded JSON body."""
    query = {key: str(value) for key, value in params.items()}
    async with http.get(path, params=query) as response:
        return response.status, await response.json(content_type=None)


def data_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the ``data`` objects of a success body."""
    return [item["data"] for item in body["response"]]


def error_of(body: dict[str, Any]) -> tuple[int, int]:
    """Return (http_code, error code) of a v2 error body."""
    return body["http_code"], body["response"]["error_data"]["code"]


# --- success envelope and paging -------------------------------------------------------------


async def test_success_envelope_has_the_documented_keys(session: aiohttp.ClientSession) -> None:
    """A page carries request_id, method, http_code, metadata and a response list."""
    status, body = await get(session, limit=3)
    assert status == 200
    assert list(body) == ["request_id", "method", "http_code", "metadata", "response"]
    assert (body["method"], body["http_code"]) == ("GET", 200)
    assert HEX32.fullmatch(body["request_id"])


async def test_success_items_wrap_data_with_code_and_status(
    session: aiohttp.ClientSession,
) -> None:
    """Each item is {code: 200, error_data: null, status: success, data: {...}}."""
    _, body = await get(session, limit=5)
    for item in body["response"]:
        assert item.keys() == {"code", "error_data", "status", "data"}
        assert (item["code"], item["error_data"], item["status"]) == (200, None, "success")


async def test_request_ids_differ_between_requests(session: aiohttp.ClientSession) -> None:
    """Every response gets its own request id."""
    ids = {(await get(session))[1]["request_id"] for _ in range(3)}
    assert len(ids) == 3


async def test_metadata_reports_count_offset_total_limit(session: aiohttp.ClientSession) -> None:
    """metadata echoes offset and limit and reports count and total."""
    _, body = await get(session, offset=10, limit=7)
    assert body["metadata"] == {"count": 7, "offset": 10, "total": 120, "limit": 7}


async def test_limit_defaults_to_20_and_offset_to_0(session: aiohttp.ClientSession) -> None:
    """Without parameters a page is the first 20 records."""
    _, body = await get(session)
    assert body["metadata"] == {"count": 20, "offset": 0, "total": 120, "limit": 20}


async def test_offset_limit_window_serves_the_expected_records(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """The page at offset/limit holds exactly those records of the campaign."""
    _, body = await get(session, offset=33, limit=9)
    assert data_of(body) == sandbox.records("demo")[33:42]


async def test_last_page_is_shorter_than_limit(session: aiohttp.ClientSession) -> None:
    """The page that straddles the end has count below limit."""
    _, body = await get(session, offset=110, limit=50)
    assert body["metadata"]["count"] == 10
    assert len(body["response"]) == 10


async def test_page_past_the_end_is_empty(session: aiohttp.ClientSession) -> None:
    """Asking past the last record gives count 0 and an empty response list."""
    status, body = await get(session, offset=500, limit=20)
    assert status == 200
    assert body["metadata"] == {"count": 0, "offset": 500, "total": 120, "limit": 20}
    assert body["response"] == []


async def test_empty_campaign_has_total_zero(session: aiohttp.ClientSession) -> None:
    """A campaign without records serves an empty first page."""
    _, body = await get(session, PATH.format(cid="empty"))
    assert body["metadata"]["total"] == 0
    assert body["response"] == []


async def test_walking_all_pages_yields_every_record_once(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """An offset/limit walk driven by metadata.total sees every record exactly once."""
    seen: list[dict[str, Any]] = []
    offset, total = 0, 1
    while offset < total:
        _, body = await get(session, offset=offset, limit=50)
        seen += data_of(body)
        offset, total = offset + 50, body["metadata"]["total"]
    assert seen == sandbox.records("demo")
    assert len({record["sid"] for record in seen}) == 120


@pytest.mark.parametrize("path", PATH_FORMS)
async def test_every_path_form_serves_the_same_page(
    sandbox: Sandbox, session: aiohttp.ClientSession, path: str
) -> None:
    """All three documented path forms serve the campaign's records."""
    status, body = await get(session, path, limit=4)
    assert status == 200
    assert data_of(body) == sandbox.records("demo", limit=4)


# --- errors -----------------------------------------------------------------------------------


async def test_error_envelope_has_the_v2_shape(sandbox: Sandbox) -> None:
    """Errors carry request_id, method, http_code and a failure response object."""
    async with aiohttp.ClientSession(sandbox.base_url) as http:
        status, body = await get(http)
    assert status == 401
    assert list(body) == ["request_id", "method", "http_code", "response"]
    assert HEX32.fullmatch(body["request_id"])
    assert body["response"] == {
        "code": 401,
        "status": "failure",
        "data": None,
        "error_data": {
            "code": 1010,
            "message": "Authorization failed",
            "description": "Authorization failed",
        },
    }


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic(token="wrong"),
        basic(key="wrong"),
        {"Authorization": "Bearer sandbox-token"},
        {"Authorization": "Basic not-base64!"},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
    ],
    ids=["missing", "wrong-token", "wrong-key", "bearer", "garbled", "no-colon"],
)
async def test_bad_credentials_get_401_code_1010(sandbox: Sandbox, headers: dict[str, str]) -> None:
    """Missing or wrong Basic credentials are refused with 401 / 1010."""
    async with aiohttp.ClientSession(sandbox.base_url, headers=headers) as http:
        status, body = await get(http)
    assert (status, error_of(body)) == (401, (401, 1010))


async def test_other_account_sid_gets_403_code_1003(session: aiohttp.ClientSession) -> None:
    """An account sid other than the credentials' is forbidden."""
    status, body = await get(session, "/v2/accounts/someone-else/sms-campaigns/demo/sms-details")
    assert (status, error_of(body)) == (403, (403, 1003))


async def test_unknown_campaign_gets_404_code_1000(session: aiohttp.ClientSession) -> None:
    """A campaign id the sandbox does not hold is not found."""
    status, body = await get(session, PATH.format(cid="nope"))
    assert (status, error_of(body)) == (404, (404, 1000))


async def test_unknown_path_gets_404_envelope(session: aiohttp.ClientSession) -> None:
    """Paths outside the API get the v2 not-found envelope."""
    status, body = await get(session, "/v2/accounts/sandbox-sid/elsewhere")
    assert (status, error_of(body)) == (404, (404, 1000))


@pytest.mark.parametrize(
    "params",
    [
        {"offset": "-1"},
        {"offset": "ten"},
        {"offset": "1.5"},
        {"limit": "0"},
        {"limit": "51"},
        {"limit": "-5"},
        {"limit": "many"},
        {"sort_by": "name:asc"},
        {"sort_by": "schedule_time"},
        {"number": ""},
    ],
)
async def test_invalid_parameters_get_400_code_1002(
    session: aiohttp.ClientSession, params: dict[str, str]
) -> None:
    """Bad offset, limit, sort_by or number values are rejected as invalid parameters."""
    status, body = await get(session, **params)
    assert (status, error_of(body)) == (400, (400, 1002))


async def test_max_limit_is_configurable() -> None:
    """A sandbox built with max_limit=100 serves pages of 100."""
    async with (
        Sandbox(max_limit=100) as sb,
        aiohttp.ClientSession(sb.base_url, headers=basic()) as http,
    ):
        status, body = await get(http, limit=100)
    assert (status, body["metadata"]["count"]) == (200, 100)


async def test_message_details_without_channel_gets_1001(session: aiohttp.ClientSession) -> None:
    """The message-campaigns form requires channel: missing is code 1001."""
    path = "/v2/accounts/sandbox-sid/message-campaigns/demo/message-details"
    status, body = await get(session, path)
    assert (status, error_of(body)) == (400, (400, 1001))


async def test_message_details_with_other_channel_gets_1002(
    session: aiohttp.ClientSession,
) -> None:
    """The message-campaigns form accepts only channel=sms."""
    path = "/v2/accounts/sandbox-sid/message-campaigns/demo/message-details"
    status, body = await get(session, path, channel="voice")
    assert (status, error_of(body)) == (400, (400, 1002))


# --- records ----------------------------------------------------------------------------------


async def test_records_have_the_documented_fields(sandbox: Sandbox) -> None:
    """Every record has number, status, times, sender, direction and a 32-hex sid."""
    for record in sandbox.records("demo"):
        assert MOBILE.fullmatch(record["number"])
        assert HEX32.fullmatch(record["sid"])
        assert record["direction"] == "outgoing-api"
        assert record["sender_id"] in {"EXOTEL", "EXOSMS"}
        assert isinstance(record.get("message", record.get("body")), str)
        for field in ("schedule_time", "date_created"):
            assert record[field].endswith("+05:30")
            datetime.fromisoformat(record[field])


async def test_records_include_every_awkward_shape() -> None:
    """Across a campaign: null, absent, non-ASCII and quoted names, body keys, extras, newlines."""
    records = Sandbox(campaigns={"c": 3000}).records("c")
    names = [record.get("name", "<absent>") for record in records]
    assert None in names
    assert "<absent>" in names
    assert any(re.search("[\u0900-\u097f]", name or "") for name in names)
    assert any(re.search("[\u0b80-\u0bff]", name or "") for name in names)
    assert any('"' in (name or "") and "," in (name or "") for name in names)
    assert any("body" in record for record in records)
    assert any("message" in record for record in records)
    assert any("\n" in str(record.get("message") or record["body"]) for record in records)
    assert any({"units", "dlt_template_id"} <= record.keys() for record in records)


async def test_statuses_are_mostly_sent_or_delivered() -> None:
    """Most records are delivered or sent; failures are present but rare."""
    statuses = Counter(record["status"] for record in Sandbox().records("demo"))
    assert (statuses["delivered"] + statuses["sent"]) / 5000 > 0.7
    assert {"failed", "failed_dnd", "invalid", "expired", "undelivered"} <= statuses.keys()


async def test_detailed_status_matches_status() -> None:
    """detailed_status agrees with status (e.g. failed_dnd with FAILED_REJECTED_DND)."""
    expected = {
        "delivered": {"DELIVERED_TO_HANDSET"},
        "sent": {"DELIVERED_TO_OPERATOR"},
        "failed_dnd": {"FAILED_REJECTED_DND"},
        "failed-dnd": {"FAILED_REJECTED_DND"},
        "failed_spam_detected": {"FAILED_SPAM_DETECTED"},
        "invalid": {"FAILED_INVALID_DESTINATION_NUMBER"},
        "expired": {"FAILED_EXPIRED"},
    }
    for record in Sandbox().records("demo"):
        allowed = expected.get(record["status"])
        if allowed is not None:
            assert record["detailed_status"] in allowed
        elif record["status"] == "failed":
            assert record["detailed_status"].startswith("FAILED_")


async def test_times_never_decrease_and_creation_precedes_schedule() -> None:
    """schedule_time and date_created are nondecreasing, with date_created <= schedule_time."""
    records = Sandbox(campaigns={"c": 2000}).records("c")
    scheduled = [datetime.fromisoformat(record["schedule_time"]) for record in records]
    created = [datetime.fromisoformat(record["date_created"]) for record in records]
    assert scheduled == sorted(scheduled)
    assert created == sorted(created)
    assert all(c <= s for c, s in zip(created, scheduled, strict=True))


async def test_sids_are_unique_within_a_campaign() -> None:
    """No two records of a campaign share a sid."""
    records = Sandbox().records("demo")
    assert len({record["sid"] for record in records}) == len(records)


async def test_some_numbers_repeat_across_records() -> None:
    """A few regular numbers appear on many records."""
    counts = Counter(record["number"] for record in Sandbox().records("demo"))
    assert max(counts.values()) > 5
    assert sum(1 for count in counts.values() if count == 1) > 3000


async def test_huge_campaign_serves_its_last_page(
    session: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    """A five-million-record campaign answers any page without being materialised."""
    sandbox.add_campaign("huge", 5_000_000)
    _, body = await get(session, PATH.format(cid="huge"), offset=4_999_990, limit=50)
    assert body["metadata"] == {"count": 10, "offset": 4_999_990, "total": 5_000_000, "limit": 50}
    assert data_of(body)[-1] == sandbox.record("huge", 4_999_999)


# --- number filter ----------------------------------------------------------------------------


async def test_number_filter_returns_only_exact_matches(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """Filtering by a repeated number serves every record with that number and no other."""
    sandbox.add_campaign("big", 2000)
    number = Counter(r["number"] for r in sandbox.records("big")).most_common(1)[0][0]
    _, body = await get(session, PATH.format(cid="big"), number=number, limit=50)
    expected = [r for r in sandbox.records("big") if r["number"] == number]
    assert len(expected) > 1
    assert data_of(body) == expected
    assert body["metadata"]["total"] == len(expected)


async def test_number_filter_finds_a_unique_number_deep_in_a_huge_campaign(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """The filter answers from arithmetic, so a number at index 4,999,998 is found at once."""
    sandbox.add_campaign("huge", 5_000_000)
    wanted = sandbox.record("huge", 4_999_998)
    _, body = await get(session, PATH.format(cid="huge"), number=wanted["number"])
    assert data_of(body) == [wanted]


async def test_number_filter_unknown_number_gives_empty_page(
    session: aiohttp.ClientSession,
) -> None:
    """A well-formed number that no record holds matches nothing."""
    _, body = await get(session, number="+910000000000")
    assert body["metadata"]["total"] == 0
    assert body["response"] == []


async def test_number_filter_is_exact_not_normalised(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """The same number without its +91 prefix matches nothing: the match is exact."""
    number = sandbox.record("demo", 0)["number"]
    _, body = await get(session, number=number[3:])
    assert body["metadata"]["total"] == 0


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    campaign_id=st.text(min_size=1, max_size=8),
    total=st.integers(0, 1200),
)
def test_number_matching_agrees_with_a_full_scan(seed: int, campaign_id: str, total: int) -> None:
    """For every number in a campaign, the computed matches equal a brute-force scan."""
    data = CampaignData(seed, campaign_id)
    by_number: dict[str, list[int]] = {}
    for index in range(total):
        by_number.setdefault(data.number(index), []).append(index)
    for number, indices in by_number.items():
        assert list(data.matching(total, number)) == indices


# --- sorting ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sort_by", sorted(SORT_ORDERS))
async def test_sort_by_orders_records_by_that_field(
    session: aiohttp.ClientSession, sort_by: str
) -> None:
    """Each sort_by value orders the whole campaign by its field and direction."""
    field, direction = sort_by.split(":")
    seen: list[dict[str, Any]] = []
    for offset in range(0, 120, 50):
        _, body = await get(session, sort_by=sort_by, offset=offset, limit=50)
        seen += data_of(body)
    keys = [record[field] for record in seen]
    assert keys == sorted(keys, reverse=direction == "desc")
    assert len({record["sid"] for record in seen}) == 120


async def test_descending_is_ascending_reversed(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """schedule_time:desc serves the ascending order backwards."""
    _, body = await get(session, sort_by="schedule_time:desc", limit=5)
    assert data_of(body) == sandbox.records("demo")[::-1][:5]


async def test_sort_applies_within_a_number_filter(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """A filtered page sorted descending lists the matches newest first."""
    number = sandbox.record("demo", 3)["number"]
    _, body = await get(session, number=number, sort_by="date_created:desc")
    assert data_of(body) == sandbox.records("demo", number=number)[::-1]


# --- determinism ------------------------------------------------------------------------------


async def test_same_seed_serves_identical_records() -> None:
    """Two sandboxes with the same seed serve the same records."""
    bodies = []
    for _ in range(2):
        async with (
            Sandbox(seed=7) as sb,
            aiohttp.ClientSession(sb.base_url, headers=basic()) as http,
        ):
            bodies.append(data_of((await get(http, PATH.format(cid="demo"), limit=50))[1]))
    assert bodies[0] == bodies[1]


async def test_different_seed_serves_different_records() -> None:
    """Changing the seed changes sids and numbers."""
    first, second = Sandbox(seed=1).records("demo", limit=20), Sandbox(seed=2).records("demo")
    assert {r["sid"] for r in first}.isdisjoint(r["sid"] for r in second)


async def test_campaigns_hold_different_records() -> None:
    """Two campaigns of one sandbox do not share sids."""
    sandbox = Sandbox(campaigns={"a": 100, "b": 100})
    assert {r["sid"] for r in sandbox.records("a")}.isdisjoint(
        r["sid"] for r in sandbox.records("b")
    )


# --- faults -----------------------------------------------------------------------------------


async def test_latency_delays_each_response() -> None:
    """latency makes the sandbox wait that many seconds before each answer."""
    sleep = FakeSleep()
    async with (
        Sandbox(faults=Faults(latency=0.005), sleep=sleep) as sandbox,
        aiohttp.ClientSession(sandbox.base_url, headers=basic()) as http,
    ):
        await get(http)
    assert sleep.delays == [0.005]


async def test_p_500_sends_an_html_page(sandbox: Sandbox, session: aiohttp.ClientSession) -> None:
    """p_500 answers 500 with a proxy's HTML page."""
    sandbox.faults.p_500 = 1.0
    async with session.get(PATH.format(cid="demo")) as response:
        assert response.status == 500
        assert response.content_type == "text/html"
        assert "<html>" in await response.text()


@pytest.mark.parametrize(("knob", "status"), [("p_502", 502), ("p_503", 503), ("p_429", 429)])
async def test_p_5xx_and_429_send_the_v1_rest_exception(
    sandbox: Sandbox, session: aiohttp.ClientSession, knob: str, status: int
) -> None:
    """p_502, p_503 and p_429 answer with the v1 RestException body."""
    setattr(sandbox.faults, knob, 1.0)
    got, body = await get(session)
    assert got == status
    assert body["RestException"]["Status"] == status


async def test_p_429_sends_the_configured_retry_after(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """p_429 responses carry Retry-After set to ``retry_after`` seconds."""
    sandbox.faults = Faults(p_429=1.0, retry_after=7)
    async with session.get(PATH.format(cid="demo")) as response:
        assert response.headers["Retry-After"] == "7"


async def test_p_reset_drops_the_connection(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """p_reset closes the connection without any response."""
    sandbox.faults.p_reset = 1.0
    with pytest.raises(aiohttp.ClientConnectionError):
        await get(session)
    assert sandbox.request_log[-1].status is None


async def test_p_truncated_cuts_the_body_short(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """p_truncated promises a Content-Length it does not deliver."""
    sandbox.faults.p_truncated = 1.0
    async with session.get(PATH.format(cid="demo")) as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()


async def test_p_malformed_sends_invalid_json(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """p_malformed answers 200 with a body that is not JSON."""
    sandbox.faults.p_malformed = 1.0
    async with session.get(PATH.format(cid="demo")) as response:
        assert response.status == 200
        text = await response.text()
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


async def test_p_item_failure_fails_items_inside_a_200_page(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """p_item_failure replaces items by failures with error_data, keeping the page 200."""
    sandbox.faults.p_item_failure = 1.0
    status, body = await get(session, limit=10)
    assert (status, body["metadata"]["count"]) == (200, 10)
    for item in body["response"]:
        assert item["status"] == "failure"
        assert item["code"] >= 400
        assert item["data"] is None
        assert item["error_data"].keys() == {"code", "message", "description"}


@pytest.mark.parametrize("knob", ["p_truncated", "p_malformed", "p_item_failure"])
async def test_a_fault_does_not_corrupt_the_next_request(
    sandbox: Sandbox, session: aiohttp.ClientSession, knob: str
) -> None:
    """After a faulty answer, the same request is served intact."""
    setattr(sandbox.faults, knob, 1.0)
    async with session.get(PATH.format(cid="demo")) as response:
        with contextlib.suppress(aiohttp.ClientPayloadError):
            await response.read()
    sandbox.faults = Faults()
    _, body = await get(session)
    assert data_of(body) == sandbox.records("demo", limit=20)


async def test_oversized_body_pads_a_valid_page_and_announces_its_length(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """oversized_body adds that many bytes of whitespace to a page that still parses."""
    plain = len(await (await session.get(PATH.format(cid="demo"))).read())
    sandbox.faults.oversized_body = 300_000
    async with session.get(PATH.format(cid="demo")) as response:
        assert response.content_length == plain + 300_000
        body = await response.read()
    assert data_of(json.loads(body)) == sandbox.records("demo", limit=20)


async def test_endless_body_streams_until_the_client_hangs_up(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """endless_body sends a chunked 200 with no length that never ends."""
    sandbox.faults.endless_body = True
    async with session.get(PATH.format(cid="demo")) as response:
        assert response.content_length is None
        received = 0
        async for chunk in response.content.iter_chunked(65536):
            received += len(chunk)
            if received > 1_000_000:
                break
    assert received > 1_000_000


async def test_ignore_offset_serves_the_first_page_and_echoes_the_offset(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """ignore_offset answers any offset with the records at 0, claiming the offset asked."""
    sandbox.faults.ignore_offset = True
    _, body = await get(session, offset=40, limit=10)
    assert body["metadata"]["offset"] == 40
    assert data_of(body) == sandbox.records("demo", limit=10)


async def test_nesting_depth_adds_a_deeply_nested_unknown_field(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """nesting_depth gives every record a ``nested`` field of lists that many levels deep."""
    sandbox.faults.nesting_depth = 5
    _, body = await get(session, limit=3)
    assert [record.pop("nested") for record in data_of(body)] == [[[[[[]]]]]] * 3
    assert data_of(body) == sandbox.records("demo", limit=3)


async def test_reflect_headers_echoes_the_authorization_header(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """reflect_headers answers 502 with a page quoting the request's headers."""
    sandbox.faults.reflect_headers = True
    async with session.get(PATH.format(cid="demo")) as response:
        assert response.status == 502
        text = await response.text()
    assert basic()["Authorization"] in text


async def test_fault_draws_are_reproducible_for_a_seed() -> None:
    """Two sandboxes with the same seed fault on the same requests."""
    runs = []
    for _ in range(2):
        async with (
            Sandbox(seed=3, faults=Faults(p_503=0.5)) as sb,
            aiohttp.ClientSession(sb.base_url, headers=basic()) as http,
        ):
            runs.append([(await get(http))[0] for _ in range(12)])
    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 503}


@pytest.mark.parametrize(
    "knobs",
    [{"p_500": 1.5}, {"p_reset": -0.1}, {"latency": -1}, {"rate_limit": (0, 1.0)}],
)
def test_faults_reject_out_of_range_values(knobs: dict[str, Any]) -> None:
    """Probabilities outside [0, 1], negative latency and empty rate limits are refused."""
    with pytest.raises(ValueError, match=next(iter(knobs))):
        Faults(**knobs)


async def test_rate_limit_headers_on_every_response() -> None:
    """With a rate limit, responses carry X-RateLimit-Limit, -Remaining and -Reset."""
    now = 1_800_000_000.0
    faults = Faults(rate_limit=(5, 60.0))
    async with (
        Sandbox(campaigns={"demo": 120}, faults=faults, clock=lambda: now) as sandbox,
        aiohttp.ClientSession(sandbox.base_url, headers=basic()) as session,
    ):
        seen = []
        for path in (PATH.format(cid="demo"), PATH.format(cid="nope")):
            async with session.get(path) as response:
                headers = response.headers
                seen.append(tuple(headers[f"X-RateLimit-{h}"] for h in ("Limit", "Remaining")))
                # The first request leaves the window a minute on (epoch s, to the ms).
                assert float(headers["X-RateLimit-Reset"]) == now + 60.0
    assert seen == [("5", "4"), ("5", "3")]


async def test_rate_limit_answers_429_with_retry_after_past_the_limit(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """The request past N in the window gets 429 with Retry-After in seconds."""
    sandbox.faults.rate_limit = (2, 60.0)
    statuses = [(await get(session))[0] for _ in range(2)]
    async with session.get(PATH.format(cid="demo")) as response:
        statuses.append(response.status)
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        assert response.headers["X-RateLimit-Remaining"] == "0"
    assert statuses == [200, 200, 429]


async def test_rate_limit_window_slides() -> None:
    """Once the window has passed, requests are allowed again."""
    now = [100.0]
    faults = Faults(rate_limit=(1, 10.0))
    async with (
        Sandbox(faults=faults, clock=lambda: now[0]) as sb,
        aiohttp.ClientSession(sb.base_url, headers=basic()) as http,
    ):
        first, second = (await get(http))[0], (await get(http))[0]
        now[0] += 10.0
        assert (first, second, (await get(http))[0]) == (200, 429, 200)


async def test_growth_adds_records_after_each_request(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """grow_per_request makes metadata.total rise by N per request served."""
    sandbox.faults.grow_per_request = 10
    totals = [(await get(session))[1]["metadata"]["total"] for _ in range(3)]
    assert totals == [120, 130, 140]
    assert sandbox.campaigns == {"demo": 150, "empty": 30}


async def test_grown_records_equal_those_of_a_bigger_campaign(sandbox: Sandbox) -> None:
    """Records appended by growth are the ones a larger campaign holds at those indices."""
    sandbox.add_campaign("demo", 150)
    assert sandbox.records("demo")[120:] == Sandbox(campaigns={"demo": 150}).records("demo")[120:]


# --- observability ----------------------------------------------------------------------------


async def test_request_log_records_path_query_status(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """Each request appends an entry with its path, query, status and time."""
    await get(session, limit=3, sort_by="schedule_time:asc")
    entry = sandbox.request_log[-1]
    assert entry.path == PATH.format(cid="demo")
    assert entry.query == {"limit": "3", "sort_by": "schedule_time:asc"}
    assert (entry.method, entry.status, entry.fault) == ("GET", 200, None)


async def test_request_log_times_come_from_the_sandbox_clock() -> None:
    """A log entry's time is the sandbox's ``clock`` when the request came."""
    async with (
        Sandbox(clock=lambda: 1_800_000_000.5) as sandbox,
        aiohttp.ClientSession(sandbox.base_url, headers=basic()) as http,
    ):
        await get(http)
    assert sandbox.request_log[-1].time == 1_800_000_000.5


async def test_stats_count_requests_by_status_and_fault(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """stats counts requests, statuses and fired faults."""
    await get(session)
    await get(session, PATH.format(cid="nope"))
    sandbox.faults.p_503 = 1.0
    await get(session)
    stats = sandbox.stats
    assert stats.requests == 3
    assert stats.by_status == {200: 1, 404: 1, 503: 1}
    assert stats.by_fault == {"503": 1}
    assert stats.in_flight == 0


async def test_stats_track_the_most_requests_in_flight(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """max_in_flight is the peak number of concurrent requests."""
    sandbox.faults.latency = 0.01
    await asyncio.gather(*(get(session) for _ in range(5)))
    assert sandbox.stats.max_in_flight == 5


async def test_reset_stats_clears_log_and_counters(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """reset_stats empties the request log and zeroes the counters."""
    await get(session)
    sandbox.reset_stats()
    assert (len(sandbox.request_log), sandbox.stats.requests, sandbox.stats.by_status) == (0, 0, {})


# --- lifecycle and helpers --------------------------------------------------------------------


def test_public_names_are_pinned() -> None:
    """exotel_async.testing exports exactly these names, sorted."""
    assert exotel_async.testing.__all__ == [
        "CAMPAIGN_SHAPES",
        "CAMPAIGN_STATUSES",
        "RESET_FORMATS",
        "SORT_ORDERS",
        "WINDOW_KINDS",
        "Faults",
        "LoggedRequest",
        "RateLimit",
        "Record",
        "Sandbox",
        "SandboxCampaign",
        "SandboxStats",
        "StatusProgress",
        "make_account",
    ]


async def test_start_and_close_serve_on_a_free_loopback_port() -> None:
    """start() listens on 127.0.0.1 with a picked port; close() stops serving."""
    sandbox = await Sandbox().start()
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sandbox.base_url)
        assert sandbox.port > 0
    finally:
        await sandbox.close()
    with pytest.raises(RuntimeError):
        _ = sandbox.base_url


async def test_closing_twice_is_harmless() -> None:
    """A second close() does nothing."""
    sandbox = await Sandbox().start()
    await sandbox.close()
    await sandbox.close()


def test_base_url_before_start_raises() -> None:
    """base_url needs a running sandbox."""
    with pytest.raises(RuntimeError, match="not running"):
        _ = Sandbox().base_url


def test_defaults_are_the_demo_campaign_and_fixed_credentials() -> None:
    """By default there is one 5,000-record campaign 'demo' and fixed sandbox credentials."""
    sandbox = Sandbox()
    assert sandbox.campaigns == {"demo": 5000}
    assert (sandbox.api_key, sandbox.api_token, sandbox.account_sid) == (
        "sandbox-key",
        "sandbox-token",
        "sandbox-sid",
    )


@pytest.mark.parametrize(
    "options",
    [{"max_limit": 0}, {"campaigns": {"c": -1}}, {"campaigns": {"": 1}}, {"campaigns": {"a/b": 1}}],
)
def test_invalid_configuration_is_refused(options: dict[str, Any]) -> None:
    """Bad max_limit, negative totals and unusable campaign ids raise ValueError."""
    with pytest.raises(ValueError, match=r"max_limit|total|campaign id"):
        Sandbox(**options)


def test_records_rejects_an_unknown_sort() -> None:
    """records() validates sort_by like the server does."""
    with pytest.raises(ValueError, match="sort_by"):
        Sandbox().records("demo", sort_by="sid:asc")


def test_record_index_out_of_range_raises() -> None:
    """record() refuses indices outside the campaign."""
    with pytest.raises(IndexError):
        Sandbox().record("demo", 5000)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery to a child needs POSIX")
async def start_entry_point(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    """Start ``python -m exotel_async.testing --port 0 *args``; return it and its address."""
    root = PROJECT_ROOT
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "exotel_async.testing",
        "--port",
        "0",
        *args,
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None
    first = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    base_url = re.search(r"http://127\.0\.0\.1:\d+", first)
    assert base_url is not None, first
    return process, base_url.group()


async def test_module_entry_point_prints_its_address_and_stops_on_sigint() -> None:
    """``python -m exotel_async.testing`` prints where it listens and exits 0 on Ctrl-C."""
    process, base_url = await start_entry_point("--records", "42")
    assert process.stdout is not None
    try:
        async with aiohttp.ClientSession(base_url, headers=basic()) as http:
            assert (await get(http))[1]["metadata"]["total"] == 42
        process.send_signal(signal.SIGINT)
        rest = (await asyncio.wait_for(process.stdout.read(), 30)).decode()
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert "EXOTEL_API_TOKEN=sandbox-token" in rest


async def test_module_entry_point_plays_the_rate_limit_asked_for() -> None:
    """``--rate-reset none --rate-status 503 --no-retry-after``: a bare 503 past the limit."""
    process, base_url = await start_entry_point(
        "--rate-limit", "1", "--rate-reset", "none", "--rate-status", "503", "--no-retry-after"
    )
    try:
        async with aiohttp.ClientSession(base_url, headers=basic()) as http:
            for expected in (200, 503):
                async with http.get(PATH.format(cid="demo")) as response:
                    assert response.status == expected
                    assert "X-RateLimit-Remaining" not in response.headers
                    assert "Retry-After" not in response.headers
    finally:
        process.kill()
        await process.wait()


async def test_hold_answers_the_allowed_requests_then_keeps_the_rest_waiting(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """``hold(after=1)`` answers one request; the next waits until ``release()``."""
    sandbox.hold(after=1)
    assert (await get(session))[0] == 200
    waiting = asyncio.ensure_future(get(session))
    await sandbox.held()
    assert not waiting.done()
    sandbox.release()
    assert (await waiting)[0] == 200
    assert (await get(session))[0] == 200  # released: no longer holding


async def test_release_of_a_count_lets_that_many_go(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """``release(1)`` frees the oldest held request and keeps holding the others."""
    sandbox.hold()
    first = asyncio.ensure_future(get(session, offset=0))
    await sandbox.held(1)
    second = asyncio.ensure_future(get(session, offset=1))
    await sandbox.held(2)
    sandbox.release(1)
    assert (await first)[0] == 200
    assert not second.done()
    sandbox.release()
    assert (await second)[0] == 200
