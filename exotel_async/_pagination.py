"""The offset/limit walk: concurrent pages, yielded strictly in order, each record once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from types import TracebackType

import attrs

from ._errors import ItemError
from ._models import SmsPage, SmsRecord

logger = logging.getLogger("exotel_async")

FetchPage = Callable[[int, int], Awaitable[SmsPage]]


@attrs.define
class StreamStats:
    """What one walk saw; read it after the stream ends."""

    pages: int = 0
    records: int = 0
    duplicates_dropped: int = 0
    item_errors: int = 0
    short_pages: int = 0
    final_total: int | None = None


class _RecentSids:
    """The last ``capacity`` sids seen: duplicates from offset paging sit near each other."""

    def __init__(self, capacity: int) -> None:
        self._order: deque[str] = deque()
        self._seen: set[str] = set()
        self._capacity = capacity

    def add(self, sid: str) -> bool:
        """Remember ``sid``; False if it was already among the recent ones."""
        if sid in self._seen:
            return False
        self._seen.add(sid)
        self._order.append(sid)
        if len(self._order) > self._capacity:
            self._seen.discard(self._order.popleft())
        return True


class SmsDetailsStream:
    """Every SMS of a campaign, as an async iterable of ``SmsRecord`` (or ``.pages()``).

    Each ``async for`` starts a fresh walk. Use ``async with`` (or ``aclose()``) to cancel
    pages still in flight at once when you stop early; otherwise they are cancelled when
    the iterator is garbage-collected.
    """

    #: Duplicates are looked for among at least this many of the most recent records.
    MIN_DEDUPE_WINDOW = 10_000

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
        self._walks: weakref.WeakSet[AsyncGenerator[SmsPage, None]] = weakref.WeakSet()
        #: Item failures passed over when ``skip_item_errors`` is set, in offset order.
        self.item_errors: list[ItemError] = []
        #: Counters of the latest walk.
        self.stats = StreamStats()

    def __aiter__(self) -> AsyncIterator[SmsRecord]:
        return self._records()

    def pages(self) -> AsyncGenerator[SmsPage, None]:
        """Iterate pages instead of records; a page's records are deduplicated and capped."""
        walk = self._walk()
        self._walks.add(walk)
        return walk

    async def aclose(self) -> None:
        """Stop every walk of this stream, cancelling pages in flight."""
        for walk in list(self._walks):
            await walk.aclose()

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

    def _end(self, total: int | None) -> int | None:
        """The offset the walk stops before, as far as is known now."""
        if self._max_items is None:
            return total
        # Positions that yielded nothing (duplicates, skipped failures) do not count.
        wasted = self.stats.duplicates_dropped + self.stats.item_errors
        capped = self._start + self._max_items + wasted
        return capped if total is None else min(total, capped)

    async def _walk(self) -> AsyncGenerator[SmsPage, None]:
        stats = self.stats = StreamStats()
        self.item_errors = []
        recent = _RecentSids(max(self.MIN_DEDUPE_WINDOW, 4 * self._concurrency * self._page_size))
        window: deque[tuple[int, int, asyncio.Task[SmsPage]]] = deque()
        next_offset = self._start
        total: int | None = None
        try:
            while True:
                # Until the first page tells the total, one request is all we can justify.
                width = 1 if total is None else self._concurrency
                end = self._end(total)
                while len(window) < width and (end is None or next_offset < end):
                    limit = (
                        self._page_size if end is None else min(self._page_size, end - next_offset)
                    )
                    window.append(
                        (next_offset, limit, asyncio.ensure_future(self._fetch(next_offset, limit)))
                    )
                    next_offset += limit
                if not window:
                    break
                offset, limit, task = window.popleft()
                page = await task
                total = stats.final_total = page.metadata.total
                stats.pages += 1
                served = len(page.records) + len(page.item_errors)
                if served == 0:
                    break
                if served < limit and offset + served < total:
                    # A short page in the middle: fetch the gap before anything after it.
                    stats.short_pages += 1
                    logger.warning(
                        "page at offset %d held %d of %d records below total %d; fetching the gap",
                        offset,
                        served,
                        limit,
                        total,
                    )
                    gap = offset + served
                    window.appendleft(
                        (
                            gap,
                            limit - served,
                            asyncio.ensure_future(self._fetch(gap, limit - served)),
                        )
                    )
                yield self._accept(page, recent)
                if self._max_items is not None and stats.records >= self._max_items:
                    break
        finally:
            for _, _, pending in window:
                pending.cancel()
            await asyncio.gather(*(t for _, _, t in window), return_exceptions=True)
        self._check_consistency(total)

    def _accept(self, page: SmsPage, recent: _RecentSids) -> SmsPage:
        """Drop duplicates and records past ``max_items``; raise or collect item failures."""
        stats = self.stats
        if page.item_errors:
            if not self._skip_item_errors:
                raise page.item_errors[0]
            self.item_errors.extend(page.item_errors)
            stats.item_errors += len(page.item_errors)
        fresh = [r for r in page.records if recent.add(r.sid)]
        stats.duplicates_dropped += len(page.records) - len(fresh)
        if self._max_items is not None:
            fresh = fresh[: self._max_items - stats.records]
        stats.records += len(fresh)
        if len(fresh) == len(page.records):
            return page
        return attrs.evolve(page, records=tuple(fresh))

    def _check_consistency(self, total: int | None) -> None:
        """Warn when a complete walk yielded a different count than the last total."""
        stats = self.stats
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
