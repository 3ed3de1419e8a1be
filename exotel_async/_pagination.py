"""The offset/limit walk: concurrent pages, yielded strictly in order, each record once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType

import attrs

from ._errors import APIError, ExotelError, ItemError, NoProgressError
from ._models import SmsPage, SmsRecord
from ._ratelimit import THROTTLE_STATUSES
from ._transport import RetryObserver

logger = logging.getLogger("exotel_async")

#: ``fetch(offset, limit, observer)``: one page, its retries reported to ``observer``.
FetchPage = Callable[[int, int, RetryObserver], Awaitable[SmsPage]]


@attrs.define
class StreamStats:
    """What one walk saw; read it after the stream ends."""

    pages: int = 0
    records: int = 0
    duplicates_dropped: int = 0
    item_errors: int = 0
    short_pages: int = 0
    retries: int = 0
    #: Answers that said "slow down" (429, or 503 as older Exotel SMS APIs throttle).
    throttled: int = 0
    #: Seconds this walk's requests spent waiting for the account's rate limit, summed.
    rate_wait: float = 0.0
    final_total: int | None = None
    #: The walk stopped at a page that stayed empty below the total the server reported.
    ended_early: bool = False


class _RecentSids:
    """At least the last ``capacity`` sids seen: duplicates from offset paging sit near each other.

    Two generations instead of a queue: when the current set is full it becomes the
    previous one, and the old previous set is dropped whole.
    """

    def __init__(self, capacity: int) -> None:
        self._current: set[str] = set()
        self._previous: set[str] = set()
        self._capacity = capacity

    def fresh(self, records: Sequence[SmsRecord]) -> Sequence[SmsRecord]:
        """The records whose sid was not seen recently (nor earlier in ``records``)."""
        sids = {r.sid for r in records}
        # The usual page repeats nothing: three set operations instead of one per record.
        if (
            len(sids) == len(records)
            and sids.isdisjoint(self._current)
            and sids.isdisjoint(self._previous)
        ):
            self._remember(sids)
            return records
        kept: list[SmsRecord] = []
        for record in records:
            if record.sid not in self._current and record.sid not in self._previous:
                self._remember({record.sid})
                kept.append(record)
        return kept

    def _remember(self, sids: set[str]) -> None:
        self._current |= sids
        if len(self._current) >= self._capacity:
            self._previous, self._current = self._current, set()


class _WalkState:
    """Everything one walk learns; the walk's retries are reported here too."""

    def __init__(self, start: int, dedupe_window: int) -> None:
        self.stats = StreamStats()
        self.item_errors: list[ItemError] = []
        self.resume_offset = start
        self.recent = _RecentSids(dedupe_window)

    def retrying(self, error: ExotelError, delay: float) -> None:
        """Count a retry, and a throttle apart."""
        self.stats.retries += 1
        if isinstance(error, APIError) and error.status_code in THROTTLE_STATUSES:
            self.stats.throttled += 1

    def rate_waited(self, seconds: float) -> None:
        """Add up the time spent waiting for the rate limit."""
        self.stats.rate_wait += seconds


class _ProgressGuard:
    """Stops a walk whose pages hold only records already seen: an ignored ``offset``.

    One such page can be honest (records inserted ahead of the walk shift a whole page
    back); several in a row mean the server serves the same records whatever it is asked.
    """

    STALE_PAGES = 3

    def __init__(self) -> None:
        self._stale = 0

    def check(self, offset: int, records: int, duplicates: int) -> None:
        """Count a page of ``records`` with ``duplicates`` among them; raise when stuck."""
        if records == 0:
            return  # only failed items: no sids to judge by
        if duplicates < records:
            self._stale = 0
            return
        self._stale += 1
        if self._stale >= self.STALE_PAGES:
            raise NoProgressError(
                f"the server is not honouring offset: {self._stale} pages in a row, the last "
                f"at offset {offset}, held only records already seen; stopping the walk",
                offset=offset,
                pages=self._stale,
            )


@attrs.frozen
class _InFlight:
    offset: int
    limit: int
    task: asyncio.Task[SmsPage]
    #: How many times this offset was asked again after an empty answer below the total.
    rechecks: int = 0


class SmsDetailsStream:
    """Every SMS of a campaign, as an async iterable of ``SmsRecord`` (or ``.pages()``).

    Each ``async for`` starts a fresh, independent walk; ``stats``, ``item_errors`` and
    ``resume_offset`` describe the latest one. Use ``async with`` (or ``aclose()``) to
    cancel pages still in flight at once when you stop early; otherwise they are
    cancelled when the iterator is garbage-collected.
    """

    #: Duplicates are looked for among at least this many of the most recent records.
    MIN_DEDUPE_WINDOW = 10_000
    #: An empty page below the total it reports is asked again this many times.
    EMPTY_PAGE_RECHECKS = 2

    def __init__(
        self,
        fetch: FetchPage,
        *,
        page_size: int,
        offset: int,
        max_items: int | None,
        concurrency: int,
        skip_item_errors: bool,
    ) -> None:
        self._fetch = fetch
        self._page_size = page_size
        self._start = offset
        self._max_items = max_items
        self._concurrency = concurrency
        self._skip_item_errors = skip_item_errors
        self._dedupe_window = max(self.MIN_DEDUPE_WINDOW, 4 * concurrency * page_size)
        self._state = _WalkState(offset, 0)
        # Strong references: a walk abandoned by ``break`` must still be cancellable.
        self._tasks: set[asyncio.Task[SmsPage]] = set()
        self._closing = False

    @property
    def stats(self) -> StreamStats:
        """Counters of the latest walk."""
        return self._state.stats

    @property
    def item_errors(self) -> list[ItemError]:
        """Item failures passed over when ``skip_item_errors`` is set, in offset order."""
        return self._state.item_errors

    @property
    def resume_offset(self) -> int:
        """Where a new walk would continue after the last page yielded so far."""
        return self._state.resume_offset

    def __aiter__(self) -> AsyncIterator[SmsRecord]:
        return self._records()

    def pages(self) -> AsyncGenerator[SmsPage, None]:
        """Iterate pages instead of records; a page's records are deduplicated and capped."""
        return self._walk()

    async def aclose(self) -> None:
        """Cancel every page in flight; walks still being iterated then end quietly."""
        self._closing = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> SmsDetailsStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _records(self) -> AsyncGenerator[SmsRecord, None]:
        async with contextlib.aclosing(self.pages()) as pages:
            async for page in pages:
                for record in page.records:
                    yield record

    def _cap(self, stats: StreamStats) -> int | None:
        """The offset ``max_items`` stops the walk before, or None without a cap."""
        if self._max_items is None:
            return None
        # Positions that yielded nothing (duplicates, skipped failures) do not count.
        wasted = stats.duplicates_dropped + stats.item_errors
        return self._start + self._max_items + wasted

    async def _walk(self) -> AsyncGenerator[SmsPage, None]:
        state = self._state = _WalkState(self._start, self._dedupe_window)
        stats = state.stats
        self._closing = False
        in_flight: deque[_InFlight] = deque()

        def launch(offset: int, limit: int, rechecks: int = 0) -> _InFlight:
            task = asyncio.ensure_future(self._fetch(offset, limit, state))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return _InFlight(offset, limit, task, rechecks)

        next_offset = self._start
        total: int | None = None
        progress = _ProgressGuard()
        try:
            while True:
                # Until the first page tells the total, one request is all we can justify.
                width = 1 if total is None else self._concurrency
                cap = self._cap(stats)
                end = cap if total is None else min(total, cap if cap is not None else total)
                while len(in_flight) < width and (end is None or next_offset < end):
                    # Ask a full page even near the end: a growing campaign fills it.
                    limit = (
                        self._page_size if cap is None else min(self._page_size, cap - next_offset)
                    )
                    in_flight.append(launch(next_offset, limit))
                    next_offset += limit
                if not in_flight:
                    break
                head = in_flight.popleft()
                try:
                    page = await head.task
                except asyncio.CancelledError:
                    if self._closing:
                        return  # aclose() from elsewhere: end the walk, not the task
                    raise
                total = stats.final_total = page.metadata.total
                stats.pages += 1
                served = len(page.records) + len(page.item_errors)
                if served == 0 and head.offset < total:
                    if head.rechecks < self.EMPTY_PAGE_RECHECKS:
                        # Empty yet below its own total: a glitch, or records gone; ask again.
                        in_flight.appendleft(launch(head.offset, head.limit, head.rechecks + 1))
                        continue
                    stats.ended_early = True
                    logger.warning(
                        "page at offset %d stayed empty though the total is %d; stopping there",
                        head.offset,
                        total,
                    )
                if served == 0:
                    break
                if served < head.limit and head.offset + served < total:
                    # A short page in the middle: fetch the gap before anything after it.
                    stats.short_pages += 1
                    logger.warning(
                        "page at offset %d held %d of %d records below total %d; fetching the gap",
                        head.offset,
                        served,
                        head.limit,
                        total,
                    )
                    in_flight.appendleft(launch(head.offset + served, head.limit - served))
                dropped = stats.duplicates_dropped
                accepted = self._accept(page, state)
                progress.check(head.offset, len(page.records), stats.duplicates_dropped - dropped)
                state.resume_offset = head.offset + served
                yield accepted
                if self._max_items is not None and stats.records >= self._max_items:
                    break
        finally:
            for pending in in_flight:
                pending.task.cancel()
            await asyncio.gather(*(p.task for p in in_flight), return_exceptions=True)
        self._check_consistency(stats, total)

    def _accept(self, page: SmsPage, state: _WalkState) -> SmsPage:
        """Drop duplicates and records past ``max_items``; raise or collect item failures."""
        stats = state.stats
        if page.item_errors:
            if not self._skip_item_errors:
                raise page.item_errors[0]
            state.item_errors.extend(page.item_errors)
            stats.item_errors += len(page.item_errors)
        fresh = state.recent.fresh(page.records)
        stats.duplicates_dropped += len(page.records) - len(fresh)
        if self._max_items is not None:
            fresh = fresh[: self._max_items - stats.records]
        stats.records += len(fresh)
        if len(fresh) == len(page.records):
            return page
        return attrs.evolve(page, records=tuple(fresh))

    def _check_consistency(self, stats: StreamStats, total: int | None) -> None:
        """Warn when a complete walk yielded a different count than the last total."""
        if total is None or self._max_items is not None:
            return
        expected = max(total - self._start, 0)
        if stats.records + stats.item_errors != expected:
            logger.warning(
                "stream ended with %d records (+%d failed items) but the last total was %d",
                stats.records,
                stats.item_errors,
                total,
            )
