"""Bulk export: stream a campaign to JSONL, CSV or Parquet, with checkpoint and resume."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

import attrs
import orjson

if sys.platform != "win32":
    import fcntl

from ._client import ExotelClient
from ._converter import EXTRA, converter, timestamp_fields
from ._errors import ExportRefused
from ._models import SmsPage, SmsRecord

#: CSV and Parquet columns, in order: the record's fields; ``extra`` holds unknown fields
#: as one JSON object.
CSV_COLUMNS = tuple(a.name for a in attrs.fields(SmsRecord))
_STAMPS = frozenset(timestamp_fields(SmsRecord))
_CHECKPOINT_VERSION = 1
# Valid JSON can hold a lone surrogate (half an emoji) that UTF-8 cannot: write it as
# the \udXXX escape it arrived as, rather than fail on that record at every resume.
_ENCODING, _ERRORS = "utf-8", "backslashreplace"


def _record_dict(record: SmsRecord) -> dict[str, Any]:
    return converter.unstructure(record)  # type: ignore[no-any-return]


def encode_jsonl(records: Iterable[SmsRecord]) -> bytes:
    """One JSON object per line, the API's field names, unknown fields kept."""
    return b"".join(_json_line(_record_dict(r)) for r in records)


def _json_line(data: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(data) + b"\n"
    except orjson.JSONEncodeError:  # a lone surrogate: the standard encoder escapes it
        return json.dumps(data, ensure_ascii=False).encode(_ENCODING, _ERRORS) + b"\n"


def _csv_row(record: SmsRecord) -> list[str]:
    data = _record_dict(record)
    extra = {k: data.pop(k) for k in list(data) if k not in CSV_COLUMNS}
    data[EXTRA] = json.dumps(extra, ensure_ascii=False) if extra else None
    return ["" if data.get(c) is None else str(data[c]) for c in CSV_COLUMNS]


def encode_csv(records: Iterable[SmsRecord], *, header: bool = False) -> bytes:
    """RFC 4180 rows (CRLF, quotes doubled) in UTF-8; empty cell for null."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    writer.writerows(_csv_row(r) for r in records)
    return buffer.getvalue().encode(_ENCODING, _ERRORS)


def _count_lines(lines: Iterable[bytes]) -> int | None:
    return sum(1 for _ in lines)


def _count_csv_rows(lines: Iterable[bytes]) -> int | None:
    """Records in CSV lines: rows less the header; None when a quoted field is cut."""
    try:
        rows = sum(1 for _ in csv.reader(line.decode(_ENCODING, "replace") for line in lines))
    except csv.Error:
        return None
    return max(rows - 1, 0)


class _Sink(Protocol):
    def write_page(self, records: tuple[SmsRecord, ...]) -> None: ...
    def commit(self) -> int: ...
    def close(self) -> None: ...


@attrs.frozen
class Format:
    """How records are written in one output format, and what its outputs allow."""

    name: str
    #: Records to bytes, appended to the output; None for a format with its own ``opener``.
    encode: Callable[[Sequence[SmsRecord]], bytes] | None
    #: Written once at the top of a new output.
    header: bytes = b""
    #: Whether an interrupted output can be cut back to its checkpoint and continued.
    resumable: bool = True
    #: Records in the complete lines of an output; None when they end inside a record.
    count: Callable[[Iterable[bytes]], int | None] = _count_lines
    #: The extensions of an output file that imply this format, lower case.
    extensions: tuple[str, ...] = ()
    #: Whether it can be written to stdout (a stream, not a file it can seek in).
    stdout: bool = True
    #: ``opener(format, output, keep)``: the sink that writes ``output`` (None: stdout)
    #: after its first ``keep`` bytes.
    opener: Callable[[Format, Path | None, int], _Sink] = attrs.field(
        default=attrs.Factory(lambda: _open_bytes)
    )

    def open(self, output: Path | None, keep: int) -> _Sink:
        """The sink for ``output`` (None: stdout), keeping its first ``keep`` bytes."""
        return self.opener(self, output, keep)


class _TextSink:
    """Appends encoded records to a file (or stdout); ``commit`` makes it durable."""

    def __init__(
        self,
        stream: IO[bytes],
        encode: Callable[[Sequence[SmsRecord]], bytes],
        *,
        header: bytes,
        durable: bool,
    ) -> None:
        self._stream = stream
        self._encode = encode
        self._durable = durable
        self._stream.write(header)

    def write_page(self, records: tuple[SmsRecord, ...]) -> None:
        self._stream.write(self._encode(records))
        if not self._durable:
            self._stream.flush()  # a pipe's reader gets each page as it comes, not per checkpoint

    def commit(self) -> int:
        self._stream.flush()
        if self._durable:
            os.fsync(self._stream.fileno())
        return self._stream.tell() if self._durable else 0

    def close(self) -> None:
        if self._stream is not sys.stdout.buffer:
            self._stream.close()


class _ParquetSink:
    """Typed Parquet columns, written in row groups so the campaign never sits in memory."""

    ROW_GROUP = 50_000

    def __init__(self, path: Path) -> None:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:  # pragma: no cover - depends on the extra installed
            raise ExportRefused(
                "Parquet needs pyarrow: pip install 'exotel-async[parquet]'"
            ) from None
        self._pa = pa
        stamp = pa.timestamp("us", tz="UTC")
        self._schema = pa.schema([(c, stamp if c in _STAMPS else pa.string()) for c in CSV_COLUMNS])
        self._writer = pq.ParquetWriter(str(path), self._schema)
        self._rows: list[dict[str, Any]] = []

    def write_page(self, records: tuple[SmsRecord, ...]) -> None:
        for r in records:
            row = {name: getattr(r, name) for name in CSV_COLUMNS if name != EXTRA}
            row[EXTRA] = json.dumps(dict(r.extra), ensure_ascii=False) if r.extra else None
            self._rows.append(row)
        if len(self._rows) >= self.ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            self._writer.write_table(self._pa.Table.from_pylist(self._rows, schema=self._schema))
            self._rows = []

    def commit(self) -> int:
        return 0

    def close(self) -> None:
        self._flush()
        self._writer.close()


def _open_bytes(fmt: Format, output: Path | None, keep: int) -> _Sink:
    """A sink appending ``fmt.encode``'s bytes to ``output`` cut back to ``keep`` bytes."""
    assert fmt.encode is not None  # a format without an encoder brings its own opener
    if output is None:
        return _TextSink(sys.stdout.buffer, fmt.encode, header=fmt.header, durable=False)
    stream: IO[bytes] = output.open("r+b" if keep and output.exists() else "wb")
    stream.truncate(keep)  # drops a torn line or half-written page
    stream.seek(keep)
    return _TextSink(stream, fmt.encode, header=b"" if keep else fmt.header, durable=True)


def _open_parquet(fmt: Format, output: Path | None, keep: int) -> _Sink:
    assert output is not None  # not fmt.stdout: _plan refused it
    return _ParquetSink(output)


#: The output formats by name: ``ExportRequest.format`` and ``--format`` take these names.
FORMATS: Mapping[str, Format] = {
    f.name: f
    for f in (
        Format("jsonl", encode_jsonl, extensions=(".jsonl", ".ndjson")),
        Format(
            "csv",
            encode_csv,
            header=encode_csv((), header=True),
            count=_count_csv_rows,
            extensions=(".csv",),
        ),
        # Written in row groups with a footer: a cut file is unreadable, so never resumed.
        Format(
            "parquet",
            None,
            resumable=False,
            extensions=(".parquet",),
            stdout=False,
            opener=_open_parquet,
        ),
    )
}


def _natural(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Reject anything but a non-negative int (a bool is not a count)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{attribute.name} must be a non-negative integer, got {value!r}")


def _known_format(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Reject a format name the registry does not hold, listing those it does."""
    if not isinstance(value, str) or value not in FORMATS:
        raise ValueError(f"{attribute.name} must be one of {', '.join(FORMATS)}, got {value!r}")


_TEXT = attrs.validators.instance_of(str)
_OPTIONAL_TEXT = attrs.validators.optional(_TEXT)


@attrs.frozen
class Checkpoint:
    """How far an export got: everything before ``output_bytes`` is complete pages."""

    campaign_id: str = attrs.field(validator=_TEXT)
    number: str | None = attrs.field(validator=_OPTIONAL_TEXT)
    sort_by: str | None = attrs.field(validator=_OPTIONAL_TEXT)
    format: str = attrs.field(validator=_known_format)
    next_offset: int = attrs.field(validator=_natural)
    records_written: int = attrs.field(validator=_natural)
    output_bytes: int = attrs.field(validator=_natural)
    #: Exotel's total at the last page written: what an already complete export reports.
    total: int | None = attrs.field(default=None, validator=attrs.validators.optional(_natural))
    version: int = _CHECKPOINT_VERSION
    #: The export finished: the output holds all it asked for, in ``output_bytes`` bytes.
    complete: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))

    def __attrs_post_init__(self) -> None:
        # Every record written came from its own offset before next_offset.
        if self.records_written > self.next_offset:
            raise ValueError(
                f"records_written {self.records_written} exceeds next_offset {self.next_offset}"
            )


@attrs.define
class ExportProgress:
    """Where a running export stands; passed to the progress callback after each page."""

    records: int = 0
    pages: int = 0
    retries: int = 0
    #: Answers that said "slow down" (429 or 503), and seconds spent waiting for the limit.
    throttled: int = 0
    rate_wait: float = 0.0
    total: int | None = None
    started_at_record: int = 0
    elapsed: float = 0.0
    completed: bool = False
    interrupted: bool = False
    #: Failed items passed over (with ``skip_item_errors``).
    item_errors: int = 0
    #: A page stayed empty below Exotel's total: the checkpoint is kept for ``--resume``.
    ended_early: bool = False
    #: The output already held this complete export: nothing was fetched or written.
    already_complete: bool = False


def checkpoint_path(output: Path) -> Path:
    """The checkpoint beside ``output``: how far its export got, or that it is complete."""
    return output.with_name(output.name + ".checkpoint")


def _save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Write the checkpoint atomically: a crash leaves the old one or the new one."""
    write_json_atomically(path, attrs.asdict(checkpoint))


def write_json_atomically(path: Path, data: object, *, indent: int | None = None) -> None:
    """Write ``data`` as JSON to ``path`` so that a crash leaves the old file or the new one."""
    # A fresh name created exclusively (O_EXCL, O_NOFOLLOW): never a file or symlink
    # planted beside the output, nor the temporary file of another process.
    fd, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, ensure_ascii=False, indent=indent)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint file, refusing one that is not ours, outdated, or out of range."""
    try:
        checkpoint = Checkpoint(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise ExportRefused(
            f"cannot read checkpoint {path}: {exc}; start over with --force"
        ) from None
    if checkpoint.version != _CHECKPOINT_VERSION:
        raise ExportRefused(f"checkpoint {path} is from another version of exotel-async")
    return checkpoint


@attrs.frozen
class ExportRequest:
    """What to export, and where.

    Attributes:
        campaign_id: The campaign sid.
        output: The file to write; None writes JSONL or CSV to stdout.
        format: ``jsonl``, ``csv`` or ``parquet``.
        resume: Continue from the checkpoint beside ``output``; start when there is nothing
            to continue, and do nothing when that export is already complete.
        force: Overwrite an existing output.
        page_size: Records per request.
        concurrency: Pages in flight.
        number: Only SMS to this phone number.
        sort_by: ``schedule_time:asc|desc`` or ``date_created:asc|desc``.
        max_items: Stop after this many records, counted across resumed runs.
        skip_item_errors: Pass over items Exotel reports as failed instead of stopping.
        checkpoint_pages: Make the output durable and save the checkpoint at least every
            this many pages. After a crash the pages written since the last checkpoint
            are fetched again: at most this many, plus those that were in flight.
        checkpoint_seconds: Also make it durable at least every this many seconds.
    """

    campaign_id: str
    output: Path | None  # None: stdout
    format: str = attrs.field(default="jsonl", validator=_known_format)
    resume: bool = False
    force: bool = False
    page_size: int = 50
    concurrency: int = 4
    number: str | None = None
    sort_by: str | None = None
    max_items: int | None = None
    skip_item_errors: bool = False
    checkpoint_pages: int = attrs.field(
        default=100, validator=[attrs.validators.instance_of(int), attrs.validators.ge(1)]
    )
    checkpoint_seconds: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))


def _check_output(output: Path) -> None:
    """Refuse an output path that cannot be a file, before anything is created beside it."""
    if output.is_dir():
        raise ExportRefused(
            f"{output} is a directory: give a file name, such as {output / 'sms.jsonl'}"
        )
    if not output.parent.is_dir():
        raise ExportRefused(
            f"cannot write {output}: the folder {output.parent} does not exist; create it first"
        )


def _plan(request: ExportRequest) -> Checkpoint | None:
    """Decide from the files on disk whether to start afresh, resume or stop; refuse the unsafe.

    Returns None to start afresh, else the checkpoint to continue from (or a complete one).
    """
    if request.output is None:
        _check_stdout(request)
        return None
    if request.resume and request.force:
        raise ExportRefused("--resume and --force contradict each other: choose one")
    output, marker = request.output, checkpoint_path(request.output)
    if request.force or not (output.exists() or marker.exists()):
        return None
    if not marker.exists():
        raise ExportRefused(
            f"{output} already exists and no checkpoint says what it holds: "
            "pass --force to overwrite it, or choose another --output"
        )
    checkpoint = load_checkpoint(marker)
    if checkpoint.records_written == 0 and not checkpoint.complete:
        return None  # a run that wrote nothing (a crash before the first page): no loss
    asked = (request.campaign_id, request.number, request.sort_by, request.format)
    saved = (checkpoint.campaign_id, checkpoint.number, checkpoint.sort_by, checkpoint.format)
    if asked != saved:
        raise ExportRefused(
            f"{output} holds an export of {_describe(*saved)}, not of {_describe(*asked)}: "
            "pass --force to overwrite it, or choose another --output"
        )
    return _verify(request, output, checkpoint)


def _check_stdout(request: ExportRequest) -> None:
    """Refuse what an export to stdout cannot do: resume, or write a file-only format."""
    if request.resume:
        raise ExportRefused("--resume needs a file: an export to stdout cannot be resumed")
    if not FORMATS[request.format].stdout:
        raise ExportRefused(
            f"{request.format.capitalize()} needs a file: it cannot be written to stdout"
        )


def _verify(request: ExportRequest, output: Path, checkpoint: Checkpoint) -> Checkpoint:
    """``checkpoint`` of this very export, once ``output`` is what it vouches for; else refuse."""
    marker = checkpoint_path(output)
    size = output.stat().st_size if output.exists() else 0
    if checkpoint.complete:
        if size != checkpoint.output_bytes:
            raise ExportRefused(
                f"{output} changed since its export completed: pass --force to export again"
            )
        return checkpoint
    if not request.resume:
        raise ExportRefused(
            f"{output} holds an interrupted export ({checkpoint.records_written} records): "
            "pass --resume to continue it or --force to start over"
        )
    if not FORMATS[request.format].resumable:
        raise ExportRefused(
            f"{request.format} exports cannot be resumed: pass --force to start over"
        )
    if size < checkpoint.output_bytes:
        raise ExportRefused(
            f"{output} is shorter than its checkpoint says: start over with --force"
        )
    found = _records_in(output, checkpoint.output_bytes, FORMATS[request.format])
    if found != checkpoint.records_written:
        held = "a cut line" if found is None else f"{found} records"
        raise ExportRefused(
            f"checkpoint {marker} vouches for {checkpoint.records_written} records in the "
            f"first {checkpoint.output_bytes} bytes of {output}, which hold {held}: "
            "start over with --force"
        )
    return checkpoint


def _describe(campaign_id: str, number: str | None, sort_by: str | None, fmt: str) -> str:
    """``campaign 'c1' as jsonl``, with the filters that are set."""
    filters = [f"--number {number}"] if number else []
    filters += [f"--sort-by {sort_by}"] if sort_by else []
    return " ".join([f"campaign {campaign_id!r} as {fmt}", *filters])


def _records_in(output: Path, size: int, fmt: Format) -> int | None:
    """Records in the first ``size`` bytes of ``output``; None when ``size`` cuts a line."""
    consumed = 0

    def lines() -> Iterator[bytes]:
        nonlocal consumed
        if size == 0:
            return
        with output.open("rb") as f:
            for line in f:
                if consumed + len(line) > size:
                    return
                consumed += len(line)
                yield line

    count = fmt.count(lines())
    return count if consumed == size else None


@contextlib.contextmanager
def _exclusive(output: Path | None) -> Iterator[None]:
    """Hold ``<output>.lock`` for the whole export; refuse at once if another export does."""
    if output is None or sys.platform == "win32":  # Windows has no flock: no guard there
        yield
        return
    path = output.with_name(output.name + ".lock")
    fd = _acquire(path, output)
    try:
        yield
    finally:
        # Removed while still held: a waiter that opened it sees the file gone and retries.
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


def _acquire(path: Path, output: Path) -> int:
    """Open and lock ``path``, retrying when the holder removed it under us."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ExportRefused(
                f"another export is writing {output} (it holds {path}): "
                "wait for it to finish, or choose another --output"
            ) from None
        try:
            current = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            current = None
        held = os.fstat(fd)
        if current is not None and (current.st_dev, current.st_ino) == (held.st_dev, held.st_ino):
            return fd
        os.close(fd)  # we locked a file its last holder had already removed


async def run_export(
    client: ExotelClient,
    request: ExportRequest,
    *,
    on_page: Callable[[ExportProgress], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    clock: Callable[[], float] = time.monotonic,
) -> ExportProgress:
    """Export a campaign page by page, checkpointing as it goes; resume if asked.

    The output is flushed and synced, then the checkpoint saved, every
    ``request.checkpoint_pages`` pages or ``request.checkpoint_seconds`` seconds, whichever
    comes first, and once more when the export stops for any reason but a crash. After a
    crash (``kill -9``, power loss) ``--resume`` cuts the output back to the bytes the
    checkpoint vouches for and fetches the pages after it again: nothing is lost or
    written twice.

    Args:
        client: An open client.
        request: What to export, where, and whether to resume or overwrite.
        on_page: Called with the progress after every page is written.
        should_stop: Asked after every page; True saves the checkpoint and returns early.
        clock: Seconds from any origin, for ``checkpoint_seconds``.

    Returns:
        The progress: ``completed`` when the whole campaign was written (the checkpoint
        then says so), ``already_complete`` too when the output already held this complete
        export (nothing is fetched), ``interrupted`` when ``should_stop`` said so,
        ``ended_early`` when Exotel served an empty page below its own total.

    A run that fails before writing a record leaves no output, checkpoint or lock behind.

    Raises:
        ExportRefused: The files on disk forbid the request (an existing output without
            ``resume`` or ``force``, a checkpoint for another campaign or filters or one
            that disagrees with the output, another export of the same output running).
        ExotelError: The API failed; the checkpoint of the last complete page remains.
    """
    if request.output is not None:
        _check_output(request.output)
    with _exclusive(request.output):
        return await _export(client, request, on_page, should_stop, clock)


async def _export(
    client: ExotelClient,
    request: ExportRequest,
    on_page: Callable[[ExportProgress], None] | None,
    should_stop: Callable[[], bool],
    clock: Callable[[], float],
) -> ExportProgress:
    """``run_export`` once the output is locked."""
    checkpoint = _plan(request)
    if checkpoint is not None and checkpoint.complete:
        done = checkpoint.records_written
        return ExportProgress(
            records=done,
            total=checkpoint.total,
            started_at_record=done,
            completed=True,
            already_complete=True,
        )
    run = _Run(client, request, checkpoint, clock)
    discard = False
    try:
        await run.pump(on_page, should_stop)
    except BaseException:
        # Nothing written by a fresh run: leave nothing in the way of the next one.
        discard = checkpoint is None and run.progress.pages == 0 and request.output is not None
        if not discard:
            run.save_after_error()
        raise
    else:
        if run.unsaved:
            await asyncio.to_thread(run.save)  # what was written before a stop or the end
    finally:
        run.close(discard=discard)
    progress = run.finish()
    if progress.completed:
        # Its fsyncs off the event loop: an account export completes campaigns by the
        # hundred while others' pages are arriving.
        await asyncio.to_thread(run.mark_complete)
    return progress


class _Run:
    """One export run: its stream, its sink, and the checkpoint that vouches for the output."""

    def __init__(
        self,
        client: ExotelClient,
        request: ExportRequest,
        checkpoint: Checkpoint | None,
        clock: Callable[[], float],
    ) -> None:
        self.request = request
        written = checkpoint.records_written if checkpoint else 0
        max_items = None if request.max_items is None else max(request.max_items - written, 0)
        self.stream = client.sms_details(
            request.campaign_id,
            page_size=request.page_size,
            offset=checkpoint.next_offset if checkpoint else 0,
            max_items=max_items,
            number=request.number,
            sort_by=request.sort_by,
            concurrency=request.concurrency,
            skip_item_errors=request.skip_item_errors,
        )
        self.progress = ExportProgress(records=written, started_at_record=written)
        self._marker = checkpoint_path(request.output) if request.output is not None else None
        self._resumable = self._marker is not None and FORMATS[request.format].resumable
        self._clock = clock
        self._start_checkpoint(fresh=checkpoint is None)
        keep = checkpoint.output_bytes if checkpoint is not None else 0
        self._sink = FORMATS[request.format].open(request.output, keep)
        self._began = self._saved_at = clock()
        self.unsaved = 0
        #: False while a page is half written: no checkpoint may vouch for it.
        self._whole = True

    def _start_checkpoint(self, *, fresh: bool) -> None:
        """Vouch for an empty output before creating it, or drop an old export's checkpoint."""
        if self._marker is None or not fresh:
            return
        if self._resumable:
            # Before the output is created, so that a crash at any point leaves a
            # checkpoint that --resume accepts.
            _save_checkpoint(self._marker, self._checkpoint_at(0))
        else:
            self._marker.unlink(missing_ok=True)  # --force over an old export's checkpoint

    def _checkpoint_at(self, size: int, *, complete: bool = False) -> Checkpoint:
        request = self.request
        return Checkpoint(
            campaign_id=request.campaign_id,
            number=request.number,
            sort_by=request.sort_by,
            format=request.format,
            next_offset=self.stream.resume_offset,
            records_written=self.progress.records,
            output_bytes=size,
            total=self.progress.total,
            complete=complete,
        )

    def save(self) -> None:
        """Make the output durable, then save the checkpoint that vouches for it."""
        size = self._sink.commit()
        if self._resumable and self._marker is not None:
            _save_checkpoint(self._marker, self._checkpoint_at(size))

    def save_after_error(self) -> None:
        """Keep what was written before an error, unless a page is half written."""
        if self.unsaved and self._whole:
            # If this fails too, the error that stopped the export is still the one to report.
            with contextlib.suppress(OSError):
                self.save()

    async def pump(
        self, on_page: Callable[[ExportProgress], None] | None, should_stop: Callable[[], bool]
    ) -> None:
        """Write every page, saving as often as ``checkpoint_pages`` and ``_seconds`` say."""
        # fsync can take milliseconds: keep it off the event loop so pages keep arriving.
        await asyncio.to_thread(self.save)
        async with self.stream:
            async for page in self.stream.pages():
                self._write(page)
                if self._save_due():
                    self.unsaved = 0  # a save that fails is not tried again on the way out
                    await asyncio.to_thread(self.save)
                    self._saved_at = self._clock()
                if on_page is not None:
                    on_page(self.progress)
                if should_stop():
                    self.progress.interrupted = True
                    break

    def _write(self, page: SmsPage) -> None:
        self._whole = False
        self._sink.write_page(page.records)
        self._whole = True
        progress = self.progress
        progress.records += len(page.records)
        progress.pages += 1
        progress.retries = self.stream.stats.retries
        progress.total = page.metadata.total
        progress.elapsed = self._clock() - self._began
        self.unsaved += 1

    def _save_due(self) -> bool:
        """A sync per page costs more than fetching and writing it: sync in batches."""
        return (
            self.unsaved >= self.request.checkpoint_pages
            or self._clock() - self._saved_at >= self.request.checkpoint_seconds
        )

    def close(self, *, discard: bool) -> None:
        """Close the output; remove it (and its checkpoint) when it holds nothing."""
        self._sink.close()
        self.progress.elapsed = self._clock() - self._began
        if discard and self.request.output is not None:
            _discard(self.request.output)

    def finish(self) -> ExportProgress:
        """The final progress."""
        progress, stats = self.progress, self.stream.stats
        progress.item_errors = len(self.stream.item_errors)
        progress.retries = stats.retries
        progress.throttled = stats.throttled
        progress.rate_wait = stats.rate_wait
        progress.ended_early = stats.ended_early
        progress.completed = not (progress.interrupted or progress.ended_early)
        return progress

    def mark_complete(self) -> None:
        """Keep the checkpoint, marked complete: a re-run then says so instead of
        fetching it all again."""
        if self._marker is not None and self.request.output is not None:
            size = self.request.output.stat().st_size
            _save_checkpoint(self._marker, self._checkpoint_at(size, complete=True))


def _discard(output: Path) -> None:
    """Remove an output and its checkpoint that hold nothing."""
    for path in (output, checkpoint_path(output)):
        with contextlib.suppress(OSError):
            path.unlink()
