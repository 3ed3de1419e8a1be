"""The one cattrs converter that turns Exotel's JSON into attrs records."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn

from ._models import SmsRecord

#: Exotel's timestamps carry +05:30; one without an offset is read as India time too.
IST = timezone(timedelta(hours=5, minutes=30), "IST")

_RECORD_FIELDS = frozenset(a.name for a in attrs.fields(SmsRecord)) - {"extra"}


def parse_datetime(value: Any) -> datetime:
    """Parse an ISO-8601 or ``YYYY-MM-DD HH:MM:SS`` timestamp into an aware datetime."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip()
        # Python 3.10's fromisoformat rejects a trailing "Z".
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        parsed = datetime.fromisoformat(text)
    else:
        raise TypeError(f"expected a timestamp string, got {type(value).__name__}")
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=IST)


def _structure_datetime(value: Any, _: type) -> datetime:
    return parse_datetime(value)


def _structure_str(value: Any, _: type) -> str:
    # Numbers arrive as JSON numbers on some accounts; a dict or list is never a string.
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter()
    converter.register_structure_hook(datetime, _structure_datetime)
    converter.register_structure_hook(str, _structure_str)
    structure_fields = make_dict_structure_fn(SmsRecord, converter)

    def structure_record(data: Any, _: type) -> SmsRecord:
        if not isinstance(data, dict):
            raise TypeError(f"expected an object, got {type(data).__name__}")
        known = {k: v for k, v in data.items() if k in _RECORD_FIELDS}
        extra = {k: v for k, v in data.items() if k not in _RECORD_FIELDS}
        # The product page shows the text as "message" in one item and "body" in the next.
        if "message" not in known and "body" in extra:
            known["message"] = extra.pop("body")
        known["extra"] = extra
        return structure_fields(known, SmsRecord)

    def unstructure_record(record: SmsRecord) -> dict[str, Any]:
        out: dict[str, Any] = {
            name: getattr(record, name)
            for name in (a.name for a in attrs.fields(SmsRecord))
            if name != "extra"
        }
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
