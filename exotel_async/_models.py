"""Typed records of the sms-details API: frozen, slotted attrs classes."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

import attrs

if TYPE_CHECKING:
    from ._errors import ItemError

T = TypeVar("T")


class Outcome(str, enum.Enum):
    """Where an SMS stands, derived from its raw ``status``."""

    DELIVERED = "delivered"
    PENDING = "pending"
    FAILED = "failed"
    UNKNOWN = "unknown"


# Exotel spells statuses inconsistently across its pages (failed_dnd, failed-dnd): fold first.
_OUTCOMES = {
    "delivered": Outcome.DELIVERED,
    "sent": Outcome.DELIVERED,
    "queued": Outcome.PENDING,
    "sending": Outcome.PENDING,
    "submitted": Outcome.PENDING,
    "failed": Outcome.FAILED,
    "failed_dnd": Outcome.FAILED,
    "failed_spam_detected": Outcome.FAILED,
    "invalid": Outcome.FAILED,
    "expired": Outcome.FAILED,
    "undelivered": Outcome.FAILED,
}


_DETAIL_PREFIXES = (
    ("DELIVERED", Outcome.DELIVERED),
    ("PENDING", Outcome.PENDING),
    ("FAILED", Outcome.FAILED),
)


def classify_status(status: str | None, detailed_status: str | None = None) -> Outcome:
    """Classify a raw Exotel SMS status; unknown values give ``Outcome.UNKNOWN``.

    ``detailed_status`` decides when it names the outcome (``DELIVERED_*``, ``PENDING_*``,
    ``FAILED_*``): a ``sent`` SMS may be delivered or still pending at the operator.
    """
    detail = (detailed_status or "").strip().upper()
    for prefix, outcome in _DETAIL_PREFIXES:
        if detail.startswith(prefix):
            return outcome
    if not status:
        return Outcome.UNKNOWN
    folded = status.strip().lower().replace("-", "_")
    if folded in _OUTCOMES:
        return _OUTCOMES[folded]
    return Outcome.FAILED if folded.startswith("failed") else Outcome.UNKNOWN


@attrs.frozen
class SmsRecord:
    """One SMS of a campaign, as Exotel reports it.

    Attributes:
        sid: Exotel's id of this SMS; unique within a campaign.
        number: The recipient's phone number, as Exotel writes it.
        name: The contact's name if saved in Exotel's contacts, else None.
        message: The text, from ``message`` or ``body`` (Exotel uses both).
        status: Exotel's status, as sent (``sent``, ``delivered``, ``failed_dnd``, ...).
        detailed_status: Exotel's detailed status (``DELIVERED_TO_HANDSET``, ...).
        schedule_time: When the SMS was scheduled, timezone-aware.
        date_created: When the SMS was created, timezone-aware.
        sender_id: The sender id it went out with.
        direction: ``outgoing-api`` and the like, as sent.
        extra: Every field this version does not know, so nothing is lost.
    """

    sid: str
    number: str
    name: str | None = None
    # Exotel's product page shows the text as "message" in one item, "body" in the next.
    message: str | None = attrs.field(default=None, metadata={"aliases": ("body",)})
    status: str | None = None
    detailed_status: str | None = None
    schedule_time: datetime | None = None
    date_created: datetime | None = None
    sender_id: str | None = None
    direction: str | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

    @property
    def outcome(self) -> Outcome:
        """Delivered, pending or failed, from the raw ``status`` and ``detailed_status``."""
        return classify_status(self.status, self.detailed_status)


@attrs.frozen
class PageMetadata:
    """The ``metadata`` block of a page: ``total`` records exist, ``count`` are here."""

    count: int
    offset: int
    total: int
    limit: int


@attrs.frozen
class Page(Generic[T]):
    """One page of records of any paged endpoint, as one GET returned it.

    ``SmsPage`` is ``Page[SmsRecord]``. ``item_errors`` holds the items of this page whose
    own status is ``failure``.
    """

    records: tuple[T, ...]
    metadata: PageMetadata
    request_id: str | None = None
    item_errors: tuple[ItemError, ...] = ()


if TYPE_CHECKING:
    SmsPage: TypeAlias = Page[SmsRecord]
else:
    # The class itself at run time, so that ``isinstance(page, SmsPage)`` keeps working.
    SmsPage = Page


class CampaignStatus(str, enum.Enum):
    """Where a campaign stands. Exotel's casing varies (``completed``, ``Completed``): any
    casing, and ``_`` or a space for ``-``, names the same member."""

    CREATED = "created"
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in-progress"
    PAUSED = "paused"
    COMPLETED = "completed"
    ARCHIVED = "archived"
    #: A status this version does not know; the raw text stays on ``Campaign.status``.
    UNKNOWN = "unknown"

    @classmethod
    def _missing_(cls, value: object) -> CampaignStatus | None:
        """Fold case and separators; anything still unknown is a ValueError."""
        if not isinstance(value, str):
            return None
        folded = value.strip().lower().replace("_", "-").replace(" ", "-")
        return next((m for m in cls if m.value == folded and m is not cls.UNKNOWN), None)


def campaign_status(status: str | None) -> CampaignStatus:
    """The ``CampaignStatus`` a raw status names, ``UNKNOWN`` when it names none."""
    try:
        return CampaignStatus(status)
    except ValueError:
        return CampaignStatus.UNKNOWN


@attrs.frozen
class Campaign:
    """One SMS campaign of the account, from the campaign list or the campaign itself.

    Exotel documents two shapes: ``sid`` with flat counters (``scheduled``, ``submitted``,
    ``sent``, ``failed``, ``invalid``), and ``id`` with a ``stats`` object (``total``,
    ``submitted``, ``delivered``, ``failed``, ``pending``, ``rejected``). Both read into this
    one class; a counter the answer did not carry is None (list items may carry none).

    Attributes:
        campaign_id: The campaign's id, from ``sid`` or ``id``.
        name: Its name.
        status: Its status as sent, in Exotel's casing; ``state`` compares it safely.
        date_created: When it was created, timezone-aware.
        scheduled: SMS scheduled (flat shape).
        submitted: SMS submitted to operators (both shapes).
        sent: SMS sent (flat shape).
        delivered: SMS delivered (``stats`` shape).
        failed: SMS that failed (both shapes).
        invalid: SMS to invalid numbers (flat shape).
        pending: SMS not yet final (``stats`` shape).
        rejected: SMS rejected (``stats`` shape).
        total: SMS in the campaign (``stats`` shape).
        report_url: Where Exotel's report is, once the campaign completed.
        extra: Every field this version does not know, so nothing is lost.
    """

    campaign_id: str = attrs.field(metadata={"aliases": ("sid", "id")})
    name: str | None = None
    status: str | None = None
    date_created: datetime | None = None
    scheduled: int | None = None
    submitted: int | None = None
    sent: int | None = None
    delivered: int | None = None
    failed: int | None = None
    invalid: int | None = None
    pending: int | None = None
    rejected: int | None = None
    total: int | None = None
    report_url: str | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

    @property
    def state(self) -> CampaignStatus:
        """The status as a ``CampaignStatus``, whatever its casing; ``UNKNOWN`` if new."""
        return campaign_status(self.status)

    @property
    def size(self) -> int | None:
        """How many SMS the campaign holds: ``total``, else ``scheduled``, else None."""
        return self.total if self.total is not None else self.scheduled
