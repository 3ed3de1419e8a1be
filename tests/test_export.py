"""Bulk export against the sandbox: each format read back, checkpoints, resume, refusals."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import attrs
import pytest

from exotel_async import (
    ExotelClient,
    ExotelError,
    NotFoundError,
    ServerError,
    SmsRecord,
    _export,
    converter,
)
from exotel_async.export import (
    CSV_COLUMNS,
    Checkpoint,
    ExportProgress,
    ExportRefused,
    ExportRequest,
    Format,
    checkpoint_path,
    load_checkpoint,
    run_export,
)
from exotel_async.testing import Faults, Sandbox

TOTAL = 1234


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(campaigns={"c1": TOTAL, "other": 10}) as sb:
        yield sb


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[ExotelClient]:
    async with ExotelClient(
        sandbox.api_key, sandbox.api_token, sandbox.account_sid, base_url=sandbox.base_url
    ) as c:
        yield c


def expected(sandbox: Sandbox) -> list[dict[str, object]]:
    """The sandbox's records as the exporter should write them (via the one converter)."""
    return [converter.unstructure(converter.structure(r, SmsRecord)) for r in sandbox.records("c1")]


async def test_jsonl_export_holds_every_record_once_with_text_intact(
    sandbox: Sandbox, client: ExotelClient, tmp_path: Path
) -> None:
    """Each line is one record, in order, unknown fields and unicode intact."""
    out = tmp_path / "sms.jsonl"
    progress = await run_export(client, ExportRequest("c1", out))
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == expected(sandbox)
    assert progress.completed
    assert progress.records == TOTAL


async def test_jsonl_keeps_times_with_their_offset(client: ExotelClient, tmp_path: Path) -> None:
    """Times are written as ISO-8601 with their +05:30 offset."""
    out = tmp_path / "sms.jsonl"
    await run_export(client, ExportRequest("c1", out, max_items=1))
    first = json.loads(out.read_text().splitlines()[0])
    assert first["schedule_time"].endswith("+05:30")


async def test_csv_export_round_trips_through_the_csv_module(
    sandbox: Sandbox, client: ExotelClient, tmp_path: Path
) -> None:
    """Quotes, commas and newlines survive; header fixed; empty cell for null."""
    out = tmp_path / "sms.csv"
    await run_export(client, ExportRequest("c1", out, format="csv"))
    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    want = expected(sandbox)
    assert len(rows) - 1 == len(want)
    for row, record in zip(rows[1:], want, strict=True):
        got = dict(zip(CSV_COLUMNS, row, strict=True))
        for column in CSV_COLUMNS[:-1]:
            value = record.get(column)
            assert got[column] == ("" if value is None else str(value))
        extra = {k: v for k, v in record.items() if k not in CSV_COLUMNS}
        assert (json.loads(got["extra"]) if got["extra"] else {}) == extra


async def test_csv_export_has_hard_cases_in_it(sandbox: Sandbox) -> None:
    """The sandbox data really holds quotes, commas, newlines and nulls to round-trip."""
    names = [r.get("name") for r in sandbox.records("c1")]
    messages = [r.get("message") or r.get("body") or "" for r in sandbox.records("c1")]
    assert any(n and '"' in n and "," in n for n in names)
    assert None in names
    assert any("\n" in m for m in messages)


async def test_parquet_export_has_typed_columns(
    sandbox: Sandbox, client: ExotelClient, tmp_path: Path
) -> None:
    """Parquet holds every record, with timezone-aware timestamp columns."""
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "sms.parquet"
    await run_export(client, ExportRequest("c1", out, format="parquet"))
    table = pq.read_table(out)
    assert table.num_rows == TOTAL
    assert str(table.schema.field("schedule_time").type) == "timestamp[us, tz=UTC]"
    assert table.column("sid").to_pylist() == [r["sid"] for r in sandbox.records("c1")]


async def test_checkpoint_exists_while_incomplete_and_is_marked_complete_at_the_end(
    client: ExotelClient, tmp_path: Path
) -> None:
    """A stopped export leaves its checkpoint; a completed one marks it complete."""
    out = tmp_path / "sms.jsonl"
    progress = await run_export(client, ExportRequest("c1", out), should_stop=lambda: True)
    assert progress.interrupted
    marker = load_checkpoint(checkpoint_path(out))
    assert (marker.next_offset, marker.records_written) == (50, 50)
    assert marker.output_bytes == out.stat().st_size
    await run_export(client, ExportRequest("c1", out, resume=True))
    final = load_checkpoint(checkpoint_path(out))
    assert (final.complete, final.records_written) == (True, TOTAL)
    assert final.output_bytes == out.stat().st_size


async def test_resume_cuts_a_torn_line_and_writes_each_record_once(
    sandbox: Sandbox, client: ExotelClient, tmp_path: Path
) -> None:
    """Bytes written after the last checkpoint (a torn line) are cut before resuming."""
    out = tmp_path / "sms.jsonl"
    pages = iter(range(10**6))
    # One page in flight at a time, so that no request of this run reaches the server later.
    first = ExportRequest("c1", out, concurrency=1)
    await run_export(client, first, should_stop=lambda: next(pages) == 3)
    with out.open("ab") as f:
        f.write(b'{"sid": "torn", "num')
    sandbox.reset_stats()
    await run_export(client, ExportRequest("c1", out, resume=True))
    assert [json.loads(line) for line in out.read_text().splitlines()] == expected(sandbox)
    assert sandbox.stats.requests == (TOTAL - 200 + 49) // 50


async def test_resume_of_csv_does_not_repeat_the_header(
    sandbox: Sandbox, client: ExotelClient, tmp_path: Path
) -> None:
    """A resumed CSV has one header row."""
    out = tmp_path / "sms.csv"
    await run_export(client, ExportRequest("c1", out, format="csv"), should_stop=lambda: True)
    await run_export(client, ExportRequest("c1", out, format="csv", resume=True))
    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert len(rows) == TOTAL + 1
    assert [r[0] for r in rows[1:]] == [r["sid"] for r in sandbox.records("c1")]


async def test_resume_honours_max_items_across_runs(client: ExotelClient, tmp_path: Path) -> None:
    """``max_items`` counts records from both runs together."""
    out = tmp_path / "sms.jsonl"
    await run_export(client, ExportRequest("c1", out, max_items=120), should_stop=lambda: True)
    await run_export(client, ExportRequest("c1", out, max_items=120, resume=True))
    assert len(out.read_text().splitlines()) == 120


async def test_existing_output_is_refused_without_resume_or_force(
    client: ExotelClient, tmp_path: Path
) -> None:
    """An export never overwrites a file unless told to."""
    out = tmp_path / "sms.jsonl"
    out.write_text("precious\n")
    with pytest.raises(ExportRefused, match="--force"):
        await run_export(client, ExportRequest("c1", out))
    assert out.read_text() == "precious\n"


async def test_refusal_is_an_exotel_error(client: ExotelClient, tmp_path: Path) -> None:
    """``except ExotelError`` catches a refused export, as the error tree promises."""
    out = tmp_path / "sms.jsonl"
    out.write_text("precious\n")
    with pytest.raises(ExotelError):
        await run_export(client, ExportRequest("c1", out))


async def test_force_overwrites_an_existing_output(client: ExotelClient, tmp_path: Path) -> None:
    """``force`` starts over."""
    out = tmp_path / "sms.jsonl"
    out.write_text("old\n")
    await run_export(client, ExportRequest("c1", out, force=True))
    assert len(out.read_text().splitlines()) == TOTAL


async def test_checkpoint_of_another_campaign_or_filter_is_refused(
    client: ExotelClient, tmp_path: Path
) -> None:
    """A checkpoint whose campaign or filters differ from the request is refused."""
    out = tmp_path / "sms.jsonl"
    await run_export(client, ExportRequest("c1", out), should_stop=lambda: True)
    with pytest.raises(ExportRefused, match="not of campaign 'other' as jsonl"):
        await run_export(client, ExportRequest("other", out, resume=True))
    with pytest.raises(ExportRefused, match="not of campaign 'c1' as jsonl --sort-by"):
        await run_export(
            client, ExportRequest("c1", out, resume=True, sort_by="schedule_time:desc")
        )


@pytest.mark.parametrize("resume", [False, True])
async def test_rerun_of_a_completed_export_reports_it_without_a_request(
    sandbox: Sandbox, client: ExotelClient, tmp_path: Path, resume: bool
) -> None:
    """Running a completed export again, with or without resume, fetches and writes nothing."""
    out = tmp_path / "sms.jsonl"
    await run_export(client, ExportRequest("c1", out))
    before, requests = out.read_bytes(), sandbox.stats.requests
    progress = await run_export(client, ExportRequest("c1", out, resume=resume))
    assert (progress.completed, progress.already_complete) == (True, True)
    assert progress.records == TOTAL
    assert sandbox.stats.requests == requests
    assert out.read_bytes() == before


async def test_completed_export_of_another_campaign_is_refused(
    client: ExotelClient, tmp_path: Path
) -> None:
    """A complete export of one campaign is not "already complete" for another."""
    out = tmp_path / "sms.jsonl"
    await run_export(client, ExportRequest("c1", out, max_items=10))
    with pytest.raises(ExportRefused, match=r"campaign 'c1'.*--force"):
        await run_export(client, ExportRequest("other", out, resume=True))


async def test_failed_first_request_leaves_nothing_behind(
    client: ExotelClient, tmp_path: Path
) -> None:
    """A 404 before any page leaves no output, checkpoint or lock; the fixed command runs."""
    out = tmp_path / "sms.jsonl"
    with pytest.raises(NotFoundError):
        await run_export(client, ExportRequest("nosuch", out))
    assert list(tmp_path.iterdir()) == []
    progress = await run_export(client, ExportRequest("c1", out, resume=True))
    assert progress.records == TOTAL


async def test_checkpoint_that_vouches_for_no_record_does_not_block(
    client: ExotelClient, tmp_path: Path
) -> None:
    """A crash before the first page (a checkpoint of 0 records) blocks no later command."""
    out = tmp_path / "sms.jsonl"
    out.write_bytes(b"")
    checkpoint_path(out).write_text(
        json.dumps(
            {
                "campaign_id": "nosuch",
                "number": None,
                "sort_by": None,
                "format": "jsonl",
                "next_offset": 0,
                "records_written": 0,
                "output_bytes": 0,
            }
        )
    )
    progress = await run_export(client, ExportRequest("c1", out))
    assert progress.records == TOTAL


@pytest.mark.parametrize("resume", [False, True])
async def test_output_in_a_missing_folder_is_refused_naming_it(
    client: ExotelClient, tmp_path: Path, resume: bool
) -> None:
    """An output whose folder does not exist is refused before anything is created."""
    out = tmp_path / "nosuch" / "sms.jsonl"
    missing = re.escape(f"folder {tmp_path / 'nosuch'} does not exist")
    with pytest.raises(ExportRefused, match=missing):
        await run_export(client, ExportRequest("c1", out, resume=resume))
    assert list(tmp_path.iterdir()) == []


async def test_directory_as_output_is_refused_and_leaves_nothing(
    client: ExotelClient, tmp_path: Path
) -> None:
    """A directory given as output, even with force, is refused; nothing appears beside it."""
    folder = tmp_path / "adir"
    folder.mkdir()
    with pytest.raises(ExportRefused, match="is a directory: give a file name"):
        await run_export(client, ExportRequest("c1", folder, force=True))
    assert [p.name for p in tmp_path.iterdir()] == ["adir"]


async def test_resume_with_nothing_on_disk_starts_afresh(
    client: ExotelClient, tmp_path: Path
) -> None:
    """``--resume`` in a retry loop also works the first time."""
    out = tmp_path / "sms.jsonl"
    await run_export(client, ExportRequest("c1", out, resume=True))
    assert len(out.read_text().splitlines()) == TOTAL


async def export_until_the_server_breaks(sandbox: Sandbox, out: Path) -> None:
    """Export with one page in flight; after three pages every request fails (HTTP 500)."""
    pages = iter(range(10**6))

    def break_server_after_three_pages() -> bool:
        if next(pages) == 2:
            sandbox.faults = Faults(p_500=1.0)
        return False

    async with ExotelClient(
        sandbox.api_key,
        sandbox.api_token,
        sandbox.account_sid,
        base_url=sandbox.base_url,
        max_retries=0,
    ) as client:
        await run_export(
            client,
            ExportRequest("c1", out, concurrency=1),
            should_stop=break_server_after_three_pages,
        )


async def test_api_error_mid_export_keeps_the_checkpoint(sandbox: Sandbox, tmp_path: Path) -> None:
    """An export that fails keeps what it wrote and a checkpoint to resume from."""
    out = tmp_path / "sms.jsonl"
    with pytest.raises(ServerError):
        await export_until_the_server_breaks(sandbox, out)
    checkpoint = load_checkpoint(checkpoint_path(out))
    assert (checkpoint.records_written, checkpoint.next_offset) == (150, 150)
    assert len(out.read_text().splitlines()) == 150


async def test_failing_last_save_does_not_hide_the_api_error(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the save after an API error fails too, the API error is what is raised."""
    original = _export._save_checkpoint

    def disk_full_once_records_exist(path: Path, checkpoint: Checkpoint) -> None:
        if checkpoint.records_written:
            raise OSError(28, "No space left on device")
        original(path, checkpoint)

    monkeypatch.setattr(_export, "_save_checkpoint", disk_full_once_records_exist)
    with pytest.raises(ServerError):
        await export_until_the_server_breaks(sandbox, tmp_path / "sms.jsonl")


def test_lone_surrogate_is_written_as_its_json_escape() -> None:
    """Half an emoji (valid JSON, invalid UTF-8) is written escaped, not fatal."""
    from exotel_async._export import encode_csv, encode_jsonl

    record = SmsRecord(sid="a", number="1", message="cut \ud83d")
    assert json.loads(encode_jsonl([record]))["message"] == "cut \ud83d"
    assert b"\\ud83d" in encode_csv([record])


async def test_force_forgets_an_old_checkpoint(client: ExotelClient, tmp_path: Path) -> None:
    """``force`` removes the checkpoint of the export it overwrites, whatever the format."""
    out = tmp_path / "sms.out"
    await run_export(client, ExportRequest("c1", out), should_stop=lambda: True)
    pytest.importorskip("pyarrow")
    await run_export(client, ExportRequest("c1", out, format="parquet", force=True))
    assert load_checkpoint(checkpoint_path(out)).format == "parquet"


async def test_crash_before_the_output_exists_is_resumable(
    sandbox: Sandbox, client: ExotelClient, tmp_path: Path
) -> None:
    """A checkpoint written before the output was created still resumes, header and all."""
    out = tmp_path / "sms.csv"
    checkpoint_path(out).write_text(
        json.dumps(
            {
                "campaign_id": "c1",
                "number": None,
                "sort_by": None,
                "format": "csv",
                "next_offset": 0,
                "records_written": 0,
                "output_bytes": 0,
            }
        )
    )
    await run_export(client, ExportRequest("c1", out, format="csv", resume=True))
    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r[0] for r in rows[1:]] == [r["sid"] for r in sandbox.records("c1")]


async def test_checkpoint_always_vouches_for_whole_records_on_disk(
    client: ExotelClient, tmp_path: Path
) -> None:
    """From the first page on, the checkpoint exists and its bytes hold its record count."""
    out = tmp_path / "sms.jsonl"
    seen: list[tuple[int, int]] = []

    def check(progress: object) -> None:
        marker = load_checkpoint(checkpoint_path(out))
        vouched = out.read_bytes()[: marker.output_bytes]
        assert vouched.count(b"\n") == marker.records_written
        assert vouched.endswith(b"\n") or not vouched
        seen.append((marker.records_written, out.stat().st_size))

    await run_export(client, ExportRequest("c1", out, checkpoint_pages=3), on_page=check)
    assert len(seen) == -(-TOTAL // 50)


async def test_checkpoint_is_saved_every_checkpoint_pages(
    client: ExotelClient, tmp_path: Path
) -> None:
    """With ``checkpoint_pages=3`` the checkpoint moves on every third page, not before."""
    out = tmp_path / "sms.jsonl"
    saved: list[int] = []

    def note(progress: object) -> None:
        saved.append(load_checkpoint(checkpoint_path(out)).records_written)

    request = ExportRequest("c1", out, checkpoint_pages=3, checkpoint_seconds=3600)
    await run_export(client, request, on_page=note, should_stop=lambda: len(saved) == 7)
    assert saved == [0, 0, 150, 150, 150, 300, 300]
    assert load_checkpoint(checkpoint_path(out)).records_written == 350  # saved on stopping


async def test_checkpoint_is_saved_every_checkpoint_seconds(
    client: ExotelClient, tmp_path: Path
) -> None:
    """A page arriving ``checkpoint_seconds`` after the last save saves again."""
    out = tmp_path / "sms.jsonl"
    now = [0.0]
    saved: list[int] = []

    def note(progress: object) -> None:
        saved.append(load_checkpoint(checkpoint_path(out)).records_written)
        now[0] += 0.4  # the next page arrives 0.4 s later on the fake clock

    request = ExportRequest("c1", out, checkpoint_pages=1000, checkpoint_seconds=1.0)
    await run_export(
        client, request, on_page=note, should_stop=lambda: len(saved) == 7, clock=lambda: now[0]
    )
    # Pages at 0.0, 0.4, 0.8 s; the one at 1.2 s saves; 1.6, 2.0; the one at 2.4 s saves.
    assert saved == [0, 0, 0, 200, 200, 200, 350]


async def test_checkpoint_every_page_matches_the_output_exactly(
    client: ExotelClient, tmp_path: Path
) -> None:
    """``checkpoint_pages=1`` syncs and saves after each page, as before batching."""
    out = tmp_path / "sms.jsonl"
    sizes: list[tuple[int, int]] = []

    def record_sizes(progress: object) -> None:
        marker = load_checkpoint(checkpoint_path(out))
        sizes.append((marker.output_bytes, out.stat().st_size))

    await run_export(client, ExportRequest("c1", out, checkpoint_pages=1), on_page=record_sizes)
    assert sizes
    assert all(saved == actual for saved, actual in sizes)


@pytest.mark.parametrize(
    "changes", [{"checkpoint_pages": 0}, {"checkpoint_seconds": 0}, {"checkpoint_seconds": -1}]
)
def test_checkpoint_spacing_must_be_positive(changes: dict[str, float]) -> None:
    """Zero or negative checkpoint spacing is refused when the request is made."""
    with pytest.raises(ValueError, match="checkpoint_"):
        ExportRequest("c1", None, **changes)  # type: ignore[arg-type]


async def test_empty_page_below_total_keeps_the_checkpoint(tmp_path: Path) -> None:
    """An export whose server stops serving below its total is not marked complete."""
    import re

    from aioresponses import aioresponses

    def page(offset: int, count: int) -> dict[str, object]:
        items = [
            {
                "code": 200,
                "status": "success",
                "error_data": None,
                "data": {"sid": f"s{offset + i}", "number": "1"},
            }
            for i in range(count)
        ]
        return {
            "metadata": {"count": count, "offset": offset, "total": 200, "limit": 50},
            "response": items,
        }

    url = re.compile(r"^https://api\.exotel\.com/.*offset=(\d+).*")
    out = tmp_path / "sms.jsonl"
    with aioresponses() as mocked:
        mocked.get(url, payload=page(0, 50))
        mocked.get(url, payload=page(50, 50))
        for _ in range(3):
            mocked.get(url, payload=page(100, 0))
        async with ExotelClient("k", "t", "acc") as c:
            progress = await run_export(c, ExportRequest("c1", out, concurrency=1))
    assert progress.ended_early
    assert not progress.completed
    assert load_checkpoint(checkpoint_path(out)).next_offset == 100


async def test_second_export_to_the_same_output_is_refused_while_the_first_runs(
    client: ExotelClient, tmp_path: Path
) -> None:
    """Two exporters never share an output: the second is refused at once, naming it."""
    out = tmp_path / "sms.jsonl"
    refusals: list[str] = []

    async def start_a_second_export() -> None:
        try:
            await run_export(client, ExportRequest("c1", out, resume=True))
        except ExportRefused as exc:
            refusals.append(str(exc))

    pages = iter(range(10**6))

    def second_export_after_the_first_page(progress: object) -> None:
        if next(pages) == 0:
            pending.append(asyncio.ensure_future(start_a_second_export()))

    pending: list[asyncio.Future[None]] = []
    progress = await run_export(
        client, ExportRequest("c1", out), on_page=second_export_after_the_first_page
    )
    await asyncio.gather(*pending)
    assert progress.completed
    assert len(refusals) == 1
    assert "another export is writing" in refusals[0]
    assert len(out.read_text().splitlines()) == TOTAL


async def test_lock_is_released_when_the_export_ends(client: ExotelClient, tmp_path: Path) -> None:
    """A stopped export leaves no lock behind: ``--resume`` may follow at once."""
    out = tmp_path / "sms.jsonl"
    await run_export(client, ExportRequest("c1", out), should_stop=lambda: True)
    await run_export(client, ExportRequest("c1", out, resume=True))
    assert len(out.read_text().splitlines()) == TOTAL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sms.jsonl", "sms.jsonl.checkpoint"]


async def test_checkpoint_never_writes_through_a_planted_symlink(
    client: ExotelClient, tmp_path: Path
) -> None:
    """Symlinks planted at the old fixed temporary name are neither followed nor replaced."""
    out = tmp_path / "sms.jsonl"
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "sms.jsonl.checkpoint.tmp").symlink_to(victim)
    await run_export(client, ExportRequest("c1", out), should_stop=lambda: True)
    assert victim.read_text() == "precious\n"
    assert load_checkpoint(checkpoint_path(out)).records_written == 50


def _write_checkpoint(out: Path, **changes: object) -> None:
    """Plant a checkpoint for campaign c1 (JSONL), with ``changes`` to its fields."""
    fields: dict[str, object] = {
        "campaign_id": "c1",
        "number": None,
        "sort_by": None,
        "format": "jsonl",
        "next_offset": 0,
        "records_written": 0,
        "output_bytes": 0,
    }
    checkpoint_path(out).write_text(json.dumps({**fields, **changes}))


@pytest.mark.parametrize(
    "changes",
    [
        {"next_offset": "300"},
        {"next_offset": -1},
        {"records_written": True},
        {"campaign_id": None},
        {"format": "xml"},
        {"records_written": 60, "next_offset": 50},
    ],
)
async def test_checkpoint_of_wrong_types_or_ranges_is_refused(
    client: ExotelClient, tmp_path: Path, changes: dict[str, object]
) -> None:
    """Each field of a checkpoint is checked for its type and range before resuming."""
    out = tmp_path / "sms.jsonl"
    _write_checkpoint(out, **changes)
    with pytest.raises(ExportRefused, match="--force"):
        await run_export(client, ExportRequest("c1", out, resume=True))


async def test_checkpoint_that_disagrees_with_the_output_is_refused(
    sandbox: Sandbox, client: ExotelClient, tmp_path: Path
) -> None:
    """Records claimed by the checkpoint but missing from the output stop the resume."""
    out = tmp_path / "sms.jsonl"
    out.write_bytes(b"")
    _write_checkpoint(out, next_offset=300, records_written=300)
    sandbox.reset_stats()
    with pytest.raises(ExportRefused, match=r"300 records.*hold 0 records.*--force"):
        await run_export(client, ExportRequest("c1", out, resume=True))
    assert sandbox.stats.requests == 0


async def test_checkpoint_whose_bytes_cut_a_line_is_refused(
    client: ExotelClient, tmp_path: Path
) -> None:
    """``output_bytes`` must end on a record boundary."""
    out = tmp_path / "sms.jsonl"
    await run_export(client, ExportRequest("c1", out), should_stop=lambda: True)
    saved = load_checkpoint(checkpoint_path(out))
    _write_checkpoint(out, next_offset=50, records_written=50, output_bytes=saved.output_bytes - 3)
    with pytest.raises(ExportRefused, match="cut line"):
        await run_export(client, ExportRequest("c1", out, resume=True))


async def test_csv_checkpoint_counts_records_with_newlines_inside(
    client: ExotelClient, tmp_path: Path
) -> None:
    """CSV rows are counted as records, not lines, so quoted newlines do not break resume."""
    out = tmp_path / "sms.csv"
    pages = iter(range(10**6))
    request = ExportRequest("c1", out, format="csv", concurrency=1)
    await run_export(client, request, should_stop=lambda: next(pages) == 5)
    with out.open(newline="", encoding="utf-8") as f:
        assert len(f.read().splitlines()) > 300 + 1  # some messages hold newlines
    await run_export(client, ExportRequest("c1", out, format="csv", resume=True))
    with out.open(newline="", encoding="utf-8") as f:
        assert len(list(csv.reader(f))) == TOTAL + 1


async def test_stdout_gets_each_page_as_it_is_written(
    client: ExotelClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writing to stdout flushes every page: a pipe's reader never waits for a checkpoint."""
    raw = io.BytesIO()
    stdout = SimpleNamespace(buffer=io.BufferedWriter(raw, 1 << 20))
    monkeypatch.setattr(sys, "stdout", stdout)
    delivered: list[bool] = []

    def check(progress: ExportProgress) -> None:
        delivered.append(raw.getvalue().count(b"\n") == progress.records)

    await run_export(client, ExportRequest("c1", None, max_items=500), on_page=check)
    assert delivered == [True] * 10


async def test_rerun_of_a_completed_export_reports_the_total(
    client: ExotelClient, tmp_path: Path
) -> None:
    """An already complete export still tells the campaign's total, from its checkpoint."""
    out = tmp_path / "sms.jsonl"
    await run_export(client, ExportRequest("c1", out))
    progress = await run_export(client, ExportRequest("c1", out))
    assert progress.already_complete
    assert progress.total == TOTAL


def test_checkpoint_takes_a_total() -> None:
    """Library code that builds a Checkpoint with ``total`` keeps working."""
    checkpoint = Checkpoint("c1", None, None, "jsonl", 10, 10, 500, total=TOTAL)
    assert checkpoint.total == TOTAL


async def test_parquet_to_stdout_is_refused_with_the_message_of_0_1(
    client: ExotelClient,
) -> None:
    """Parquet to stdout is refused at once, with the wording scripts may match on."""
    with pytest.raises(
        ExportRefused, match=r"^Parquet needs a file: it cannot be written to stdout"
    ):
        await run_export(client, ExportRequest("c1", None, format="parquet"))


def test_csv_columns_are_the_record_fields_in_order() -> None:
    """CSV (and Parquet) columns follow ``SmsRecord``'s fields, ``extra`` last."""
    assert tuple(a.name for a in attrs.fields(SmsRecord)) == CSV_COLUMNS
    assert CSV_COLUMNS[-1] == "extra"


class _ListSink:
    """A sink that keeps what it is given, for a format registered by a test."""

    def __init__(self) -> None:
        self.records: list[SmsRecord] = []
        self.closed = False

    def write_page(self, records: tuple[SmsRecord, ...]) -> None:
        self.records.extend(records)

    def commit(self) -> int:
        return 0

    def close(self) -> None:
        self.closed = True


async def test_a_format_with_its_own_sink_is_written_through_it(
    client: ExotelClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registered format without an encoder gets its own opener's sink, not Parquet's."""
    sink = _ListSink()
    out = tmp_path / "out"
    out.touch()  # what a real sink would create: the complete checkpoint records its size
    fmt = Format("memory", None, resumable=False, stdout=False, opener=lambda *_: sink)
    monkeypatch.setitem(_export.FORMATS, "memory", fmt)  # type: ignore[attr-defined]
    progress = await run_export(client, ExportRequest("c1", out, format="memory", force=True))
    assert progress.completed
    assert (len(sink.records), sink.closed) == (TOTAL, True)


async def test_a_format_that_cannot_go_to_stdout_is_refused_there(
    client: ExotelClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Format.stdout`` False refuses an export to stdout before any request."""
    fmt = Format("memory", None, resumable=False, stdout=False, opener=lambda *_: _ListSink())
    monkeypatch.setitem(_export.FORMATS, "memory", fmt)  # type: ignore[attr-defined]
    with pytest.raises(ExportRefused, match=r"^Memory needs a file"):
        await run_export(client, ExportRequest("c1", None, format="memory"))


def test_csv_writes_unknown_fields_in_the_extra_column_wherever_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ``extra`` cell goes under the ``extra`` column, not into the last one."""
    columns = ("extra", *(c for c in CSV_COLUMNS if c != "extra"))
    monkeypatch.setattr(_export, "CSV_COLUMNS", columns)
    record = converter.structure({"sid": "s1", "number": "+911", "odd": 1}, SmsRecord)
    row = next(csv.reader(io.StringIO(_export.encode_csv([record]).decode())))
    assert json.loads(row[0]) == {"odd": 1}
    assert row[columns.index("sid")] == "s1"


def test_unknown_format_name_is_one_line_listing_the_known_ones() -> None:
    """A format the registry does not hold is refused naming the ones it does."""
    with pytest.raises(ValueError, match=r"^format must be one of jsonl, csv, parquet, got 'xml'$"):
        ExportRequest("c1", None, format="xml")
