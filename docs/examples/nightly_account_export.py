"""A nightly job: export every SMS campaign created yesterday, one file each, resumably."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterable, AsyncIterator
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

from exotel_async import Campaign, ExotelClient
from exotel_async.export import AccountExportRequest, AccountProgress, run_account_export

#: Exotel's timestamps are India time: "yesterday" is an Indian calendar day.
IST = timezone(timedelta(hours=5, minutes=30))


async def created_before(
    campaigns: AsyncIterable[Campaign], end: datetime
) -> AsyncIterator[Campaign]:
    """The campaigns created before ``end``: ``since`` bounds the day's start, this its end."""
    async for campaign in campaigns:
        if campaign.date_created is None or campaign.date_created < end:
            yield campaign


async def export_day(day: date, root: Path) -> AccountProgress:
    """Export the campaigns created on ``day`` into ``root/<day>/``; rerun to finish."""
    start = datetime.combine(day, time(), IST)
    request = AccountExportRequest(
        root / day.isoformat(),
        since=start,
        resume=True,  # a run killed part-way is finished by the next; a complete one is kept
    )
    async with ExotelClient.from_env() as client:
        listing = created_before(client.campaigns(), start + timedelta(days=1))
        return await run_account_export(client, request, listing)


if __name__ == "__main__":
    yesterday = datetime.now(IST).date() - timedelta(days=1)
    progress = asyncio.run(export_day(yesterday, Path("exports")))
    print(f"{progress.records} records, {progress.completed} campaigns complete")
    sys.exit(0 if progress.complete else 1)  # cron and CronJobs retry on failure
