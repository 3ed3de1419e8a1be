"""Account-wide export against the sandbox, fed by an injected list of campaigns."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from exotel_async import Campaign, ExotelClient, NotFoundError
from exotel_async.export import (
    AccountExportRequest,
    AccountProgress,
    ExportRefused,
    load_manifest,
    manifest_path,
    run_account_export,
)
from exotel_async.testing import Faults, Sandbox, SandboxCampaign, make_account
from tests._clients import fast_client

#: 12 generated campaigns, 3000 records in all, and an archived one.
ACCOUNT = [
    *make_account(12, 3000, max_records=900, seed=3),
    SandboxCampaign("gone", 50, name="Old Promo", status="Archived"),
]
SENT = [c for c in ACCOUNT if c.status.lower() != "archived"]


def as_campaign(campaign: SandboxCampaign) -> Campaign:
    """The Campaign the list would give for a sandbox campaign."""
    return Campaign(
        campaign.campaign_id,
        name=campaign.name,
        status=campaign.status,
        date_created=campaign.created,
    )


async def source(campaigns: Iterable[SandboxCampaign]) -> AsyncIterator[Campaign]:
    """An injected campaign list."""
    for campaign in campaigns:
        yield as_campaign(campaign)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """A sandbox serving ACCOUNT."""
    async with Sandbox(campaigns=ACCOUNT, seed=3) as sb:
        yield sb


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[ExotelClient]:
    """A client of the sandbox with millisecond backoff."""
    async with fast_client(sandbox) as c:
        yield c


def stop_after(asks: int) -> Callable[[], bool]:
    """A ``should_stop`` that says no ``asks`` times, then yes."""
    count = itertools.count(1)
    return lambda: next(count) > asks


def lines(path: Path) -> list[dict[str, object]]:
    """The JSON objects of a JSONL file."""
    return [json.loads(line) for line in path.read_text().splitlines()]


async def export(
    client: ExotelClient,
    tmp_path: Path,
    campaigns: Iterable[SandboxCampaign] = SENT,
    **options: object,
) -> AccountProgress:
    """Run an account export of ``campaigns`` into tmp_path/out."""
    request = AccountExportRequest(tmp_path / "out", **options)  # type: ignore[arg-type]
    return await run_account_export(client, request, source(campaigns))


async def test_every_campaign_gets_its_own_complete_file(
    sandbox: Sandbox, client: ExotelClient, tmp_path: Path
) -> None:
    """Each campaign's file holds exactly its records, in order."""
    progress = await export(client, tmp_path)
    assert progress.complete
    for campaign in SENT:
        written = lines(tmp_path / "out" / f"{campaign.campaign_id}.jsonl")
        served = sandbox.records(campaign.campaign_id)
        assert [r["sid"] for r in written] == [r["sid"] for r in served]


async def test_manifest_lists_each_campaign_with_its_count_and_file(
    client: ExotelClient, tmp_path: Path
) -> None:
    """manifest.json names every campaign, its status, records, file, and completeness."""
    await export(client, tmp_path)
    manifest = load_manifest(manifest_path(tmp_path / "out"))
    assert manifest.complete
    rows = [(e.campaign_id, e.status, e.records, e.file, e.complete) for e in manifest.campaigns]
    assert rows == [
        (c.campaign_id, c.status, c.records, f"{c.campaign_id}.jsonl", True) for c in SENT
    ]


async def test_progress_counts_records_and_campaigns(client: ExotelClient, tmp_path: Path) -> None:
    """The final progress counts every record and campaign, with none left active."""
    progress = await export(client, tmp_path)
    assert (progress.records, progress.completed, progress.failed) == (
        sum(c.records for c in SENT),
        len(SENT),
        0,
    )
    assert progress.active == {}


async def test_progress_callback_sees_active_campaigns(
    client: ExotelClient, tmp_path: Path
) -> None:
    """on_progress is told which campaigns are under way while they are."""
    active: set[str] = set()
    request = AccountExportRequest(tmp_path / "out", campaigns_at_once=3)

    def seen(progress: AccountProgress) -> None:
        assert len(progress.active) <= 3
        active.update(progress.active)

    await run_account_export(client, request, source(SENT), on_progress=seen)
    assert active == {c.campaign_id for c in SENT}


async def test_archived_campaign_is_recorded_and_the_others_complete(
    client: ExotelClient, tmp_path: Path
) -> None:
    """A 404 (archived) is the campaign's error in the manifest; the rest still complete."""
    progress = await export(client, tmp_path, ACCOUNT)
    failed = {e.campaign_id: e for e in progress.entries if not e.complete}
    assert set(failed) == {"gone"}
    assert all(e.error and e.error.startswith("NotFoundError") for e in failed.values())
    assert all(e.file is None for e in failed.values())
    assert not progress.complete
    assert progress.completed == len(SENT)


async def test_item_errors_fail_their_campaign_only(
    sandbox: Sandbox, client: ExotelClient, tmp_path: Path
) -> None:
    """A failed item stops its campaign with ItemError recorded; empty campaigns complete."""
    sandbox.faults = Faults(p_item_failure=1.0)
    progress = await export(client, tmp_path)
    errors = {e.campaign_id: e.error for e in progress.entries}
    for campaign in SENT:
        expected_ok = campaign.records == 0
        assert (errors[campaign.campaign_id] is None) == expected_ok
    assert progress.failed == sum(1 for c in SENT if c.records)


async def test_skip_item_errors_completes_every_campaign(
    sandbox: Sandbox, client: ExotelClient, tmp_path: Path
) -> None:
    """With skip_item_errors, failed items are passed over and every campaign completes."""
    sandbox.faults = Faults(p_item_failure=0.2)
    assert (await export(client, tmp_path, skip_item_errors=True)).complete


async def test_status_filter_exports_only_those_states(
    client: ExotelClient, tmp_path: Path
) -> None:
    """status="COMPLETED" exports the completed campaigns, whatever their casing."""
    progress = await export(client, tmp_path, ACCOUNT, status="COMPLETED")
    expected = {c.campaign_id for c in ACCOUNT if c.status.lower() == "completed"}
    assert {e.campaign_id for e in progress.entries} == expected


async def test_since_filter_compares_date_created(client: ExotelClient, tmp_path: Path) -> None:
    """since keeps campaigns created at or after it, and drops the older ones."""
    since = SENT[len(SENT) // 2].created
    assert since is not None
    progress = await export(client, tmp_path, since=since)
    expected = [c.campaign_id for c in SENT if c.created is not None and c.created >= since]
    assert [e.campaign_id for e in progress.entries] == expected


async def test_campaign_without_a_creation_time_is_kept_by_since(
    client: ExotelClient, tmp_path: Path
) -> None:
    """A campaign the list gives no date_created is exported rather than dropped."""

    async def undated() -> AsyncIterator[Campaign]:
        yield Campaign(SENT[0].campaign_id)

    request = AccountExportRequest(tmp_path / "out", since=datetime.now().astimezone())
    progress = await run_account_export(client, request, undated())
    assert [e.campaign_id for e in progress.entries] == [SENT[0].campaign_id]


def test_naive_since_is_refused() -> None:
    """since without a timezone is a ValueError: which day it means would be a guess."""
    with pytest.raises(ValueError, match="timezone-aware"):
        AccountExportRequest(Path("out"), since=datetime(2026, 11, 1))


@pytest.mark.parametrize("status", ["done", "unknown", ["completed", "Unknown"]])
def test_unknown_status_filter_is_refused(status: object) -> None:
    """A status outside the campaign vocabulary is a ValueError at the request."""
    with pytest.raises(ValueError, match=r"(?i)status"):
        AccountExportRequest(Path("out"), status=status)  # type: ignore[arg-type]


async def test_a_campaign_listed_twice_is_exported_once(
    client: ExotelClient, tmp_path: Path
) -> None:
    """Offset paging can repeat a campaign; it is exported once."""
    progress = await export(client, tmp_path, [SENT[0], SENT[0]])
    assert len(progress.entries) == 1


async def test_requests_in_flight_stay_within_campaigns_at_once(
    sandbox: Sandbox, client: ExotelClient, tmp_path: Path
) -> None:
    """Campaigns walk one page at a time: no more than campaigns_at_once requests at once."""
    sandbox.reset_stats()
    await export(client, tmp_path, campaigns_at_once=2)
    assert sandbox.stats.max_in_flight <= 2


async def test_a_capped_client_bounds_requests_below_campaigns_at_once(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """With max_in_flight=2, eight campaigns at once still make at most two requests."""
    sandbox.reset_stats()
    async with fast_client(sandbox, max_in_flight=2) as capped:
        progress = await export(capped, tmp_path, campaigns_at_once=8)
    assert progress.complete
    assert sandbox.stats.max_in_flight <= 2


async def test_default_source_is_the_account_list(
    sandbox: Sandbox, client: ExotelClient, tmp_path: Path
) -> None:
    """Without a source, every campaign client.campaigns() lists is exported."""
    sandbox.archived_gone = False
    progress = await run_account_export(client, AccountExportRequest(tmp_path / "out"))
    assert progress.complete
    listed = {c.campaign_id for c in sandbox.account}
    assert {e.campaign_id for e in progress.entries} == listed


async def test_default_source_asks_exotel_for_one_status(
    sandbox: Sandbox, client: ExotelClient, tmp_path: Path
) -> None:
    """With one status, the list request carries it: Exotel filters, not only the client."""
    request = AccountExportRequest(tmp_path / "out", status="paused")
    await run_account_export(client, request)
    lists = [e for e in sandbox.request_log if e.path.endswith("/sms-campaigns")]
    assert lists
    assert all(e.query["status"] == "paused" for e in lists)
    assert all(e.query["limit"] == "50" for e in lists)


async def test_folder_with_a_manifest_is_refused_without_resume_or_force(
    client: ExotelClient, tmp_path: Path
) -> None:
    """A second run into the same folder must say --resume or --force."""
    await export(client, tmp_path)
    with pytest.raises(ExportRefused, match="--resume"):
        await export(client, tmp_path)


async def test_resume_of_a_complete_export_fetches_nothing(
    sandbox: Sandbox, client: ExotelClient, tmp_path: Path
) -> None:
    """Resuming a complete export skips every campaign without a request."""
    await export(client, tmp_path)
    sandbox.reset_stats()
    progress = await export(client, tmp_path, resume=True)
    assert progress.complete
    assert sandbox.stats.requests == 0


async def test_resume_finishes_an_interrupted_export_exactly(
    sandbox: Sandbox, client: ExotelClient, tmp_path: Path
) -> None:
    """Stopped after a few pages, then resumed, every file equals a one-shot export's."""
    request = AccountExportRequest(tmp_path / "out", page_size=20)
    first = await run_account_export(client, request, source(SENT), should_stop=stop_after(8))
    assert first.interrupted
    assert not load_manifest(manifest_path(tmp_path / "out")).complete
    resumed = await export(client, tmp_path, page_size=20, resume=True)
    assert resumed.complete
    for campaign in SENT:
        written = lines(tmp_path / "out" / f"{campaign.campaign_id}.jsonl")
        assert len(written) == campaign.records
        assert len({r["sid"] for r in written}) == campaign.records


async def test_resume_retries_a_campaign_that_failed(
    sandbox: Sandbox, client: ExotelClient, tmp_path: Path
) -> None:
    """A campaign that failed in one run is tried again by --resume."""
    sandbox.archived_gone = True
    await export(client, tmp_path, ACCOUNT)
    sandbox.archived_gone = False
    assert (await export(client, tmp_path, ACCOUNT, resume=True)).complete


async def test_force_starts_over(client: ExotelClient, tmp_path: Path) -> None:
    """force overwrites an earlier run's files and manifest."""
    await export(client, tmp_path)
    assert (await export(client, tmp_path, force=True)).complete


async def test_resume_in_another_format_is_refused(client: ExotelClient, tmp_path: Path) -> None:
    """Resuming a jsonl export as csv is refused naming the format to use."""
    await export(client, tmp_path, SENT[:1])
    with pytest.raises(ExportRefused, match="--format jsonl"):
        await export(client, tmp_path, SENT[:1], format="csv", resume=True)


async def test_unreadable_manifest_is_refused_on_resume(
    client: ExotelClient, tmp_path: Path
) -> None:
    """A manifest that is not ours stops --resume with a one-line refusal."""
    (tmp_path / "out").mkdir()
    manifest_path(tmp_path / "out").write_text("{not json")
    with pytest.raises(ExportRefused, match="cannot read manifest"):
        await export(client, tmp_path, resume=True)


async def test_a_file_as_output_dir_is_refused(client: ExotelClient, tmp_path: Path) -> None:
    """An output_dir that is a file is refused before anything is fetched."""
    (tmp_path / "out").write_text("")
    with pytest.raises(ExportRefused, match="not a folder"):
        await export(client, tmp_path)


async def test_csv_export_writes_csv_files(client: ExotelClient, tmp_path: Path) -> None:
    """format="csv" names and writes every file as CSV with its header."""
    progress = await export(client, tmp_path, SENT[:2], format="csv")
    assert [e.file for e in progress.entries] == [f"{c.campaign_id}.csv" for c in SENT[:2]]
    header = (tmp_path / "out" / f"{SENT[0].campaign_id}.csv").read_text().splitlines()[0]
    assert header.startswith("sid,number")


async def test_listing_error_keeps_what_was_done_and_raises(
    client: ExotelClient, tmp_path: Path
) -> None:
    """A list that fails midway: campaigns begun finish, the manifest is written, it raises."""

    async def broken() -> AsyncIterator[Campaign]:
        yield as_campaign(SENT[0])
        raise NotFoundError("gone", status_code=404)

    request = AccountExportRequest(tmp_path / "out")
    with pytest.raises(NotFoundError):
        await run_account_export(client, request, broken())
    manifest = load_manifest(manifest_path(tmp_path / "out"))
    assert [e.complete for e in manifest.campaigns] == [True]
    assert not manifest.complete


async def test_unsafe_campaign_id_is_recorded_not_written(
    client: ExotelClient, tmp_path: Path
) -> None:
    """An id that cannot name a file is the campaign's error; nothing is written for it."""

    async def odd() -> AsyncIterator[Campaign]:
        yield Campaign("../escape")

    request = AccountExportRequest(tmp_path / "out")
    progress = await run_account_export(client, request, odd())
    (entry,) = progress.entries
    assert entry.error is not None
    assert entry.error.startswith("ValueError")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["manifest.json"]


async def test_a_day_old_since_keeps_only_recent_campaigns(
    client: ExotelClient, tmp_path: Path
) -> None:
    """since = the newest campaign's time minus a day keeps the campaigns of that last day."""
    newest = max(c.created for c in SENT if c.created is not None)
    since = newest - timedelta(days=1)
    progress = await export(client, tmp_path, since=since)
    assert all(
        c.created is not None and c.created >= since
        for c in SENT
        if c.campaign_id in {e.campaign_id for e in progress.entries}
    )


async def test_the_campaign_with_most_pages_left_goes_on_first(tmp_path: Path) -> None:
    """After every campaign's first page, the one with most pages left runs first, even
    when it was listed last: it would otherwise walk alone at the end of the run."""
    small = [SandboxCampaign(f"small{i}", 150) for i in range(2)]
    big = SandboxCampaign("big", 500)
    async with Sandbox(campaigns=[*small, big], seed=3) as sandbox, fast_client(sandbox) as c:
        await export(c, tmp_path, [*small, big], campaigns_at_once=1)
        served = [(e.path.split("/")[-2], e.query["offset"]) for e in sandbox.request_log]
    assert served[:3] == [("small0", "0"), ("small1", "0"), ("big", "0")]
    assert served[3:12] == [("big", str(offset)) for offset in range(50, 500, 50)]
    assert {name for name, _ in served[12:]} == {"small0", "small1"}


async def test_parking_a_campaign_after_its_first_page_costs_no_request(
    sandbox: Sandbox, client: ExotelClient, tmp_path: Path
) -> None:
    """Each campaign takes exactly the pages it holds (one when empty), parked or not."""
    sandbox.reset_stats()
    await export(client, tmp_path, page_size=50)
    asked = Counter(e.path.split("/")[-2] for e in sandbox.request_log)
    assert asked == {c.campaign_id: max(-(-c.records // 50), 1) for c in SENT}


async def test_at_most_half_the_campaigns_at_once_are_parked_ones_resumed(
    tmp_path: Path,
) -> None:
    """Parked campaigns are the big ones, each with its dedupe window: half run at once."""
    big = [SandboxCampaign(f"big{i}", 500) for i in range(6)]
    most = 0

    def seen(progress: AccountProgress) -> None:
        nonlocal most
        resumed = [p for p in progress.active.values() if p.started_at_record > 0]
        most = max(most, len(resumed))

    async with Sandbox(campaigns=big, seed=3) as sandbox, fast_client(sandbox) as c:
        request = AccountExportRequest(tmp_path / "out", campaigns_at_once=4)
        done = await run_account_export(c, request, source(big), on_progress=seen)
    assert done.complete
    assert most == 2


async def test_parquet_account_export_completes_campaigns_of_many_pages(
    client: ExotelClient, tmp_path: Path
) -> None:
    """Parquet files cannot be resumed, so their campaigns are never parked: each completes."""
    pq = pytest.importorskip("pyarrow.parquet")
    progress = await export(client, tmp_path, SENT[:3], format="parquet", page_size=20)
    assert progress.complete
    for campaign in SENT[:3]:
        table = pq.read_table(tmp_path / "out" / f"{campaign.campaign_id}.parquet")
        assert table.num_rows == campaign.records


async def test_a_stop_while_the_listing_waits_for_room_returns(
    client: ExotelClient, tmp_path: Path
) -> None:
    """A stop asked while the queue is full ends the run: the listing is not left waiting."""
    request = AccountExportRequest(tmp_path / "out", campaigns_at_once=1)
    run = run_account_export(client, request, source(SENT), should_stop=stop_after(1))
    progress = await asyncio.wait_for(run, timeout=30)  # a guard against a hang, not a timing
    assert progress.interrupted


async def test_a_campaign_parked_when_the_run_is_cancelled_waits_for_resume(
    tmp_path: Path,
) -> None:
    """Cancelled, the run resumes no parked campaign; the manifest lists what its first page
    wrote and --resume finishes it."""
    big = [SandboxCampaign(f"big{i}", 150) for i in range(4)]
    async with Sandbox(campaigns=big, seed=3) as sandbox, fast_client(sandbox) as c:
        request = AccountExportRequest(tmp_path / "out", campaigns_at_once=1)
        run: asyncio.Future[AccountProgress] | None = None
        cancels: list[bool] = []  # once: a second cancel stops the campaigns begun too

        def cancel_once_parked(progress: AccountProgress) -> None:
            if run is not None and progress.finished_records and not cancels:
                cancels.append(run.cancel())

        run = asyncio.ensure_future(
            run_account_export(c, request, source(big), on_progress=cancel_once_parked)
        )
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(run, timeout=30)  # a guard against a hang, not a timing
        served = [(e.path.split("/")[-2], e.query["offset"]) for e in sandbox.request_log]
        parked = load_manifest(manifest_path(tmp_path / "out")).campaigns[0]
        resumed = await export(c, tmp_path, big, resume=True)
    assert {offset for _, offset in served} == {"0"}  # first pages only, none resumed
    assert (parked.records, parked.file, parked.complete) == (50, "big0.jsonl", False)
    assert resumed.complete
    assert len(lines(tmp_path / "out" / "big0.jsonl")) == 150


async def test_a_campaign_that_fails_on_resume_keeps_its_first_page_in_the_manifest(
    tmp_path: Path,
) -> None:
    """A parked campaign whose resume fails at once still counts the page its file holds."""
    big = [SandboxCampaign("big0", 150)]
    async with Sandbox(campaigns=big, seed=3) as sandbox, fast_client(sandbox) as c:

        def fail_once_parked(progress: AccountProgress) -> None:
            if progress.finished_records and not progress.active:
                sandbox.faults = Faults(p_500=1.0)

        request = AccountExportRequest(tmp_path / "out")
        progress = await run_account_export(c, request, source(big), on_progress=fail_once_parked)
    (entry,) = progress.entries
    assert entry.error is not None
    assert (entry.records, entry.file, progress.records) == (50, "big0.jsonl", 50)


async def test_records_in_progress_never_go_back_when_a_parked_campaign_resumes(
    client: ExotelClient, tmp_path: Path
) -> None:
    """The records written, as on_progress sees them, only grow across park and resume."""
    seen: list[int] = []
    request = AccountExportRequest(tmp_path / "out", campaigns_at_once=2)
    await run_account_export(
        client, request, source(SENT), on_progress=lambda p: seen.append(p.records)
    )
    assert seen == sorted(seen)
    assert seen[-1] == sum(c.records for c in SENT)


@pytest.mark.parametrize("listing", ["slow", "ended"])
async def test_a_cancelled_run_stops_its_campaigns_at_their_next_page(
    tmp_path: Path, listing: str
) -> None:
    """Cancelled while the list is slow or after it ended, a campaign under way stops at its
    next page instead of running to its end; the manifest counts what its file holds and
    --resume finishes it."""
    big = SandboxCampaign("big0", 500)
    listing_stalls = asyncio.Event()

    async def slow_list() -> AsyncIterator[Campaign]:
        yield as_campaign(big)
        await listing_stalls.wait()

    async with Sandbox(campaigns=[big], seed=3) as sandbox, fast_client(sandbox) as c:
        request = AccountExportRequest(tmp_path / "out", campaigns_at_once=1)
        run: asyncio.Future[AccountProgress] | None = None
        cancels: list[bool] = []  # once: a second cancel stops the campaigns begun too

        def cancel_once_resumed(progress: AccountProgress) -> None:
            big0 = progress.active.get("big0")
            resumed = big0 is not None and big0.started_at_record and big0.pages
            if run is not None and resumed and not cancels:
                cancels.append(run.cancel())

        campaigns = slow_list() if listing == "slow" else source([big])
        run = asyncio.ensure_future(
            run_account_export(c, request, campaigns, on_progress=cancel_once_resumed)
        )
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(run, timeout=30)  # a guard against a hang, not a timing
        (entry,) = load_manifest(manifest_path(tmp_path / "out")).campaigns
        written = len(lines(tmp_path / "out" / "big0.jsonl"))
        resumed = await export(c, tmp_path, [big], resume=True)
    assert written < 500
    assert (entry.records, entry.file, entry.complete) == (written, "big0.jsonl", False)
    assert resumed.complete
    assert len(lines(tmp_path / "out" / "big0.jsonl")) == 500


async def test_an_error_in_one_campaign_stops_the_others_at_their_next_page(
    tmp_path: Path,
) -> None:
    """A failing progress callback (a bug, not an API error) ends the run soon: the other
    campaigns under way stop at their next page instead of running to their end."""
    big = [SandboxCampaign(f"big{i}", 500) for i in range(2)]
    raised: list[str] = []

    def broken_display(progress: AccountProgress) -> None:
        resumed = [i for i, p in progress.active.items() if p.started_at_record and p.pages]
        if len(resumed) == 2 and not raised:  # once, while both campaigns are resumed
            raised.append(resumed[0])
            raise RuntimeError("display bug")

    async with Sandbox(campaigns=big, seed=3) as sandbox, fast_client(sandbox) as c:
        request = AccountExportRequest(tmp_path / "out", campaigns_at_once=4)
        with pytest.raises(RuntimeError, match="display bug"):
            await run_account_export(c, request, source(big), on_progress=broken_display)
    written = [len(lines(tmp_path / "out" / f"{c.campaign_id}.jsonl")) for c in big]
    assert max(written) < 500
