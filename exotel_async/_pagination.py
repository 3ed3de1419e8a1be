"""The offset/limit walk of any paged endpoint: concurrent pages, yielded in order, each once.

``PagedStream[T]`` knows nothing of SMS: it is given ``fetch(offset, limit, observer)``,
which returns a ``Page[T]``, and ``key(record)``, which names a record for the dedupe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Coroutine,
    Hashable,
    Sequence,
)
from types import TracebackType
from typing import Any, Generic, TypeAlias, TypeVar

import attrs

from ._errors import ExotelError, ItemError, NoProgressError
from ._models import Page
from ._protocol import check_int
from ._transport import RetryObserver

logger = logging.getLogger("exotel_async")

T = TypeVar("T")

#: Pages in flight at most: more only multiplies what a throttle holds back.
MAX_CONCURRENCY = 64

#: ``fetch(offset, limit, observer)``: one page, its retries reported to ``observer``.
FetchPage: TypeAlias = Callable[[int, int, RetryObserver | None], Coroutine[Any, Any, Page[T]]]


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


def compact_key(text: str) -> Hashable:
    """``text`` as a dedupe key in less memory: a lowercase hex id as bytes, else itself.

    A 32-digit hex sid costs 81 bytes as a str and 49 as the 16 bytes it spells, and an
    account export holds some 100,000 keys at once. Exact: only a text its bytes spell back
    is converted (so ``0ab``, ``AB`` and `` ab`` stay apart from ``ab``), and no bytes equal
    a str. Bytes, not an int (44 bytes): parsing an int cost 0.5 µs a record, bytes 0.1.
    """
    try:
        spelt = bytes.fromhex(text)
    except ValueError:
        return text
    return spelt if spelt.hex() == text else text


class _RecentKeys(Generic[T]):
    """At least the last ``capacity`` keys seen: duplicates from offset paging sit near each other.

    Generations instead of a queue: when the current set holds a fifth of the capacity it
    joins the older ones and the oldest is dropped whole. That holds at most 1.2 times the
    capacity (two halves held up to twice), which 32 campaigns at once feel. A fifth, not a
    quarter: CPython grows a set of 2,000 keys to a table twice its size, one of 2,500 to
    one over three times.
    """

    GENERATIONS = 5

    def __init__(self, key: Callable[[T], Hashable], capacity: int) -> None:
        self._key = key
        self._current: set[Hashable] = set()
        self._older: deque[set[Hashable]] = deque(maxlen=self.GENERATIONS)
        self._size = -(-capacity // self.GENERATIONS)

    def fresh(self, records: Sequence[T]) -> Sequence[T]:
        """The records whose key was not seen recently (nor earlier in ``records``)."""
        key = self._key
        keys = set(map(key, records))
        # The usual page repeats nothing: a few set operations instead of one per record.
        if (
            len(keys) == len(records)
            and keys.isdisjoint(self._current)
            and all(map(keys.isdisjoint, self._older))
        ):
            self._remember(keys)
            return records
        kept: list[T] = []
        for record in records:
            k = key(record)
            if k not in self._current and not any(k in older for older in self._older):
                self._remember({k})
                kept.append(record)
        return kept

    def _remember(self, keys: set[Hashable]) -> None:
        self._current |= keys
        if len(self._current) >= self._size:
            self._older.append(self._current)  # drops the oldest once there are enough
            self._current = set()

    def held(self) -> int:
        """How many keys are held now."""
        return len(self._current) + sum(map(len, self._older))

    def forget(self) -> None:
        """Drop every key, now: a finished stream may wait for the collector (see cancel)."""
        self._current = set()
        self._older.clear()


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
            return  # only failed items: no keys to judge by
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
class _Settings(Generic[T]):
    """What a stream was built with; every walk of it reads these, none changes them."""

    fetch: FetchPage[T]
    key: Callable[[T], Hashable]
    page_size: int
    start: int
    max_items: int | None
    concurrency: int
    skip_item_errors: bool
    dedupe_window: int


@attrs.frozen
class _InFlight(Generic[T]):
    offset: int
    limit: int
    #: A Task when pages overlap; at concurrency 1, the coroutine, awaited in place.
    task: asyncio.Task[Page[T]] | Coroutine[Any, Any, Page[T]]
    #: How many times this offset was asked again after an empty answer below the total.
    rechecks: int = 0


class _Walk(Generic[T]):
    """One walk: the window of pages in flight, and everything the walk learns.

    It is the ``RetryObserver`` of its own requests, so that their retries count here.
    """

    def __init__(self, settings: _Settings[T], stream: PagedStream[T]) -> None:
        self._settings = settings
        self._stream = stream
        self.stats = StreamStats()
        self.item_errors: list[ItemError] = []
        self.resume_offset = settings.start
        self._recent = _RecentKeys(settings.key, settings.dedupe_window)
        self._progress = _ProgressGuard()
        self._in_flight: deque[_InFlight[T]] = deque()
        self._next_offset = settings.start
        self._total: int | None = None

    def retrying(self, error: ExotelError, delay: float, *, throttled: bool) -> None:
        """Count a retry, and a throttle apart."""
        self.stats.retries += 1
        self.stats.throttled += throttled

    def rate_waited(self, seconds: float) -> None:
        """Add up the time spent waiting for the rate limit."""
        self.stats.rate_wait += seconds

    def _launch(self, offset: int, limit: int, rechecks: int = 0) -> _InFlight[T]:
        page = self._settings.fetch(offset, limit, self)
        if self._settings.concurrency == 1:
            # Nothing overlaps: a Task would cost a turn of the event loop per page.
            return _InFlight(offset, limit, page, rechecks)
        task = asyncio.ensure_future(page)
        self._stream._track(task)
        return _InFlight(offset, limit, task, rechecks)

    def _cap(self) -> int | None:
        """The offset ``max_items`` stops the walk before, or None without a cap."""
        max_items = self._settings.max_items
        if max_items is None:
            return None
        # Positions that yielded nothing (duplicates, skipped failures) do not count.
        wasted = self.stats.duplicates_dropped + self.stats.item_errors
        return self._settings.start + max_items + wasted

    def _fill(self) -> None:
        """Launch pages until the window is full or the end (total or cap) is reached."""
        # Until the first page tells the total, one request is all we can justify.
        width = 1 if self._total is None else self._settings.concurrency
        cap = self._cap()
        ends = [end for end in (self._total, cap) if end is not None]
        end = min(ends) if ends else None
        page_size = self._settings.page_size
        while len(self._in_flight) < width and (end is None or self._next_offset < end):
            # Ask a full page even near the total: a growing campaign fills it.
            limit = page_size if cap is None else min(page_size, cap - self._next_offset)
            self._in_flight.append(self._launch(self._next_offset, limit))
            self._next_offset += limit

    async def next_page(self) -> Page[T] | None:
        """The next page in offset order, deduplicated and capped; None at the end."""
        while True:
            self._fill()
            if not self._in_flight:
                return None
            head = self._in_flight.popleft()
            page = await self._stream._wait_for(head.task)
            total = self._total = self.stats.final_total = page.metadata.total
            self.stats.pages += 1
            served = len(page.records) + len(page.item_errors)
            if served == 0 and head.offset < total:
                if head.rechecks < self._stream.EMPTY_PAGE_RECHECKS:
                    # Empty yet below its own total: a glitch, or records gone; ask again.
                    self._in_flight.appendleft(
                        self._launch(head.offset, head.limit, head.rechecks + 1)
                    )
                    continue
                self._end_early(head.offset, total)
            if served == 0:
                return None
            if served < head.limit and head.offset + served < total:
                self._fetch_gap(head, served, total)
            return self._accept(head.offset, served, page)

    def _end_early(self, offset: int, total: int) -> None:
        self.stats.ended_early = True
        logger.warning(
            "page at offset %d stayed empty though the total is %d; stopping there",
            offset,
            total,
        )

    def _fetch_gap(self, head: _InFlight[T], served: int, total: int) -> None:
        """A short page in the middle: fetch the gap before anything after it."""
        self.stats.short_pages += 1
        logger.warning(
            "page at offset %d held %d of %d records below total %d; fetching the gap",
            head.offset,
            served,
            head.limit,
            total,
        )
        self._in_flight.appendleft(self._launch(head.offset + served, head.limit - served))

    def _accept(self, offset: int, served: int, page: Page[T]) -> Page[T]:
        """Drop duplicates and records past ``max_items``; raise or collect item failures."""
        stats = self.stats
        if page.item_errors:
            if not self._settings.skip_item_errors:
                raise page.item_errors[0]
            self.item_errors.extend(page.item_errors)
            stats.item_errors += len(page.item_errors)
        fresh = self._recent.fresh(page.records)
        duplicates = len(page.records) - len(fresh)
        stats.duplicates_dropped += duplicates
        self._progress.check(offset, len(page.records), duplicates)
        max_items = self._settings.max_items
        if max_items is not None:
            fresh = fresh[: max_items - stats.records]
        stats.records += len(fresh)
        self.resume_offset = offset + served
        if len(fresh) == len(page.records):
            return page
        return attrs.evolve(page, records=tuple(fresh))

    def done(self) -> bool:
        """Whether ``max_items`` records were yielded."""
        max_items = self._settings.max_items
        return max_items is not None and self.stats.records >= max_items

    async def cancel(self) -> None:
        """End the walk: cancel the pages still in flight, wait until they are gone, and
        drop the dedupe keys, which a stream and its walk (a reference cycle) would
        otherwise keep until a full garbage collection; an account export runs hundreds."""
        self._recent.forget()
        tasks = []
        for pending in self._in_flight:
            if isinstance(pending.task, asyncio.Task):
                pending.task.cancel()
                tasks.append(pending.task)
            else:
                pending.task.close()  # never started
        await asyncio.gather(*tasks, return_exceptions=True)

    def check_consistency(self) -> None:
        """Warn when a complete walk yielded a different count than the last total."""
        total, stats = self._total, self.stats
        if total is None or self._settings.max_items is not None:
            return
        expected = max(total - self._settings.start, 0)
        if stats.records + stats.item_errors != expected:
            logger.warning(
                "stream ended with %d records (+%d failed items) but the last total was %d",
                stats.records,
                stats.item_errors,
                total,
            )


class PagedStream(Generic[T]):
    """Every record of a paged endpoint, as an async iterable of ``T`` (or ``.pages()``).

    Pages are fetched ``concurrency`` at a time and yielded strictly in offset order;
    a record whose ``key`` was seen recently is dropped, an empty page below the total is
    asked again, a short page has its gap fetched. Build one with ``client.paginate()``
    or a method such as ``client.sms_details()``.

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
        fetch: FetchPage[T],
        *,
        key: Callable[[T], Hashable],
        page_size: int,
        offset: int = 0,
        max_items: int | None = None,
        concurrency: int = 4,
        skip_item_errors: bool = False,
    ) -> None:
        if not callable(fetch):
            raise TypeError("fetch must be a function of (offset, limit, observer)")
        if not callable(key):
            raise TypeError("key must be a function of a record")
        check_int("page_size", page_size, minimum=1)
        check_int("offset", offset, minimum=0)
        if max_items is not None:
            check_int("max_items", max_items, minimum=0)
        check_int("concurrency", concurrency, minimum=1, maximum=MAX_CONCURRENCY)
        if not isinstance(skip_item_errors, bool):
            raise TypeError("skip_item_errors must be a bool")
        self._settings = _Settings(
            fetch,
            key,
            page_size,
            offset,
            max_items,
            concurrency,
            skip_item_errors,
            dedupe_window=max(self.MIN_DEDUPE_WINDOW, 4 * concurrency * page_size),
        )
        self._walk_state: _Walk[T] = _Walk(self._settings, self)
        # Strong references: a walk abandoned by ``break`` must still be cancellable.
        self._tasks: set[asyncio.Task[Page[T]]] = set()
        #: Consumers awaiting a page in place, and those aclose() cancelled for it.
        self._waiting: set[asyncio.Task[Any]] = set()
        self._cancelled: set[asyncio.Task[Any]] = set()
        self._closing = False

    @property
    def stats(self) -> StreamStats:
        """Counters of the latest walk."""
        return self._walk_state.stats

    @property
    def item_errors(self) -> list[ItemError]:
        """Item failures passed over when ``skip_item_errors`` is set, in offset order."""
        return self._walk_state.item_errors

    @property
    def resume_offset(self) -> int:
        """Where a new walk would continue after the last page yielded so far."""
        return self._walk_state.resume_offset

    def _track(self, task: asyncio.Task[Page[T]]) -> None:
        """Keep ``task`` until it is done, so that ``aclose()`` can cancel it."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _wait_for(
        self, page: asyncio.Task[Page[T]] | Coroutine[Any, Any, Page[T]]
    ) -> Page[T]:
        """Await a page; one awaited in place makes its consumer what ``aclose()`` cancels."""
        if isinstance(page, asyncio.Task):
            return await page
        consumer = asyncio.current_task()
        assert consumer is not None  # an async generator runs in a task
        self._waiting.add(consumer)
        try:
            return await page
        finally:
            self._waiting.discard(consumer)

    def __aiter__(self) -> AsyncIterator[T]:
        return self._records()

    def pages(self) -> AsyncGenerator[Page[T], None]:
        """Iterate pages instead of records; a page's records are deduplicated and capped."""
        return self._walk()

    async def aclose(self) -> None:
        """Cancel every page in flight; walks still being iterated then end quietly."""
        self._closing = True
        for consumer in self._waiting:
            if consumer is not asyncio.current_task():
                consumer.cancel()
                self._cancelled.add(consumer)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> PagedStream[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _records(self) -> AsyncGenerator[T, None]:
        async with contextlib.aclosing(self.pages()) as pages:
            async for page in pages:
                for record in page.records:
                    yield record

    async def _walk(self) -> AsyncGenerator[Page[T], None]:
        walk = self._walk_state = _Walk(self._settings, self)
        self._closing = False
        try:
            while True:
                try:
                    page = await walk.next_page()
                except asyncio.CancelledError:
                    if self._ended_by_aclose():
                        return  # aclose() from elsewhere: end the walk, not the task
                    raise
                if page is None:
                    break
                yield page
                if walk.done():
                    break
        finally:
            await walk.cancel()
        walk.check_consistency()

    def _ended_by_aclose(self) -> bool:
        """Whether the walk's CancelledError is aclose()'s, so that the walk ends quietly."""
        if not self._closing:
            return False
        consumer = asyncio.current_task()
        if consumer not in self._cancelled:
            return True  # a page's Task was cancelled, not the consumer
        self._cancelled.discard(consumer)
        # Take back our own cancel(); one from anyone else still stands (Python 3.11+).
        uncancel = getattr(consumer, "uncancel", None)
        return uncancel is None or uncancel() == 0
