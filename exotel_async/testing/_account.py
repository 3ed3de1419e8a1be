"""The sandbox's account: SMS campaigns with a name, a status, a creation time and records.

Exotel documents two shapes for one campaign (see the API notes): a flat one with ``sid``
and counters ``scheduled``/``submitted``/``sent``/``failed``/``invalid``, and one with ``id``,
a capitalised status and a ``stats`` object. The sandbox serves either, or both in one account,
with counters computed from the campaign's own records.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import attrs

from exotel_async.testing._data import IST

__all__ = [
    "CAMPAIGN_SHAPES",
    "CAMPAIGN_SORT_ORDERS",
    "CAMPAIGN_STATUSES",
    "SandboxCampaign",
    "make_account",
]

#: Exotel's campaign states; the sandbox serves some of them in other casings.
CAMPAIGN_STATUSES: Final = (
    "created",
    "scheduled",
    "in-progress",
    "paused",
    "completed",
    "archived",
)
#: ``flat`` (``sid``, flat counters), ``stats`` (``id``, ``stats`` object) or ``mixed`` (each
#: campaign keeps one of the two).
CAMPAIGN_SHAPES: Final = ("flat", "stats", "mixed")

#: The last campaign of a generated account is created on this day: fixed, so that an
#: account is the same whenever it is generated.
ACCOUNT_END: Final = datetime(2026, 11, 26, 18, 0, tzinfo=IST)

# (weight, status) of a generated account; created and scheduled campaigns hold no SMS yet.
_STATUS_WEIGHTS: Final = (
    (6, "created"),
    (6, "scheduled"),
    (10, "in-progress"),
    (8, "paused"),
    (60, "completed"),
    (10, "archived"),
)
_UNSENT: Final = frozenset({"created", "scheduled"})
_ADJECTIVES: Final = ("Diwali", "Monsoon", "Weekend", "Flash", "Festive", "Renewal", "Welcome")
_NOUNS: Final = ("Offer", "Reminder", "OTP batch", "Survey", "Alert", "Newsletter", "Promo")


@attrs.frozen
class SandboxCampaign:
    """One SMS campaign of the sandbox's account.

    Attributes:
        campaign_id: Its id, served as ``sid`` or ``id``.
        records: How many SMS its sms-details serve.
        name: Its name.
        status: Its status as served, in any casing (``completed``, ``Paused``, ...).
        created: When it was created, timezone-aware; None draws a time from seed and id.
    """

    campaign_id: str
    records: int
    name: str | None = None
    status: str = "completed"
    created: datetime | None = None


def make_account(
    campaigns: int,
    records: int,
    *,
    max_records: int = 20_000,
    seed: int = 0,
    days: float = 30.0,
) -> list[SandboxCampaign]:
    """Generate an account of ``campaigns`` campaigns holding ``records`` SMS in all.

    Sizes follow a heavy tail from 0 to ``max_records`` (a few big campaigns, many small
    ones, some empty); states follow a plausible mix, some in other casings; creation times
    spread over the ``days`` before ``ACCOUNT_END``, oldest first. The same arguments give
    the same account.
    """
    if campaigns < 1:
        raise ValueError(f"campaigns must be >= 1, got {campaigns!r}")
    if records < 0 or max_records < 0:
        raise ValueError(f"records and max_records must be >= 0, got {records}, {max_records}")
    rng = random.Random(f"account\x00{seed}")
    statuses = rng.choices(
        [s for _, s in _STATUS_WEIGHTS], [w for w, _ in _STATUS_WEIGHTS], k=campaigns
    )
    # A few sent campaigns are empty (every recipient filtered out before sending).
    weights = [
        0.0 if status in _UNSENT or rng.random() < 0.05 else rng.paretovariate(1.2)
        for status in statuses
    ]
    sizes = _fill(weights, records, max_records)
    step = timedelta(days=days) / campaigns
    return [
        SandboxCampaign(
            campaign_id=f"{rng.getrandbits(128):032x}",
            records=size,
            name=f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} {index + 1}",
            status=_cased(status, rng),
            created=ACCOUNT_END
            - step * (campaigns - 1 - index)
            - timedelta(seconds=rng.randrange(int(step.total_seconds() * 0.9) + 1)),
        )
        for index, (status, size) in enumerate(zip(statuses, sizes, strict=True))
    ]


def _cased(status: str, rng: random.Random) -> str:
    """Mostly the documented lower case; sometimes capitalised or upper case, as seen."""
    roll = rng.random()
    if roll < 0.1:
        return status.capitalize()
    return status.upper() if roll < 0.15 else status


def _fill(weights: Sequence[float], total: int, cap: int) -> list[int]:
    """Integer sizes proportional to ``weights``, each at most ``cap``, summing to ``total``."""
    room = sum(cap for w in weights if w > 0)
    if total > room:
        raise ValueError(
            f"{total} records do not fit: the sent campaigns hold at most {room} "
            f"(raise max_records or the number of campaigns)"
        )
    low, high = 0.0, float(total) / max(min((w for w in weights if w > 0), default=1.0), 1e-9)

    def sized(scale: float) -> list[int]:
        return [min(cap, int(w * scale)) for w in weights]

    for _ in range(200):  # bisect the scale whose capped sum comes closest below total
        middle = (low + high) / 2
        low, high = (middle, high) if sum(sized(middle)) <= total else (low, middle)
    sizes = sized(low)
    short = total - sum(sizes)
    # Hand out what rounding left, one record at a time, to the biggest uncapped campaigns.
    order = sorted((i for i, w in enumerate(weights) if w > 0), key=lambda i: -weights[i])
    while short > 0:
        for i in order:
            if short and sizes[i] < cap:
                sizes[i] += 1
                short -= 1
    return sizes


def shape_of(seed: int, campaign_id: str, knob: str) -> str:
    """``flat`` or ``stats``: the knob's choice, or the campaign's own under ``mixed``."""
    if knob != "mixed":
        return knob
    digest = hashlib.blake2b(f"{seed}\x00{campaign_id}\x00shape".encode()).digest()
    return "flat" if digest[0] % 2 else "stats"


@attrs.frozen
class Listed:
    """A campaign as the list serves it: its times settled (drawn when not given)."""

    campaign: SandboxCampaign
    created: datetime
    #: When its first SMS was scheduled, which ``schedule.start_time`` sorts by.
    start: datetime

    def listing(self, shape: str) -> dict[str, Any]:
        """The ``data`` of the campaign in a list page, in ``shape``."""
        campaign = self.campaign
        if shape == "flat":
            return {
                "sid": campaign.campaign_id,
                "name": campaign.name,
                "status": campaign.status,
                "date_created": self.created.isoformat(),
            }
        return {
            "id": campaign.campaign_id,
            "name": campaign.name,
            "status": campaign.status.capitalize(),
            "date_created": self.created.strftime("%Y-%m-%d %H:%M:%S"),
        }

    def details(self, shape: str, counts: Mapping[str, int]) -> dict[str, Any]:
        """The ``data`` of the campaign alone, counters from its records' ``counts`` by status."""
        data = self.listing(shape)
        # pending: not yet past the operator; rejected: never sent (an invalid number).
        delivered = counts.get("delivered", 0) + counts.get("sent", 0)
        pending = sum(counts.get(s, 0) for s in ("queued", "sending", "submitted"))
        rejected = counts.get("invalid", 0)
        total = sum(counts.values())
        failed = total - delivered - pending - rejected
        submitted = total - counts.get("queued", 0) - counts.get("sending", 0) - rejected
        if shape == "flat":
            data |= {
                "scheduled": total,
                "submitted": submitted,
                "sent": delivered,
                "failed": failed,
                "invalid": rejected,
                "channel": "sms",  # a field the reference does not list: clients must keep it
            }
        else:
            data["stats"] = {
                "total": total,
                "submitted": submitted,
                "delivered": delivered,
                "failed": failed,
                "pending": pending,
                "rejected": rejected,
            }
        if self.campaign.status.lower() == "completed":
            data["report_url"] = f"https://sandbox.invalid/reports/{self.campaign.campaign_id}.csv"
        return data


#: ``sort_by`` values the list accepts: (sort key, descending).
CAMPAIGN_SORT_ORDERS: Final[dict[str, tuple[Callable[[Listed], Any], bool]]] = {
    f"{field}:{way}": (key, way == "desc")
    for field, key in (
        ("date_created", lambda c: (c.created, c.campaign.campaign_id)),
        ("schedule.start_time", lambda c: (c.start, c.campaign.campaign_id)),
        ("name", lambda c: ((c.campaign.name or "").casefold(), c.campaign.campaign_id)),
    )
    for way in ("asc", "desc")
}


#: The campaign every sandbox serves unless told otherwise, and its records.
DEMO_CAMPAIGN = "demo"
DEMO_RECORDS = 5000


def demo_account(records: int = DEMO_RECORDS) -> list[SandboxCampaign]:
    """What ``--sandbox`` and ``exotel-async sandbox`` serve: ``demo`` and nine campaigns.

    The nine are a generated account of 12,000 records in several states, so that
    ``campaigns`` and ``export --all`` have something to show whichever way it starts.
    """
    return [SandboxCampaign(DEMO_CAMPAIGN, records), *make_account(9, 12_000)]
