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
