"""Spend the request budget Exotel advertises in ``X-RateLimit-*`` headers, no I/O here."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping

#: A ``X-RateLimit-Reset`` below this is a delta in seconds, not an epoch timestamp.
_EPOCH_FLOOR = 1_000_000_000
#: Wait at most this long for a reset, then probe: a skewed server clock must not stall a job.
MAX_RESET_WAIT = 60.0


def _header_number(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


class RateBudget:
    """What the server says is left of its window, shared by every request of a client.

    Requests started after the answer that set ``remaining`` count against it, so many
    pages in flight cannot overspend it. When it is spent, callers wait for the reset;
    then one request goes alone as a probe and its answer tells the new budget.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._remaining: int | None = None
        self._reset_at = 0.0
        self._started = 0
        self._applied = 0
        self._probe: int | None = None
        self._changed: asyncio.Event | None = None

    def estimate(self) -> int | None:
        """Requests that may start now, or None while the server has said nothing."""
        if self._remaining is None:
            return None
        return self._remaining - (self._started - self._applied)

    async def acquire(self) -> int:
        """Wait until a request may start; return its ticket for ``update``."""
        waited_for: float | None = None
        while True:
            left = self.estimate()
            if left is None or left > 0:
                break
            wait = self._reset_at - self._clock()
            # Sleep once per announced reset: a later one (from a probe's answer) is waited
            # for again, the same one still ahead after a capped wait is a skewed clock.
            if wait > 0 and self._reset_at != waited_for:
                waited_for = self._reset_at
                await self._sleep(min(wait, MAX_RESET_WAIT))
                continue
            if self._probe is None:
                self._started += 1
                self._probe = self._started
                return self._started
            await self._wait_for_update()
        self._started += 1
        return self._started

    def update(self, ticket: int, headers: Mapping[str, str] | None) -> None:
        """Learn from the answer to request ``ticket`` (None: it got no answer)."""
        if ticket == self._probe:
            self._probe = None
        remaining = _header_number(headers, "X-RateLimit-Remaining") if headers else None
        if remaining is not None and ticket > self._applied:
            self._applied = ticket
            self._remaining = max(int(remaining), 0)
            reset = _header_number(headers, "X-RateLimit-Reset") if headers else None
            if reset is not None:
                self._reset_at = reset if reset >= _EPOCH_FLOOR else self._clock() + reset
        elif headers is not None and remaining is None and self._clock() >= self._reset_at:
            # An answer without the headers after the window reset: the server stopped
            # advertising a budget, so stop spending an old one.
            self._remaining = None
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def _wait_for_update(self) -> None:
        if self._changed is None:
            self._changed = asyncio.Event()
        event = self._changed
        try:
            # A probe that never answers must not park everyone for good.
            await asyncio.wait_for(event.wait(), timeout=MAX_RESET_WAIT)
        except asyncio.TimeoutError:
            self._probe = None
