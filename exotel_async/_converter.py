"""The one cattrs converter that turns Exotel's JSON into attrs records."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn

from ._models import SmsRecord

#: Exotel's timestamps carry +05:30; one without an offset is read as India time too.
IST = timezone(timedelta(hours=5, minutes=30), "IST")

_FIELD_ORDER = tuple(a.name for a in attrs.fields(SmsRecord) if a.name != "extra")
_RECORD_FIELDS = frozenset(_FIELD_ORDER)


def parse_datetime(value: Any) -> datetime:
    """Parse an ISO-8601 or ``YYYY-MM-DD HH:MM:SS`` timestamp into an aware datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=IST)
    if isinstance(value, str):
        return _parse_timestamp(value)
    raise TypeError(f"expected a timestamp string, got {type(value).__name__}")


@functools.lru_cache(maxsize=4096)
def _parse_timestamp(text: str) -> datetime:
    # A campaign's SMS are scheduled in batches that share a timestamp: parse each once.
    text = text.strip()
    # Python 3.10's fromisoformat rejects a trailing "Z".
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=IST)


def _structure_str(value: Any, _: type) -> str:
    # Numbers arrive as JSON numbers on some accounts; a dict or list is never a string.
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _structure_optional_str(value: Any, _: type) -> str | None:
    return value if value is None or type(value) is str else _structure_str(value, str)


def _structure_optional_datetime(value: Any, _: type) -> datetime | None:
    return None if value is None else parse_datetime(value)


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter()
    converter.register_structure_hook(datetime, lambda value, _: parse_datetime(value))
    converter.register_structure_hook(str, _structure_str)
    # Direct hooks for the optional fields spare cattrs' generic Optional dispatch, which
    # cost more than the JSON decoding itself.
    converter.register_structure_hook(Optional[str], _structure_optional_str)  # noqa: UP045
    converter.register_structure_hook(Optional[datetime], _structure_optional_datetime)  # noqa: UP045
    # Two generated functions from the one converter: a lean one for the hot path, and one
    # with detailed validation, run only to name the offending field when the lean one fails.
    fast = make_dict_structure_fn(SmsRecord, converter, _cattrs_detailed_validation=False)
    detailed = make_dict_structure_fn(SmsRecord, converter, _cattrs_detailed_validation=True)

    def structure_record(data: Any, _: type) -> SmsRecord:
        if not isinstance(data, dict):
            raise TypeError(f"expected an object, got {type(data).__name__}")
        known = data
        if not data.keys() <= _RECORD_FIELDS:  # most records carry only known fields
            known = {k: v for k, v in data.items() if k in _RECORD_FIELDS}
            extra = {k: v for k, v in data.items() if k not in _RECORD_FIELDS}
            # The product page shows the text as "message" in one item, "body" in the next.
            if "message" not in known and "body" in extra:
                known["message"] = extra.pop("body")
            known["extra"] = extra
        try:
            return fast(known, SmsRecord)
        except Exception:
            return detailed(known, SmsRecord)  # raises, naming the field

    def unstructure_record(record: SmsRecord) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(record, name) for name in _FIELD_ORDER}
        for key in ("schedule_time", "date_created"):
            if out[key] is not None:
                out[key] = out[key].isoformat()
        out.update(record.extra)
        return out

    converter.register_structure_hook(SmsRecord, structure_record)
    converter.register_unstructure_hook(SmsRecord, unstructure_record)
    return converter


#: The converter every module uses: structure Exotel JSON into ``SmsRecord`` and back.
converter = _make_converter()
