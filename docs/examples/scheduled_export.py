"""A scheduled export job (cron, a Kubernetes CronJob): run it again and it resumes."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from exotel_async import APIError, ExotelClient, TransportError
from exotel_async.export import ExportProgress, ExportRequest, run_export

logger = logging.getLogger("nightly_export")


async def export_campaign(
    campaign_id: str, output: Path, *, attempts: int = 5, pause: float = 60.0
) -> ExportProgress:
    """Export a campaign to JSONL, resuming from the checkpoint after any failure.

    Each attempt continues where the last one stopped, so a crash (or a killed pod) costs
    at most the pages since the last checkpoint (a second's worth, or 100 pages). The client
    has already retried each request; these attempts ride out longer outages.
    """
    request = ExportRequest(campaign_id, output, resume=True)
    async with ExotelClient.from_env() as client:
        for attempt in range(1, attempts + 1):
            try:
                progress = await run_export(client, request)
            except (TransportError, APIError) as exc:
                if isinstance(exc, APIError) and exc.status_code < 500 and exc.status_code != 429:
                    raise  # wrong credentials or campaign: waiting will not help
                logger.warning("attempt %d stopped: %s; resuming in %.0fs", attempt, exc, pause)
                await asyncio.sleep(pause)
                continue
            logger.info("exported %d records to %s", progress.records, output)
            return progress
    raise RuntimeError(f"export of {campaign_id} did not finish in {attempts} attempts")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(export_campaign("491dd6c97d64475ba0ce346a18530ce5", Path("campaign.jsonl")))
