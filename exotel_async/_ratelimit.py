"""One rate controller per client: header budget, throttle holds, learned request rate. No I/O.

Exotel's limit is per account, and how it counts (fixed or sliding window, token bucket) and
announces it (``X-RateLimit-Reset`` in epoch milliseconds, whole seconds, a delta, or not at
all) is undocumented. The controller holds the limit under each of them:

- **Budget.** ``X-RateLimit-Remaining`` minus the requests started since that answer is what
  may start now; when it is spent, everyone waits for the reset, then one request probes.
  A reset in whole seconds may have been rounded down, so it counts a second later; against
  a sliding window a fit of the window's length from our own requests spends it on time
  (``_SlidingFit``), and a budget refilled bit by bit (a token bucket) is spent evenly.
  Other clients of the account spend the same budget: each claims its learned share.
- **Slow start.** Until a budget is announced or a rate learned, one request is in flight
  (or as many as go at 200 a second over a round trip), doubling every half second: on a
  short round trip the first throttle then finds one request in flight, not all.
- **Holds.** A throttle (429 or 503) stops every request of the client, not just its own,
  until its ``Retry-After`` or the announced reset (against a fitted sliding window, until
  one of ours leaves it); with neither, for a backoff that doubles with each throttle in a
  row.
- **Learned rate.** Each throttle episode is a loss signal, as in TCP and botocore's
  adaptive retry mode: the rate drops to ``BETA`` times what the server actually accepted
  over the last two holds' length, holds included (a hold is part of the server's cycle),
  regains that rate along CUBIC's concave curve, holds it a while, then probes above it,
  doubling, until the next throttle; the longer the server's holds, the slower all of it.
  The clients of one account share it with no coordination but the server's answers.
- **Ceiling.** ``max_requests_per_minute`` spaces requests at least ``60 / N`` s apart.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping

import attrs

from ._errors import is_throttle

#: A ``X-RateLimit-Reset`` below this is a delta in seconds, not an epoch timestamp.
_EPOCH_FLOOR = 1_000_000_000
#: Wait at most this long for a reset or a hold, then probe: a skewed clock must not stall a job.
MAX_WAIT = 60.0


def _header_number(headers: Mapping[str, str], name: str) -> tuple[float, bool] | None:
    """A finite number from a header, and whether it was written as a whole number."""
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    return number, number.is_integer() and "." not in value


@attrs.frozen
class _Advert:
    """What one answer's ``X-RateLimit-*`` headers say, the reset as a span of epoch seconds."""

    remaining: int
    limit: int | None
    #: The reset lies between these by the usual rounding of whole seconds: epoch seconds
    #: rounded down, seconds from now rounded up.
    earliest: float
    latest: float
    #: When the reset has passed however whole seconds were rounded.
    safe: float

    @property
    def coarse(self) -> bool:
        """Whether the reset was in whole seconds, so waiting for it may cost a second."""
        return self.safe - self.earliest > 0.5

    @classmethod
    def parse(cls, headers: Mapping[str, str] | None, now: float) -> _Advert | None:
        """The advert in ``headers``, or None when they announce no budget."""
        remaining = _header_number(headers, "X-RateLimit-Remaining") if headers else None
        if headers is None or remaining is None:
            return None
        limit = _header_number(headers, "X-RateLimit-Limit")
        reset = _header_number(headers, "X-RateLimit-Reset")
        earliest = latest = safe = now
        if reset is not None:
            value, whole = reset
            epoch = value >= _EPOCH_FLOOR
            at = value if epoch else now + value
            slack = 1.0 if whole else 0.001
            earliest, latest = (at, at + slack) if epoch else (at - slack, at)
            safe = min(at + slack, now + MAX_WAIT)
        count = None if limit is None else int(limit[0])
        return cls(max(int(remaining[0]), 0), count, earliest, latest, safe)


@attrs.frozen
class Ticket:
    """One request's place in the controller's books."""

    number: int
    #: The learned-rate episode the request was started in.
    epoch: int
    #: Seconds the request waited before it could start.
    waited: float
    #: When it started, by the controller's clock.
    sent_at: float


class RateController:
    """Decides when each request of one client may start, and learns from every answer.

    Shared by every stream and page of a client: the account's limit is one budget.
    """

    #: A throttle episode sets the rate to this share of what the server accepted. What was
    #: accepted is already at or under the limit; with crossings rare (``PROBE_AFTER``), a
    #: deeper cut's slower regain cost two processes more than its margin saved (0.9: 84 %
    #: of the limit against 87 %, measured).
    BETA = 0.95
    #: CUBIC's scale, relative to the rate before the loss: the rate regains it after
    #: ``cbrt((1 - BETA) / C)`` seconds (about 3.7 s).
    C = 0.001
    #: Seconds the regained rate holds before probing above it. Each probe of an account
    #: another client shares costs a throttle and its hold: probe seldom...
    PROBE_AFTER = 8.0
    #: ... but fast: the probe doubles the rate every this many seconds, so that a share
    #: another client leaves (it ended) is taken within seconds of the probe's start.
    PROBE_DOUBLING = 2.0

    #: Answers in a row whose reset moved later, nothing back, that reveal a token bucket.
    GRADUAL_AFTER = 3

    #: Seconds after an episode's hold in which further throttles lower the rate no more.
    EPISODE_GAP = 1.0
    #: An episode measures what the server accepted over this many times the longest hold.
    HORIZON_HOLDS = 2.0
    #: The schedule above (regain, flat hold, doubling, episode gap) is in seconds while no
    #: hold has been longer than this; see ``_unit``.
    TUNED_HOLD = 2.0

    #: Until the server announces a budget or a rate is learned, requests in flight start
    #: at one and double every this many seconds: a slow start.
    SLOW_START_DOUBLING = 0.5
    #: ... though as many as go at this rate (requests per second) over a round trip may be
    #: in flight from the start: forty times Exotel's highest documented limit.
    SLOW_START_RATE = 200.0

    def __init__(
        self,
        *,
        ceiling: float | None = None,
        backoff: tuple[float, float] = (1.0, 30.0),
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``ceiling``: at most this many requests per second, evenly spaced.

        ``backoff``: the first hold after a throttle that says nothing of when to come back,
        and the longest; each such throttle in a row doubles it (Exotel advises from 1 s).
        """
        self._min_interval = 1.0 / ceiling if ceiling else 0.0
        self._backoff = backoff
        self._clock = clock
        self._sleep = sleep
        self._started = 0
        self._answered = 0
        #: Round trips, smoothed as TCP does (seconds); None before the first answer.
        self._srtt: float | None = None
        #: When the slow start began, or None once it is over.
        self._slow_since: float | None = None
        self._slow_start = True
        self._next_at = 0.0
        self._hold_until = 0.0
        #: The clock's latest reading in ``_wait``, to notice it stepping back.
        self._now = -math.inf
        self._strikes = 0
        self._held_at = -math.inf
        # The budget the server advertised, and the request whose answer said so.
        self._advert: _Advert | None = None
        self._applied = 0
        self._gradual = False
        self._later = 0
        #: What we spent, and what the account's budget lost, between our answers (decayed).
        self._spent = (1.0, 1.0)
        self._probe: int | None = None
        self._changed: asyncio.Event | None = None
        # The learned rate: None until the first throttle episode without a budget.
        self._epoch = 0
        self._max_rate: float | None = None
        self._episode_at: float | None = None
        self._accepted = 0
        #: When the server accepted our latest answers, as far back as a horizon reaches.
        self._accepted_at: deque[float] = deque(maxlen=2**16)
        #: The longest hold the server imposed without announcing a budget: how long it
        #: remembers, for the learned rate (a skewed reset header says nothing of that).
        self._longest_hold = 0.0
        self._first_at: float | None = None
        self._fit = _SlidingFit()
        #: Throttled answers and seconds spent waiting, over the controller's life.
        self.throttles = 0
        self.waited = 0.0
        #: Answers the server accepted, over the controller's life.
        self.accepted = 0

    @property
    def rate(self) -> float | None:
        """The learned request rate per second now, or None before the first throttle."""
        if self._max_rate is None or self._episode_at is None:
            return None
        k = self._tuned_regain
        elapsed = max(self._clock() - self._episode_at, 0.0) / self._unit
        if elapsed < k:
            return self._max_rate * (1.0 + self.C * (elapsed - k) ** 3)
        # Not CUBIC's convex curve: grown in proportion to the rate, it crept above the
        # level within 3 s, yet took 10 s to double it.
        probing = max(elapsed - k - self.PROBE_AFTER, 0.0)
        return self._max_rate * float(2.0 ** min(probing / self.PROBE_DOUBLING, 30.0))

    @property
    def _tuned_regain(self) -> float:
        """The regain's length in the schedule's seconds: CUBIC's ``K``."""
        return float(((1 - self.BETA) / self.C) ** (1 / 3))

    @property
    def _regain(self) -> float:
        """Seconds the learned rate takes to regain its level after an episode."""
        return self._tuned_regain * self._unit

    @property
    def _unit(self) -> float:
        """How many seconds each second of the learned rate's schedule lasts.

        The schedule was measured against windows of up to ``TUNED_HOLD`` seconds. A
        server that once held the client longer remembers longer: a probe shows as a
        throttle only once its window is full, and each crossing costs a throttle. Against
        a minute's window, a schedule in seconds probed every 16 s or so, a handful of
        requests at 30 a minute, and two clients drew 6 to 29 % throttles. It stretches
        with the longest hold, as the horizon of what the server accepted does.
        """
        return max(1.0, self._longest_hold / self.TUNED_HOLD)

    @property
    def spent(self) -> bool:
        """Whether the latest rate headers said the account's budget is spent."""
        return self._advert is not None and self._advert.remaining == 0

    def estimate(self) -> int | None:
        """Requests the advertised budget lets start now, or None without one."""
        if self._advert is None:
            return None
        # Other clients of the account spend the same budget: claim only our share of it,
        # and count their requests since that answer as many as ours, share for share.
        share = self._spent[0] / self._spent[1]
        return math.floor(share * self._advert.remaining - (self._started - self._applied) / share)

    async def acquire(self) -> Ticket:
        """Wait until a request may start; return its ticket for ``learn``."""
        began = self._clock()
        if self._first_at is None:
            self._first_at = self._slow_since = began
        while True:
            now = self._clock()
            if self._started - self._answered >= self._slow_start_cap(now):
                # The cap doubles with time, not only with answers: a first page that is
                # slow to come must not hold every other one back until it does.
                await self._wait_for_answer(self._next_doubling(now))
                began += self._clock() - now  # caution while blind, not the limit's wait
                continue
            wait = self._wait(now)
            if wait is None:
                await self._wait_for_answer()
            elif wait > 0:
                await self._sleep(min(wait, MAX_WAIT))
            else:
                break
        left = self.estimate()
        self._started += 1
        if left is not None and left <= 0:
            self._probe = self._started  # the budget is spent and its reset passed
        self._unused(now)
        rate = self.rate
        interval = max(self._min_interval, 1.0 / rate if rate else 0.0, self._spread(now))
        self._next_at = max(self._next_at, now) + interval
        ticket = Ticket(self._started, self._epoch, now - began, now)
        self.waited += ticket.waited
        self._fit.sent(ticket)
        return ticket

    def _unused(self, now: float) -> None:
        """Stop the learned rate's clock for the time the client sent less than it allows.

        A probe must find the limit, not grow while nothing is sent: after a quiet minute it
        would let every request go at once. As TCP's window when the application is the
        limit (RFC 7661), past the regain the curve waits while requests start late by more
        than an interval.
        """
        rate = self.rate
        if self._episode_at is None or not rate:
            return
        # Late by less than an interval is the event loop's jitter; a hold is the server's.
        since = max(self._next_at + 1.0 / rate, self._hold_until, self._episode_at + self._regain)
        if now > since:
            self._episode_at += now - since

    def _wait(self, now: float) -> float | None:
        """Seconds until a request may start (<= 0: now), or None to await an answer."""
        if now < self._now:
            # The wall clock stepped back (NTP): what was due in a second still is, and the
            # learned rate's curve goes on from where it stood.
            step = self._now - now
            self._hold_until -= step
            self._next_at -= step
            self._held_at -= step
            if self._episode_at is not None:
                self._episode_at -= step
        self._now = now
        wait = max(self._hold_until, self._next_at) - now
        left = self.estimate()
        if self._advert is None or left is None or left > 0:
            return wait
        reset_at = self._advert.safe
        if not self._bucket and not self._advert.coarse:
            reset_at = self._fit.own_slot(reset_at)
        # A sliding window whose length fits every answer is no token bucket, though whole
        # seconds can make its reset look like one that creeps later.
        free_at = math.inf if self._bucket else self._fit.free_at(now)
        if reset_at > now and free_at > now:
            return max(wait, min(reset_at, free_at) - now)
        return None if self._probe is not None else wait

    def _next_doubling(self, now: float) -> float:
        """Seconds until the slow start's cap next doubles."""
        since = max(now - (self._slow_since or now), 0.0)
        step = self.SLOW_START_DOUBLING
        return (math.floor(since / step) + 1) * step - since

    def _slow_start_cap(self, now: float) -> float:
        """Requests that may be in flight now (inf: the slow start is over).

        Without rate headers, the first throttle is the first news of the limit, and every
        request in flight then is throttled too: unpaced, that is all of them. One at a
        time, doubling every half second, is enough to find a limit of a few requests a
        second at any round trip, and costs nothing where the round trip is short. Where it
        is long, one at a time would be slow against a server that limits nothing, so
        enough to go at ``SLOW_START_RATE`` may be in flight at once from the start.
        """
        if not self._slow_start or self._slow_since is None:
            return math.inf
        doubled = 2 ** math.floor(
            min(max(now - self._slow_since, 0.0) / self.SLOW_START_DOUBLING, 30)
        )
        return float(max(doubled, math.floor(self.SLOW_START_RATE * (self._srtt or 0.0))))

    @property
    def _bucket(self) -> bool:
        """Whether the budget refills bit by bit, as a token bucket's."""
        return self._gradual and not self._fit.fitted

    def _spread(self, now: float) -> float:
        """Seconds between requests that spend a bucket's budget evenly until its reset."""
        left = self.estimate()
        if not self._bucket or self._advert is None or left is None or left <= 0:
            return 0.0
        until = self._advert.safe - (1.0 if self._advert.coarse else 0.0)
        return max(until - now, 0.0) / left

    def learn(
        self,
        ticket: Ticket,
        status: int | None,
        headers: Mapping[str, str] | None,
        retry_after: float | None = None,
    ) -> None:
        """Learn from the answer to ``ticket``; ``status`` None means no answer came."""
        now = self._clock()
        self._answered += 1
        if status is not None:
            trip = now - ticket.sent_at
            self._srtt = trip if self._srtt is None else 0.875 * self._srtt + 0.125 * trip
        if ticket.number == self._probe:
            self._probe = None
        advert = _Advert.parse(headers, now)
        accepted = None if status is None else not is_throttle(status)
        self._fit.answered(ticket, now, accepted, advert)
        if advert is not None:
            self._slow_start = False
            self._learn_budget(ticket, advert, counted=bool(accepted))
        elif headers is not None and self._advert is not None and now >= self._advert.safe:
            self._advert = None  # the server stopped announcing a budget: stop spending one
        if not accepted and status is not None:
            self._throttled(ticket, now, retry_after, advert)
        elif accepted:
            self._accepted += 1
            self._accepted_at.append(now)
            # As far back as any horizon may reach: a longer hold may lengthen it at once.
            while self._accepted_at[0] < now - self.HORIZON_HOLDS * MAX_WAIT:
                self._accepted_at.popleft()
            self.accepted += 1
            if ticket.sent_at >= self._held_at:
                self._strikes = 0
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def _learn_budget(self, ticket: Ticket, advert: _Advert, *, counted: bool) -> None:
        """Take the budget from the latest request's answer (``counted``: not throttled)."""
        if ticket.number <= self._applied:
            return
        old = self._advert
        ours = ticket.number - self._applied
        if counted and old is not None and advert.remaining <= old.remaining - ours:
            # The same window, and nothing came back: what we did not spend, others did.
            # Sums, not a mean of ratios: answers come in bursts, each client's in a row.
            spent = old.remaining - advert.remaining
            self._spent = (0.97 * self._spent[0] + ours, 0.97 * self._spent[1] + spent)
        if old is not None and advert.remaining == old.remaining - ours:
            # Each request put the reset later and nothing came back: a token bucket that
            # announces when it is full, refilling bit by bit long before; its budget is
            # best spent evenly rather than in bursts. A precise reset once later is chance
            # (another client took a slot a sliding window freed): it takes a few in a row.
            if advert.coarse:
                self._gradual = self._gradual or advert.safe > old.safe + 0.5
            else:
                self._later = self._later + 1 if advert.safe > old.safe + 0.001 else 0
                self._gradual = self._later >= self.GRADUAL_AFTER
        if (
            old is not None
            and not self._gradual
            and advert.safe <= old.safe + 0.001
            and advert.remaining > old.remaining - ours
        ):
            # Counted before requests that left ahead of it (they overtook each other on
            # the way), and nothing has freed since: the lower count stands.
            advert = attrs.evolve(advert, remaining=max(old.remaining - ours, 0))
        self._advert = advert
        self._applied = ticket.number

    def _throttled(
        self, ticket: Ticket, now: float, retry_after: float | None, advert: _Advert | None
    ) -> None:
        """Hold every request; without a budget, lower the rate once per episode."""
        self.throttles += 1
        if ticket.sent_at >= self._held_at:
            # Sent after the last hold began: the hold was too short, so the next doubles.
            self._strikes += 1
            self._held_at = now
        if retry_after is not None or advert is not None:
            reset_at = advert.safe if advert else now
            if retry_after is not None and advert is not None and not self._bucket:
                # A coarse reset may be a second late for a sliding window whose length
                # fits: one of ours leaves it sooner, though never before Retry-After.
                reset_at = min(reset_at, self._fit.free_at(now))
            hold = max(retry_after or 0.0, reset_at - now)
        else:
            base, cap = self._backoff
            hold = min(base * 2 ** min(self._strikes - 1, 30), cap)
        hold = min(hold, MAX_WAIT)
        # Whether this throttle is news is for the schedule it interrupts to say.
        gap = self.EPISODE_GAP * self._unit
        recent = self._episode_at is not None and now < self._episode_at + gap
        self._hold_until = max(self._hold_until, now + hold)
        if advert is None:
            self._longest_hold = max(self._longest_hold, hold)
        if ticket.epoch != self._epoch or advert is not None or recent:
            # Started before the last episode, or too soon after it, it tells nothing new
            # (throttles at random would otherwise grind the rate down); with a budget
            # announced, the budget paces the client, not a learned rate.
            return
        rate = self.rate
        if rate is None or self._episode_at is None:
            # The first episode: what the server accepted, counting the hold it now imposes.
            since = self._first_at if self._first_at is not None else now
            rate = self._accepted / max(now + hold - since, 1e-3) if self._accepted else None
        elif self._accepted and now > self._episode_at:
            # A throttle comes only as the rate crosses the limit, so what the server
            # accepted lately is about what it sustains, if "lately" spans whole windows of
            # its count, holds included: a fixed window's budget, spent in half the window,
            # is no rate for the whole of it. A Retry-After is at most a window, so two of
            # the longest cover one; too long a span would reach back to slower times.
            horizon = self.HORIZON_HOLDS * self._longest_hold or now - self._episode_at
            lately = sum(1 for at in self._accepted_at if at > now - horizon)
            rate = min(rate, lately / horizon)
        self._epoch += 1
        if rate is None:
            # Nothing accepted yet to learn a rate from (another client spent the budget):
            # the holds pace the client, and the slow start begins again after this one.
            self._slow_since = now + hold
            return
        self._slow_start = False
        self._max_rate = max(rate, 1.0 / MAX_WAIT)
        self._episode_at = now + hold
        self._accepted = 0

    async def _wait_for_answer(self, at_most: float | None = None) -> None:
        """Wait for the next answer, e.g. to the probe after a reset, or ``at_most``
        seconds on the controller's clock."""
        if self._changed is None:
            self._changed = asyncio.Event()
        event = self._changed
        if at_most is not None:
            waits = [
                asyncio.ensure_future(event.wait()),
                asyncio.ensure_future(self._sleep(at_most)),
            ]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()
                await asyncio.gather(*waits, return_exceptions=True)
            return
        try:
            # A probe that never answers must not park everyone for good.
            await asyncio.wait_for(event.wait(), timeout=MAX_WAIT)
        except asyncio.TimeoutError:
            self._probe = None


class _SlidingFit:
    """Tests whether the server counts a sliding window of our own requests, and how long.

    If it does, ``X-RateLimit-Remaining`` says how many of our latest requests are still in
    the window, so every answer brackets the window's length: the newest request that has
    left it was sent at least a window ago, the oldest still in it less than a window ago,
    and the announced reset is that one's expiry, give or take its rounding. Then, once a
    budget is spent, a request may start as soon as one of ours from a window ago has left
    the window, instead of waiting out a reset rounded to whole seconds (a precise reset
    costs nothing to wait for, so the fit is used only against coarse ones). While the
    bracket is loose, requests probe a little inside it, one at a time; a throttle raises
    its lower end. A fixed window, a token bucket or another client on the account make the
    brackets disagree, and the fit starts over, or stops after a few throttles.
    """

    #: A bracket narrower than this share of the window is used at its upper end, with no
    #: more probing: a probe too early costs a throttle and its hold.
    TOLERANCE = 0.05
    #: Answers needed before the fit is used at all.
    MIN_ANSWERS = 8
    #: Throttles the probing may draw; past them the fit only uses the bracket's safe end,
    #: and gives up for good the next time the brackets disagree.
    MAX_MISSES = 2

    def __init__(self) -> None:
        #: Our latest requests, oldest first: (number, sent_at) and whether each was counted.
        self._log: deque[tuple[int, float]] = deque()
        self._counted: dict[int, bool | None] = {}
        self._low = 0.0
        self._high = math.inf
        self._answers = 0
        self._since = self._span = 0.0
        #: The window's length by precise resets: the longest from a request to a reset.
        self._window: float | None = None
        self._limit = 0
        self._rtt = 0.0
        self._misses = 0
        self._off = False
        self._coarse = False

    def sent(self, ticket: Ticket) -> None:
        """Remember a request that starts now."""
        self._log.append((ticket.number, ticket.sent_at))
        self._counted[ticket.number] = None
        while len(self._log) > max(4 * self._limit, 64):
            del self._counted[self._log.popleft()[0]]

    def own_slot(self, reset_at: float) -> float:
        """When a slot of ours frees, at the reset or after it (a precise reset only).

        Clients of one account that each start a request at every reset race for the one
        slot it frees, and all but one are throttled. The slot is the oldest request's:
        if that is not ours, wait for the first of ours to leave, as others wait for theirs.
        """
        if self._window is None:
            return reset_at
        slack = self._rtt + 0.002
        expiries = [
            sent_at + self._window
            for number, sent_at in self._log
            if self._counted[number] and sent_at + self._window >= reset_at - slack
        ]
        if not expiries or min(expiries) <= reset_at + slack:
            return reset_at
        return min(expiries) + slack

    def answered(
        self, ticket: Ticket, now: float, accepted: bool | None, advert: _Advert | None
    ) -> None:
        """Narrow the bracket with one answer."""
        self._rtt = max(self._rtt * 0.99, now - ticket.sent_at)
        if (
            accepted
            and advert is not None
            and not advert.coarse
            and advert.remaining + 1 == advert.limit
        ):
            # Alone in the window, so the oldest: it leaves when the reset says, and this
            # is the window's length, give or take a round trip.
            length = min(advert.earliest, now + MAX_WAIT) - ticket.sent_at
            if length > 0:
                self._window = max(self._window or 0.0, length)
        if ticket.number in self._counted:
            self._counted[ticket.number] = accepted
        if accepted is False and (self._loose or self.fitted):
            # A throttle where the fit saw a free slot; at its own safe end, too often:
            # a fixed window whose requests all come early in it looks like a sliding one.
            self._off = self._off or (not self._loose and self._misses >= self.MAX_MISSES)
            self._misses += 1
        if advert is None or advert.limit is None or accepted is None:
            return
        self._limit, self._coarse = advert.limit, advert.coarse
        bounds = self._bounds(ticket, now, accepted, advert, advert.limit)
        if bounds is None:
            return  # requests we never made are in the window
        low, high = bounds
        if not self._answers:
            self._since = now
        self._low, self._high = max(self._low, low), min(self._high, high)
        self._answers += 1
        self._span = now - self._since
        if self._low > self._high:
            self._low, self._high, self._answers = 0.0, math.inf, 0
            self._off = self._misses >= self.MAX_MISSES

    def _bounds(
        self, ticket: Ticket, now: float, accepted: bool, advert: _Advert, limit: int
    ) -> tuple[float, float] | None:
        """The window's length bracketed by one answer, or None if others share the window.

        Requests sent within a round trip of each other may reach the server in either
        order, so "the oldest of ours still in the window" is known only between two of
        our requests: the newest it can be, had every such request arrived first, and the
        oldest, had none of them.
        """
        rtt = self._rtt
        # Ours that the server counted, or may have: newest first, the ticket left out.
        ours = [
            sent_at
            for number, sent_at in reversed(self._log)
            if number != ticket.number and self._counted[number] is not False
        ]
        surely = [t for t in ours if t <= ticket.sent_at - rtt]  # arrived before the ticket
        maybe = [t for t in ours if t <= ticket.sent_at + rtt]
        # How many of ours are in the window: the ticket and those before it, or a full
        # window without the throttled ticket.
        count = limit - advert.remaining if accepted else limit
        if accepted:
            surely.insert(0, ticket.sent_at)
            maybe = sorted([ticket.sent_at, *maybe], reverse=True)
        if count < 1 or count > len(maybe):
            return None
        newest_oldest = maybe[count - 1]
        low = max(ticket.sent_at, advert.earliest - rtt) - newest_oldest - rtt
        if count > len(surely):
            return low, math.inf
        oldest_oldest = surely[count - 1] - rtt
        high = advert.latest - oldest_oldest
        # The newest of ours that surely left: ``count`` of ours surely came after it.
        left = next((t for t in surely[count:] if t <= surely[count - 1] - rtt), None)
        if left is not None:
            high = min(high, now - left)
        return low, high

    @property
    def fitted(self) -> bool:
        """Whether a sliding window of a known length has explained a window's answers."""
        # A burst sent at one instant fits anything: the answers must span a window.
        return (
            not self._off
            and self._answers >= self.MIN_ANSWERS
            and not self._loose
            and self._span >= self._high
        )

    @property
    def _loose(self) -> bool:
        return self._high - self._low > self.TOLERANCE * self._high

    def free_at(self, now: float) -> float:
        """When one of our requests leaves the window by the fit (inf: no fit to go by)."""
        if self._off or not self._coarse or self._answers < self.MIN_ANSWERS:
            return math.inf
        window = self._high
        if self._loose and self._misses < self.MAX_MISSES:
            # Probe a little inside the bracket, not halfway: the throttle of a probe too
            # early costs more than the time a probe too late leaves unused.
            window -= max(self.TOLERANCE * self._high, self._high - self._low) / 8
        recent = [
            sent_at
            for number, sent_at in self._log
            if self._counted[number] is not False and sent_at > now - window
        ]
        if len(recent) < self._limit:
            return now
        # Ours from a window ago may have reached the server a round trip after it left us.
        return recent[-self._limit] + window + self._rtt
