"""Contract tests of the sandbox's campaign routes, spoken to with plain aiohttp over loopback."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest

from exotel_async.testing import (
    CAMPAIGN_STATUSES,
    Faults,
    Sandbox,
    SandboxCampaign,
    make_account,
)
from tests.test_sandbox import basic, data_of, error_of, get, start_entry_point

LIST = "/v2/accounts/sandbox-sid/sms-campaigns"
MESSAGE_LIST = "/v2/accounts/sandbox-sid/message-campaigns"
DETAILS = "/v2/accounts/sandbox-sid/sms-campaigns/{cid}/sms-details"
#: 40 campaigns, 20 000 records, every state in several casings.
ACCOUNT = make_account(40, 20_000, max_records=5_000, seed=7)


def by_status(sandbox: Sandbox, campaign_id: str) -> Counter[str]:
    """Count a campaign's served records by status."""
    return Counter(record["status"] for record in sandbox.records(campaign_id))


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """A sandbox serving the generated account."""
    async with Sandbox(campaigns=ACCOUNT, seed=7) as sb:
        yield sb


@pytest.fixture
async def session(sandbox: Sandbox) -> AsyncIterator[aiohttp.ClientSession]:
    """A session authenticated against ``sandbox``."""
    async with aiohttp.ClientSession(sandbox.base_url, headers=basic()) as http:
        yield http


async def list_all(http: aiohttp.ClientSession, path: str = LIST, **params: Any) -> list[Any]:
    """Walk every page of the campaign list, 50 at a time."""
    found: list[Any] = []
    while True:
        status, body = await get(http, path, offset=len(found), limit=50, **params)
        assert status == 200, body
        found += data_of(body)
        if len(found) >= body["metadata"]["total"]:
            return found


# --- the generated account --------------------------------------------------------------------


def test_account_is_the_same_for_the_same_arguments() -> None:
    """make_account is deterministic in its arguments and seed."""
    assert make_account(40, 20_000, max_records=5_000, seed=7) == ACCOUNT
    assert make_account(40, 20_000, max_records=5_000, seed=8) != ACCOUNT


def test_account_holds_exactly_the_records_asked_for() -> None:
    """The sizes add up to the total, each between 0 and max_records, the extremes used."""
    account = make_account(200, 500_000)
    sizes = [c.records for c in account]
    assert sum(sizes) == 500_000
    assert (min(sizes), max(sizes)) == (0, 20_000)


def test_account_has_every_state_in_several_casings() -> None:
    """Every documented state appears, and some statuses are not lower case."""
    statuses = {c.status for c in ACCOUNT}
    assert {s.lower() for s in statuses} == set(CAMPAIGN_STATUSES)
    assert any(s != s.lower() for s in statuses)


def test_account_creation_times_spread_over_days_oldest_first() -> None:
    """Campaigns are created in order, over most of the 30 days asked for."""
    created = [c.created for c in ACCOUNT if c.created is not None]
    assert created == sorted(created)
    assert len(created) == len(ACCOUNT)
    assert created[-1] - created[0] > timedelta(days=25)


def test_account_refuses_more_records_than_fit() -> None:
    """More records than the sent campaigns can hold is a ValueError naming the limit."""
    with pytest.raises(ValueError, match="do not fit"):
        make_account(3, 1_000_000, max_records=10)


# --- list -------------------------------------------------------------------------------------


async def test_list_pages_through_every_campaign_once(session: aiohttp.ClientSession) -> None:
    """Walking the list by offset yields each campaign once, sid and all."""
    found = await list_all(session)
    assert [item["sid"] for item in found] == [c.campaign_id for c in ACCOUNT]
    assert found[0].keys() == {"sid", "name", "status", "date_created"}


async def test_list_metadata_counts_the_matching_campaigns(
    session: aiohttp.ClientSession,
) -> None:
    """metadata says how many campaigns match and echoes the window."""
    _, body = await get(session, LIST, offset=30, limit=20)
    assert body["metadata"] == {"count": 10, "offset": 30, "total": 40, "limit": 20}


async def test_list_default_limit_is_20(session: aiohttp.ClientSession) -> None:
    """Without a limit a page holds 20 campaigns."""
    _, body = await get(session, LIST)
    assert body["metadata"]["limit"] == 20
    assert len(body["response"]) == 20


async def test_list_refuses_a_limit_above_50(session: aiohttp.ClientSession) -> None:
    """limit=51 is a 400 (code 1002), as Exotel documents 50 as the maximum."""
    status, body = await get(session, LIST, limit=51)
    assert (status, error_of(body)) == (400, (400, 1002))


async def test_message_campaigns_list_requires_channel(session: aiohttp.ClientSession) -> None:
    """The newer path form answers 400 (code 1001) without channel=sms."""
    status, body = await get(session, MESSAGE_LIST)
    assert (status, error_of(body)) == (400, (400, 1001))


async def test_message_campaigns_list_serves_the_same_campaigns(
    session: aiohttp.ClientSession,
) -> None:
    """With channel=sms the newer path lists what the older one does."""
    assert await list_all(session, MESSAGE_LIST, channel="sms") == await list_all(session)


async def test_status_filter_ignores_case(session: aiohttp.ClientSession) -> None:
    """status=COMPLETED finds the completed campaigns whatever their casing."""
    found = await list_all(session, status="COMPLETED")
    expected = [c.campaign_id for c in ACCOUNT if c.status.lower() == "completed"]
    assert [item["sid"] for item in found] == expected
    assert len({item["status"] for item in found}) > 1


async def test_status_filter_takes_a_comma_separated_set(session: aiohttp.ClientSession) -> None:
    """status=paused,archived finds campaigns in either state."""
    found = await list_all(session, status="paused,archived")
    assert {item["status"].lower() for item in found} == {"paused", "archived"}


async def test_status_filter_refuses_an_unknown_state(session: aiohttp.ClientSession) -> None:
    """An unknown status is a 400 (code 1002)."""
    status, body = await get(session, LIST, status="done")
    assert (status, error_of(body)) == (400, (400, 1002))


async def test_name_filter_is_a_case_insensitive_substring(
    session: aiohttp.ClientSession,
) -> None:
    """name=OFFER finds every campaign whose name contains "offer" in any case."""
    found = await list_all(session, name="OFFER")
    expected = [c.campaign_id for c in ACCOUNT if "offer" in (c.name or "").lower()]
    assert [item["sid"] for item in found] == expected
    assert expected


async def test_name_filter_refuses_fewer_than_3_characters(
    session: aiohttp.ClientSession,
) -> None:
    """name=ab is a 400: Exotel searches names of 3 characters or more."""
    status, body = await get(session, LIST, name="ab")
    assert (status, error_of(body)) == (400, (400, 1002))


@pytest.mark.parametrize(
    ("sort_by", "key"),
    [
        ("name:asc", lambda item: item["name"].casefold()),
        ("date_created:desc", lambda item: [-ord(ch) for ch in item["date_created"]]),
    ],
)
async def test_sort_by_orders_the_list(
    session: aiohttp.ClientSession, sort_by: str, key: Any
) -> None:
    """sort_by orders the whole list, across pages."""
    found = await list_all(session, sort_by=sort_by)
    assert found == sorted(found, key=key)
    assert len(found) == len(ACCOUNT)


async def test_sort_by_schedule_start_time_is_accepted(session: aiohttp.ClientSession) -> None:
    """schedule.start_time:asc, the documented example, lists every campaign."""
    assert len(await list_all(session, sort_by="schedule.start_time:asc")) == len(ACCOUNT)


async def test_sort_by_refuses_an_unknown_field(session: aiohttp.ClientSession) -> None:
    """sort_by=status:asc is a 400 (code 1002)."""
    status, body = await get(session, LIST, sort_by="status:asc")
    assert (status, error_of(body)) == (400, (400, 1002))


async def test_list_wants_credentials(sandbox: Sandbox) -> None:
    """The list answers 401 without Basic credentials."""
    async with aiohttp.ClientSession(sandbox.base_url) as http:
        status, body = await get(http, LIST)
    assert (status, error_of(body)) == (401, (401, 1010))


async def test_list_obeys_the_fault_knobs(sandbox: Sandbox, session: aiohttp.ClientSession) -> None:
    """The same Faults apply to the list: p_503=1 makes every answer a 503."""
    sandbox.faults = Faults(p_503=1.0)
    status, _ = await get(session, LIST)
    assert status == 503


async def test_list_obeys_the_rate_limit(sandbox: Sandbox, session: aiohttp.ClientSession) -> None:
    """The account's rate limit counts list requests too."""
    sandbox.faults = Faults(rate_limit=(2, 60))
    statuses = [(await get(session, LIST))[0] for _ in range(3)]
    assert statuses == [200, 200, 429]


async def test_list_items_can_fail(sandbox: Sandbox, session: aiohttp.ClientSession) -> None:
    """p_item_failure turns list items into failed items, as on sms-details."""
    sandbox.faults = Faults(p_item_failure=1.0)
    _, body = await get(session, LIST, limit=3)
    assert [item["status"] for item in body["response"]] == ["failure"] * 3


# --- one campaign -----------------------------------------------------------------------------


def first(status: str, *, records: bool = True) -> SandboxCampaign:
    """The first campaign of ACCOUNT in ``status`` (with records, if asked)."""
    return next(c for c in ACCOUNT if c.status.lower() == status and (c.records > 0 or not records))


async def test_one_campaign_flat_shape_counts_its_records(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """The flat shape has sid and counters that add up to the campaign's records."""
    campaign = first("completed")
    _, body = await get(session, f"{LIST}/{campaign.campaign_id}")
    data = body["response"]["data"]
    counts = by_status(sandbox, campaign.campaign_id)
    assert data["sid"] == campaign.campaign_id
    assert data["scheduled"] == campaign.records
    assert data["sent"] == counts["delivered"] + counts["sent"]
    assert data["invalid"] == counts["invalid"]
    assert data["report_url"].startswith("https://")


async def test_one_campaign_stats_shape_counts_its_records(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """The stats shape has id, a capitalised status and a stats object adding up to total."""
    sandbox.campaign_shape = "stats"
    campaign = first("in-progress")
    _, body = await get(session, f"{LIST}/{campaign.campaign_id}")
    data = body["response"]["data"]
    stats = data["stats"]
    assert (data["id"], data["status"]) == (campaign.campaign_id, "In-progress")
    assert stats["total"] == campaign.records
    parts = ("delivered", "pending", "failed", "rejected")
    assert sum(stats[k] for k in parts) == stats["total"]
    assert stats["rejected"] == by_status(sandbox, campaign.campaign_id)["invalid"]


async def test_mixed_shape_serves_both_in_one_account(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """campaign_shape=mixed serves some campaigns with sid and others with id."""
    sandbox.campaign_shape = "mixed"
    keys = set()
    for campaign in ACCOUNT[:10]:
        _, body = await get(session, f"{LIST}/{campaign.campaign_id}")
        keys.add("sid" if "sid" in body["response"]["data"] else "id")
    assert keys == {"sid", "id"}


async def test_one_campaign_on_the_message_campaigns_path(
    session: aiohttp.ClientSession,
) -> None:
    """/message-campaigns/{id} serves the same campaign, with or without channel=sms."""
    campaign_id = ACCOUNT[0].campaign_id
    _, plain = await get(session, f"{LIST}/{campaign_id}")
    _, newer = await get(session, f"{MESSAGE_LIST}/{campaign_id}", channel="sms")
    assert plain["response"]["data"] == newer["response"]["data"]


async def test_one_unknown_campaign_is_404(session: aiohttp.ClientSession) -> None:
    """An unknown id answers the v2 not-found envelope."""
    status, body = await get(session, f"{LIST}/nope")
    assert (status, error_of(body)) == (404, (404, 1000))


async def test_archived_campaign_details_are_404(session: aiohttp.ClientSession) -> None:
    """sms-details of an archived campaign answer 404."""
    campaign = first("archived")
    status, body = await get(session, DETAILS.format(cid=campaign.campaign_id))
    assert (status, error_of(body)) == (404, (404, 1000))


async def test_archived_campaign_details_served_when_the_knob_is_off(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """archived_gone=False serves an archived campaign's records like any other."""
    sandbox.archived_gone = False
    campaign = first("archived")
    status, body = await get(session, DETAILS.format(cid=campaign.campaign_id))
    assert (status, body["metadata"]["total"]) == (200, campaign.records)


async def test_campaign_records_are_created_after_the_campaign(sandbox: Sandbox) -> None:
    """A campaign's SMS are never older than the campaign."""
    campaign = first("completed")
    record = sandbox.record(campaign.campaign_id, 0)
    assert campaign.created is not None
    assert datetime.fromisoformat(record["date_created"]) >= campaign.created


# --- configuration ----------------------------------------------------------------------------


def test_campaigns_by_id_are_completed_and_named() -> None:
    """A campaign given as id and count is listed as completed, named after its id."""
    (campaign,) = Sandbox(campaigns={"demo": 3}).account
    assert (campaign.name, campaign.status, campaign.records) == ("Campaign demo", "completed", 3)


def test_add_campaign_refuses_an_unknown_status() -> None:
    """A status outside Exotel's vocabulary is a ValueError."""
    with pytest.raises(ValueError, match="status must be one of"):
        Sandbox().add_campaign("x", 1, status="finished")


def test_sandbox_refuses_an_unknown_campaign_shape() -> None:
    """campaign_shape must be flat, stats or mixed."""
    with pytest.raises(ValueError, match="campaign_shape"):
        Sandbox(campaign_shape="nested")


async def test_module_entry_point_serves_a_generated_account() -> None:
    """``--account 30 --account-records 3000`` serves 30 campaigns holding 3000 records."""
    process, base_url = await start_entry_point("--account", "30", "--account-records", "3000")
    try:
        async with aiohttp.ClientSession(base_url, headers=basic()) as http:
            found = await list_all(http)
            totals = [
                (await get(http, DETAILS.format(cid=item["sid"]), limit=1))[1]["metadata"]
                for item in found
                if item["status"].lower() != "archived"
            ]
    finally:
        process.kill()
        await process.wait()
    assert len(found) == 30
    assert sum(m["total"] for m in totals) == sum(
        c.records for c in make_account(30, 3000) if c.status.lower() != "archived"
    )
