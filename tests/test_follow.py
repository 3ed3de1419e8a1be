"""Following a campaign without a database: ``client.follow`` and ``wait_until_final``."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from exotel_async import ExotelClient
from exotel_async.sync import Transition
from exotel_async.testing import Sandbox, StatusProgress
from tests._clients import fast_client
from tests.test_sync import FakeTime

PROGRESS = StatusProgress(start=1000.0, stage=60.0, gap=0.5)


@pytest.fixture
def time() -> FakeTime:
    """The clock shared by the sandbox and the follower."""
    return FakeTime(1000.0)


@pytest.fixture
async def client(time: FakeTime) -> AsyncIterator[ExotelClient]:
    """A client of a 150-record campaign whose statuses advance from time 1000, on ``time``."""
    sandbox = Sandbox(campaigns={"c1": 150}, clock=time, progress=PROGRESS)
    async with sandbox, fast_client(sandbox, clock=time, sleep=time.sleep) as c:
        yield c


async def test_client_follow_ends_after_one_walk_when_already_final(
    client: ExotelClient, time: FakeTime
) -> None:
    """On a settled campaign, client.follow walks once and yields no change."""
    time.now = PROGRESS.settled_at(150)
    run = client.follow("c1", interval=60)
    assert [t async for t in run] == []
    assert (run.summary.walks, run.summary.records, run.summary.final) == (1, 150, True)


async def test_follow_yields_each_stage_once_and_ends_when_final(
    client: ExotelClient, time: FakeTime
) -> None:
    """With advancing statuses, each SMS's three changes of state are each yielded once."""
    run = client.follow("c1", interval=20)
    states: dict[str, list[str | None]] = defaultdict(list)
    async for change in run:
        states[change.record.sid] += [change.old_status, change.new_status]
    assert len(states) == 150
    assert all(
        s[:5] == ["queued", "submitted", "submitted", "sent", "sent"] for s in states.values()
    )
    assert all(len(s) == 6 for s in states.values())
    assert run.summary.final
    assert run.summary.transitions == 450


async def test_wait_until_final_counts_outcomes(client: ExotelClient, time: FakeTime) -> None:
    """wait_until_final returns once all SMS are final, with every SMS in an outcome."""
    summary = await client.wait_until_final("c1", interval=30)
    assert summary.final
    assert summary.outcomes["pending"] == summary.outcomes["unknown"] == 0
    assert sum(summary.outcomes.values()) == 150


async def test_wait_until_final_gives_up_at_the_deadline(
    client: ExotelClient, time: FakeTime
) -> None:
    """A deadline before the campaign settles ends the wait with final False, on time."""
    summary = await client.wait_until_final("c1", interval=30, deadline=timedelta(seconds=100))
    assert (summary.final, time.now) == (False, 1100.0)
    assert summary.outcomes["pending"] > 0


async def test_skipping_final_pages_reads_less_and_sees_the_same() -> None:
    """skip_final_pages yields the same transitions as full re-walks, reading fewer records."""
    runs = []
    for skip in (False, True):
        time = FakeTime(1000.0)
        sandbox = Sandbox(campaigns={"c1": 150}, clock=time, progress=PROGRESS)
        async with sandbox, fast_client(sandbox, clock=time, sleep=time.sleep) as client:
            run = client.follow("c1", interval=20, skip_final_pages=skip)
            seen = [(t.record.sid, t.old_status, t.new_status) async for t in run]
        runs.append((sorted(seen), run.summary.records))
    (full, full_read), (cheap, cheap_read) = runs
    assert cheap == full
    assert len(full) == 450
    assert cheap_read < full_read


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"interval": -1}, ValueError),
        ({"interval": 0}, ValueError),
        ({"interval": 0.5}, ValueError),
        ({"deadline": 0}, ValueError),
        ({"interval": "5m"}, TypeError),
        ({"deadline": float("nan")}, ValueError),
        ({"until_final": 1}, TypeError),
        ({"page_size": 0}, ValueError),
    ],
)
def test_bad_options_fail_at_the_call(
    client: ExotelClient, options: dict[str, object], error: type[Exception]
) -> None:
    """A bad interval, deadline, flag or page size raises at the call, before any request."""
    with pytest.raises(error):
        client.follow("c1", **options)  # type: ignore[arg-type]


def test_transition_reads_as_old_to_new() -> None:
    """str() of a transition shows the sid, the old state and the new one."""
    from exotel_async import SmsRecord

    record = SmsRecord("s1", "+919800000000", status="sent", detailed_status="PENDING")
    change = Transition(record, "queued", "PENDING")
    assert str(change) == "s1: queued/PENDING -> sent/PENDING"


def _repeating_campaign(url: URL, **kwargs: Any) -> CallbackResult:
    """A page of a campaign of 200 SMS, all delivered, that holds only 150 distinct sids."""
    offset, limit = int(url.query["offset"]), int(url.query["limit"])
    items = [
        {
            "code": 200,
            "status": "success",
            "data": {"sid": f"s{i % 150}", "number": "1", "status": "delivered"},
        }
        for i in range(offset, min(offset + limit, 200))
    ]
    metadata = {"count": len(items), "offset": offset, "total": 200, "limit": limit}
    return CallbackResult(payload={"metadata": metadata, "response": items})


async def test_not_final_while_fewer_sms_are_known_than_the_total(time: FakeTime) -> None:
    """All SMS seen delivered is not final while fewer are known than the campaign's total."""
    with aioresponses() as mocked:
        mocked.get(
            re.compile(r"^https://api\.exotel\.com/.*"), callback=_repeating_campaign, repeat=True
        )
        async with ExotelClient("k", "t", "acc", clock=time, sleep=time.sleep) as client:
            summary = await client.wait_until_final("c1", interval=60, deadline=100)
    assert (summary.final, summary.outcomes["delivered"], summary.walks) == (False, 150, 3)


async def test_wait_until_final_gives_up_after_48_hours_by_default() -> None:
    """Without a deadline, waiting on a campaign that never settles ends after 48 hours."""
    async with Sandbox(campaigns={"c1": 230}) as sandbox, fast_client(sandbox) as client:
        summary = await client.wait_until_final("c1", interval=3600)
    assert (summary.final, summary.walks, summary.elapsed) == (False, 49, 48 * 3600)
