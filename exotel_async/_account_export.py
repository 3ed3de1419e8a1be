"""Account-wide export: every campaign to its own file, a manifest beside them, resumable.

Each campaign goes through ``run_export``, the single-campaign engine, with one shared
client (so one rate controller for the account). Campaigns run side by side, each walking
one page at a time and saving its checkpoint after every page: after a crash, ``resume``
fetches again at most the one page each campaign had in hand.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
import json
import math
import time
from collections.abc import AsyncIterable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from ._client import ExotelClient
from ._errors import ExotelError, ExportRefused
from ._export import (
    FORMATS,
    ExportProgress,
    ExportRequest,
    _exclusive,
    checkpoint_path,
    load_checkpoint,
    run_export,
    write_json_atomically,
)
from ._models import Campaign, CampaignStatus
from ._protocol import MAX_LIMIT, check_path_segment
from ._transport import request_priority

MANIFEST = "manifest.json"
_MANIFEST_VERSION = 1
#: Seconds between two writes of the manifest while campaigns finish; it is written at
#: the end too. The campaigns' own checkpoints, not the manifest, decide what a resume does.
_MANIFEST_SECONDS = 1.0


def _statuses(value: object) -> frozenset[CampaignStatus] | None:
    """Take one status or several, in any casing, as a set of ``CampaignStatus``."""
    if value is None:
        return None
    names = [value] if isinstance(value, str) else list(value)  # type: ignore[call-overload]
    if not names:
        raise ValueError("status must name at least one campaign state")
    states = frozenset(CampaignStatus(name) for name in names)
    if CampaignStatus.UNKNOWN in states:
        raise ValueError("status must name campaign states, not 'unknown'")
    return states


def _aware(_instance: object, attribute: attrs.Attribute[Any], value: datetime | None) -> None:
    """Refuse a naive datetime: which day it means depends on a timezone."""
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{attribute.name} must be timezone-aware, got {value!r}")


@attrs.frozen
class AccountExportRequest:
    """What to export of the account, and where.

    Attributes:
        output_dir: The folder for the campaign files and ``manifest.json``; created if
            missing (its parent must exist).
        format: ``jsonl``, ``csv`` or ``parquet`` (Parquet files cannot be resumed).
        resume: Finish what an earlier run left unfinished; skip campaigns it completed.
        force: Overwrite the files of an earlier run.
        status: Only campaigns in these states (one or several, any casing).
        skip_status: Leave out campaigns in these states: ``archived``, whose SMS details
            Exotel no longer serves, would otherwise fail every run.
        since: Only campaigns created at or after this time. Exotel documents no date
            filter, so this is applied to each listed campaign's ``date_created``; a
            campaign without one is exported rather than silently left out.
        campaigns_at_once: Campaigns exported at once, each one page at a time. Their
            requests in flight are at most this many, and at most the client's
            ``max_in_flight``: a client capped below this lets a campaign that is saving
            its checkpoint leave its slot to another.
        page_size: Records per request.
        skip_item_errors: Pass over items Exotel reports as failed instead of failing the
            campaign.
    """

    output_dir: Path = attrs.field(converter=Path)
    format: str = attrs.field(default="jsonl", validator=attrs.validators.in_(FORMATS))
    resume: bool = False
    force: bool = False
    status: frozenset[CampaignStatus] | None = attrs.field(default=None, converter=_statuses)
    skip_status: frozenset[CampaignStatus] | None = attrs.field(default=None, converter=_statuses)
    since: datetime | None = attrs.field(default=None, validator=_aware)
    campaigns_at_once: int = attrs.field(
        default=32,
        validator=[attrs.validators.instance_of(int), attrs.validators.in_(range(1, 65))],
    )
    page_size: int = attrs.field(
        default=50,
        validator=[
            attrs.validators.instance_of(int),
            attrs.validators.in_(range(1, MAX_LIMIT + 1)),
        ],
    )
    skip_item_errors: bool = False

    def wants(self, campaign: Campaign) -> bool:
        """Whether ``campaign`` passes the status and ``since`` filters."""
        return campaign_wanted(campaign, self.status, self.since, self.skip_status)


def campaign_wanted(
    campaign: Campaign,
    status: frozenset[CampaignStatus] | None,
    since: datetime | None,
    skip_status: frozenset[CampaignStatus] | None = None,
) -> bool:
    """Whether ``campaign`` is in one of the states ``status`` names (any, for None) and
    none ``skip_status`` names, and was created at or after ``since``; a campaign without
    ``date_created`` passes."""
    if status is not None and campaign.state not in status:
        return False
    if skip_status is not None and campaign.state in skip_status:
        return False
    created = campaign.date_created
    return since is None or created is None or created >= since


def list_campaigns(
    client: ExotelClient, status: frozenset[CampaignStatus] | None
) -> AsyncIterable[Campaign]:
    """The account's campaigns, asked for the one state ``status`` names, if it names one."""
    one = next(iter(status)) if status and len(status) == 1 else None
    # 50 a page, Exotel's largest: the list's requests share the slots with the pages'.
    return client.campaigns(status=one, page_size=50)


@attrs.frozen
class ManifestEntry:
    """One campaign of an account export, as ``manifest.json`` lists it.

    Attributes:
        campaign_id: The campaign's id.
        name: Its name, as listed.
        status: Its status, as listed.
        records: Records its file holds.
        file: Its file, relative to the output folder; None when none was written.
        complete: Its file holds the whole campaign.
        error: Why it stopped, when it failed (``NotFoundError: ...``), else None.
    """

    campaign_id: str
    name: str | None = None
    status: str | None = None
    records: int = 0
    file: str | None = None
    complete: bool = False
    error: str | None = None


@attrs.frozen
class Manifest:
    """``manifest.json``: every campaign of the export and whether all are complete."""

    format: str
    campaigns: tuple[ManifestEntry, ...]
    complete: bool = False
    version: int = _MANIFEST_VERSION


def manifest_path(output_dir: Path) -> Path:
    """Where the manifest of an account export in ``output_dir`` is."""
    return output_dir / MANIFEST


def load_manifest(path: Path) -> Manifest:
    """Read a manifest, refusing one that is not ours or from another version."""
    try:
        data = json.loads(path.read_text())
        entries = tuple(ManifestEntry(**entry) for entry in data.pop("campaigns"))
        manifest = Manifest(campaigns=entries, **data)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ExportRefused(
            f"cannot read manifest {path}: {exc}; start over with --force"
        ) from None
    if manifest.version != _MANIFEST_VERSION:
        raise ExportRefused(f"manifest {path} is from another version of exotel-async")
    return manifest


def _save_manifest(path: Path, manifest: Manifest) -> None:
    """Write the manifest atomically: a crash leaves the old one or the new one."""
    write_json_atomically(path, attrs.asdict(manifest), indent=1)


@attrs.define
class AccountProgress:
    """Where an account export stands; passed to the progress callback as it moves."""

    #: Campaigns listed that pass the filters, so far.
    campaigns: int = 0
    #: Campaigns whose file is complete (including those an earlier run completed).
    completed: int = 0
    #: Campaigns that stopped on an error; the manifest says why.
    failed: int = 0
    #: The campaigns being exported now, with their own progress.
    active: dict[str, ExportProgress] = attrs.Factory(dict)
    #: Records in the files of the campaigns no longer active.
    finished_records: int = 0
    elapsed: float = 0.0
    #: ``should_stop`` said so: the active campaigns saved their checkpoints.
    interrupted: bool = False
    entries: list[ManifestEntry] = attrs.Factory(list)

    @property
    def records(self) -> int:
        """Records written in all, the active campaigns' included."""
        return self.finished_records + sum(p.records for p in self.active.values())

    @property
    def complete(self) -> bool:
        """Every campaign listed is complete and the run was not interrupted."""
        return not self.interrupted and all(e.complete for e in self.entries)


class _Run:
    """One account export under way: its progress, its manifest, and their writes."""

    def __init__(
        self,
        request: AccountExportRequest,
        previous: Manifest | None,
        on_progress: Callable[[AccountProgress], None] | None,
        clock: Callable[[], float],
    ) -> None:
        self.request = request
        self.path = manifest_path(request.output_dir)
        self.progress = AccountProgress()
        self.entries: dict[str, ManifestEntry] = {}
        if previous is not None:  # campaigns not listed this time keep their line
            self.entries = {e.campaign_id: e for e in previous.campaigns}
        self.on_progress = on_progress
        self.clock = clock
        self.began = clock()
        self.saved_at = self.began
        self._lock = asyncio.Lock()
        #: Records of the campaigns parked after their first page, by campaign.
        self._parked: dict[str, int] = {}

    def report(self) -> None:
        """Tell the progress callback."""
        self.progress.elapsed = self.clock() - self.began
        if self.on_progress is not None:
            self.on_progress(self.progress)

    def start(self, campaign_id: str) -> None:
        """Show a campaign as active; a parked one's records move back with it."""
        parked = self._parked.pop(campaign_id, 0)
        self.progress.finished_records -= parked
        self.progress.active[campaign_id] = ExportProgress(records=parked, started_at_record=parked)
        self.report()

    def park(self, entry: ManifestEntry) -> None:
        """Record a campaign that waits, after its first page, for its turn."""
        self.finish(entry)
        self._parked[entry.campaign_id] = entry.records

    def finish(self, entry: ManifestEntry) -> None:
        """Record a campaign's outcome."""
        self.entries[entry.campaign_id] = entry
        progress = self.progress
        progress.active.pop(entry.campaign_id, None)
        progress.finished_records += entry.records
        if entry.complete:
            progress.completed += 1
        elif entry.error is not None:
            progress.failed += 1
        self.report()

    def manifest(self, *, listed: bool) -> Manifest:
        """The manifest as things stand; complete only once the whole list was seen."""
        entries = tuple(self.entries.values())
        self.progress.entries = list(entries)
        done = listed and not self.progress.interrupted and all(e.complete for e in entries)
        return Manifest(format=self.request.format, campaigns=entries, complete=done)

    async def save(self, *, listed: bool = False, now: bool = True) -> None:
        """Write the manifest (at most every ``_MANIFEST_SECONDS`` unless ``now``)."""
        if not now and self.clock() - self.saved_at < _MANIFEST_SECONDS:
            return
        self.saved_at = self.clock()
        async with self._lock:
            await asyncio.to_thread(_save_manifest, self.path, self.manifest(listed=listed))


def _plan(request: AccountExportRequest) -> Manifest | None:
    """Check the folder and an earlier run's manifest; return the manifest to resume."""
    folder = request.output_dir
    if folder.exists() and not folder.is_dir():
        raise ExportRefused(f"{folder} is not a folder: give a folder for the campaign files")
    if not folder.parent.is_dir():
        raise ExportRefused(f"cannot create {folder}: the folder {folder.parent} does not exist")
    if request.resume and request.force:
        raise ExportRefused("--resume and --force contradict each other: choose one")
    path = manifest_path(folder)
    if not path.exists() or request.force:
        return None
    if not request.resume:
        raise ExportRefused(
            f"{folder} holds an account export: pass --resume to finish it, "
            "--force to start over, or choose another --output-dir"
        )
    previous = load_manifest(path)
    if previous.format != request.format:
        raise ExportRefused(
            f"{folder} holds a {previous.format} export: pass --format {previous.format} "
            "to resume it, or --force to start over"
        )
    return previous


async def run_account_export(
    client: ExotelClient,
    request: AccountExportRequest,
    campaigns: AsyncIterable[Campaign] | None = None,
    *,
    on_progress: Callable[[AccountProgress], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    clock: Callable[[], float] = time.monotonic,
) -> AccountProgress:
    """Export every campaign ``campaigns`` lists that passes the filters, one file each.

    Up to ``request.campaigns_at_once`` campaigns run at once, each through ``run_export``
    with the shared ``client``. A campaign that fails (archived, so 404; a failed item)
    is recorded in the manifest with its error and the others go on. ``manifest.json`` is
    rewritten atomically as campaigns finish and at the end.

    Args:
        client: An open client, shared by every campaign.
        request: What to export, where, and whether to resume or overwrite.
        campaigns: The campaigns to consider; by default ``client.campaigns()``, asked for
            the one state ``request.status`` names, if it names one.
        on_progress: Called as pages arrive and campaigns start and finish.
        should_stop: Asked after every page; True checkpoints the active campaigns,
            starts no more, and returns with ``interrupted`` set.
            Cancelling the call does the same, then raises; cancelling it again stops
            the active campaigns at once, each with its checkpoint.
        clock: Seconds from any origin.

    Returns:
        The progress: ``complete`` when every campaign listed is complete; ``entries``
        are the manifest's lines.

    Raises:
        ExportRefused: The folder holds another run's files and neither ``resume`` nor
            ``force`` was asked, or another export holds it.
        ExotelError: Listing the campaigns failed; the manifest says what was done.
    """
    previous = _plan(request)
    if campaigns is None:
        campaigns = list_campaigns(client, request.status)
    request.output_dir.mkdir(exist_ok=True)
    with _exclusive(manifest_path(request.output_dir)):
        run = _Run(request, previous, on_progress, clock)
        listed = False
        try:
            await _export_all(client, run, campaigns, should_stop)
            listed = not run.progress.interrupted
        finally:
            run.progress.elapsed = clock() - run.began
            await run.save(listed=listed)
    return run.progress


async def _export_all(
    client: ExotelClient,
    run: _Run,
    campaigns: AsyncIterable[Campaign],
    should_stop: Callable[[], bool],
) -> None:
    """List the campaigns into a queue while ``campaigns_at_once`` workers export them."""
    queue = _Queue(run.request.campaigns_at_once)
    halted = False

    def stop() -> bool:
        return halted or should_stop()

    async def work() -> None:
        nonlocal halted
        try:
            while (job := await queue.take(stop)) is not None:
                try:
                    await _run_job(client, run, queue, job, stop)
                finally:
                    await queue.done(job)
        except BaseException:
            # A bug: it is raised once the other campaigns stop at their next page.
            halted = True
            await queue.close(drain=False)  # the listing must not wait for it
            raise

    workers = [asyncio.ensure_future(work()) for _ in range(run.request.campaigns_at_once)]
    try:
        await _list_into(run, campaigns, queue, should_stop)
    except BaseException as exc:
        # A list that failed: what it listed is still exported. Cancelled (Ctrl-C twice):
        # the campaigns under way stop at their next page, checkpointed, and none starts.
        halted = not isinstance(exc, Exception)
        raise
    finally:
        await queue.close(drain=not halted)
        ending = asyncio.gather(*workers, return_exceptions=True)
        try:
            outcomes = await asyncio.shield(ending)
        except asyncio.CancelledError:
            halted = True  # cancelled once listed: the same stop; cancelled again, at once
            await ending
            raise
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome  # not a campaign's API error, which its entry records: a bug
    run.progress.interrupted = run.progress.interrupted or should_stop()


async def _list_into(
    run: _Run,
    campaigns: AsyncIterable[Campaign],
    queue: _Queue,
    should_stop: Callable[[], bool],
) -> None:
    """Queue every listed campaign that passes the filters, once, in listed order."""
    seen: set[str] = set()
    # The list feeds every worker: its pages go first, and never wait behind campaigns'.
    urgent = request_priority.set(math.inf)
    try:
        async for campaign in campaigns:
            if campaign.campaign_id in seen or not run.request.wants(campaign):
                continue
            seen.add(campaign.campaign_id)
            run.progress.campaigns += 1
            # Listed order in the manifest, whatever order campaigns finish in.
            run.entries.setdefault(
                campaign.campaign_id,
                ManifestEntry(campaign.campaign_id, campaign.name, campaign.status),
            )
            if not await queue.put(campaign):
                return
            if should_stop():
                run.progress.interrupted = True
                return
    finally:
        request_priority.reset(urgent)


@attrs.frozen
class _Job:
    """A campaign to export: not started yet (``pages_left`` None), or parked."""

    campaign: Campaign
    pages_left: int | None = None


class _Queue:
    """The campaigns waiting for a worker.

    Each campaign first runs for one page, which tells its size, and is then parked if it
    has more. Workers take campaigns not started yet first, in listed order, then the
    parked one with the most pages left. A big campaign listed last would otherwise walk
    alone at the end, one page at a time, while the other slots stay idle.

    At most half the workers run parked campaigns at once: those are the big ones, each
    holding a dedupe window of up to 12,000 keys, and half keep the request slots busy.
    """

    def __init__(self, workers: int) -> None:
        self._fresh: collections.deque[_Job] = collections.deque()
        self._parked: list[tuple[int, int, _Job]] = []
        self._order = itertools.count()
        self._ahead = workers
        self._resumed, self._most_resumed = 0, max(workers // 2, 1)
        self._closed = self._stopped = False
        self._changed = asyncio.Condition()

    async def put(self, campaign: Campaign) -> bool:
        """Queue a listed campaign, waiting while enough are queued that no worker will
        idle; False if the queue was closed meanwhile."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._closed or len(self._fresh) < self._ahead)
            if self._closed:
                return False
            self._fresh.append(_Job(campaign))
            self._changed.notify_all()
            return True

    async def park(self, job: _Job) -> None:
        """Queue a campaign again after its first page, by the pages it has left."""
        async with self._changed:
            heapq.heappush(self._parked, (-(job.pages_left or 0), next(self._order), job))
            self._changed.notify_all()

    async def close(self, *, drain: bool) -> None:
        """No campaign will be listed any more; unless ``drain``, only those under way go
        on (a parked one waits, checkpointed, for ``--resume``)."""
        async with self._changed:
            self._close(drain=drain)

    def _close(self, *, drain: bool) -> None:
        """``close`` with the lock held."""
        self._closed = True
        if not drain:
            self._stopped = True
            self._fresh.clear()
        self._changed.notify_all()

    async def take(self, should_stop: Callable[[], bool]) -> _Job | None:
        """The next campaign to export, or None once there is none or a stop was asked."""
        async with self._changed:
            await self._changed.wait_for(self._ready)
            if should_stop():
                self._close(drain=False)  # the listing may be waiting in put() for room
                return None
            if self._stopped or not (self._fresh or self._parked):
                return None
            if self._fresh:
                self._changed.notify_all()  # room for the listing
                return self._fresh.popleft()
            self._resumed += 1
            return heapq.heappop(self._parked)[2]

    def _ready(self) -> bool:
        resumable = bool(self._parked) and self._resumed < self._most_resumed
        ended = self._stopped or (self._closed and not self._parked)
        return bool(self._fresh) or resumable or ended

    async def done(self, job: _Job) -> None:
        """A job taken is over (finished, failed, parked or stopped)."""
        if job.pages_left is not None:
            async with self._changed:
                self._resumed -= 1
                self._changed.notify_all()


async def _run_job(
    client: ExotelClient,
    run: _Run,
    queue: _Queue,
    job: _Job,
    should_stop: Callable[[], bool],
) -> None:
    """Export a campaign: its first page alone (then park it) or, once parked, the rest."""
    first = job.pages_left is None
    # Its first page is what tells a campaign's size: it goes before every other page.
    request_priority.set(math.inf if first else job.pages_left or 0)
    entry, latest = await _export_campaign(client, run, job.campaign, should_stop, first=first)
    if first and latest.interrupted and not should_stop() and entry.error is None:
        run.park(entry)
        left = max(latest.total - latest.records, 0) if latest.total is not None else 0
        await queue.park(attrs.evolve(job, pages_left=-(-left // run.request.page_size)))
        return
    run.finish(entry)
    await run.save(now=False)


async def _export_campaign(
    client: ExotelClient,
    run: _Run,
    campaign: Campaign,
    should_stop: Callable[[], bool],
    *,
    first: bool,
) -> tuple[ManifestEntry, ExportProgress]:
    """Export one campaign, or only its first page if ``first`` and it has more (and its
    file can be resumed); record its error instead of raising it."""
    request = run.request
    entry = ManifestEntry(campaign.campaign_id, campaign.name, campaign.status)
    latest = ExportProgress()
    try:
        check_path_segment("campaign_id", campaign.campaign_id)  # it names a file too
    except ValueError as exc:
        return attrs.evolve(entry, error=f"ValueError: {exc}"), latest
    name = f"{campaign.campaign_id}.{request.format}"
    sub = ExportRequest(
        campaign_id=campaign.campaign_id,
        output=request.output_dir / name,
        format=request.format,
        # A parked campaign goes on from the checkpoint of its first page.
        resume=request.resume or not first,
        force=request.force and first,
        page_size=request.page_size,
        concurrency=1,
        skip_item_errors=request.skip_item_errors,
        checkpoint_pages=1,
    )
    run.start(campaign.campaign_id)

    def on_page(progress: ExportProgress) -> None:
        nonlocal latest
        latest = progress
        run.progress.active[campaign.campaign_id] = progress
        run.report()

    # A file that cannot be resumed (Parquet) is written in one go.
    parks = first and FORMATS[request.format].resumable

    def stop() -> bool:
        # After its first page, a campaign with more to fetch waits its turn by size.
        more = latest.total is not None and latest.records < latest.total
        return should_stop() or (parks and latest.pages > 0 and more)

    try:
        latest = await run_export(client, sub, on_page=on_page, should_stop=stop)
    except (ExotelError, OSError) as exc:
        # Failed before its first page: what an earlier page (parked, or another run) wrote.
        written = latest.records if latest.pages else _records_kept(request.output_dir / name)
        failed = attrs.evolve(
            entry, records=written, file=name if written else None, error=_error(exc)
        )
        return failed, latest
    done = attrs.evolve(entry, records=latest.records, file=name, complete=latest.completed)
    return done, latest


def _records_kept(output: Path) -> int:
    """The records the checkpoint beside ``output`` vouches for; 0 when there is none."""
    try:
        return load_checkpoint(checkpoint_path(output)).records_written if output.exists() else 0
    except ExportRefused:
        return 0


def _error(exc: BaseException) -> str:
    """An error as one manifest line: its class and message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
