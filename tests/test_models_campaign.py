"""Campaign: one typed class for both documented shapes, built by the one converter."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import cattrs
import pytest

from exotel_async import Campaign, CampaignStatus, converter

IST = timezone(timedelta(hours=5, minutes=30))
#: Source A, the reference table: sid, lower-case status, flat counters.
FLAT = {
    "sid": "5dca3b9c1b4f4c4e9f3c0f1a2b3c4d5e",
    "name": "Diwali Offer",
    "status": "completed",
    "date_created": "2026-11-20T10:15:00+05:30",
    "scheduled": 1000,
    "submitted": 990,
    "sent": 950,
    "failed": 30,
    "invalid": 10,
    "report_url": "https://example.invalid/r.csv",
}
#: Source B, the reporting guide: id, capitalised status, counters in a stats object.
STATS = {
    "id": "5dca3b9c1b4f4c4e9f3c0f1a2b3c4d5e",
    "name": "Diwali Offer",
    "status": "Completed",
    "date_created": "2026-11-20 10:15:00",
    "stats": {
        "total": 1000,
        "submitted": 990,
        "delivered": 900,
        "failed": 40,
        "pending": 50,
        "rejected": 10,
    },
}


def structure(data: Any) -> Campaign:
    """Build a Campaign with the library's converter."""
    return converter.structure(data, Campaign)


def test_flat_shape_reads_sid_and_counters() -> None:
    """The flat shape gives campaign_id from sid and its five counters."""
    campaign = structure(FLAT)
    assert campaign.campaign_id == FLAT["sid"]
    counters = (campaign.scheduled, campaign.submitted, campaign.sent, campaign.failed)
    assert counters == (1000, 990, 950, 30)
    assert campaign.invalid == 10


def test_stats_shape_reads_id_and_stats_counters() -> None:
    """The stats shape gives campaign_id from id and the counters of its stats object."""
    campaign = structure(STATS)
    assert campaign.campaign_id == STATS["id"]
    counters = (campaign.total, campaign.delivered, campaign.pending, campaign.rejected)
    assert counters == (1000, 900, 50, 10)
    assert (campaign.submitted, campaign.failed) == (990, 40)


def test_both_shapes_give_the_same_creation_time() -> None:
    """ISO with offset and Exotel's space-separated India time read as the same instant."""
    expected = datetime(2026, 11, 20, 10, 15, tzinfo=IST)
    assert structure(FLAT).date_created == structure(STATS).date_created == expected


def test_status_is_kept_raw_and_compared_by_state() -> None:
    """``Completed`` stays as sent, and its state is COMPLETED like ``completed``'s."""
    campaign = structure(STATS)
    assert campaign.status == "Completed"
    assert campaign.state is structure(FLAT).state is CampaignStatus.COMPLETED


@pytest.mark.parametrize("raw", ["in-progress", "IN-PROGRESS", "In_progress", " in progress "])
def test_campaign_status_folds_case_and_separators(raw: str) -> None:
    """Any casing, and _ or a space for -, name the same state."""
    assert CampaignStatus(raw) is CampaignStatus.IN_PROGRESS


def test_campaign_status_refuses_an_unknown_name() -> None:
    """CampaignStatus("done") is a ValueError: a typo in a filter must not pass."""
    with pytest.raises(ValueError, match="done"):
        CampaignStatus("done")


def test_unknown_status_is_kept_with_state_unknown() -> None:
    """A status this version does not know passes through, its state UNKNOWN."""
    campaign = structure({"sid": "a", "status": "Frozen"})
    assert (campaign.status, campaign.state) == ("Frozen", CampaignStatus.UNKNOWN)


def test_size_is_total_or_scheduled() -> None:
    """size is the stats total, or the flat scheduled count, or None from a list item."""
    sizes = [structure(d).size for d in (STATS, FLAT, {"sid": "a"})]
    assert sizes == [1000, 1000, None]


def test_list_item_has_no_counters() -> None:
    """A list item with sid, name, status and date_created leaves every counter None."""
    campaign = structure({k: FLAT[k] for k in ("sid", "name", "status", "date_created")})
    assert (campaign.scheduled, campaign.total, campaign.report_url) == (None, None, None)


def test_unknown_fields_are_kept_in_extra() -> None:
    """Fields this version does not know, top-level or in stats, land in extra."""
    campaign = structure({**STATS, "channel": "sms", "stats": {"total": 3, "clicked": 2}})
    assert campaign.extra == {"channel": "sms", "clicked": 2}


def test_top_level_counter_wins_over_stats() -> None:
    """When both shapes carry a counter, the top-level one is read."""
    assert structure({"sid": "a", "failed": 7, "stats": {"failed": 9}}).failed == 7


def test_counters_given_as_digits_are_read_as_ints() -> None:
    """A counter sent as a string of digits is read as the number."""
    assert structure({"sid": "a", "sent": "12"}).sent == 12


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"sid": "a", "sent": 1.5}, "sent"),
        ({"sid": "a", "sent": True}, "sent"),
        ({"sid": "a", "stats": {"total": "many"}}, "total"),
        ({"sid": {"nested": 1}}, "campaign_id"),
        ({"name": "no id"}, "campaign_id"),
        ({"sid": "a", "date_created": "yesterday"}, "date_created"),
    ],
)
def test_wrong_types_name_the_field(data: dict[str, Any], field: str) -> None:
    """A value of the wrong type fails naming its field, not deep inside cattrs."""
    with pytest.raises(cattrs.BaseValidationError) as caught:
        structure(data)
    assert any(f"$.{field}" in note for note in cattrs.transform_error(caught.value))


def test_stats_that_is_not_an_object_is_refused() -> None:
    """A stats value that is not an object is a TypeError naming stats."""
    with pytest.raises(TypeError, match="stats: expected an object"):
        structure({"sid": "a", "stats": [1, 2]})


def test_campaign_is_frozen() -> None:
    """A Campaign cannot be changed after it is built."""
    campaign = structure(FLAT)
    with pytest.raises(AttributeError):
        campaign.name = "other"  # type: ignore[misc]
