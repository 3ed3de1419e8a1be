"""Sans-I/O protocol: validate inputs, build requests, parse answers. No sockets here."""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from itertools import compress, count
from operator import attrgetter
from typing import Any, TypeVar

import attrs
import cattrs
import orjson

from ._converter import EXTRA, converter
from ._errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ItemError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
)
from ._models import Page, PageMetadata

T = TypeVar("T")

MAX_LIMIT = 1000
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9_-]{1,128}")
_NUMBER = re.compile(r"\+?[0-9]{4,20}")
_SORT_BY = re.compile(r"[a-z_]+:(asc|desc)")
_EXCERPT_CHARS = 200
#: How deep an unknown field may nest. Exotel's records are flat; a deeper value could not
#: be written back out (orjson stops at 255 levels, the standard encoder at the recursion
#: limit), so it would stop an export at the same record on every resume.
MAX_NESTING = 64


class PathForm(str, enum.Enum):
    """Which of Exotel's documented URL forms the client calls."""

    SMS_CAMPAIGNS = "sms-campaigns"
    MESSAGE_CAMPAIGNS = "message-campaigns"


@attrs.frozen
class PageRequest:
    """The GET of a paged endpoint: a path below the base URL and its filters.

    ``offset`` and ``limit`` are not part of it: ``at()`` adds them for each page.
    """

    path: str
    params: tuple[tuple[str, str], ...] = ()

    def at(self, offset: int, limit: int) -> PageRequest:
        """This request for the page of ``limit`` records from ``offset``."""
        paged = (("offset", str(offset)), ("limit", str(limit)))
        return PageRequest(self.path, self.params + paged)


# --- validation --------------------------------------------------------------------------


def check_int(name: str, value: object, *, minimum: int, maximum: int | None = None) -> int:
    """Return ``value`` if it is an int within bounds, else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
        raise ValueError(f"{name} must be {bounds}, got {value}")
    return value


def check_path_segment(name: str, value: object) -> str:
    """Return an id (campaign id, account sid) that is safe in a URL path, else raise."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not _PATH_SEGMENT.fullmatch(value):
        raise ValueError(
            f"{name} must be 1 to 128 letters, digits, '-' or '_', "
            f"got {value[:40]!r}{'...' if len(value) > 40 else ''}"
        )
    return value


def check_number(value: object) -> str | None:
    """Return a phone-number filter (digits, optional leading ``+``) or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"number must be a str, got {type(value).__name__}")
    if not _NUMBER.fullmatch(value):
        raise ValueError("number must be a phone number: digits with an optional leading '+'")
    return value


def check_sort_by(value: object) -> str | None:
    """Return a ``field:asc|desc`` sort order or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"sort_by must be a str, got {type(value).__name__}")
    if not _SORT_BY.fullmatch(value):
        raise ValueError(
            f"sort_by must look like 'schedule_time:asc' or 'field:desc', got {value!r}"
        )
    return value


def mask_number(number: str) -> str:
    """Mask a phone number for logs, keeping only its last two digits."""
    return "*" * max(len(number) - 2, 0) + number[-2:]


# --- requests ----------------------------------------------------------------------------


def sms_details_request(
    account_sid: str,
    campaign_id: str,
    *,
    number: str | None = None,
    sort_by: str | None = None,
    path_form: PathForm = PathForm.SMS_CAMPAIGNS,
) -> PageRequest:
    """The sms-details request of a campaign, filters included (inputs already validated)."""
    if path_form is PathForm.MESSAGE_CAMPAIGNS:
        path = f"/v2/accounts/{account_sid}/message-campaigns/{campaign_id}/message-details"
        params = [("channel", "sms")]
    else:
        path = f"/v2/accounts/{account_sid}/sms-campaigns/{campaign_id}/sms-details"
        params = []
    if number is not None:
        params.append(("number", number))
    if sort_by is not None:
        params.append(("sort_by", sort_by))
    return PageRequest(path, tuple(params))


def loggable_query(params: tuple[tuple[str, str], ...]) -> str:
    """The query string for a log line, with the phone-number filter masked."""
    return "&".join(f"{k}={mask_number(v) if k == 'number' else v}" for k, v in params)


# --- responses ---------------------------------------------------------------------------

_ERRORS_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}


def _excerpt(body: bytes) -> str:
    return body[:_EXCERPT_CHARS].decode("utf-8", "replace")


def _load_json(status: int, body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass  # orjson refuses some valid JSON (a lone surrogate); the standard parser decides
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ResponseDecodeError(
            f"body is not valid JSON ({exc})",
            status_code=status,
            excerpt=_excerpt(body),
            # Nesting past the parsers' limits is what the server sent, not a glitch.
            retryable=not isinstance(exc, RecursionError),
        ) from None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max((when - (now or datetime.now(timezone.utc))).total_seconds(), 0.0)


def _error_fields(payload: Any) -> tuple[str | None, int | str | None, str | None, str | None]:
    """Pull (request_id, code, message, description) out of any documented error shape."""
    if not isinstance(payload, dict):
        return None, None, None, None
    request_id = payload.get("request_id")
    rest = payload.get("RestException")
    if isinstance(rest, dict):
        return request_id, rest.get("Code"), rest.get("Message"), rest.get("Message")
    response = payload.get("response")
    if isinstance(response, list) and response:
        response = response[0]
    error = response.get("error_data") if isinstance(response, dict) else None
    if not isinstance(error, dict):
        return request_id, None, None, None
    return request_id, error.get("code"), error.get("message"), error.get("description")


def error_from_response(status: int, headers: Mapping[str, str], body: bytes) -> APIError:
    """Build the typed error for a non-2xx answer, from whichever shape its body has."""
    try:
        payload: Any = json.loads(body) if body.strip() else None
    except (ValueError, RecursionError):
        payload = None  # an HTML page from a proxy: the status alone must do
    request_id, code, message, description = _error_fields(payload)
    if not message:
        message = f"Exotel answered HTTP {status}" + ("" if payload else f": {_excerpt(body)!r}")
    cls = _ERRORS_BY_STATUS.get(status, ServerError if status >= 500 else APIError)
    kwargs: dict[str, Any] = {
        "status_code": status,
        "request_id": request_id if isinstance(request_id, str) else None,
        "error_code": code,
        "description": description,
    }
    kwargs["retry_after"] = parse_retry_after(headers.get("Retry-After"))
    return cls(str(message), **kwargs)


def _request_id(payload: Any) -> str | None:
    value = payload.get("request_id") if isinstance(payload, dict) else None
    return value if isinstance(value, str) else None


def _embedded_error_status(payload: Any) -> int | None:
    """The error status a success-status body declares, if it is an error envelope."""
    if not isinstance(payload, dict):
        return None
    candidates: list[Any] = [payload.get("http_code")]
    rest = payload.get("RestException")
    if isinstance(rest, dict):
        candidates.append(rest.get("Status"))
    response = payload.get("response")
    if isinstance(response, dict) and response.get("status") == "failure":
        candidates.append(response.get("code"))
    for candidate in candidates:
        if isinstance(candidate, int) and not isinstance(candidate, bool) and candidate >= 400:
            return candidate
    return None


def _metadata(
    status: int, payload: dict[str, Any], body: bytes, request_id: str | None
) -> PageMetadata:
    meta = payload.get("metadata")
    try:
        if not isinstance(meta, dict):
            raise TypeError("metadata is missing")
        values = {k: meta[k] for k in ("count", "offset", "total", "limit")}
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in values.values()):
            raise TypeError(f"metadata must hold non-negative integers, got {values}")
    except (KeyError, TypeError) as exc:
        raise ResponseDecodeError(
            f"bad metadata: {exc}",
            status_code=status,
            excerpt=_excerpt(body),
            request_id=request_id,
        ) from None
    return PageMetadata(**values)


def parse_page(
    item_type: type[T],
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    expected_offset: int | None = None,
) -> Page[T]:
    """Turn one answer into a page of ``item_type`` records, or raise the error it stands for.

    ``item_type`` is any record class the converter structures (``SmsRecord``, or an attrs
    class with an ``extra`` field for unknown keys).
    """
    if not 200 <= status < 300:
        raise error_from_response(status, headers, body)
    payload = _load_json(status, body)
    embedded = _embedded_error_status(payload)
    if embedded is not None:
        # An error envelope behind a 200 (a proxy, or Exotel's own http_code): same meaning.
        raise error_from_response(embedded, headers, body)
    request_id = _request_id(payload)
    if not isinstance(payload, dict) or not isinstance(payload.get("response"), list):
        raise ResponseDecodeError(
            "expected an object with a 'response' list",
            status_code=status,
            excerpt=_excerpt(body),
            request_id=request_id,
        )
    metadata = _metadata(status, payload, body, request_id)
    if expected_offset is not None and metadata.offset != expected_offset:
        raise ResponseDecodeError(
            f"asked for offset {expected_offset} but the page says {metadata.offset}",
            status_code=status,
            request_id=request_id,
        )
    records, failures = _structure_items(
        item_type, payload["response"], metadata.offset, status, request_id
    )
    _check_nesting(records, metadata.offset, status, request_id)
    return Page(
        records=tuple(records),
        metadata=metadata,
        request_id=request_id,
        item_errors=tuple(failures),
    )


def _check_nesting(records: list[Any], offset: int, status: int, request_id: str | None) -> None:
    """Refuse a record whose unknown fields nest deeper than ``MAX_NESTING``."""
    if not records or not hasattr(records[0], EXTRA):
        return
    # Most records have no unknown field: find those that do without a Python-level loop.
    for position in compress(count(), map(attrgetter(EXTRA), records)):
        record = records[position]
        for name, value in getattr(record, EXTRA).items():
            if _nests_deeper(value, MAX_NESTING):
                raise ResponseDecodeError(
                    f"{_name_record(record, position, offset)}: unknown field {name!r} "
                    f"nests deeper than {MAX_NESTING} levels",
                    status_code=status,
                    request_id=request_id,
                )


def _name_record(record: Any, position: int, offset: int) -> str:
    """``record sid='…'``: a record named by its first field, its id in Exotel's records."""
    first = attrs.fields(type(record))[0].name
    return f"record {first}={getattr(record, first)!r} (number {position} of the page at {offset})"


def _nests_deeper(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists or objects more than ``limit`` levels, without recursion."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def _structure_items(
    item_type: type[T], items: list[Any], offset: int, status: int, request_id: str | None
) -> tuple[list[T], list[ItemError]]:
    """The page's records and failed items; one comprehension when every item is a record."""
    structure = converter.get_structure_hook(item_type)
    try:
        # A failed item gives None, which the hook refuses: then the loop below says why.
        return [
            structure(item["data"] if item["status"] == "success" else None, item_type)
            for item in items
        ], []
    except Exception:
        return _structure_each(item_type, items, offset, status, request_id)


def _structure_each(
    item_type: type[T], items: list[Any], offset: int, status: int, request_id: str | None
) -> tuple[list[T], list[ItemError]]:
    """Item by item: failed items collected, a bad item raised naming its offset."""
    records: list[T] = []
    failures: list[ItemError] = []
    for position, item in enumerate(items, offset):
        if not isinstance(item, dict):
            raise ResponseDecodeError(
                f"item at offset {position} is not an object",
                status_code=status,
                request_id=request_id,
            )
        if item.get("status") == "failure":
            failures.append(_item_error(item, position, request_id))
            continue
        try:
            records.append(converter.structure(item.get("data"), item_type))
        except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
            raise ResponseDecodeError(
                f"item at offset {position} is not a valid {item_type.__name__}: {_describe(exc)}",
                status_code=status,
                request_id=request_id,
            ) from None
    return records, failures


def _item_error(item: dict[str, Any], offset: int, request_id: str | None) -> ItemError:
    error_data = item.get("error_data")
    message = error_data.get("message") if isinstance(error_data, dict) else None
    return ItemError(
        str(message or "item status is failure"),
        offset=offset,
        code=item.get("code"),
        error_data=error_data,
        request_id=request_id,
    )


def _describe(exc: BaseException) -> str:
    """One line naming the fields cattrs rejected, instead of a nested exception group."""
    if isinstance(exc, cattrs.BaseValidationError):
        notes = cattrs.transform_error(exc)
        return "; ".join(notes) if notes else str(exc)
    return str(exc)
