"""SmsRecord and the converter that builds it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest

from exotel_async import Outcome, SmsRecord, classify_status, converter
from exotel_async._converter import _MAX_TIMESTAMPS, _TIMESTAMPS


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("delivered", Outcome.DELIVERED),
        ("sent", Outcome.DELIVERED),
        ("queued", Outcome.PENDING),
        ("submitted", Outcome.PENDING),
        ("failed_dnd", Outcome.FAILED),
        ("failed-dnd", Outcome.FAILED),
        ("FAILED_SPAM_DETECTED", Outcome.FAILED),
        ("failed_something_new", Outcome.FAILED),
        ("expired", Outcome.FAILED),
        ("teleported", Outcome.UNKNOWN),
        (None, Outcome.UNKNOWN),
    ],
)
def test_classify_status(status: str | None, outcome: Outcome) -> None:
    """Raw statuses, in any documented spelling, classify as delivered, pending or failed."""
    assert classify_status(status) is outcome


@pytest.mark.parametrize(
    ("status", "detail", "outcome"),
    [
        ("sent", "PENDING_TO_OPERATOR", Outcome.PENDING),
        ("sent", "DELIVERED_TO_OPERATOR", Outcome.DELIVERED),
        ("failed", "FAILED_EXPIRED", Outcome.FAILED),
        ("weird", "FAILED_SYSTEM_ERROR", Outcome.FAILED),
        ("delivered", "SOMETHING_NEW", Outcome.DELIVERED),
    ],
)
def test_detailed_status_decides_when_it_names_an_outcome(
    status: str, detail: str, outcome: Outcome
) -> None:
    """``DELIVERED_*``, ``PENDING_*`` and ``FAILED_*`` details outrank the plain status."""
    assert classify_status(status, detail) is outcome


def test_unknown_status_passes_through_untouched() -> None:
    """A status this version does not know stays as the server sent it."""
    record = converter.structure({"sid": "a", "number": "1", "status": "teleported"}, SmsRecord)
    assert record.status == "teleported"
    assert record.outcome is Outcome.UNKNOWN


def test_record_is_frozen_and_slotted() -> None:
    """Records cannot be changed after they are built, and carry no ``__dict__``."""
    record = SmsRecord(sid="a", number="1")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        record.sid = "b"  # type: ignore[misc]
    assert not hasattr(record, "__dict__")


def test_record_from_json_is_the_frozen_class_itself() -> None:
    """A structured record is of exactly its class, frozen, and equal to one built by hand."""
    record = converter.structure({"sid": "a", "number": "1", "units": 2}, SmsRecord)
    assert type(record) is SmsRecord
    assert record == SmsRecord(sid="a", number="1", extra={"units": 2})
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        record.sid = "b"  # type: ignore[misc]


def test_records_with_extra_fields_are_hashable() -> None:
    """A record with ``extra`` data can still go in a set."""
    record = converter.structure({"sid": "a", "number": "1", "units": [1]}, SmsRecord)
    assert len({record, record}) == 1


def test_unstructure_round_trips_through_the_converter() -> None:
    """Unstructuring gives the API's field names back, times as ISO-8601 with offset."""
    raw = {
        "sid": "a",
        "number": "+919876543210",
        "message": "hi\nthere",
        "schedule_time": "2021-11-24T14:55:19+05:30",
        "units": 2,
    }
    record = converter.structure(raw, SmsRecord)
    out = converter.unstructure(record)
    assert out["schedule_time"] == "2021-11-24T14:55:19+05:30"
    assert out["units"] == 2
    assert converter.structure(out, SmsRecord) == record


def test_message_wins_over_body_when_both_are_present() -> None:
    """With both keys, ``message`` is the text and ``body`` is kept in ``extra``."""
    record = converter.structure(
        {"sid": "a", "number": "1", "message": "m", "body": "b"}, SmsRecord
    )
    assert (record.message, record.extra) == ("m", {"body": "b"})


def test_utc_z_suffix_is_understood() -> None:
    """A ``Z`` suffix means UTC."""
    record = converter.structure(
        {"sid": "a", "number": "1", "date_created": "2021-11-24T09:25:19Z"}, SmsRecord
    )
    assert record.date_created == datetime(2021, 11, 24, 9, 25, 19, tzinfo=timezone.utc)
    assert record.date_created == datetime(
        2021, 11, 24, 14, 55, 19, tzinfo=timezone(timedelta(hours=5, minutes=30))
    )


def test_number_sent_as_json_number_becomes_text() -> None:
    """Phone numbers stay text even if the server sends them as numbers."""
    assert converter.structure({"sid": "a", "number": 919876543210}, SmsRecord).number == (
        "919876543210"
    )


def test_body_stands_in_for_message_beside_unknown_fields() -> None:
    """Without ``message``, ``body`` is the text and only the truly unknown keys reach ``extra``."""
    record = converter.structure({"sid": "a", "number": "1", "body": "b", "units": 2}, SmsRecord)
    assert (record.message, record.extra) == ("b", {"units": 2})


def test_null_message_keeps_body_in_extra() -> None:
    """A ``message`` key that is null is still the text; ``body`` beside it is kept apart."""
    record = converter.structure(
        {"sid": "a", "number": "1", "message": None, "body": "b"}, SmsRecord
    )
    assert (record.message, record.extra) == (None, {"body": "b"})


def test_a_key_named_extra_is_kept_inside_extra() -> None:
    """An API field called ``extra`` is data like any other unknown field."""
    record = converter.structure({"sid": "a", "number": "1", "extra": 5}, SmsRecord)
    assert record.extra == {"extra": 5}


def test_each_record_gets_its_own_extra_mapping() -> None:
    """Two records without unknown fields never share one ``extra`` dict."""
    first, second = (converter.structure({"sid": s, "number": "1"}, SmsRecord) for s in "ab")
    assert first.extra == {}
    assert first.extra is not second.extra


def test_integer_in_an_optional_text_field_becomes_text() -> None:
    """A JSON number where optional text belongs is read as that text."""
    assert (
        converter.structure({"sid": "a", "number": "1", "sender_id": 5}, SmsRecord).sender_id == "5"
    )


def test_record_built_from_python_datetimes() -> None:
    """A ``datetime`` in place of timestamp text is taken, made aware if naive."""
    record = converter.structure(
        {"sid": "a", "number": "1", "schedule_time": datetime(2021, 11, 24, 14, 55)}, SmsRecord
    )
    assert record.schedule_time == datetime(
        2021, 11, 24, 14, 55, tzinfo=timezone(timedelta(hours=5, minutes=30))
    )


def test_timestamp_cache_stays_bounded() -> None:
    """Distinct timestamps past the cache's size never grow it beyond that size."""
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    for second in range(_MAX_TIMESTAMPS + 10):
        stamp = (start + timedelta(seconds=second)).isoformat()
        record = converter.structure({"sid": "a", "number": "1", "date_created": stamp}, SmsRecord)
        assert record.date_created == start + timedelta(seconds=second)
    assert len(_TIMESTAMPS) <= _MAX_TIMESTAMPS


def test_not_an_object_is_a_type_error() -> None:
    """A record that is not a JSON object is a TypeError saying what it was."""
    with pytest.raises(TypeError, match="expected an object, got list"):
        converter.structure(["a", "1"], SmsRecord)


def test_unknown_field_nested_too_deep_is_a_value_error_naming_it() -> None:
    """The converter itself bounds the nesting of unknown fields, naming the field."""
    deep: list[Any] = []
    for _ in range(65):
        deep = [deep]
    with pytest.raises(ValueError, match="unknown field 'junk' nests deeper than 64 levels"):
        converter.structure({"sid": "a1", "number": "1", "junk": deep}, SmsRecord)


def test_any_record_class_with_extra_keeps_unknown_fields() -> None:
    """The hook is generic: another attrs class with ``extra`` gets aliases and extras too."""

    @attrs.frozen
    class Campaign:
        id: str = attrs.field(metadata={"aliases": ("sid",)})
        total: int = 0
        extra: Mapping[str, Any] = attrs.field(factory=dict)

    campaign = converter.structure({"sid": "c1", "total": 3, "state": "done"}, Campaign)
    assert campaign == Campaign(id="c1", total=3, extra={"state": "done"})


def test_record_class_validators_still_run() -> None:
    """A record class with a validator is built through its ``__init__``, so it validates."""

    @attrs.frozen
    class Positive:
        count: int = attrs.field(validator=attrs.validators.ge(0))
        extra: Mapping[str, Any] = attrs.field(factory=dict)

    assert converter.structure({"count": 2}, Positive).count == 2
    with pytest.raises(ValueError, match="count"):
        converter.structure({"count": -1}, Positive)


def test_record_class_with_init_subclass_runs_none_of_it() -> None:
    """Structuring never subclasses a record class whose ``__init_subclass__`` runs code."""
    subclassed: list[type] = []

    @attrs.frozen
    class Registered:
        id: str
        extra: Mapping[str, Any] = attrs.field(factory=dict)

        def __init_subclass__(cls, **kwargs: Any) -> None:
            subclassed.append(cls)

    assert converter.structure({"id": "a"}, Registered) == Registered(id="a")
    assert subclassed == []


def test_record_subclass_fills_inherited_and_own_fields() -> None:
    """A subclass of a record class is built whole: inherited slots, its own, and extras."""

    @attrs.frozen
    class Base:
        id: str
        extra: Mapping[str, Any] = attrs.field(factory=dict)

    @attrs.frozen
    class Child(Base):
        count: int = 0

    child = converter.structure({"id": "a", "count": 2, "state": "done"}, Child)
    assert child == Child(id="a", count=2, extra={"state": "done"})
