"""Sans-I/O protocol: validate inputs, build requests, parse answers. No sockets here."""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import attrs
import cattrs
import orjson

from ._converter import converter
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
#: The sms-details filters that hold personal data.
_SMS_PERSONAL = frozenset({"number"})
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9_-]{1,128}")
_NUMBER = re.compile(r"\+?[0-9]{4,20}")
# Dotted fields too: the campaign list sorts by ``schedule.start_time``.
_SORT_BY = re.compile(r"[a-z_]+(\.[a-z_]+)*:(asc|desc)")
_EXCERPT_CHARS = 200


class PathForm(str, enum.Enum):
    """Which of Exotel's documented URL forms the client calls."""

    SMS_CAMPAIGNS = "sms-campaigns"
    MESSAGE_CAMPAIGNS = "message-campaigns"

    def query(self, **filters: str | None) -> tuple[tuple[str, str], ...]:
        """A request's query on this form: ``channel=sms`` first where the newer form
        requires it, then the ``filters`` that are set, in order."""
        channel = (("channel", "sms"),) if self is PathForm.MESSAGE_CAMPAIGNS else ()
        return channel + tuple((k, v) for k, v in filters.items() if v is not None)


def _names(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


@attrs.frozen
class PageRequest:
    """The GET of a paged endpoint: a path below the base URL and its filters.

    ``offset`` and ``limit`` are not part of it: ``at()`` adds them for each page.
    ``personal`` names the params that hold personal data (a phone number): a log line
    shows only their last two characters.
    """

    path: str
    params: tuple[tuple[str, str], ...] = ()
    personal: frozenset[str] = attrs.field(default=frozenset(), converter=_names)

    def at(self, offset: int, limit: int) -> PageRequest:
        """This request for the page of ``limit`` records from ``offset``."""
        paged = (("offset", str(offset)), ("limit", str(limit)))
        return PageRequest(self.path, self.params + paged, self.personal)

    def loggable_query(self) -> str:
        """The query string for a log line, with the personal params masked."""
        personal = self.personal
        return "&".join(f"{k}={mask_number(v) if k in personal else v}" for k, v in self.params)


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


def check_page_request(request: object, params: object = None) -> PageRequest:
    """A caller's paged request (a path or a ``PageRequest``) with ``params`` added, checked."""
    if isinstance(request, str):
        request = PageRequest(request)
    if not isinstance(request, PageRequest):
        raise TypeError("request must be a path (str) or a PageRequest")
    if not isinstance(request.path, str) or not request.path.startswith("/"):
        raise ValueError("request path must start with '/', below the base URL")
    if "?" in request.path or "#" in request.path:
        raise ValueError("request path must not hold a query or fragment: pass params instead")
    if params is not None and not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping, got {type(params).__name__}")
    pairs = tuple(request.params) + tuple((params or {}).items())
    if not all(_is_str_pair(pair) for pair in pairs):
        raise TypeError("params must map str to str")
    paged = sorted({name for name, _ in pairs} & {"offset", "limit"})
    if paged:
        raise ValueError(
            f"params must not set {' or '.join(paged)}: the walk sets them for each page"
        )
    return attrs.evolve(request, params=pairs)


def _is_str_pair(pair: object) -> bool:
    return isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(v, str) for v in pair)


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
    """Mask a phone number (or any personal value) for logs, keeping its last two characters."""
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
    details = "message-details" if path_form is PathForm.MESSAGE_CAMPAIGNS else "sms-details"
    path = f"/v2/accounts/{account_sid}/{path_form.value}/{campaign_id}/{details}"
    query = path_form.query(number=number, sort_by=sort_by)
    return PageRequest(path, query, personal=_SMS_PERSONAL)


def campaigns_request(
    account_sid: str,
    *,
    status: str | None = None,
    name: str | None = None,
    sort_by: str | None = None,
    path_form: PathForm = PathForm.SMS_CAMPAIGNS,
) -> PageRequest:
    """The campaign-list request of an account, filters included (inputs already validated)."""
    query = path_form.query(status=status, name=name, sort_by=sort_by)
    return PageRequest(f"/v2/accounts/{account_sid}/{path_form.value}", query)


def campaign_request(
    account_sid: str, campaign_id: str, *, path_form: PathForm = PathForm.SMS_CAMPAIGNS
) -> PageRequest:
    """The request of one campaign with its counters (inputs already validated)."""
    return PageRequest(f"/v2/accounts/{account_sid}/{path_form.value}/{campaign_id}")


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
    payload, request_id = _success_payload(status, headers, body)
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
    return Page(
        records=tuple(records),
        metadata=metadata,
        request_id=request_id,
        item_errors=tuple(failures),
    )


def parse_item(item_type: type[T], status: int, headers: Mapping[str, str], body: bytes) -> T:
    """Turn the answer to a GET of one object (one campaign, say) into an ``item_type``.

    The envelope is a page's without ``metadata``: ``response`` is the one item, as an
    object or a list of one, or the object itself without an item around it. Errors, the
    nesting bound and unknown fields are as in a page; a failed item raises ``ItemError``.
    """
    payload, request_id = _success_payload(status, headers, body)
    item = payload.get("response") if isinstance(payload, dict) else None
    if isinstance(item, list) and len(item) == 1:
        item = item[0]
    if not isinstance(item, dict):
        raise ResponseDecodeError(
            "expected an object with a 'response' object",
            status_code=status,
            excerpt=_excerpt(body),
            request_id=request_id,
        )
    if item.get("status") not in ("success", "failure"):
        item = {"status": "success", "data": item}  # the object, not an item around it
    records, failures = _structure_items(item_type, [item], 0, status, request_id)
    if failures:
        raise failures[0]
    return records[0]


def _success_payload(
    status: int, headers: Mapping[str, str], body: bytes
) -> tuple[Any, str | None]:
    """The decoded body of a success and its request id; raise the error any other stands for."""
    if not 200 <= status < 300:
        raise error_from_response(status, headers, body)
    payload = _load_json(status, body)
    embedded = _embedded_error_status(payload)
    if embedded is not None:
        # An error envelope behind a 200 (a proxy, or Exotel's own http_code): same meaning.
        raise error_from_response(embedded, headers, body)
    return payload, _request_id(payload)


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
