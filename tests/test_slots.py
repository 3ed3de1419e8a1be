"""The client's cap on requests in flight: who gets a freed slot, and no slot lost."""

from __future__ import annotations

import asyncio

from exotel_async._transport import _Slots, request_priority


async def _hold(slots: _Slots, name: str, priority: float, served: list[str]) -> None:
    """Take a slot at ``priority``, note the turn, give the slot back."""
    request_priority.set(priority)
    async with slots:
        served.append(name)
        await asyncio.sleep(0)


async def test_a_freed_slot_goes_to_the_most_urgent_waiter_then_in_arrival_order() -> None:
    """Waiters are served by priority, and first come first served among equals."""
    slots, served = _Slots(1), []
    async with slots:
        tasks = [
            asyncio.ensure_future(_hold(slots, name, priority, served))
            for name, priority in [("low", 0.0), ("high", 5.0), ("low2", 0.0), ("top", 9.0)]
        ]
        await asyncio.sleep(0)  # every task is waiting now
    await asyncio.gather(*tasks)
    assert served == ["top", "high", "low", "low2"]


async def test_a_cancelled_waiter_loses_no_slot() -> None:
    """A waiter cancelled before or just as it was granted passes the slot on."""
    slots, served = _Slots(1), []
    async with slots:
        before = asyncio.ensure_future(_hold(slots, "cancelled", 0.0, served))
        granted = asyncio.ensure_future(_hold(slots, "granted", 1.0, served))
        after = asyncio.ensure_future(_hold(slots, "after", 0.0, served))
        await asyncio.sleep(0)
        before.cancel()
    granted.cancel()  # its slot was handed over on release, before it could run
    for _ in range(5):
        await asyncio.sleep(0)
    assert (before.cancelled(), granted.cancelled(), after.done()) == (True, True, True)
    assert served == ["after"]
