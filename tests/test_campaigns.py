"""The campaign endpoints: ``client.campaigns()`` and ``client.campaign()`` over loopback,
and the single-object parser on recorded shapes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from exotel_async import (
    Campaign,
    CampaignStatus,
    ExotelClient,
    ItemError,
    NotFoundError,
    ResponseDecodeError,
)
from exotel_async._protocol import parse_item
from exotel_async.testing import Faults, Sandbox, SandboxCampaign, make_account
from tests._clients import fast_client

ACCOUNT = [
    *make_account(45, 9_000, max_records=2_000, seed=5),
    # Created last, so that the list's default order (oldest first) is ACCOUNT's order.
    SandboxCampaign(
        "gone",
        20,
        name="Old Promo",
        status="Archived",
        created=datetime(2026, 11, 27, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    ),
]


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """A sandbox serving ACCOUNT."""
    async with Sandbox(campaigns=ACCOUNT, seed=5) as sb:
        yield sb


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[ExotelClient]:
    """A client of the sandbox with millisecond backoff."""
    async with fast_client(sandbox) as c:
        yield c


def ids(campaigns: list[Campaign]) -> list[str]:
    """The ids of campaigns, in order."""
    return [c.campaign_id for c in campaigns]


# --- the list -----------------------------------------------------------------------------------


async def test_campaigns_streams_every_campaign_once_in_order(client: ExotelClient) -> None:
    """Every campaign of the account, typed, in the list's order, across pages of 20."""
    found = [c async for c in client.campaigns()]
    assert ids(found) == [c.campaign_id for c in ACCOUNT]
    assert found[0].name == ACCOUNT[0].name
    assert found[0].date_created == ACCOUNT[0].created


async def test_campaigns_ask_pages_of_page_size(client: ExotelClient, sandbox: Sandbox) -> None:
    """page_size is the limit of every list request."""
    [c async for c in client.campaigns(page_size=50)]
    assert {entry.query["limit"] for entry in sandbox.request_log} == {"50"}


async def test_campaigns_on_the_message_campaigns_path(
    client: ExotelClient, sandbox: Sandbox
) -> None:
    """path_form="message-campaigns" lists the same campaigns there, with channel=sms."""
    found = [c async for c in client.campaigns(path_form="message-campaigns")]
    assert ids(found) == [c.campaign_id for c in ACCOUNT]
    entry = sandbox.request_log[0]
    assert entry.path.endswith("/message-campaigns")
    assert entry.query["channel"] == "sms"


async def test_campaigns_in_the_stats_shape_read_their_ids(
    client: ExotelClient, sandbox: Sandbox
) -> None:
    """List items with id instead of sid give the same campaign ids."""
    sandbox.campaign_shape = "stats"
    assert ids([c async for c in client.campaigns()]) == [c.campaign_id for c in ACCOUNT]


async def test_status_filter_goes_to_exotel_in_any_casing(
    client: ExotelClient, sandbox: Sandbox
) -> None:
    """status="Completed" asks for status=completed and gets the completed campaigns."""
    found = [c async for c in client.campaigns(status="Completed")]
    assert sandbox.request_log[0].query["status"] == "completed"
    assert {c.state for c in found} == {CampaignStatus.COMPLETED}
    assert len(found) == sum(1 for c in ACCOUNT if c.status.lower() == "completed")


async def test_name_filter_and_sort_by_go_to_exotel(client: ExotelClient, sandbox: Sandbox) -> None:
    """name and sort_by are sent as given; schedule.start_time is a valid field."""
    [c async for c in client.campaigns(name="Promo", sort_by="schedule.start_time:desc")]
    query = sandbox.request_log[0].query
    assert (query["name"], query["sort_by"]) == ("Promo", "schedule.start_time:desc")


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"page_size": 51}, ValueError),
        ({"page_size": 0}, ValueError),
        ({"status": "done"}, ValueError),
        ({"status": "unknown"}, ValueError),
        ({"status": 3}, ValueError),
        ({"name": "ab"}, ValueError),
        ({"name": 123}, TypeError),
        ({"sort_by": "name"}, ValueError),
        ({"path_form": "campaigns"}, ValueError),
    ],
)
async def test_bad_list_arguments_fail_at_the_call(
    client: ExotelClient, sandbox: Sandbox, options: dict[str, Any], error: type[Exception]
) -> None:
    """A bad argument raises at the call, before any request."""
    with pytest.raises(error):
        client.campaigns(**options)
    assert sandbox.stats.requests == 0


async def test_failed_list_item_raises_item_error(client: ExotelClient, sandbox: Sandbox) -> None:
    """A list item whose own status is failure raises ItemError, as for SMS records."""
    sandbox.faults = Faults(p_item_failure=1.0)
    with pytest.raises(ItemError):
        [c async for c in client.campaigns()]


# --- one campaign -------------------------------------------------------------------------------


def first_sent() -> SandboxCampaign:
    """A completed campaign with records."""
    return next(c for c in ACCOUNT if c.status.lower() == "completed" and c.records)


async def test_campaign_in_the_flat_shape_has_its_counters(client: ExotelClient) -> None:
    """The flat shape gives sid, the five counters and the report URL."""
    expected = first_sent()
    campaign = await client.campaign(expected.campaign_id)
    assert campaign.campaign_id == expected.campaign_id
    assert campaign.size == campaign.scheduled == expected.records
    assert campaign.total is None
    assert campaign.report_url is not None
    assert campaign.extra == {"channel": "sms"}


async def test_campaign_in_the_stats_shape_has_its_counters(
    client: ExotelClient, sandbox: Sandbox
) -> None:
    """The stats shape gives id, a capitalised status and the stats counters."""
    sandbox.campaign_shape = "stats"
    expected = first_sent()
    campaign = await client.campaign(expected.campaign_id)
    assert (campaign.campaign_id, campaign.state) == (
        expected.campaign_id,
        CampaignStatus.COMPLETED,
    )
    assert campaign.size == campaign.total == expected.records
    assert campaign.delivered is not None
    assert campaign.scheduled is None


async def test_campaign_on_the_message_campaigns_path(
    client: ExotelClient, sandbox: Sandbox
) -> None:
    """path_form="message-campaigns" asks /message-campaigns/{id}."""
    expected = first_sent()
    campaign = await client.campaign(expected.campaign_id, path_form="message-campaigns")
    assert campaign.campaign_id == expected.campaign_id
    assert sandbox.request_log[0].path.endswith(f"/message-campaigns/{expected.campaign_id}")


async def test_unknown_campaign_is_not_found(client: ExotelClient) -> None:
    """An unknown id raises NotFoundError."""
    with pytest.raises(NotFoundError):
        await client.campaign("no-such-campaign")


async def test_malformed_campaign_id_fails_before_a_request(
    client: ExotelClient, sandbox: Sandbox
) -> None:
    """An id that cannot be a path segment is a ValueError, with no request."""
    with pytest.raises(ValueError, match="campaign_id"):
        await client.campaign("../accounts")
    assert sandbox.stats.requests == 0


# --- one campaign's answer, parsed -------------------------------------------------------------


def answer(data: Any) -> tuple[int, dict[str, str], bytes]:
    """A recorded-style answer of one campaign around ``data``."""
    item = {"code": 200, "status": "success", "error_data": None, "data": data}
    body = {"request_id": "r1", "method": "GET", "http_code": 200, "response": item}
    return 200, {}, json.dumps(body).encode()


def test_a_campaign_counter_of_the_wrong_type_is_named() -> None:
    """A counter of the wrong type is a ResponseDecodeError naming the field."""
    with pytest.raises(ResponseDecodeError, match=r"\$\.sent"):
        parse_item(Campaign, *answer({"sid": "c1", "sent": [1]}))


def test_a_campaign_answer_in_the_stats_shape_is_read() -> None:
    """The stats shape of one campaign reads through the generic single-object parser."""
    campaign = parse_item(Campaign, *answer({"id": "c1", "stats": {"total": 4}}))
    assert (campaign.campaign_id, campaign.size) == ("c1", 4)
