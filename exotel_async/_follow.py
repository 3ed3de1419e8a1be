"""Following a campaign: walks that record each SMS's changes of state, until all are final.

One engine serves ``client.follow`` (states kept in memory) and the database sync (states kept
in the database): a walk hands its records, in batches, to an ``Observer`` that compares them
with what it saw before and returns the transitions. The next batch is fetched while the
observer stores the previous one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Sequence,
)
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

import attrs

from ._errors import ExotelError
from ._models import Outcome, SmsPage, SmsRecord, classify_status

if TYPE_CHECKING:
    from ._client import ExotelClient

#: Outcomes no later report changes. ``UNKNOWN`` is not among them: a status this version
#: does not know may still be on its way.
FINAL_OUTCOMES = frozenset({Outcome.DELIVERED, Outcome.FAILED})
#: The order ``skip_final_pages`` walks in: SMS sent together settle together, so the
#: pages of SMS that are all final outnumber those in any other order.
PAGE_ORDER = "schedule_time:asc"

Sleep = Callable[[float], Awaitable[None]]


def is_final(record: SmsRecord) -> bool:
    """Whether ``record`` is delivered or failed, so that no later report changes it."""
    return record.outcome in FINAL_OUTCOMES


@attrs.frozen
class Transition:
    """An SMS seen in another state than at the previous walk.

    Attributes:
        record: The SMS as read when its state changed (SQLite reports a change when it
            merges, maybe after later readings: this one is still the reading that changed
            it); its ``status`` and ``detailed_status`` are the new state.
        old_status: The status it had when last read.
        old_detailed_status: The detailed status it had when last read.
    """

    record: SmsRecord
    old_status: str | None = None
    old_detailed_status: str | None = None

    @property
    def new(self) -> tuple[str | None, str | None]:
        """The state just read: ``(status, detailed_status)``."""
        return self.record.status, self.record.detailed_status

    @property
    def new_status(self) -> str | None:
        """The status just read."""
        return self.record.status

    @property
    def new_detailed_status(self) -> str | None:
        """The detailed status just read."""
        return self.record.detailed_status

    def __str__(self) -> str:
        old = f"{self.old_status}/{self.old_detailed_status}"
        return f"{self.record.sid}: {old} -> {self.new_status}/{self.new_detailed_status}"


@attrs.define
class FollowSummary:
    """What a sync or a follow saw, and where the campaign stands at its end."""

    campaign_id: str
    #: Complete walks over the campaign (one for a sync).
    walks: int = 0
    pages: int = 0
    #: Records read, over all walks.
    records: int = 0
    #: Changes of state seen (an SMS's first reading is not one).
    transitions: int = 0
    #: SMS by outcome (``delivered``, ``pending``, ``failed``, ``unknown``) at the end.
    outcomes: dict[str, int] = attrs.Factory(dict)
    #: Every SMS was delivered or failed at the last walk.
    final: bool = False
    #: Seconds from start to end.
    elapsed: float = 0.0


class Observer(Protocol):
    """Where the states of SMS are kept between walks."""

    async def begin(self, start: int) -> int:
        """The offset a walk meant to start at ``start`` starts at (a resume point)."""
        ...

    async def observe(
        self, records: Sequence[SmsRecord], next_offset: int, *, last: bool = False
    ) -> Iterable[Transition]:
        """Store ``records`` and the position after them; return the changes of state stored.

        A store may hold changes back to write many at once, and return them later: by the
        walk's ``last`` batch at the latest.
        """
        ...

    async def end(self, total: int | None) -> None:
        """Mark the walk complete."""
        ...

    async def outcomes(self) -> Counter[Outcome]:
        """Every SMS kept, counted by outcome."""
        ...


class MemoryObserver:
    """States in a dict by sid: what ``client.follow`` keeps, and nothing else."""

    def __init__(self) -> None:
        self._states: dict[str, tuple[str | None, str | None]] = {}

    async def begin(self, start: int) -> int:
        """Start where asked: nothing is kept across processes."""
        return start

    async def observe(
        self, records: Sequence[SmsRecord], next_offset: int, *, last: bool = False
    ) -> list[Transition]:
        """Compare with the states last seen; keep the new ones."""
        transitions = []
        states = self._states
        for record in records:
            state = (record.status, record.detailed_status)
            old = states.get(record.sid, state)
            states[record.sid] = state
            if old != state:
                transitions.append(Transition(record, *old))
        return transitions

    async def end(self, total: int | None) -> None:
        """Nothing to mark."""

    async def outcomes(self) -> Counter[Outcome]:
        """Classify every state kept."""
        return Counter(classify_status(*state) for state in self._states.values())


#: How long a follow goes on unless told otherwise: delivery reports come within two days.
DEFAULT_DEADLINE = timedelta(hours=48)
#: The shortest interval between walks: a shorter one would hammer the API for nothing.
MIN_INTERVAL = 1.0


def seconds(name: str, value: float | timedelta | None, minimum: float = 0.0) -> float | None:
    """A duration in seconds from a number or a ``timedelta``, more than 0 and at least
    ``minimum``; None stays None."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be seconds or a timedelta, got {type(value).__name__}")
    if not value > 0 or value < minimum or value == float("inf"):
        least = f"at least {minimum:g}" if minimum else "more than 0"
        raise ValueError(f"{name} must be a finite number of seconds, {least}; got {value}")
    return float(value)


@attrs.frozen
class WalkOptions:
    """How to read a campaign, and how often."""

    page_size: int = 50
    concurrency: int = 4
    #: Records handed to the observer at once (one database transaction).
    batch_records: int = 1000
    #: Re-read only the pages that held an SMS not yet final (see ``Follow``).
    skip_final_pages: bool = False
    interval: float = 300.0
    until_final: bool = True
    deadline: float | None = None
    #: Walk once, as a sync does; the other timing options then do not matter.
    once: bool = False


@attrs.frozen
class _Pending:
    """A page that held an SMS not yet final: where it is, and which SMS it held."""

    offset: int
    limit: int
    fingerprint: int


@attrs.frozen
class _Known:
    """What the last complete walk left to re-read."""

    total: int | None
    pages: tuple[_Pending, ...]


def _fingerprint(page: SmsPage) -> int:
    """Which SMS a page holds, in order: a page whose SMS moved gets another one."""
    return hash(tuple(record.sid for record in page.records))


class Follow:
    """Transitions of a campaign, as an async iterator; ``summary`` describes the run so far.

    Each walk reads the whole campaign, then waits out ``interval`` from the walk's start. It
    ends when every SMS is final (with ``until_final``), or at ``deadline`` after a last walk.
    The deadline is checked between walks, so a follow ends at most one walk past it. Every
    SMS is final when the walk completed, every SMS kept is delivered or failed, and as many
    are kept as the campaign's total.

    With ``skip_final_pages`` the walks go in ``schedule_time`` order, and each walk after a
    complete one re-reads only the pages that held an SMS not yet final. Each such page must
    hold the same SMS as before and the campaign the same total; otherwise that walk reads
    the whole campaign again.
    """

    def __init__(
        self,
        client: ExotelClient,
        campaign_id: str,
        observer: Observer,
        options: WalkOptions,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Sleep | None = None,
        on_walk: Callable[[FollowSummary], None] | None = None,
    ) -> None:
        # Built now so that bad arguments fail at the call, before any request.
        client.sms_details(
            campaign_id, page_size=options.page_size, concurrency=options.concurrency
        )
        self._client = client
        self._observer = observer
        self._options = options
        # By default the client's: the one its retries and rate limit wait on.
        self._clock = clock or client._clock
        self._sleep = sleep or client._sleep
        self._on_walk = on_walk
        self._known: _Known | None = None
        self._complete = False
        self._total: int | None = None
        self.summary = FollowSummary(campaign_id)

    def __aiter__(self) -> AsyncIterator[Transition]:
        return self._run()

    async def _run(self) -> AsyncGenerator[Transition, None]:
        """Walk, record, wait; until final or the deadline."""
        options, summary = self._options, self.summary
        began = self._clock()
        deadline = None if options.deadline is None else began + options.deadline
        try:
            while True:
                walk_began = self._clock()
                async for transition in self._walk():
                    summary.transitions += 1
                    yield transition
                summary.walks += 1
                outcomes = await self._observer.outcomes()
                summary.outcomes = {o.value: outcomes[o] for o in Outcome}
                summary.final = (
                    self._complete
                    and sum(outcomes.values()) == self._total
                    and all(o in FINAL_OUTCOMES for o in +outcomes)
                )
                if self._on_walk is not None:
                    self._on_walk(summary)
                if options.once or (summary.final and options.until_final):
                    return
                now = self._clock()
                if deadline is not None and now >= deadline:
                    return
                wake = walk_began + options.interval
                if deadline is not None:
                    wake = min(wake, deadline)
                await self._sleep(max(wake - now, 0.0))
        finally:
            summary.elapsed = self._clock() - began

    async def _walk(self) -> AsyncGenerator[Transition, None]:
        """One walk: the pending pages if they are known and in place, else everything."""
        known = self._known if self._options.skip_final_pages else None
        for pages in (known, None):
            walk = _Walk(self._client, self.summary.campaign_id, self._observer, self._options)
            # The first walk resumes an interrupted run; every later one reads from the start,
            # even after a walk that ended early, which left its position incomplete.
            start = None if self.summary.walks == 0 else 0
            async for transition in walk.run(pages, start):
                yield transition
            self.summary.pages += walk.pages
            self.summary.records += walk.records
            if not walk.moved:
                break
        self._complete = walk.complete
        self._total = walk.total
        # A walk resumed midway saw only the pages after its start: all must be read again.
        whole = walk.complete and not walk.resumed
        self._known = _Known(walk.total, tuple(walk.pending)) if whole else None


#: Changes a walk yields between two turns of the loop.
_TURN = 1000


class _Walk:
    """One pass over a campaign, batches stored while the next pages arrive."""

    def __init__(
        self, client: ExotelClient, campaign_id: str, observer: Observer, options: WalkOptions
    ) -> None:
        self._client = client
        self._campaign_id = campaign_id
        self._observer = observer
        self._options = options
        self.pages = 0
        self.records = 0
        self.changes = 0
        self.total: int | None = None
        #: The pages read that held an SMS not yet final (with ``skip_final_pages``).
        self.pending: list[_Pending] = []
        #: A pending page no longer held the same SMS, or the total changed.
        self.moved = False
        self.complete = False
        #: The walk continued an interrupted one from an offset past 0.
        self.resumed = False
        #: The API's error that ended the walk midway, raised once what was read is stored.
        self.failed: ExotelError | None = None

    async def run(
        self, known: _Known | None, start: int | None
    ) -> AsyncGenerator[Transition, None]:
        """Read the pages ``known`` lists, else the campaign from ``start`` (None: where the
        observer's last walk stopped, or 0); yield each batch's changes once stored."""
        if known is None:
            start = await self._observer.begin(0) if start is None else start
            self.resumed = start > 0
            pages = self._everything(start)
        else:
            start = 0
            pages = self._pending_pages(known)
        batches = self._batches(pages, start)
        storing: asyncio.Task[Iterable[Transition]] | None = None
        try:
            while True:
                batch = await anext(batches, None)  # the next pages arrive while one is stored
                if storing is not None:
                    # Before the next batch: SQLite's connection takes one transaction at a time.
                    for transition in await storing:
                        yield transition
                        await self._turn()
                    storing = None
                if batch is None:
                    break
                records, position, last = batch
                storing = asyncio.ensure_future(
                    self._observer.observe(records, position, last=last)
                )
        except Exception as exc:
            if self.failed is None:
                raise
            raise exc from self.failed  # storing failed too: the API's error is the root cause
        finally:
            if storing is not None:  # an error or an early stop: let the write finish
                with contextlib.suppress(Exception):
                    await asyncio.shield(storing)
        if self.failed is not None:
            raise self.failed
        if self.complete:
            await self._observer.end(self.total)

    async def _batches(
        self, pages: AsyncIterator[tuple[int, int, SmsPage]], position: int
    ) -> AsyncGenerator[tuple[list[SmsRecord], int, bool], None]:
        """The records of ``pages`` in batches of ``batch_records``, each with the position
        after it and whether it is the last, which may be empty; an API error midway ends
        them, kept in ``failed``."""
        batch: list[SmsRecord] = []
        try:
            async for offset, end, page in pages:
                self.pages += 1
                self.records += len(page.records)
                if self._options.skip_final_pages and not all(map(is_final, page.records)):
                    self.pending.append(_Pending(offset, end - offset, _fingerprint(page)))
                batch.extend(page.records)
                position = end
                if len(batch) >= self._options.batch_records:
                    yield batch, position, False
                    batch = []
        except ExotelError as exc:
            # The API failed midway: what was read is stored, and its changes reported,
            # before the error (a store may hold many back until the walk's last batch).
            self.failed = exc
        # A walk that reads nothing leaves the position where it was.
        yield batch, position, True

    async def _turn(self) -> None:
        """After every ``_TURN`` changes yielded, a turn of the loop for the pages in flight:
        a store may return a merge's many changes at once."""
        self.changes += 1
        if self.changes % _TURN == 0:
            await asyncio.sleep(0)

    async def _everything(self, start: int) -> AsyncGenerator[tuple[int, int, SmsPage], None]:
        """Every page from ``start``, as ``(offset, end, page)``."""
        options = self._options
        stream = self._client.sms_details(
            self._campaign_id,
            offset=start,
            page_size=options.page_size,
            concurrency=options.concurrency,
            sort_by=PAGE_ORDER if options.skip_final_pages else None,
        )
        offset = start
        async with stream:
            async for page in stream.pages():
                yield offset, stream.resume_offset, page
                offset = stream.resume_offset
        self.total = stream.stats.final_total
        self.complete = not stream.stats.ended_early

    async def _pending_pages(self, known: _Known) -> AsyncGenerator[tuple[int, int, SmsPage], None]:
        """The pages ``known`` lists, ``concurrency`` at a time; stop at one that moved."""
        width = self._options.concurrency
        for first in range(0, len(known.pages), width):
            chunk = known.pages[first : first + width]
            pages = await asyncio.gather(*(self._page(p) for p in chunk))
            for pending, page in zip(chunk, pages, strict=True):
                if page.metadata.total != known.total or _fingerprint(page) != pending.fingerprint:
                    self.moved = True
                    return
                yield pending.offset, pending.offset + pending.limit, page
        self.total = known.total
        self.complete = True

    async def _page(self, pending: _Pending) -> SmsPage:
        """One pending page read again; a failed item raises as in a full walk."""
        page = await self._client.sms_details_page(
            self._campaign_id, offset=pending.offset, limit=pending.limit, sort_by=PAGE_ORDER
        )
        if page.item_errors:
            raise page.item_errors[0]
        return page
