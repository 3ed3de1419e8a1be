"""Deterministic SMS records, generated one at a time from (seed, campaign id, index).

Nothing here materialises a campaign: every question the server asks (which indices match a
number, in which order, which record sits at an index) is answered with arithmetic and ``range``
objects, so a campaign of millions of records costs memory only for the page being served.

Layout of a campaign with ``total`` records, index ``i`` in ``range(total)``:

* ``schedule_time`` and ``date_created`` never decrease with ``i``, so ascending order on either
  field is index order and descending order is reverse index order.
* Phone numbers come from an affine permutation of the 4e9 ten-digit mobile numbers that start
  with 6-9, so a number maps back to the one index that holds it. Every ``_REPEAT_STRIDE``-th
  record instead takes one of ``_POOL_SIZE`` "regular" numbers in rotation (the permutation's
  images of the top indices, which records never reach), so those numbers repeat at indices that
  form an arithmetic progression.
"""

from __future__ import annotations

import hashlib
import json
from bisect import bisect_right
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from itertools import accumulate
from typing import Any, Final

import attrs

__all__ = ["SORT_ORDERS", "CampaignData", "Record", "StatusProgress"]

Record = dict[str, Any]

#: Accepted ``sort_by`` values, each mapped to "is descending".
SORT_ORDERS: Final[dict[str, bool]] = {
    "schedule_time:asc": False,
    "schedule_time:desc": True,
    "date_created:asc": False,
    "date_created:desc": True,
}

IST: Final = timezone(timedelta(hours=5, minutes=30))

_NUMBER_SPACE: Final = 4_000_000_000  # ten-digit Indian mobiles: 6000000000-9999999999
_NUMBER_BASE: Final = 6_000_000_000
_REPEAT_STRIDE: Final = 8
_REPEAT_PHASE: Final = 3
_POOL_SIZE: Final = 40
_EPOCH_2021_11_24: Final = int(datetime(2021, 11, 24, 9, 0, tzinfo=IST).timestamp())
_MASK64: Final = (1 << 64) - 1

# (weight in basis points, status, detailed_status choices), proportions of a healthy campaign.
_STATUSES: Final = (
    (5250, "delivered", ("DELIVERED_TO_HANDSET",)),
    (2400, "sent", ("DELIVERED_TO_OPERATOR",)),
    (300, "submitted", ("PENDING_TO_OPERATOR",)),
    (100, "sending", ("PENDING_TO_OPERATOR",)),
    (100, "queued", ("PENDING_TO_OPERATOR",)),
    (
        600,
        "failed",
        (
            "FAILED_SYSTEM_ERROR",
            "FAILED_UNKNOWN_ERROR",
            "FAILED_INVALID_SENDER_ID",
            "FAILED_REJECTED_BLACKLIST",
        ),
    ),
    (400, "failed_dnd", ("FAILED_REJECTED_DND",)),
    (50, "failed-dnd", ("FAILED_REJECTED_DND",)),  # the vocabulary's other spelling
    (150, "failed_spam_detected", ("FAILED_SPAM_DETECTED",)),
    (250, "invalid", ("FAILED_INVALID_DESTINATION_NUMBER",)),
    (150, "expired", ("FAILED_EXPIRED",)),
    (250, "undelivered", ("FAILED_UNKNOWN_ERROR",)),
)
#: Statuses still on their way; with ``StatusProgress`` such a record ends delivered instead.
_IN_FLIGHT: Final = frozenset({"queued", "sending", "submitted"})
#: The stages every record passes through before its final status, with ``StatusProgress``.
_STAGES: Final = (
    ("queued", "PENDING_TO_OPERATOR"),
    ("submitted", "PENDING_TO_OPERATOR"),
    ("sent", "PENDING_TO_OPERATOR"),
)
_STATUS_CUTS: Final = tuple(accumulate(weight for weight, _, _ in _STATUSES))
_STATUS_SCALE: Final = _STATUS_CUTS[-1]

_ASCII_NAMES: Final = (
    "shubham_t",
    "Priya Sharma",
    "Rahul Verma",
    "Ananya Iyer",
    "Mohammed Irfan",
    "Sneha Patil",
    "Arjun Reddy",
    "Kavya N",
    "Vikram Singh",
    "Fatima Sheikh",
    "Rohan Das",
    "Meera Krishnan",
)
_DEVANAGARI_NAMES: Final = ("प्रिया शर्मा", "राहुल वर्मा", "अनन्या", "विक्रम सिंह")
_TAMIL_NAMES: Final = ("கார்த்திக்", "மீனா கிருஷ்ணன்", "செல்வி")
_AWKWARD_NAMES: Final = ('Rao, "Ravi" K.', "O'Brien, Sean", 'Dr. "Kiran", MD', "Kumar, Anil")
_ABSENT: Final = object()
# (cumulative percent, choices); None is a JSON null, _ABSENT drops the key.
_NAME_KINDS: Final[tuple[tuple[int, tuple[object, ...]], ...]] = (
    (50, _ASCII_NAMES),
    (64, (None,)),
    (74, (_ABSENT,)),
    (86, _DEVANAGARI_NAMES),
    (93, _TAMIL_NAMES),
    (100, _AWKWARD_NAMES),
)

# (template, its arguments drawn from a record's random bits); formatted after JSON encoding,
# so only the arguments the template shows are computed for each record.
_MESSAGES: Final[tuple[tuple[str, Callable[[int], tuple[int, ...]]], ...]] = (
    ("your account is activated", lambda bits: ()),
    (
        "Your OTP is {:06d}. Do not share it with anyone. -EXOTEL",
        lambda bits: (bits % 1_000_000,),
    ),
    (
        "Hi,\nyour order #{} has shipped.\nTrack it at https://exo.tl/{:06x}",
        lambda bits: (bits % 10_000_000, (bits >> 24) & 0xFFFFFF),
    ),
    (
        "₹{:,} credited to a/c XX{:04d}. Avl bal: ₹{:,}.{:02d}",
        lambda bits: (
            (bits >> 44) % 50_000,
            (bits >> 60) % 10_000,
            (bits >> 74) % 900_000,
            bits % 100,
        ),
    ),
    ("नमस्ते! आपका ऑर्डर #{} भेज दिया गया है।", lambda bits: (bits % 10_000_000,)),
    ("வணக்கம்! உங்கள் முன்பதிவு #{} உறுதி செய்யப்பட்டது.", lambda bits: (bits % 10_000_000,)),
    (
        "Diwali offer 🎉 Flat {}% off, today only!\nReply STOP to opt out",
        lambda bits: (10 + bits % 60,),
    ),
    ('Reminder: "Team sync", 5pm, Room {}, Bengaluru', lambda bits: (1 + bits % 40,)),
)


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    """Reject numbers that are not > 0."""
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


@attrs.frozen
class StatusProgress:
    """Statuses that advance over the sandbox's clock, as a real campaign's do.

    Record ``i`` is queued at ``start + i * gap``, then submitted, then sent (pending at the
    operator), then reaches its final status: the one it has without this knob, or
    ``delivered`` for a record generated as still in flight. Each of the three stages lasts
    between 0.5 and 1.5 times ``stage`` seconds, fixed per record by the seed.
    """

    start: float
    stage: float = attrs.field(default=60.0, validator=_positive)
    gap: float = attrs.field(default=0.01, validator=_positive)

    def settled_at(self, total: int) -> float:
        """A time by which every record of a ``total``-record campaign is final."""
        return self.start + max(total - 1, 0) * self.gap + 4.5 * self.stage

    def status(self, index: int, now: float, final: tuple[str, str], roll: int) -> tuple[str, str]:
        """The ``(status, detailed_status)`` of record ``index`` at ``now``."""
        elapsed = now - (self.start + index * self.gap)
        for stage in _STAGES:
            elapsed -= self.stage * (0.5 + (roll & 0xFFFF) / 65536)
            if elapsed < 0:
                return stage
            roll >>= 16
        if final[0] in _IN_FLIGHT:
            return "delivered", "DELIVERED_TO_HANDSET"
        return final


def _name_member(name: object) -> str:
    """Return the JSON member for a contact name: text, null, or nothing at all."""
    if name is _ABSENT:
        return ""
    return ',"name":' + json.dumps(name, ensure_ascii=False)


# Encoded once: names and message templates are the only values that need JSON escaping.
# Indexed by a roll in range(100), giving the choices of that kind of name.
_NAME_BY_ROLL: Final = tuple(
    tuple(_name_member(name) for name in next(names for cut, names in _NAME_KINDS if roll < cut))
    for roll in range(100)
)
_MESSAGE_JSON: Final = tuple(
    (json.dumps(text, ensure_ascii=False), arguments) for text, arguments in _MESSAGES
)


def _splitmix64(value: int) -> int:
    """Return a well-mixed 64-bit integer derived from ``value``."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


def _name_json(mixed: int) -> str:
    """Return the ``,"name":...`` member chosen by a random integer, or "" for no name."""
    choices = _NAME_BY_ROLL[mixed % 100]
    return choices[(mixed >> 8) % len(choices)]


def _status_of(digest: bytes) -> tuple[str, tuple[str, ...]]:
    """Return the status a record's digest rolls, and its detailed-status choices."""
    roll = (digest[16] << 8 | digest[17]) * _STATUS_SCALE >> 16
    _, status, details = _STATUSES[bisect_right(_STATUS_CUTS, roll)]
    return status, details


def _parse_number(number: str) -> int | None:
    """Return the position of ``number`` in the mobile number space, or None if malformed."""
    digits = number[3:]
    if len(number) != 13 or not number.startswith("+91") or not digits.isascii():
        return None
    if not digits.isdigit() or digits[0] not in "6789":
        return None
    return int(digits) - _NUMBER_BASE


def _format_time(epoch: int) -> str:
    """Return ``epoch`` as ISO-8601 in India Standard Time, e.g. 2021-11-24T14:55:19+05:30."""
    return datetime.fromtimestamp(epoch, IST).isoformat()


class CampaignData:
    """The records of one campaign, each computed on demand from its index."""

    __slots__ = (
        "_hasher",
        "_inverse",
        "_lag",
        "_multiplier",
        "_pace",
        "_regulars",
        "_shift",
        "_start",
        "_times",
    )

    def __init__(self, seed: int, campaign_id: str, *, created: int | None = None) -> None:
        """Derive the campaign's constants (number permutation, clock) from seed and id.

        ``created`` (epoch seconds) sets when the campaign was created; by default it is
        drawn from seed and id too. Its first SMS is scheduled a few minutes later.
        """
        self._hasher = hashlib.blake2b(f"{seed}\x00{campaign_id}\x00".encode(), digest_size=32)
        params = int.from_bytes(hashlib.sha256(self._hasher.digest()).digest(), "big")
        multiplier = (params & _MASK64) % _NUMBER_SPACE | 1
        if multiplier % 5 == 0:  # the space is 2**11 * 5**9: stay coprime to it
            multiplier += 2
        self._multiplier = multiplier
        self._inverse = pow(multiplier, -1, _NUMBER_SPACE)
        self._shift = (params >> 64) % _NUMBER_SPACE
        salt = (params >> 96) & _MASK64
        self._pace = 10 + (params >> 176) % 41  # records scheduled per second
        self._lag = (params >> 192) % 300  # seconds between creation and scheduling
        if created is None:
            created = _EPOCH_2021_11_24 + ((params >> 160) % 730) * 86_400 - self._lag
        self._start = created + self._lag
        self._times: dict[int, str] = {}
        # A regular number keeps one contact name wherever it appears, so precompute both.
        self._regulars = tuple(
            (value, _name_json(_splitmix64(value ^ salt)))
            for value in (self._permute(_NUMBER_SPACE - 1 - slot) for slot in range(_POOL_SIZE))
        )

    def _permute(self, index: int) -> int:
        """Map an index to a position in the number space (a bijection)."""
        return (self._multiplier * index + self._shift) % _NUMBER_SPACE

    def number_value(self, index: int) -> int:
        """Return the position in the number space of the phone number at ``index``."""
        if index % _REPEAT_STRIDE == _REPEAT_PHASE:
            return self._regulars[(index // _REPEAT_STRIDE) % _POOL_SIZE][0]
        return self._permute(index)

    def number(self, index: int) -> str:
        """Return the phone number at ``index`` in E.164 form, e.g. +919876543210."""
        return f"+91{_NUMBER_BASE + self.number_value(index)}"

    def matching(self, total: int, number: str | None) -> range:
        """Return the indices below ``total`` whose number is exactly ``number``, ascending."""
        if number is None:
            return range(total)
        value = _parse_number(number)
        if value is None:
            return range(0)
        index = (value - self._shift) * self._inverse % _NUMBER_SPACE
        if index >= _NUMBER_SPACE - _POOL_SIZE:
            slot = _NUMBER_SPACE - 1 - index
            start = _REPEAT_PHASE + _REPEAT_STRIDE * slot
            return range(start, total, _REPEAT_STRIDE * _POOL_SIZE)
        if index < total and index % _REPEAT_STRIDE != _REPEAT_PHASE:
            return range(index, index + 1)
        return range(0)

    def select(self, total: int, *, number: str | None, sort_by: str | None) -> range:
        """Return the served order of indices for a filter and a sort (default ascending)."""
        indices = self.matching(total, number)
        if sort_by is not None and SORT_ORDERS[sort_by]:
            return indices[::-1]
        return indices

    @property
    def created(self) -> int:
        """When the campaign was created, in epoch seconds: no SMS of it is older."""
        return self._start - self._lag

    def schedule_epoch(self, index: int) -> int:
        """Return the scheduled time of ``index`` in epoch seconds (nondecreasing in index)."""
        return self._start + index // self._pace

    def record(self, index: int, progress: StatusProgress | None = None, now: float = 0) -> Record:
        """Return the ``data`` object of the record at ``index`` as a fresh dict."""
        record: Record = json.loads(self.record_json(index, progress, now))
        return record

    def _digest(self, index: int) -> bytes:
        """Return the random bytes every field of the record at ``index`` is drawn from."""
        hasher = self._hasher.copy()
        hasher.update(index.to_bytes(8, "big"))
        return hasher.digest()

    def status_counts(self, total: int) -> dict[str, int]:
        """Count the ``status`` values of the first ``total`` records, without building them."""
        counts = dict.fromkeys((status for _, status, _ in _STATUSES), 0)
        for index in range(total):
            counts[_status_of(self._digest(index))[0]] += 1
        return counts

    def record_json(
        self, index: int, progress: StatusProgress | None = None, now: float = 0
    ) -> str:
        """Return the ``data`` object of the record at ``index`` as compact JSON text.

        With ``progress``, the status is the one the record has reached at ``now``.
        """
        digest = self._digest(index)
        if index % _REPEAT_STRIDE == _REPEAT_PHASE:
            value, name = self._regulars[(index // _REPEAT_STRIDE) % _POOL_SIZE]
        else:  # a number seen once: any name is consistent, so roll it from the digest
            value, name = self._permute(index), _name_json(digest[21] << 8 | digest[22])
        # Rolls come from separate digest bytes; message arguments from the low bits.
        detail_roll, message_roll = digest[18], digest[19] % (len(_MESSAGE_JSON) * 4)
        sender_roll, extra_roll = digest[20] % 100, digest[23] % 100
        bits = int.from_bytes(digest[24:], "big") << 64 | int.from_bytes(digest[:8], "big")
        template, arguments = _MESSAGE_JSON[message_roll // 4]
        text = template.format(*arguments(bits))
        status, details = _status_of(digest)
        detail = details[detail_roll % len(details)]
        if progress is not None:
            roll = _splitmix64(int.from_bytes(digest[:8], "big"))
            status, detail = progress.status(index, now, (status, detail), roll)
        scheduled = self.schedule_epoch(index)
        extra = ""
        if extra_roll < 3:  # fields newer than the documentation, which clients must keep
            extra = f',"units":{1 + (bits >> 30) % 3}'
            if extra_roll < 2:
                extra += f',"dlt_template_id":"1107{(bits >> 24) % 10**15:015d}"'
        text_key = "body" if message_roll % 4 == 0 else "message"
        sender = "EXOSMS" if sender_roll < 15 else "EXOTEL"
        return (
            f'{{"number":"+91{_NUMBER_BASE + value}"{name}'
            f',"{text_key}":{text}'
            f',"status":"{status}","detailed_status":"{detail}"'
            f',"schedule_time":"{self._time(scheduled)}"'
            f',"date_created":"{self._time(scheduled - self._lag)}"'
            f',"sender_id":"{sender}"'
            f',"direction":"outgoing-api","sid":"{digest[:16].hex()}"{extra}}}'
        )

    def _time(self, epoch: int) -> str:
        """Return ``epoch`` formatted, memoised because neighbouring records share seconds."""
        text = self._times.get(epoch)
        if text is None:
            if len(self._times) >= 4096:
                self._times.clear()
            text = self._times[epoch] = _format_time(epoch)
        return text
