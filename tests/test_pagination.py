"""The offset/limit walk, driven by an in-memory fake campaign (no HTTP)."""

from __future__ import annotations

import asyncio
import logging
import random
import sys

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exotel_async import (
    ItemError,
    NoProgressError,
    PageMetadata,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
    SmsDetailsStream,
    SmsPage,
    SmsRecord,
)
from exotel_async._pagination import _RecentKeys, compact_key


def sid_of(record: SmsRecord) -> str:
    return record.sid


def make_records(n: int, prefix: str = "s") -> list[SmsRecord]:
    return [SmsRecord(sid=f"{prefix}{i:07d}", number=f"98765{i:05d}") for i in range(n)]


@attrs.define
class FakeCampaign:
    """Serves pages of ``records`` like Exotel does, and records what it was asked."""

    records: list[SmsRecord]
    rng: random.Random = attrs.field(factory=lambda: random.Random(0))
    calls: list[tuple[int, int]] = attrs.field(factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    cancelled: int = 0
    #: Called after each answer is built: lets a test change the data between requests.
    after_request: object = None
    #: Cut pages to at most this many records (a server with a lower maximum).
    serve_at_most: int | None = None
    failed_offsets: frozenset[int] = frozenset()
    #: Every page after the first never answers: requests stay in flight until cancelled.
    stall_after_first_page: bool = False

    async def fetch(self, offset: int, limit: int, observer: object = None) -> SmsPage:
        self.calls.append((offset, limit))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.stall_after_first_page and offset > 0:
                await asyncio.Event().wait()
            # Yield a random number of times so pages complete out of order.
            for _ in range(self.rng.randrange(4)):
                await asyncio.sleep(0)
            served = min(limit, self.serve_at_most or limit)
            window = self.records[offset : offset + served]
            errors = tuple(
                ItemError("boom", offset=offset + i, code=500, error_data=None)
                for i, _ in enumerate(window)
                if offset + i in self.failed_offsets
            )
            kept = tuple(r for i, r in enumerate(window) if offset + i not in self.failed_offsets)
            page = SmsPage(
                records=kept,
                metadata=PageMetadata(len(window), offset, len(self.records), limit),
                request_id=f"req-{offset}",
                item_errors=errors,
            )
            if callable(self.after_request):
                self.after_request(self)
            return page
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1


def stream(campaign: FakeCampaign, **kwargs: object) -> SmsDetailsStream:
    options: dict[str, object] = {
        "page_size": 10,
        "offset": 0,
        "max_items": None,
        "concurrency": 4,
        "skip_item_errors": False,
    }
    options.update(kwargs)
    return SmsDetailsStream(campaign.fetch, key=sid_of, **options)  # type: ignore[arg-type]


async def collect(s: SmsDetailsStream) -> list[str]:
    return [record.sid async for record in s]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    total=st.integers(0, 2500),
    page_size=st.integers(1, 120),
    start=st.integers(0, 2600),
    max_items=st.none() | st.integers(0, 3000),
    concurrency=st.integers(1, 8),
    seed=st.integers(0, 2**16),
)
def test_every_record_once_in_order_for_any_shape(
    total: int, page_size: int, start: int, max_items: int | None, concurrency: int, seed: int
) -> None:
    """Any total, page size, start, cap and concurrency yields exactly the expected slice."""
    campaign = FakeCampaign(make_records(total), rng=random.Random(seed))
    s = stream(
        campaign, page_size=page_size, offset=start, max_items=max_items, concurrency=concurrency
    )
    got = asyncio.run(collect(s))
    expected = [r.sid for r in campaign.records[start:]]
    if max_items is not None:
        expected = expected[:max_items]
    assert got == expected
    assert campaign.max_in_flight <= concurrency


async def test_first_request_goes_alone_then_fills_the_window() -> None:
    """Until the total is known one request flies; then up to ``concurrency``."""
    campaign = FakeCampaign(make_records(200))
    await collect(stream(campaign, page_size=10, concurrency=5))
    assert campaign.calls[0] == (0, 10)
    assert campaign.max_in_flight == 5


async def test_requests_stop_at_total_without_probing_past_it() -> None:
    """A known total means no request for offsets past the end; the last asks a full page."""
    campaign = FakeCampaign(make_records(95))
    await collect(stream(campaign, page_size=10, concurrency=3))
    assert sorted(campaign.calls) == [(o, 10) for o in range(0, 100, 10)]


async def test_max_items_shrinks_the_last_request() -> None:
    """With ``max_items=25`` and pages of 10, the third request asks for 5."""
    campaign = FakeCampaign(make_records(100))
    got = await collect(stream(campaign, page_size=10, max_items=25))
    assert len(got) == 25
    assert sorted(campaign.calls) == [(0, 10), (10, 10), (20, 5)]


async def test_max_items_zero_makes_no_request() -> None:
    """Asking for nothing costs nothing."""
    campaign = FakeCampaign(make_records(10))
    assert await collect(stream(campaign, max_items=0)) == []
    assert campaign.calls == []


@pytest.mark.parametrize(
    ("setting", "value", "error"),
    [
        ("concurrency", 0, ValueError),
        ("concurrency", 65, ValueError),
        ("page_size", 0, ValueError),
        ("offset", -1, ValueError),
        ("max_items", -1, ValueError),
        ("page_size", 5.0, TypeError),
        ("skip_item_errors", "yes", TypeError),
    ],
)
def test_stream_refuses_bad_settings_when_built(setting: str, value: object, error: type) -> None:
    """A setting that would lose records silently (concurrency 0, page_size 0) fails at once."""
    with pytest.raises(error, match=setting):
        stream(FakeCampaign(make_records(10)), **{setting: value})


def test_stream_refuses_a_key_that_is_not_a_function() -> None:
    """The dedupe key must be callable, checked before any walk."""
    with pytest.raises(TypeError, match="key"):
        SmsDetailsStream(FakeCampaign([]).fetch, key="sid", page_size=5)  # type: ignore[arg-type]


def test_stream_settings_are_not_public_attributes() -> None:
    """What a stream was built with cannot be read or changed from outside between walks."""
    s = stream(FakeCampaign(make_records(10)))
    public = {name for name in dir(s) if not name.startswith("_")}
    assert public == {
        "EMPTY_PAGE_RECHECKS",
        "MIN_DEDUPE_WINDOW",
        "aclose",
        "item_errors",
        "pages",
        "resume_offset",
        "stats",
    }


async def test_campaign_that_grows_is_followed_to_its_new_end() -> None:
    """Records appended while the walk runs are read too, each once."""
    campaign = FakeCampaign(make_records(50))
    grown = make_records(80, prefix="g")[50:]

    def grow(c: FakeCampaign) -> None:
        if grown:
            c.records.append(grown.pop(0))

    campaign.after_request = grow
    got = await collect(stream(campaign, page_size=10, concurrency=2))
    # Whatever was appended after the final page was served cannot be seen by this walk.
    assert got == [r.sid for r in campaign.records][: len(got)]
    assert len(got) > 50


async def test_campaign_that_shrinks_ends_early_without_error() -> None:
    """Records removed from the end while reading just end the walk sooner."""
    campaign = FakeCampaign(make_records(100))

    def shrink(c: FakeCampaign) -> None:
        del c.records[60:]

    campaign.after_request = shrink
    got = await collect(stream(campaign, page_size=10, concurrency=1))
    assert got == [f"s{i:07d}" for i in range(60)]


async def test_empty_page_ends_the_walk_even_if_total_says_more() -> None:
    """A server claiming more than it serves cannot make the walk loop forever."""

    async def liar(offset: int, limit: int, observer: object) -> SmsPage:
        records = tuple(make_records(20)[offset : offset + limit])
        return SmsPage(records, PageMetadata(len(records), offset, 10**9, limit))

    s = SmsDetailsStream(liar, key=sid_of, page_size=10, concurrency=4)
    assert len(await collect(s)) == 20


async def test_short_page_in_the_middle_has_its_gap_fetched(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server that serves fewer records than asked loses none of them."""
    campaign = FakeCampaign(make_records(100), serve_at_most=7)
    s = stream(campaign, page_size=10, concurrency=3)
    with caplog.at_level(logging.WARNING, logger="exotel_async"):
        got = await collect(s)
    assert got == [r.sid for r in campaign.records]
    assert s.stats.short_pages > 0
    assert "fetching the gap" in caplog.text


async def test_record_repeated_across_a_page_boundary_is_yielded_once() -> None:
    """An insertion at the front shifts records into the next page; the repeat is dropped."""
    campaign = FakeCampaign(make_records(30))
    inserted = False

    def insert_front(c: FakeCampaign) -> None:
        nonlocal inserted
        if not inserted:
            inserted = True
            c.records.insert(0, SmsRecord(sid="new", number="1"))

    campaign.after_request = insert_front
    s = stream(campaign, page_size=10, concurrency=1)
    got = await collect(s)
    assert len(got) == len(set(got)) == 30
    assert s.stats.duplicates_dropped == 1


async def test_one_page_of_repeats_is_tolerated() -> None:
    """A whole page shifted back by insertions ahead of the walk is dropped, not fatal."""
    campaign = FakeCampaign(make_records(60))
    inserted = False

    def insert_a_page_in_front(c: FakeCampaign) -> None:
        nonlocal inserted
        if not inserted:
            inserted = True
            c.records[:0] = make_records(10, prefix="new")

    campaign.after_request = insert_a_page_in_front
    s = stream(campaign, page_size=10, concurrency=1)
    got = await collect(s)
    assert len(got) == len(set(got)) == 60
    assert s.stats.duplicates_dropped == 10


async def test_pages_that_repeat_the_first_raise_no_progress_error() -> None:
    """A server that answers every offset with page 0 stops the walk after a few pages."""
    campaign = FakeCampaign(make_records(10))

    async def first_page_always(offset: int, limit: int, observer: object = None) -> SmsPage:
        page = await campaign.fetch(0, limit)
        return attrs.evolve(page, metadata=attrs.evolve(page.metadata, offset=offset, total=10**12))

    s = SmsDetailsStream(
        first_page_always,  # type: ignore[arg-type]
        key=sid_of,
        page_size=10,
        offset=0,
        max_items=None,
        concurrency=4,
        skip_item_errors=False,
    )
    with pytest.raises(NoProgressError, match="not honouring offset") as info:
        await collect(s)
    assert info.value.pages == 3
    assert len(campaign.calls) <= 1 + 3 + 4


async def test_record_repeated_within_one_page_is_yielded_once() -> None:
    """Two items of one page with the same sid give one record."""
    records = make_records(30)
    records[14] = records[12]
    s = stream(FakeCampaign(records), page_size=10, concurrency=1)
    got = await collect(s)
    assert got == [r.sid for r in records[:14]] + [r.sid for r in records[15:]]
    assert s.stats.duplicates_dropped == 1


async def test_repeat_up_to_the_dedupe_window_back_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A sid seen again within the dedupe window's span of records is dropped."""
    monkeypatch.setattr(SmsDetailsStream, "MIN_DEDUPE_WINDOW", 20)
    records = make_records(80)
    repeats = {45: 26, 59: 40, 79: 60}  # each 19 records back, inside a window of 20
    for at, earlier in repeats.items():
        records[at] = records[earlier]
    s = stream(FakeCampaign(records), page_size=5, concurrency=1)
    got = await collect(s)
    assert got == [r.sid for i, r in enumerate(records) if i not in repeats]
    assert s.stats.duplicates_dropped == len(repeats)


async def test_repeat_a_window_back_across_a_page_boundary_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pages that do not divide the window still find a repeat 19 back across a boundary."""
    monkeypatch.setattr(SmsDetailsStream, "MIN_DEDUPE_WINDOW", 20)
    records = make_records(200)
    repeats = {140: 121, 147: 128, 196: 177}  # each the first of a page of 7
    for at, earlier in repeats.items():
        records[at] = records[earlier]
    s = stream(FakeCampaign(records), page_size=7, concurrency=1)
    got = await collect(s)
    assert got == [r.sid for i, r in enumerate(records) if i not in repeats]
    assert s.stats.duplicates_dropped == len(repeats)


def test_recent_keys_hold_at_most_a_fifth_more_than_the_window() -> None:
    """The dedupe window of 1,000 keys never holds more than 1,200 plus a page."""
    recent = _RecentKeys(sid_of, 1_000)
    records = make_records(10_000)
    most = 0
    for start in range(0, len(records), 50):
        recent.fresh(records[start : start + 50])
        most = max(most, recent.held())
    assert 1_000 <= most <= 1_200 + 50


def test_a_hex_sid_is_kept_in_less_memory_than_its_text() -> None:
    """A 32-digit lowercase hex sid's dedupe key is its 16 bytes, not the 81-byte str."""
    sid = "34d67d290cb761c0606b7fe9590015b0"
    assert compact_key(sid) == bytes.fromhex(sid)
    assert sys.getsizeof(compact_key(sid)) < sys.getsizeof(sid)


async def test_duplicates_do_not_count_towards_max_items() -> None:
    """``max_items`` counts records yielded, so dropped repeats are made up for."""
    records = make_records(30)
    records[10] = records[9]  # the server repeats one record
    campaign = FakeCampaign(records)
    got = await collect(stream(campaign, page_size=10, max_items=15, concurrency=1))
    assert len(got) == len(set(got)) == 15


async def test_failed_item_raises_item_error_by_default() -> None:
    """An item whose status is failure stops the stream with ItemError."""
    campaign = FakeCampaign(make_records(30), failed_offsets=frozenset({12}))
    with pytest.raises(ItemError) as info:
        await collect(stream(campaign, page_size=10))
    assert info.value.offset == 12


async def test_skip_item_errors_collects_them_and_goes_on() -> None:
    """With ``skip_item_errors`` the stream yields the rest and lists the failures."""
    campaign = FakeCampaign(make_records(30), failed_offsets=frozenset({3, 25}))
    s = stream(campaign, page_size=10, skip_item_errors=True)
    got = await collect(s)
    assert len(got) == 28
    assert [e.offset for e in s.item_errors] == [3, 25]
    assert s.stats.item_errors == 2


async def test_error_from_a_page_propagates_and_cancels_the_rest() -> None:
    """A page that fails raises its error and leaves no other request running."""
    started = asyncio.Event()

    async def fetch(offset: int, limit: int, observer: object) -> SmsPage:
        if offset == 0:
            return SmsPage(tuple(make_records(10)), PageMetadata(10, 0, 1000, 10))
        if offset == 10:
            await started.wait()
            raise ResponseDecodeError("bad", status_code=200)
        started.set()
        await asyncio.Event().wait()  # never answers
        raise AssertionError

    s = SmsDetailsStream(fetch, key=sid_of, page_size=10, concurrency=4)
    with pytest.raises(ResponseDecodeError):
        await collect(s)
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_pages_are_yielded_in_offset_order_with_server_metadata() -> None:
    """``.pages()`` yields pages in offset order, each with its own metadata."""
    campaign = FakeCampaign(make_records(45))
    pages = [p async for p in stream(campaign, page_size=10, concurrency=4).pages()]
    assert [p.metadata.offset for p in pages] == [0, 10, 20, 30, 40]
    assert [len(p.records) for p in pages] == [10, 10, 10, 10, 5]


async def test_stats_count_pages_records_and_total() -> None:
    """``stats`` reports what the finished walk saw."""
    campaign = FakeCampaign(make_records(45))
    s = stream(campaign, page_size=10)
    await collect(s)
    assert (s.stats.pages, s.stats.records, s.stats.final_total) == (5, 45, 45)


async def test_break_with_aclose_cancels_pages_in_flight() -> None:
    """Leaving early and closing the stream cancels every request still running."""
    campaign = FakeCampaign(make_records(1000), stall_after_first_page=True)
    s = stream(campaign, page_size=10, concurrency=8)
    async with s:
        async for _ in s:
            await asyncio.sleep(0)  # let the window fill
            break
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_break_without_aclose_cleans_up_on_the_next_loop_turns() -> None:
    """A plain ``break`` leaves nothing pending once the iterator is collected."""
    campaign = FakeCampaign(make_records(1000))
    s = stream(campaign, page_size=10, concurrency=8)
    async for _ in s:
        break
    for _ in range(5):
        await asyncio.sleep(0)
    assert asyncio.all_tasks() == {asyncio.current_task()}


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_cancelling_the_consumer_cancels_pages_in_flight(concurrency: int) -> None:
    """Cancelling the task that iterates cancels its requests too (one awaited in place)."""
    gate = asyncio.Event()
    seen_first = asyncio.Event()
    cancelled = 0

    async def fetch(offset: int, limit: int, observer: object) -> SmsPage:
        nonlocal cancelled
        if offset == 0:
            return SmsPage(tuple(make_records(10)), PageMetadata(10, 0, 1000, 10))
        try:
            await gate.wait()
        except asyncio.CancelledError:
            cancelled += 1
            raise
        raise AssertionError

    async def consume() -> None:
        s = SmsDetailsStream(fetch, key=sid_of, page_size=10, concurrency=concurrency)
        async for _ in s:
            seen_first.set()

    task = asyncio.ensure_future(consume())
    await seen_first.wait()
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled == concurrency
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_iterating_twice_walks_twice() -> None:
    """Each ``async for`` over the same stream is a fresh walk."""
    campaign = FakeCampaign(make_records(25))
    s = stream(campaign)
    assert await collect(s) == await collect(s)


@attrs.define
class ThrottledOnce(FakeCampaign):
    """Reports a 429 and a 503 retry on the page at offset 10, and a rate-limit wait."""

    async def fetch(self, offset: int, limit: int, observer: object = None) -> SmsPage:
        if offset == 10 and observer is not None:
            observer.rate_waited(1.5)  # type: ignore[attr-defined]
            observer.retrying(RateLimitError("slow down", status_code=429), 0.0, throttled=True)  # type: ignore[attr-defined]
            observer.retrying(ServerError("busy", status_code=503), 0.0, throttled=True)  # type: ignore[attr-defined]
        return await super().fetch(offset, limit, observer)


async def test_retries_throttles_and_rate_waits_are_counted_in_stats() -> None:
    """``stats`` counts each retry, each 429 or 503 among them, and the time spent waiting."""
    campaign = ThrottledOnce(make_records(100))
    s = stream(campaign, page_size=10)
    await collect(s)
    assert (s.stats.retries, s.stats.throttled, s.stats.rate_wait) == (2, 2, 1.5)


async def test_resume_offset_follows_each_page_yielded() -> None:
    """After each page, ``resume_offset`` is where a new walk would carry on."""
    campaign = FakeCampaign(make_records(45))
    s = stream(campaign, page_size=10, offset=5)
    seen = [s.resume_offset]
    async for _ in s.pages():
        seen.append(s.resume_offset)
    assert seen == [5, 15, 25, 35, 45]


async def test_failed_item_leaves_resume_offset_before_its_page() -> None:
    """When a page raises ItemError, resuming starts at that page again."""
    campaign = FakeCampaign(make_records(30), failed_offsets=frozenset({12}))
    s = stream(campaign, page_size=10)
    with pytest.raises(ItemError):
        async for _ in s.pages():
            pass
    assert s.resume_offset == 10


async def test_two_walks_of_one_stream_do_not_share_counters() -> None:
    """Concurrent ``async for`` loops over one stream each yield the whole capped slice."""
    campaign = FakeCampaign(make_records(1000))
    s = stream(campaign, page_size=50, max_items=300)
    first, second = await asyncio.gather(collect(s), collect(s))
    assert first == second == [f"s{i:07d}" for i in range(300)]


async def test_transiently_empty_page_below_total_is_asked_again() -> None:
    """One empty answer in the middle of a campaign is re-asked, and nothing is lost."""
    records = make_records(200)
    glitched = False

    async def fetch(offset: int, limit: int, observer: object) -> SmsPage:
        nonlocal glitched
        if offset == 100 and not glitched:
            glitched = True
            return SmsPage((), PageMetadata(0, offset, 200, limit))
        window = tuple(records[offset : offset + limit])
        return SmsPage(window, PageMetadata(len(window), offset, 200, limit))

    s = SmsDetailsStream(fetch, key=sid_of, page_size=50, concurrency=2)
    assert await collect(s) == [r.sid for r in records]
    assert not s.stats.ended_early


async def test_persistently_empty_page_below_total_ends_the_walk_flagged() -> None:
    """A page that stays empty below the total ends the walk, and says so in ``stats``."""
    records = make_records(200)

    async def fetch(offset: int, limit: int, observer: object) -> SmsPage:
        window = tuple(records[offset : offset + limit]) if offset < 100 else ()
        return SmsPage(window, PageMetadata(len(window), offset, 200, limit))

    s = SmsDetailsStream(fetch, key=sid_of, page_size=50, concurrency=2)
    assert len(await collect(s)) == 100
    assert s.stats.ended_early
    assert s.resume_offset == 100


async def test_async_with_and_break_over_pages_cancels_everything_at_exit() -> None:
    """Leaving ``async with`` after breaking out of ``.pages()`` leaves no request running."""
    campaign = FakeCampaign(make_records(1000), stall_after_first_page=True)
    s = stream(campaign, page_size=10, concurrency=8)
    async with s:
        async for _ in s.pages():
            await asyncio.sleep(0)
            break
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_async_with_and_break_over_records_logs_no_task_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The documented early-exit pattern leaves no "exception never retrieved" behind."""
    import gc

    campaign = FakeCampaign(make_records(1000))
    with caplog.at_level(logging.ERROR):
        async with stream(campaign, page_size=10, concurrency=8) as s:
            async for _ in s:
                break
        gc.collect()
        for _ in range(5):
            await asyncio.sleep(0)
    assert caplog.records == []
    assert asyncio.all_tasks() == {asyncio.current_task()}


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_aclose_from_another_task_ends_the_iteration_quietly(concurrency: int) -> None:
    """Closing a stream while another task iterates it stops that loop without an error."""
    campaign = FakeCampaign(make_records(1000), stall_after_first_page=True)
    first_seen = asyncio.Event()
    s = stream(campaign, page_size=10, concurrency=concurrency)

    async def consume() -> int:
        seen = 0
        async for _ in s:
            seen += 1
            first_seen.set()
        await asyncio.sleep(0)  # the consumer goes on: it was not left cancelled
        return seen

    consumer = asyncio.ensure_future(consume())
    await first_seen.wait()
    await s.aclose()
    assert await consumer == 10


async def test_at_concurrency_one_pages_are_fetched_in_the_consumers_task() -> None:
    """With one page at a time, no Task is made per page: fetch runs in the consumer's task."""
    tasks: set[asyncio.Task[object] | None] = set()

    async def fetch(offset: int, limit: int, observer: object) -> SmsPage:
        tasks.add(asyncio.current_task())
        window = tuple(make_records(30)[offset : offset + limit])
        return SmsPage(window, PageMetadata(len(window), offset, 30, limit))

    s = SmsDetailsStream(fetch, key=sid_of, page_size=10, concurrency=1)
    assert len(await collect(s)) == 30
    assert tasks == {asyncio.current_task()}


def test_the_paged_core_names_nothing_of_sms() -> None:
    """The generic walk's module defines and imports no SMS-shaped name."""
    from exotel_async import _pagination

    assert [name for name in vars(_pagination) if "sms" in name.lower()] == []


async def test_a_finished_walk_keeps_no_keys() -> None:
    """Once a walk ends its dedupe keys are dropped, not left for a garbage collection.

    A stream and its walk reference each other, so a finished stream lingers until the
    collector runs; an account export runs hundreds of them.
    """
    import gc

    campaign = FakeCampaign(make_records(50))
    records = await collect(stream(campaign))
    last = records[-1]
    del records
    assert not [holder for holder in gc.get_referrers(last) if isinstance(holder, set)]
