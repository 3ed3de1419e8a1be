"""The X-RateLimit budget, driven by a fake clock."""

from __future__ import annotations

import asyncio

from exotel_async._ratelimit import RateBudget


class FakeTime:
    """A clock that only moves when someone sleeps."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay
        await asyncio.sleep(0)


def headers(remaining: int, reset: float) -> dict[str, str]:
    return {"X-RateLimit-Remaining": str(remaining), "X-RateLimit-Reset": str(reset)}


async def test_without_headers_requests_go_freely() -> None:
    """A server that sends no rate headers is not throttled by the client."""
    t = FakeTime()
    budget = RateBudget(clock=t.clock, sleep=t.sleep)
    for _ in range(50):
        budget.update(await budget.acquire(), {})
    assert t.sleeps == []


async def test_requests_in_flight_count_against_the_remaining_budget() -> None:
    """With 3 left, a fourth request started before any answer waits for the reset."""
    t = FakeTime()
    budget = RateBudget(clock=t.clock, sleep=t.sleep)
    budget.update(await budget.acquire(), headers(3, t.now + 5))
    for _ in range(3):
        await budget.acquire()
    assert budget.estimate() == 0
    await budget.acquire()
    assert t.sleeps == [5.0]


async def test_after_the_reset_one_probe_goes_and_its_answer_sets_the_budget() -> None:
    """After a reset one request goes alone; the rest wait for its headers."""
    t = FakeTime()
    budget = RateBudget(clock=t.clock, sleep=t.sleep)
    budget.update(await budget.acquire(), headers(0, t.now + 2))
    probe = await budget.acquire()
    waiting = asyncio.ensure_future(budget.acquire())
    await asyncio.sleep(0)
    assert not waiting.done()
    budget.update(probe, headers(10, t.now + 2))
    await waiting
    assert budget.estimate() == 9


async def test_stale_answer_does_not_overwrite_a_fresher_one() -> None:
    """An answer to an older request arriving late is ignored."""
    t = FakeTime()
    budget = RateBudget(clock=t.clock, sleep=t.sleep)
    first, second = await budget.acquire(), await budget.acquire()
    budget.update(second, headers(5, t.now + 1))
    budget.update(first, headers(9, t.now + 1))
    assert budget.estimate() == 5


async def test_reset_given_as_delta_seconds_is_understood() -> None:
    """A small ``X-RateLimit-Reset`` is seconds from now, not an epoch."""
    t = FakeTime()
    budget = RateBudget(clock=t.clock, sleep=t.sleep)
    budget.update(await budget.acquire(), headers(0, 3))
    await budget.acquire()
    assert t.sleeps == [3.0]


async def test_reset_far_in_the_future_is_capped_then_probed() -> None:
    """A skewed clock costs at most a minute's wait; then one request probes."""
    t = FakeTime()
    budget = RateBudget(clock=t.clock, sleep=t.sleep)
    budget.update(await budget.acquire(), headers(0, t.now + 3600))
    await budget.acquire()
    assert t.sleeps == [60.0]


async def test_probe_without_an_answer_releases_the_waiters() -> None:
    """A probe that fails without headers lets the next caller probe instead."""
    t = FakeTime()
    budget = RateBudget(clock=t.clock, sleep=t.sleep)
    budget.update(await budget.acquire(), headers(0, t.now))
    probe = await budget.acquire()
    waiting = asyncio.ensure_future(budget.acquire())
    await asyncio.sleep(0)
    budget.update(probe, None)
    await waiting
    assert waiting.result() == probe + 1


async def test_a_later_reset_from_the_probe_is_waited_for_again() -> None:
    """A caller that already slept for one reset sleeps again for the probe's new one."""
    t = FakeTime()
    budget = RateBudget(clock=t.clock, sleep=t.sleep)
    budget.update(await budget.acquire(), headers(0, t.now + 1))
    callers = [asyncio.ensure_future(budget.acquire()) for _ in range(2)]
    for _ in range(5):
        await asyncio.sleep(0)
    (probe,) = [c for c in callers if c.done()]
    (waiter,) = [c for c in callers if not c.done()]
    assert t.sleeps == [1.0]  # the waiter slept for the first reset
    budget.update(probe.result(), headers(0, t.now + 0.5))
    await waiter
    assert t.sleeps == [1.0, 0.5]


async def test_budget_is_forgotten_when_answers_stop_carrying_headers() -> None:
    """After the reset, an answer without rate headers frees the client again."""
    t = FakeTime()
    budget = RateBudget(clock=t.clock, sleep=t.sleep)
    budget.update(await budget.acquire(), headers(1, t.now + 1))
    t.now += 2
    budget.update(await budget.acquire(), {})
    assert budget.estimate() is None
