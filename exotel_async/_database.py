"""The database sink: the latest state of every SMS, upserted by sid, and its status history.

Each batch is one transaction with the sync position after it: PostgreSQL upserts it there,
SQLite stages it, to be upserted by a later merge. An upsert gives each SMS stored in another
state a history row (old state, new state). A crash therefore loses nothing and duplicates
nothing: the next run resumes from the last committed position, SQLite's next sync of the
campaign merges what was staged, and an SMS stored in its current state adds no history row.
An SMS seen for the first time gets its row, not a history row: its ``first_seen_at`` and
the ``old_status`` of its first transition say where it started.

SQLite appends each batch to a staging table, and merges the staged SMS into the SMS table
in sid order (see ``SqliteDatabase``); PostgreSQL COPYs each batch into a staging table,
then runs set-based statements, through asyncpg.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import json
import operator
import re
import sqlite3
import urllib.parse
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import attrs
import orjson

from ._converter import IST
from ._follow import Transition
from ._models import Outcome, SmsRecord, classify_status

if TYPE_CHECKING:
    import asyncpg

#: Bumped by every release that changes the tables; a later one migrates from here.
SCHEMA_VERSION = 2
#: The oldest version this release migrates. Version 2 added SQLite's staging table, which
#: the schema's ``CREATE TABLE IF NOT EXISTS`` adds to a version 1 database.
OLDEST_MIGRATED = 1
SMS_TABLE = "exotel_sms"
HISTORY_TABLE = "exotel_status_history"
STATE_TABLE = "exotel_sync_state"
VERSION_TABLE = "exotel_schema_version"
#: SQLite's SMS read but not yet merged into the SMS table (schema version 2).
STAGED_TABLE = "exotel_staged_sms"
_STAGING = "exotel_staging"
#: A sync that finds an SMS unchanged rewrites its row only when its ``last_seen_at`` is
#: older than this: a re-sync of an unchanged campaign then rewrites no row.
SEEN_REFRESH = timedelta(hours=1)
_T = TypeVar("_T")


def _kind(attribute: attrs.Attribute[Any]) -> str:
    """``time``, ``json`` or ``text``: how a record field is stored."""
    if attribute.type is not None and "datetime" in str(attribute.type):
        return "time"
    return "json" if attribute.name == "extra" else "text"


#: The record's columns, from its attrs fields, each with how it is stored.
RECORD_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (a.name, _kind(a)) for a in attrs.fields(SmsRecord)
)
_NAMES = [name for name, _ in RECORD_COLUMNS]
_COLUMNS = ["campaign_id", *_NAMES]
_TIMES = [i for i, (_, kind) in enumerate(RECORD_COLUMNS) if kind == "time"]
_JSONS = [i for i, (_, kind) in enumerate(RECORD_COLUMNS) if kind == "json"]
_TEXTS = [i for i, (_, kind) in enumerate(RECORD_COLUMNS) if kind == "text"]
_values = operator.attrgetter(*_NAMES)
_SURROGATE = re.compile("[\ud800-\udfff]")
#: ``\u0000`` in JSON text, not preceded by an escaped backslash.
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _text(value: str) -> str:
    """Text either database stores: NULs dropped (PostgreSQL refuses them), a lone surrogate
    (half an emoji, valid JSON but not UTF-8) as the ``\\udXXX`` text the JSONL export writes.

    Stored as sent, such a value would fail its batch at every resume, for ever.
    """
    if "\x00" in value:
        value = value.replace("\x00", "")
    if value.isascii():
        return value
    try:
        value.encode()
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode()
    return value


def _json_text(value: Any) -> str | None:
    """Unknown fields as JSON text, cleaned as ``_text`` cleans; None when there are none."""
    if not value:
        return None
    try:
        text = orjson.dumps(dict(value)).decode()
    except orjson.JSONEncodeError:  # a lone surrogate: escape its backslash, as JSONB refuses it
        text = json.dumps(dict(value), ensure_ascii=False)
        text = _SURROGATE.sub(lambda m: f"\\\\u{ord(m[0]):04x}", text)
    return _NUL_ESCAPE.sub(r"\1", text) if "\\u0000" in text else text


def _latest(records: Sequence[SmsRecord]) -> list[SmsRecord]:
    """The batch with each sid once, its last reading kept (an upsert takes a key once)."""
    latest = {record.sid: record for record in records}
    return list(latest.values()) if len(latest) < len(records) else list(records)


def _rows(
    campaign_id: str,
    records: Sequence[SmsRecord],
    time: Callable[[datetime], Any] | None,
    tail: tuple[Any, ...] = (),
) -> list[tuple[Any, ...]]:
    """One row per record, in ``_COLUMNS`` order, then ``tail``; times through ``time``
    (None: as they are)."""
    rows = []
    for record in records:
        values = list(_values(record))
        if time is not None:
            for i in _TIMES:
                if values[i] is not None:
                    values[i] = time(values[i])
        for i in _TEXTS:
            value = values[i]
            # Checked here, not by a call per value: most text is plain ASCII.
            if value is not None and ("\x00" in value or not value.isascii()):
                values[i] = _text(value)
        for i in _JSONS:
            values[i] = _json_text(values[i]) if values[i] else None
        rows.append((campaign_id, *values, *tail))
    return rows


@functools.lru_cache(maxsize=4096)  # SMS sent in the same second share their times
def _utc_text(moment: datetime) -> str:
    """A time as ISO 8601 in UTC, which SQLite's date functions read and sort."""
    return moment.astimezone(timezone.utc).isoformat()


def _transitions(
    records: Sequence[SmsRecord], old: dict[str, tuple[str | None, str | None]]
) -> list[Transition]:
    """The records whose stored state ``old`` differs from theirs, as transitions."""
    return [
        Transition(record, *state)
        for record in records
        if (state := old.get(record.sid)) is not None
        and state != (record.status, record.detailed_status)
    ]


def _outcomes(rows: Sequence[Sequence[Any]]) -> Counter[Outcome]:
    """SMS by outcome from ``(status, detailed status, count)`` rows."""
    counts: Counter[Outcome] = Counter()
    for status, detail, n in rows:
        counts[classify_status(status, detail)] += n
    return counts


def _schema(dialect: _Dialect) -> list[str]:
    """The statements that create every table, if missing."""
    time = dialect.time
    record_columns = ", ".join(
        f"{name} {time if kind == 'time' else dialect.json if kind == 'json' else 'TEXT'}"
        for name, kind in RECORD_COLUMNS
        if name != "sid"
    )
    return [
        f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version INTEGER NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {SMS_TABLE} ("
        f"campaign_id TEXT NOT NULL, sid TEXT NOT NULL, {record_columns}, "
        f"first_seen_at {time} NOT NULL, last_seen_at {time} NOT NULL, "
        f"status_changed_at {time} NOT NULL, PRIMARY KEY (campaign_id, sid)){dialect.storage}",
        f"CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} ("
        f"id {dialect.serial} PRIMARY KEY, campaign_id TEXT NOT NULL, sid TEXT NOT NULL, "
        "old_status TEXT, old_detailed_status TEXT, new_status TEXT, new_detailed_status TEXT, "
        f"observed_at {time} NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS {HISTORY_TABLE}_sms ON {HISTORY_TABLE} (campaign_id, sid)",
        f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} ("
        "campaign_id TEXT PRIMARY KEY, next_offset BIGINT NOT NULL, total BIGINT, "
        f"complete BOOLEAN NOT NULL, updated_at {time} NOT NULL)",
    ]


@attrs.frozen
class _Dialect:
    """What differs between SQLite and PostgreSQL in the statements below."""

    time: str
    json: str
    serial: str
    distinct: str
    param: Callable[[int], str]
    #: Storage options of the SMS table.
    storage: str = ""

    def upsert(self, source: str, stale: str) -> str:
        """Insert SMS from ``source`` (a ``VALUES`` or a ``SELECT``), or update those that
        differ or were last seen before ``stale``; their time of change moves only when
        their state changes."""
        updates = ", ".join(f"{name} = excluded.{name}" for name in _NAMES if name != "sid")
        changed = (
            f"{SMS_TABLE}.status {self.distinct} excluded.status "
            f"OR {SMS_TABLE}.detailed_status {self.distinct} excluded.detailed_status"
        )
        stored, read = (
            ", ".join(f"{table}.{name}" for name in _NAMES if name != "sid")
            for table in (SMS_TABLE, "excluded")
        )
        return (
            f"INSERT INTO {SMS_TABLE} ({', '.join(_COLUMNS)}, first_seen_at, last_seen_at, "
            f"status_changed_at) {source} "
            f"ON CONFLICT (campaign_id, sid) DO UPDATE SET {updates}, "
            "last_seen_at = excluded.last_seen_at, status_changed_at = CASE WHEN "
            f"{changed} THEN excluded.last_seen_at ELSE {SMS_TABLE}.status_changed_at END "
            f"WHERE ({stored}) {self.distinct} ({read}) OR {SMS_TABLE}.last_seen_at < {stale}"
        )

    def save_position(self, campaign_id: str = "", next_offset: str = "", now: str = "") -> str:
        """Save where the walk stands, as not complete; the values are the parameters
        given, by default the first three in this order."""
        p = self.param
        values = f"{campaign_id or p(1)}, {next_offset or p(2)}, false, {now or p(3)}"
        return (
            f"INSERT INTO {STATE_TABLE} (campaign_id, next_offset, complete, updated_at) "
            f"VALUES ({values}) ON CONFLICT (campaign_id) DO UPDATE SET "
            "next_offset = excluded.next_offset, complete = false, updated_at = excluded.updated_at"
        )

    def complete(self) -> str:
        """Mark the walk complete, with the campaign's total."""
        p = self.param
        return (
            f"UPDATE {STATE_TABLE} SET complete = true, total = {p(2)}, updated_at = {p(3)} "
            f"WHERE campaign_id = {p(1)}"
        )

    def position(self) -> str:
        """The saved position and whether its walk completed."""
        where = f"campaign_id = {self.param(1)}"
        return f"SELECT next_offset, complete FROM {STATE_TABLE} WHERE {where}"

    def states(self) -> str:
        """A campaign's SMS counted by state."""
        return (
            f"SELECT status, detailed_status, count(*) FROM {SMS_TABLE} "
            f"WHERE campaign_id = {self.param(1)} GROUP BY status, detailed_status"
        )


_SQLITE = _Dialect(
    time="TEXT",
    json="TEXT",
    serial="INTEGER",
    distinct="IS NOT",
    param=lambda n: f"?{n}",
)
_POSTGRES = _Dialect(
    time="TIMESTAMPTZ",
    json="JSONB",
    serial="BIGINT GENERATED ALWAYS AS IDENTITY",
    distinct="IS DISTINCT FROM",
    param=lambda n: f"${n}",
    # Room on each page for the next sync's version of its rows: updates that change no
    # key then stay on the page (HOT) and add no index entry.
    storage=" WITH (fillfactor = 70)",
)


#: When an update changes an SMS's state: both of SQLite's triggers log it then.
_STATE_CHANGED = (
    "AFTER UPDATE OF status, detailed_status ON {table} "
    "WHEN old.status IS NOT new.status OR old.detailed_status IS NOT new.detailed_status"
)


_SQLITE_SCHEMA = (
    # SQLite writes the history itself: a row per update that changes an SMS's state.
    f"CREATE TRIGGER IF NOT EXISTS {HISTORY_TABLE}_on_change "
    f"{_STATE_CHANGED.format(table=SMS_TABLE)} "
    f"BEGIN INSERT INTO {HISTORY_TABLE} (campaign_id, sid, old_status, old_detailed_status, "
    "new_status, new_detailed_status, observed_at) VALUES (new.campaign_id, new.sid, "
    "old.status, old.detailed_status, new.status, new.detailed_status, new.last_seen_at); END",
    # No key, no index: appending costs the same however large the SMS table grows.
    f"CREATE TABLE IF NOT EXISTS {STAGED_TABLE} ("
    f"{', '.join(f'{name} TEXT' for name in _COLUMNS)}, seen_at TEXT NOT NULL)",
)


#: This connection's own log of the changes its merges make: each with the SMS as the merge
#: stored it, which another process's sync of the campaign cannot overwrite before it is read.
_CHANGES = "exotel_changes"
_SQLITE_CONNECTION_SCHEMA = (
    # AUTOINCREMENT: an id is never taken again, so a reader never mistakes a later
    # merge's change for one of its own.
    f"CREATE TEMP TABLE {_CHANGES} (id INTEGER PRIMARY KEY AUTOINCREMENT, old_status, "
    f"old_detailed_status, {', '.join(_NAMES)})",
    f"CREATE TEMP TRIGGER {_CHANGES}_on_change "
    f"{_STATE_CHANGED.format(table=f'main.{SMS_TABLE}')} "
    f"BEGIN INSERT INTO {_CHANGES} (old_status, old_detailed_status, {', '.join(_NAMES)}) "
    f"VALUES (old.status, old.detailed_status, {', '.join(f'new.{n}' for n in _NAMES)}); END",
)


class SchemaError(ValueError):
    """The database holds tables of another version of exotel-async."""


class UnreachableDatabase(Exception):
    """The database server cannot be reached."""


def database_errors() -> tuple[type[Exception], ...]:
    """What a database may raise: SQLite's errors, and asyncpg's when it is installed."""
    errors: tuple[type[Exception], ...] = (sqlite3.Error, UnreachableDatabase)
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - depends on the extra installed
        return errors
    return (*errors, asyncpg.PostgresError, asyncpg.InterfaceError)


def _cannot_use(url: str, exc: Exception) -> str:
    """Why a database URL cannot be used, naming its scheme and host, never its password."""
    parts = urllib.parse.urlsplit(url)
    reason = (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).splitlines()[0]
    if parts.password:
        reason = reason.replace(parts.password, "***")
    return f"cannot connect to database URL ({parts.scheme}, host {parts.hostname}): {reason}"


def _check_version(found: int | None, existed: bool) -> str | None:
    """The statement that stamps the tables with this schema version, if they need it;
    refuse tables of a version this release cannot use, or of an unknown one (``existed``
    before this first use stamped them)."""
    if found is None and existed:
        raise SchemaError(
            f"the database holds a {SMS_TABLE} table but no schema version: it was not "
            "made by exotel-async, or its version was lost; use another database"
        )
    if found is not None and not OLDEST_MIGRATED <= found <= SCHEMA_VERSION:
        advice = (
            "upgrade exotel-async" if found > SCHEMA_VERSION else "this release cannot migrate it"
        )
        raise SchemaError(
            f"the database's exotel tables are at schema version {found}, and this "
            f"exotel-async knows version {SCHEMA_VERSION}: {advice}"
        )
    if found is None:
        return f"INSERT INTO {VERSION_TABLE} VALUES ({SCHEMA_VERSION})"
    if found < SCHEMA_VERSION:  # the schema's statements have just migrated the tables
        return f"UPDATE {VERSION_TABLE} SET version = {SCHEMA_VERSION}"
    return None


class Database(Protocol):
    """A store of SMS states: one of the classes below."""

    #: SMS stored in one transaction, unless the caller says otherwise.
    BATCH_RECORDS: int

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def position(self, campaign_id: str) -> tuple[int, bool] | None: ...
    async def observe(
        self,
        campaign_id: str,
        records: Sequence[SmsRecord],
        next_offset: int,
        *,
        last: bool = False,
    ) -> Iterable[Transition]: ...
    async def complete(self, campaign_id: str, total: int | None) -> None: ...
    async def outcomes(self, campaign_id: str) -> Counter[Outcome]: ...


def _now() -> datetime:
    """The time now, in UTC."""
    return datetime.now(timezone.utc)


class SqliteDatabase:
    """SQLite in WAL mode: each batch is appended to a staging table in one transaction
    with the position after it; the staged SMS are merged into the SMS table in sid order.

    Sids are random, so at a million SMS the key index (about 70 MB) is far larger than
    SQLite's page cache, and an upsert per SMS reads, logs and checkpoints about one index
    page each. Merged in sid order, ``MERGE_ROWS`` SMS at once, each page is visited once a
    merge: 1M SMS stored cost 4.5 µs of CPU each instead of 15.2. The SMS table therefore
    lags a sync by at most ``MERGE_ROWS`` SMS; each walk's last batch merges the rest, and
    changes of state are returned when merged. What a crash leaves staged is merged by the
    next sync of its campaign, or by ``close`` after any other stop.

    Appending runs on the loop: ``executemany`` hands the GIL back around every row it
    steps, and in a thread each hand-back would wait out the loop's switch interval. The
    merge and the commit are single calls that hold no GIL: they run in a thread while the
    loop reads on. Another writer's lock is waited for with the loop free.
    """

    BATCH_RECORDS = 1000
    #: Seconds to wait for another writer before giving up, as ``busy_timeout`` would.
    LOCK_WAIT = 30.0
    #: Staged SMS of a campaign that are merged at once, before the walk's end.
    MERGE_ROWS = 200_000

    def __init__(
        self,
        path: str,
        *,
        now: Callable[[], datetime] = _now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._path = path
        self._now = now
        self._sleep = sleep
        self._connection: sqlite3.Connection | None = None
        self._committer: concurrent.futures.ThreadPoolExecutor | None = None
        #: SMS this connection staged and has not merged, by campaign.
        self._staged: Counter[str] = Counter()
        self._append = f"INSERT INTO {STAGED_TABLE} VALUES ({', '.join('?' * (len(_COLUMNS) + 1))})"
        self._merge = _SQLITE.upsert(
            f"SELECT {', '.join(_COLUMNS)}, seen_at, seen_at, seen_at FROM {STAGED_TABLE} "
            "WHERE campaign_id = ?1 ORDER BY sid, rowid",  # a sid read twice: the last wins
            "?2",
        )

    @property
    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            raise RuntimeError("the database is not open")
        return self._connection

    async def open(self) -> None:
        """Connect, and create the tables on first use."""
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        try:
            connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:  # no such directory, no permission: name the file
            raise UnreachableDatabase(
                f"cannot use database URL (sqlite, {self._path}): {exc}"
            ) from None
        try:
            # WAL with NORMAL sync: a crash of the process loses no committed batch, and a
            # power cut may lose the last batches but never mixes a batch with its position.
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            # Each checkpoint syncs the file; a sync dirties pages all over the key index,
            # so checkpoint every 128 MB of log instead of every 4 MB (1M SMS: 36 s to 22 s).
            connection.execute("PRAGMA wal_autocheckpoint=32768")
            connection.execute("PRAGMA journal_size_limit=67108864")
            connection.execute(f"PRAGMA busy_timeout={self.LOCK_WAIT * 1000:.0f}")
            # Appends and merges in key order need few pages at a time: at 1 MB instead of
            # the default 2 MB, a 1M sync peaked at 51.8 MB instead of 54.6, as fast.
            connection.execute("PRAGMA cache_size=-1024")
            with _transaction(connection):
                existed = connection.execute(
                    "SELECT 1 FROM sqlite_master WHERE name = ?", (SMS_TABLE,)
                ).fetchone()
                for statement in [*_schema(_SQLITE), *_SQLITE_SCHEMA]:
                    connection.execute(statement)
                row = connection.execute(f"SELECT max(version) FROM {VERSION_TABLE}").fetchone()
                stamp = _check_version(row[0], existed is not None)
                if stamp is not None:
                    connection.execute(stamp)
            for statement in _SQLITE_CONNECTION_SCHEMA:
                connection.execute(statement)
            # From here on a write fails at once on another writer's lock: _write() waits
            # for it with the loop free.
            connection.execute("PRAGMA busy_timeout=0")
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        self._committer = concurrent.futures.ThreadPoolExecutor(1, "exotel-sqlite-commit")

    async def close(self) -> None:
        """Finish a commit under way, merge what is staged, then close; harmless twice."""
        try:
            if self._committer is not None:
                await self._merge_left()
        finally:
            self._staged.clear()  # what is left is the next sync's to merge
            committer, self._committer = self._committer, None
            if committer is not None:
                await asyncio.to_thread(committer.shutdown)
            connection, self._connection = self._connection, None
            if connection is not None:
                await asyncio.to_thread(connection.close)

    async def _merge_left(self) -> None:
        """Merge what this connection staged; at the first failure (another writer's lock, a
        full disk) leave the rest staged for the next sync of each campaign."""
        await self._in_thread(lambda: None)  # BEGIN beside a commit under way would fail
        with contextlib.suppress(sqlite3.Error):
            for campaign_id in list(self._staged):
                await self._write(lambda: self._db.execute("BEGIN IMMEDIATE"))
                await self._merged(campaign_id)

    async def position(self, campaign_id: str) -> tuple[int, bool] | None:
        """The saved ``(next_offset, complete)`` of a campaign, or None."""
        row = await asyncio.to_thread(
            lambda: self._db.execute(_SQLITE.position(), (campaign_id,)).fetchone()
        )
        return None if row is None else (row[0], bool(row[1]))

    async def observe(
        self,
        campaign_id: str,
        records: Sequence[SmsRecord],
        next_offset: int,
        *,
        last: bool = False,
    ) -> Iterable[Transition]:
        """Stage a batch and the position after it in one transaction; merge the staged SMS
        if they are ``MERGE_ROWS`` or the batch is the walk's ``last``; return the changes
        merged, read as they are taken (taking a later merge's drops any left)."""
        await self._write(lambda: self._stage(campaign_id, records, next_offset))
        self._staged[campaign_id] += len(records)
        if last or self._staged[campaign_id] >= self.MERGE_ROWS:
            return await self._merged(campaign_id)
        await self._in_thread(_commit_or_roll_back, self._db)
        return []

    async def _write(self, work: Callable[[], _T]) -> _T:
        """Run ``work`` on the loop; while another writer holds the lock, wait and retry."""
        waited = 0.0
        while True:
            try:
                return work()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or waited >= self.LOCK_WAIT:
                    raise
            await self._sleep(0.05)
            waited += 0.05

    def _stage(self, campaign_id: str, records: Sequence[SmsRecord], next_offset: int) -> None:
        """Open the batch's transaction and append the batch and the position, uncommitted."""
        db, now = self._db, _utc_text(self._now())
        rows = _rows(campaign_id, records, _utc_text, (now,))
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(self._append, rows)
            db.execute(_SQLITE.save_position(), (campaign_id, next_offset, now))
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def _merged(self, campaign_id: str) -> Iterator[Transition]:
        """In the open transaction, merge the campaign's staged SMS and commit; return the
        changes of state, each with the SMS as the merge stored it, read as they are taken."""
        stale = _utc_text(self._now() - SEEN_REFRESH)
        try:
            logged = await self._in_thread(self._merge_staged, campaign_id, stale)
        except BaseException:
            await self._in_thread(_roll_back, self._db)
            raise
        await self._in_thread(_commit_or_roll_back, self._db)
        self._staged.pop(campaign_id, None)
        return self._changes(*logged)

    def _changes(self, since: int, until: int) -> Iterator[Transition]:
        """The changes of state logged after ``since`` up to ``until``, a chunk at a time,
        each chunk then dropped, on the loop (in a thread each row would wait out the loop's
        switch interval): a merge may log 200,000, some 300 MB as transitions held at once."""
        while since < until:
            rows = self._db.execute(_SQLITE_CHANGED, (since, until, _CHANGES_AT_ONCE)).fetchall()
            if not rows:
                return
            since = rows[-1][0]
            # Also what an abandoned reader of an earlier merge left.
            self._db.execute(f"DELETE FROM {_CHANGES} WHERE id <= ?", (since,))
            yield from map(_stored_transition, rows)

    def _merge_staged(self, campaign_id: str, stale: str) -> tuple[int, int]:
        """Upsert the campaign's staged SMS, the triggers logging each change, and unstage
        them; return the last change logged before and after."""
        db = self._db
        last = f"SELECT coalesce(max(id), 0) FROM {_CHANGES}"
        (before,) = db.execute(last).fetchone()
        db.execute(self._merge, (campaign_id, stale))
        db.execute(f"DELETE FROM {STAGED_TABLE} WHERE campaign_id = ?", (campaign_id,))
        (after,) = db.execute(last).fetchone()
        return int(before), int(after)

    async def _in_thread(self, work: Callable[..., _T], *args: Any) -> _T:
        """Run ``work`` in the committer thread; shielded: once begun, it finishes, and
        ``close`` waits for it."""
        if self._committer is None:
            raise RuntimeError("the database is not open")
        return await asyncio.shield(asyncio.wrap_future(self._committer.submit(work, *args)))

    async def complete(self, campaign_id: str, total: int | None) -> None:
        """Mark the campaign's walk complete."""
        now = _utc_text(self._now())
        await self._write(lambda: self._db.execute(_SQLITE.complete(), (campaign_id, total, now)))

    async def outcomes(self, campaign_id: str) -> Counter[Outcome]:
        """The campaign's SMS by outcome."""
        rows = await asyncio.to_thread(
            lambda: self._db.execute(_SQLITE.states(), (campaign_id,)).fetchall()
        )
        return _outcomes(rows)


#: Changes of state read and rebuilt at once: about 6 ms of work.
_CHANGES_AT_ONCE = 1000
#: The changes of state logged in a range: the old state, then the SMS as stored in the new.
_SQLITE_CHANGED = f"SELECT * FROM {_CHANGES} WHERE id > ? AND id <= ? ORDER BY id LIMIT ?"


@functools.lru_cache(maxsize=4096)  # SMS sent in the same second share their times
def _read_time(text: str) -> datetime:
    """A time stored in UTC, at Exotel's +05:30, as read."""
    return datetime.fromisoformat(text).astimezone(IST)


def _stored_transition(row: Sequence[Any]) -> Transition:
    """A transition from a row of ``_SQLITE_CHANGED``."""
    _, old_status, old_detail, *values = row
    for i in _TIMES:
        if values[i] is not None:
            values[i] = _read_time(values[i])
    for i in _JSONS:
        values[i] = json.loads(values[i]) if values[i] else {}
    return Transition(SmsRecord(*values), old_status, old_detail)


def _roll_back(db: sqlite3.Connection) -> None:
    """ROLLBACK the open transaction, if any."""
    if db.in_transaction:
        db.execute("ROLLBACK")


def _commit_or_roll_back(db: sqlite3.Connection) -> None:
    """COMMIT; if that fails and leaves the transaction open, roll it back."""
    try:
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on any error."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def __enter__(self) -> None:
        self._connection.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._connection.execute("COMMIT" if exc_type is None else "ROLLBACK")


class PostgresDatabase:
    """PostgreSQL through asyncpg: COPY into a staging table, then set-based statements."""

    #: Each batch costs the server a transaction, a COPY, a plan and a commit, and the walk
    #: a round trip for each: at 2,000 a 1M sync ran at 0.54x the export's rate against
    #: 0.46x at 1,000 (medians of five runs each, alternating), its peak RSS 53 MB against 51.
    BATCH_RECORDS = 2000

    def __init__(self, url: str, *, now: Callable[[], datetime] = _now) -> None:
        self._url = url
        self._now = now
        self._connection: asyncpg.Connection | None = None
        self._statements: _Statements = (False, ())

    @property
    def _db(self) -> asyncpg.Connection:
        if self._connection is None:
            raise RuntimeError("the database is not open")
        return self._connection

    async def open(self) -> None:
        """Connect, and create the tables on first use (one creator at a time)."""
        try:
            import asyncpg
        except ImportError:  # pragma: no cover - depends on the extra installed
            hint = "pip install 'exotel-async[postgres]'"
            raise ValueError(f"PostgreSQL needs asyncpg: {hint}") from None
        try:
            connection = await asyncpg.connect(self._url)
        except asyncpg.PostgresError:  # the server's own answer (a wrong password): as it is
            raise
        except Exception as exc:  # refused, a bad port, a timeout: where, never the password
            raise UnreachableDatabase(_cannot_use(self._url, exc)) from None
        try:
            async with connection.transaction():
                await connection.execute("SELECT pg_advisory_xact_lock(hashtext('exotel_async'))")
                existed = await connection.fetchval("SELECT to_regclass($1)", SMS_TABLE)
                for statement in _schema(_POSTGRES):
                    await connection.execute(statement)
                found = await connection.fetchval(f"SELECT max(version) FROM {VERSION_TABLE}")
                stamp = _check_version(found, existed is not None)
                if stamp is not None:
                    await connection.execute(stamp)
            await connection.execute(
                f"CREATE TEMP TABLE {_STAGING} ON COMMIT DELETE ROWS AS "
                f"SELECT {', '.join(_COLUMNS)} FROM {SMS_TABLE} WITH NO DATA"
            )
            # A batch commits with its position, so a commit the server loses in a crash
            # is read again by the next run: no need to wait for each one to reach disk,
            # as SQLite's synchronous=NORMAL does not. This session's commits only.
            await connection.execute("SET synchronous_commit = off")
        except BaseException:
            await connection.close()
            raise
        self._connection = connection
        self._statements = _postgres_statements(connection.get_server_version().major)

    async def close(self) -> None:
        """Close the connection; harmless twice."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    async def position(self, campaign_id: str) -> tuple[int, bool] | None:
        """The saved ``(next_offset, complete)`` of a campaign, or None."""
        row = await self._db.fetchrow(_POSTGRES.position(), campaign_id)
        return None if row is None else (row[0], row[1])

    async def observe(
        self,
        campaign_id: str,
        records: Sequence[SmsRecord],
        next_offset: int,
        *,
        last: bool = False,
    ) -> list[Transition]:
        """Store a batch and the position after it in one transaction; return its changes
        (every batch is merged at once: ``last`` makes no difference)."""
        db, now = self._db, self._now()
        records = _latest(records)
        values = {"now": now, "campaign_id": campaign_id, "next_offset": next_offset}
        changed: list[Any] = []
        locks, statements = self._statements
        async with db.transaction():
            if locks:
                await db.execute(_CAMPAIGN_LOCK, campaign_id)
            await db.copy_records_to_table(
                _STAGING, records=_rows(campaign_id, records, None), columns=_COLUMNS
            )
            for sql, names in statements:
                changed += await db.fetch(sql, *(values[name] for name in names))
        return _transitions(records, {row[0]: (row[1], row[2]) for row in changed})

    async def complete(self, campaign_id: str, total: int | None) -> None:
        """Mark the campaign's walk complete."""
        await self._db.execute(_POSTGRES.complete(), campaign_id, total, self._now())

    async def outcomes(self, campaign_id: str) -> Counter[Outcome]:
        """The campaign's SMS by outcome."""
        return _outcomes(await self._db.fetch(_POSTGRES.states(), campaign_id))


#: Held to the end of the transaction; two keys, apart from the schema lock's one.
_CAMPAIGN_LOCK = "SELECT pg_advisory_xact_lock(hashtext('exotel_async'), hashtext($1))"


#: Whether a batch takes the campaign lock first, and its statements, each with the names
#: of the values it takes.
_Statements = tuple[bool, tuple[tuple[str, tuple[str, ...]], ...]]


def _postgres_statements(major: int) -> _Statements:
    """Upsert the staged batch, log its changes, returning ``(sid, old state)`` of each, and
    save the position.

    PostgreSQL 18 returns a row's old values from the upsert itself: one primary-key probe
    per SMS, and one statement, which also saves the position (each round trip waits for
    the loop, busy with pages). Before 18 a first statement reads the old states, by a
    LATERAL lookup with LIMIT 1 (as a join, the planner would scan the whole table for every
    batch), under a lock that keeps two syncs of a campaign from both logging one change.
    """
    position = f"saved AS ({_POSTGRES.save_position('$2', '$3', '$1')} RETURNING 1)"
    every = ("now", "campaign_id", "next_offset")
    # In sid order: two syncs of a campaign (one by the API's order, one by schedule time)
    # lock its rows in one order, so that on 18, with no campaign lock, neither deadlocks.
    upsert = _POSTGRES.upsert(
        f"SELECT {', '.join(_COLUMNS)}, $1, $1, $1 FROM {_STAGING} ORDER BY sid",
        f"$1 - interval '{SEEN_REFRESH.total_seconds():.0f} seconds'",
    )
    log = (
        f"INSERT INTO {HISTORY_TABLE} (campaign_id, sid, old_status, old_detailed_status, "
        "new_status, new_detailed_status, observed_at) "
    )
    changed = "IS DISTINCT FROM"
    if major >= 18:
        statement = (
            f"WITH {position}, up AS ({upsert} RETURNING new.campaign_id, new.sid, "
            "old.sid AS old_sid, old.status AS old_status, old.detailed_status AS old_detailed, "
            f"new.status, new.detailed_status) {log}"
            "SELECT campaign_id, sid, old_status, old_detailed, status, detailed_status, $1 "
            f"FROM up WHERE old_sid IS NOT NULL AND (old_status {changed} status "
            f"OR old_detailed {changed} detailed_status) "
            "RETURNING sid, old_status, old_detailed_status"
        )
        return False, ((statement, every),)
    probe = (
        f"{log}SELECT st.campaign_id, st.sid, s.status, s.detailed_status, st.status, "
        f"st.detailed_status, $1 FROM {_STAGING} st, LATERAL (SELECT status, "
        f"detailed_status FROM {SMS_TABLE} WHERE campaign_id = st.campaign_id "
        f"AND sid = st.sid LIMIT 1) s WHERE s.status {changed} st.status "
        f"OR s.detailed_status {changed} st.detailed_status "
        "RETURNING sid, old_status, old_detailed_status"
    )
    return True, ((probe, ("now",)), (f"WITH {position} {upsert}", every))
