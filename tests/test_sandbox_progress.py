"""The sandbox's advancing statuses (``StatusProgress``) on its injectable clock."""

from __future__ import annotations

import base64

import aiohttp
import pytest

from exotel_async import Outcome, classify_status
from exotel_async.testing import Sandbox, StatusProgress

STAGES = [
    ("queued", "PENDING_TO_OPERATOR"),
    ("submitted", "PENDING_TO_OPERATOR"),
    ("sent", "PENDING_TO_OPERATOR"),
]


def _state(record: dict[str, object]) -> tuple[object, object]:
    """A record's ``(status, detailed_status)``."""
    return record["status"], record["detailed_status"]


def _sandbox(now: list[float], total: int = 200) -> Sandbox:
    """A sandbox whose statuses start advancing at time 1000 on the clock ``now``."""
    progress = StatusProgress(start=1000.0, stage=60.0, gap=0.5)
    return Sandbox(campaigns={"c1": total}, clock=lambda: now[0], progress=progress)


def test_every_record_is_queued_at_the_start() -> None:
    """At ``start`` every record is queued, whatever its final status."""
    sandbox = _sandbox([1000.0])
    assert {_state(r) for r in sandbox.records("c1")} == {STAGES[0]}


def test_every_record_is_final_once_settled() -> None:
    """By ``settled_at(total)`` no record is pending any more."""
    now = [0.0]
    sandbox = _sandbox(now)
    assert sandbox.progress is not None
    now[0] = sandbox.progress.settled_at(200)
    outcomes = {classify_status(*_state(r)) for r in sandbox.records("c1")}  # type: ignore[arg-type]
    assert outcomes <= {Outcome.DELIVERED, Outcome.FAILED}


def test_final_status_is_the_one_without_the_knob() -> None:
    """A record generated with a final status ends in exactly that status."""
    now = [10**6]
    still = Sandbox(campaigns={"c1": 200}).records("c1")
    moving = _sandbox(now).records("c1")
    for before, after in zip(still, moving, strict=True):
        if classify_status(*_state(before)) is not Outcome.PENDING:  # type: ignore[arg-type]
            assert _state(after) == _state(before)


def test_record_passes_through_every_stage_in_order() -> None:
    """Sampled every second, a record shows queued, submitted, sent, then its final status."""
    now = [1000.0]
    sandbox = _sandbox(now)
    seen: list[tuple[object, object]] = []
    while now[0] < 1400:
        state = _state(sandbox.record("c1", 7))
        if not seen or seen[-1] != state:
            seen.append(state)
        now[0] += 1
    assert seen[:3] == STAGES
    assert len(seen) == 4


def test_stage_lengths_stay_within_half_to_one_and_a_half_stage() -> None:
    """Each record's first stage ends between 0.5 and 1.5 stage lengths after it is queued."""
    progress = StatusProgress(start=0.0, stage=10.0, gap=1.0)
    final = ("delivered", "DELIVERED_TO_HANDSET")
    for roll in (0, 0xFFFF, 0x8000):
        assert progress.status(0, 4.99, final, roll) == STAGES[0]
        assert progress.status(0, 15.0, final, roll) != STAGES[0]


@pytest.mark.parametrize("field", ["stage", "gap"])
def test_non_positive_durations_are_refused(field: str) -> None:
    """A stage or gap of zero is a ValueError naming it."""
    with pytest.raises(ValueError, match=field):
        StatusProgress(start=0.0, **{field: 0.0})


async def test_served_pages_follow_the_clock() -> None:
    """The same request answers with newer statuses once the clock moves on."""
    now = [1000.0]
    auth = base64.b64encode(b"sandbox-key:sandbox-token").decode()
    url_path = "/v2/accounts/sandbox-sid/sms-campaigns/c1/sms-details"
    async with (
        _sandbox(now) as sandbox,
        aiohttp.ClientSession(sandbox.base_url, headers={"Authorization": f"Basic {auth}"}) as http,
    ):
        statuses = []
        for _ in range(2):
            async with http.get(url_path, params={"limit": "5"}) as response:
                body = await response.json()
            statuses.append({item["data"]["status"] for item in body["response"]})
            now[0] = 10**6
    assert statuses[0] == {"queued"}
    assert "queued" not in statuses[1]
