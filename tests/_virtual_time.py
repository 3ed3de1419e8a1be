"""Virtual time for the rate controller: a clock and a sleep that never wait on the wall clock.

``VirtualTime.run(coro)`` drives many coroutines at once: whenever every one of them is
asleep, the clock jumps to the earliest wake-up. Nothing here does I/O, so an idle event
loop means everyone is asleep.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import attrs

from exotel_async._ratelimit import RateController
from exotel_async.testing import RateLimit

T = TypeVar("T")


class VirtualTime:
    """A clock that moves only when every task sleeps."""

    def __init__(self, now: float = 1_800_000_000.25) -> None:
        self.now = now
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + max(delay, 0.0), next(self._order), future))
        await future

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to the end, moving the clock whenever everything sleeps."""
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(coro)
        while not task.done():
            await asyncio.sleep(0)
            # The loop's ready queue is private, but it is the one sure sign of idleness.
            if loop._ready or not self._timers:  # type: ignore[attr-defined]
                continue
            at, _, future = heapq.heappop(self._timers)
            self.now = max(self.now, at)
            if not future.done():
                future.set_result(None)
        return task.result()


class FakeSleep:
    """Records the delays asked for, and moves its own clock by them instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.now = 1_800_000_000.0

    def clock(self) -> float:
        return self.now

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        self.now += delay


@attrs.define
class Outcome:
    """What a simulated walk drew from the server."""

    accepted: int = 0
    throttled: int = 0
    first: float = math.inf
    last: float = 0.0

    def share_of_allowed_rate(self, limit: RateLimit) -> float:
        """Accepted requests per second, as a share of what the limit allows."""
        return self.accepted / (self.last - self.first) / (limit.requests / limit.seconds)

    @property
    def throttled_share(self) -> float:
        return self.throttled / (self.accepted + self.throttled)


async def walk(
    time: VirtualTime,
    controllers: list[RateController],
    limit: RateLimit,
    *,
    pages: int,
    concurrency: int = 8,
    latency: float = 0.004,
    jitter: Callable[[], float] = lambda: 0.0,
) -> Outcome:
    """Fetch ``pages`` pages per controller through one server counting ``limit``.

    Each way of each request takes ``latency / 2`` plus ``jitter()`` seconds, so requests
    sent close together may reach the server in another order.
    """
    counter = limit.counter()
    outcome = Outcome()

    async def request(controller: RateController) -> bool:
        ticket = await controller.acquire()
        outcome.first = min(outcome.first, time.now)
        await time.sleep(latency / 2 + jitter())
        admission = counter.admit(time.now)
        headers = limit.headers(admission, time.now)
        await time.sleep(latency / 2 + jitter())
        retry_after = None
        if not admission.allowed and limit.retry_after:
            retry_after = float(max(math.ceil(admission.retry_in), 1))
        status = 200 if admission.allowed else limit.status
        controller.learn(ticket, status, headers, retry_after)
        outcome.last = max(outcome.last, time.now)
        if admission.allowed:
            outcome.accepted += 1
        else:
            outcome.throttled += 1
        return admission.allowed

    async def worker(controller: RateController, queue: list[int]) -> None:
        while queue:
            queue.pop()
            while not await request(controller):
                pass

    jobs = []
    for controller in controllers:
        queue = list(range(pages))
        jobs += [worker(controller, queue) for _ in range(concurrency)]
    await time.run(asyncio.gather(*jobs))
    return outcome
