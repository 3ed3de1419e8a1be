"""Sync and follow: the walk engine of ``_follow`` bound to a database or to memory."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from ._database import Database, PostgresDatabase, SqliteDatabase
from ._follow import (
    DEFAULT_DEADLINE,
    MIN_INTERVAL,
    Follow,
    FollowSummary,
    MemoryObserver,
    Sleep,
    Transition,
    WalkOptions,
    seconds,
)
from ._models import Outcome, SmsRecord
from ._protocol import check_int

if TYPE_CHECKING:
    from ._client import ExotelClient

_SCHEMES = "sqlite:///PATH or postgresql://USER@HOST/DB"


def database(url: str) -> Database:
    """The database a URL names: ``sqlite:///sms.db`` (relative), ``sqlite:////abs/sms.db``,
    or ``postgresql://user:password@host:5432/db``; nothing is opened yet."""
    if not isinstance(url, str):
        raise TypeError(f"the database URL must be a str, got {type(url).__name__}")
    scheme, sep, rest = url.partition("://")
    if sep and scheme == "sqlite":
        path = rest[1:] if rest.startswith("/") else rest
        if not path:
            raise ValueError(f"the database URL names no file: use {_SCHEMES}")
        if path == ":memory:":  # gone at the end of the run, with every SMS synced
            raise ValueError(f"sqlite:///:memory: keeps nothing: name a file, {_SCHEMES}")
        return SqliteDatabase(path)
    if sep and scheme in ("postgresql", "postgres"):
        return PostgresDatabase(url)
    # Never quote the URL: it may hold a password.
    shown = repr(scheme) if sep else "none"
    raise ValueError(f"the database URL must be {_SCHEMES}; its scheme is {shown}")


@contextlib.asynccontextmanager
async def open_database(url: str) -> AsyncIterator[Database]:
    """Open the database ``url`` names, creating the exotel tables on first use."""
    db = database(url)
    await db.open()
    try:
        yield db
    finally:
        await db.close()


class _Stored:
    """An ``Observer`` that keeps one campaign's states in a database."""

    def __init__(self, db: Database, campaign_id: str) -> None:
        self._db = db
        self._campaign_id = campaign_id

    async def begin(self, start: int) -> int:
        """Resume an interrupted walk where it stopped; else start where asked."""
        saved = await self._db.position(self._campaign_id)
        if saved is not None and not saved[1]:
            return saved[0]
        return start

    async def observe(
        self, records: Sequence[SmsRecord], next_offset: int, *, last: bool = False
    ) -> Iterable[Transition]:
        """Store a batch with the position after it."""
        return await self._db.observe(self._campaign_id, records, next_offset, last=last)

    async def end(self, total: int | None) -> None:
        """Mark the walk complete: the next one starts afresh."""
        await self._db.complete(self._campaign_id, total)

    async def outcomes(self) -> Counter[Outcome]:
        """The campaign's SMS by outcome, as stored."""
        return await self._db.outcomes(self._campaign_id)


def _options(
    *,
    page_size: int,
    concurrency: int,
    batch_records: int = 1000,
    skip_final_pages: bool = False,
    interval: float | timedelta = 300.0,
    until_final: bool = True,
    deadline: float | timedelta | None = None,
    once: bool = False,
) -> WalkOptions:
    """Checked walk options; a mistake is a ValueError or TypeError at the call."""
    for name, flag in (("skip_final_pages", skip_final_pages), ("until_final", until_final)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be a bool")
    return WalkOptions(
        page_size=page_size,
        concurrency=concurrency,
        batch_records=check_int("batch_records", batch_records, minimum=1, maximum=1_000_000),
        skip_final_pages=skip_final_pages,
        interval=seconds("interval", interval, MIN_INTERVAL) or MIN_INTERVAL,
        until_final=until_final,
        deadline=seconds("deadline", deadline),
        once=once,
    )


async def sync_campaign(
    client: ExotelClient,
    db: Database,
    campaign_id: str,
    *,
    page_size: int = 50,
    concurrency: int = 4,
    batch_records: int | None = None,
    on_transition: Callable[[Transition], None] | None = None,
) -> FollowSummary:
    """Upsert every SMS of a campaign into ``db``; resume an interrupted sync.

    Each batch of ``batch_records`` (None: the database's ``BATCH_RECORDS``, 1,000 for
    SQLite, 2,000 for PostgreSQL) is one transaction with the position after it, so a
    crash loses nothing and a re-run duplicates nothing: it adds history rows only for SMS
    whose status changed. ``on_transition`` is called for each change once stored (SQLite
    merges staged SMS later: by the walk's end at the latest).
    """
    options = _options(
        page_size=page_size,
        concurrency=concurrency,
        batch_records=db.BATCH_RECORDS if batch_records is None else batch_records,
        once=True,
    )
    run = Follow(client, campaign_id, _Stored(db, campaign_id), options)
    async for transition in run:
        if on_transition is not None:
            on_transition(transition)
    return run.summary


def follow_campaign(
    client: ExotelClient,
    db: Database,
    campaign_id: str,
    *,
    interval: float | timedelta = 300.0,
    until_final: bool = True,
    deadline: float | timedelta | None = DEFAULT_DEADLINE,
    skip_final_pages: bool = False,
    page_size: int = 50,
    concurrency: int = 4,
    batch_records: int | None = None,
    clock: Callable[[], float] | None = None,
    sleep: Sleep | None = None,
    on_walk: Callable[[FollowSummary], None] | None = None,
) -> Follow:
    """Sync a campaign into ``db`` again every ``interval``, yielding each change stored.

    Ends when every SMS is final (with ``until_final``), or at ``deadline`` (seconds from
    the start, 48 hours unless given; None never) after a last walk, at most one walk past
    it; ``follow.summary`` then says which. ``on_walk`` is called
    with the summary after each walk.
    """
    options = _options(
        page_size=page_size,
        concurrency=concurrency,
        batch_records=db.BATCH_RECORDS if batch_records is None else batch_records,
        skip_final_pages=skip_final_pages,
        interval=interval,
        until_final=until_final,
        deadline=deadline,
    )
    observer = _Stored(db, campaign_id)
    return Follow(client, campaign_id, observer, options, clock=clock, sleep=sleep, on_walk=on_walk)


def follow(
    client: ExotelClient,
    campaign_id: str,
    *,
    interval: float | timedelta = 300.0,
    until_final: bool = True,
    deadline: float | timedelta | None = DEFAULT_DEADLINE,
    skip_final_pages: bool = False,
    page_size: int = 50,
    concurrency: int = 4,
    clock: Callable[[], float] | None = None,
    sleep: Sleep | None = None,
) -> Follow:
    """Re-walk a campaign every ``interval``, yielding each change of state; no database.

    The first walk learns each SMS's state, later walks yield the SMS whose state changed.
    States are kept in memory, about 200 bytes per SMS.
    """
    options = _options(
        page_size=page_size,
        concurrency=concurrency,
        skip_final_pages=skip_final_pages,
        interval=interval,
        until_final=until_final,
        deadline=deadline,
        batch_records=page_size,
    )
    return Follow(client, campaign_id, MemoryObserver(), options, clock=clock, sleep=sleep)


async def wait_until_final(
    client: ExotelClient,
    campaign_id: str,
    *,
    deadline: float | timedelta | None = DEFAULT_DEADLINE,
    interval: float | timedelta = 300.0,
    skip_final_pages: bool = False,
    page_size: int = 50,
    concurrency: int = 4,
    clock: Callable[[], float] | None = None,
    sleep: Sleep | None = None,
) -> FollowSummary:
    """Re-walk a campaign until every SMS is final or ``deadline`` passes; say which.

    Returns the summary: ``final`` is True when every SMS was delivered or failed, False
    when the deadline came first; ``outcomes`` counts the SMS by outcome either way.
    """
    run = follow(
        client,
        campaign_id,
        interval=interval,
        deadline=deadline,
        skip_final_pages=skip_final_pages,
        page_size=page_size,
        concurrency=concurrency,
        clock=clock,
        sleep=sleep,
    )
    async for _ in run:
        pass
    return run.summary
