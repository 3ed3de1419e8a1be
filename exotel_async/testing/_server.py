"""The sandbox: a fake Exotel "SMS details of a campaign" server on aiohttp.web."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import math
import random
import socket
import struct
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Final

import attrs
from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import MultiMapping

from exotel_async.testing._account import (
    CAMPAIGN_SHAPES,
    CAMPAIGN_SORT_ORDERS,
    CAMPAIGN_STATUSES,
    Listed,
    SandboxCampaign,
    shape_of,
)
from exotel_async.testing._data import (
    IST,
    SORT_ORDERS,
    CampaignData,
    Record,
    StatusProgress,
)
from exotel_async.testing._ratelimits import Counter, RateLimit

__all__ = ["Faults", "LoggedRequest", "Sandbox", "SandboxStats"]

_JSON: Final = "application/json"
_MAX_RECORDS: Final = 10**9
#: The largest ``limit`` the campaign list accepts, as Exotel documents for SMS campaigns.
CAMPAIGN_MAX_LIMIT: Final = 50
_OK_HEAD: Final = b'{"request_id":"'
_OK_MIDDLE: Final = b'","method":"GET","http_code":200,"metadata":'
_HTML_500: Final = (
    "<html>\r\n<head><title>500 Internal Server Error</title></head>\r\n<body>\r\n"
    "<center><h1>500 Internal Server Error</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
# (http status, error code, message, description) of a record that fails inside a 200 page;
# Exotel documents no per-item codes, so the 5xx one is the sandbox's own.
_ITEM_FAILURES: Final = (
    (404, 1000, "Not Found", "The SMS record could not be found"),
    (500, 5000, "Internal Server Error", "The SMS record could not be loaded"),
)


def _probability(_instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    """Reject probabilities outside [0, 1]."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be between 0 and 1, got {value!r}")


def _non_negative(_instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    """Reject negative numbers."""
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def _rate_limit(value: object) -> RateLimit | None:
    """Take ``(requests, seconds)`` as a sliding window with millisecond resets, and a dict
    (from JSON, say) as ``RateLimit``'s keyword arguments."""
    if value is None or isinstance(value, RateLimit):
        return value
    if isinstance(value, Mapping):
        return RateLimit(**value)
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return RateLimit(*value)
    raise ValueError(f"rate_limit must be a RateLimit or (requests, seconds), got {value!r}")


@attrs.define
class Faults:
    """Misbehaviour knobs, all off by default; change them on ``sandbox.faults`` at any time.

    Probabilities are drawn per request (``p_item_failure`` per record) from the sandbox's own
    ``random.Random(seed)``, so a run is reproducible and a retried request gets a fresh draw.
    """

    latency: float = attrs.field(default=0.0, validator=_non_negative)
    p_500: float = attrs.field(default=0.0, validator=_probability)
    p_502: float = attrs.field(default=0.0, validator=_probability)
    p_503: float = attrs.field(default=0.0, validator=_probability)
    p_429: float = attrs.field(default=0.0, validator=_probability)
    p_reset: float = attrs.field(default=0.0, validator=_probability)
    p_truncated: float = attrs.field(default=0.0, validator=_probability)
    p_malformed: float = attrs.field(default=0.0, validator=_probability)
    p_item_failure: float = attrs.field(default=0.0, validator=_probability)
    retry_after: int = attrs.field(default=1, validator=_non_negative)
    #: How many requests the account may make, and how the server counts and says so.
    #: ``(requests, seconds)`` is a sliding window announced to the millisecond.
    rate_limit: RateLimit | None = attrs.field(default=None, converter=_rate_limit)
    grow_per_request: int = attrs.field(default=0, validator=_non_negative)
    # Hostile servers: deterministic, for testing a client's bounds.
    #: Bytes of whitespace streamed after every successful page (valid JSON, just large).
    oversized_body: int = attrs.field(default=0, validator=_non_negative)
    #: Successful pages never end: whitespace is streamed until the client hangs up.
    endless_body: bool = False
    #: Every page holds the records at offset 0 while echoing the offset asked for.
    ignore_offset: bool = False
    #: Every record gains an unknown field ``nested``: lists this many levels deep.
    nesting_depth: int = attrs.field(default=0, validator=_non_negative)
    #: Every request gets a 502 proxy page that echoes the request's headers.
    reflect_headers: bool = False


@attrs.frozen
class LoggedRequest:
    """One request the sandbox received; ``status`` is None when the connection was reset."""

    method: str
    path: str
    query: dict[str, str]
    status: int | None
    fault: str | None
    time: float
    duration: float


@attrs.define
class SandboxStats:
    """Counters since start or the last ``reset_stats()``."""

    requests: int = 0
    by_status: dict[int, int] = attrs.Factory(dict)
    by_fault: dict[str, int] = attrs.Factory(dict)
    in_flight: int = 0
    max_in_flight: int = 0


@attrs.frozen
class _Page:
    """An encoded page minus its request id: metadata and one JSON item per record."""

    metadata: bytes
    items: tuple[bytes, ...]
    joined: bytes


class _Failure(Exception):
    """A request the handler answers with Exotel's v2 error envelope."""

    def __init__(self, status: int, code: int, message: str, description: str) -> None:
        """Keep the parts of the envelope."""
        super().__init__(description)
        self.status, self.code, self.message, self.description = status, code, message, description


def _request_id() -> str:
    """Return a fresh 32-hex-digit request id."""
    return uuid.uuid4().hex


def _dumps(value: object) -> bytes:
    """Encode JSON compactly as UTF-8, keeping non-ASCII text readable as Exotel does."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _v2_error(status: int, code: int, message: str, description: str) -> web.Response:
    """Return Exotel's v2 error envelope."""
    body = {
        "request_id": _request_id(),
        "method": "GET",
        "http_code": status,
        "response": {
            "code": status,
            "status": "failure",
            "data": None,
            "error_data": {"code": code, "message": message, "description": description},
        },
    }
    return web.Response(status=status, body=_dumps(body), content_type=_JSON)


def _v1_error(status: int, message: str) -> web.Response:
    """Return the older ``RestException`` body that Exotel's throttling layers send."""
    body = {"RestException": {"Status": status, "Message": message}}
    return web.Response(status=status, body=_dumps(body), content_type=_JSON)


def _success_item(data_json: str) -> bytes:
    """Encode one successful item of a page around its record's JSON text."""
    return f'{{"code":200,"error_data":null,"status":"success","data":{data_json}}}'.encode()


def _failure_item(status: int, code: int, message: str, description: str) -> bytes:
    """Encode one failed item of an otherwise successful page."""
    error = {"code": code, "message": message, "description": description}
    return _dumps({"code": status, "status": "failure", "data": None, "error_data": error})


def _natural(raw: str | None, default: int) -> int | None:
    """Parse a non-negative decimal integer, or return None if it is not one."""
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()):
        return None
    return int(raw)


def _reset_connection(request: web.BaseRequest) -> None:
    """Drop the client's connection with a TCP reset and no response."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Linger 0 turns close into RST; platforms that refuse it still get an abrupt close.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class Sandbox:
    """A fake Exotel server on 127.0.0.1 serving deterministic SMS campaign details.

    Use ``async with Sandbox() as sb:`` and point a client at ``sb.base_url`` with
    ``sb.api_key``, ``sb.api_token`` and ``sb.account_sid``.
    """

    def __init__(
        self,
        *,
        campaigns: Mapping[str, int] | Iterable[SandboxCampaign] | None = None,
        seed: int = 0,
        max_limit: int = 50,
        faults: Faults | None = None,
        api_key: str = "sandbox-key",
        api_token: str = "sandbox-token",
        account_sid: str = "sandbox-sid",
        host: str = "127.0.0.1",
        port: int = 0,
        log_size: int = 10_000,
        cache_pages: int = 1024,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        campaign_shape: str = "flat",
        archived_gone: bool = True,
        progress: StatusProgress | None = None,
    ) -> None:
        """Configure the sandbox; nothing listens until ``start()`` or ``async with``.

        ``campaigns`` maps ids to record counts (each a completed campaign), or lists
        ``SandboxCampaign`` objects (``make_account`` generates many). ``clock`` (epoch
        seconds) drives the rate limit, its headers, the request log's times and
        ``progress`` (statuses that advance over time), and ``sleep`` the ``latency`` knob;
        tests may pass fake ones. ``campaign_shape``, ``archived_gone`` and ``progress``
        may be changed at any time.
        """
        if max_limit < 1:
            raise ValueError(f"max_limit must be >= 1, got {max_limit!r}")
        if campaign_shape not in CAMPAIGN_SHAPES:
            raise ValueError(
                f"campaign_shape must be one of {CAMPAIGN_SHAPES}, got {campaign_shape!r}"
            )
        self.seed = seed
        #: How one campaign is served: ``flat`` (``sid``, flat counters), ``stats`` (``id``,
        #: capitalised status, ``stats`` object) or ``mixed`` (each campaign one of them).
        self.campaign_shape = campaign_shape
        #: Archived campaigns answer 404 to sms-details, as their records are gone.
        self.archived_gone = archived_gone
        self._data: dict[str, CampaignData] = {}
        self._totals: dict[str, int] = {}
        self._entries: dict[str, SandboxCampaign] = {}
        self._counts: dict[str, tuple[int, dict[str, int]]] = {}
        if campaigns is None:
            campaigns = {"demo": 5000}
        if isinstance(campaigns, Mapping):
            campaigns = [SandboxCampaign(cid, total) for cid, total in campaigns.items()]
        for campaign in campaigns:
            self.add_campaign(
                campaign.campaign_id,
                campaign.records,
                name=campaign.name,
                status=campaign.status,
                created=campaign.created,
            )
        self.max_limit = max_limit
        self.faults = Faults() if faults is None else faults
        self.api_key = api_key
        self.api_token = api_token
        self.account_sid = account_sid
        self.host = host
        self._port = port
        self.request_log: deque[LoggedRequest] = deque(maxlen=log_size)
        self.stats = SandboxStats()
        self._rng = random.Random(seed)
        self._cache: OrderedDict[tuple[object, ...], _Page] = OrderedDict()
        self._cache_pages = cache_pages
        self._counter: tuple[RateLimit, Counter] | None = None
        self._clock = clock
        self._sleep = sleep
        self.progress = progress
        self._runner: web.AppRunner | None = None
        #: While holding, requests past the ``_passes`` left wait in ``_held`` for release().
        self._holding = False
        self._passes = 0
        self._held: deque[asyncio.Future[None]] = deque()
        self._held_grew: asyncio.Event | None = None

    async def __aenter__(self) -> Sandbox:
        """Start serving."""
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop serving."""
        await self.close()

    async def start(self) -> Sandbox:
        """Start listening on ``host:port`` (port 0 picks a free one) and return self."""
        if self._runner is not None:
            raise RuntimeError("the sandbox is already running")
        runner = web.AppRunner(self._make_app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._port = runner.addresses[0][1]
        self._runner = runner
        return self

    async def close(self) -> None:
        """Stop listening and drop open connections; closing twice is harmless."""
        self.release()  # a held request would keep the server from closing at once
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def port(self) -> int:
        """The TCP port the sandbox listens on."""
        self._require_running()
        return self._port

    @property
    def base_url(self) -> str:
        """The URL to give a client, e.g. ``http://127.0.0.1:54321``."""
        self._require_running()
        return f"http://{self.host}:{self._port}"

    @property
    def campaigns(self) -> dict[str, int]:
        """A copy of the current record count of each campaign."""
        return dict(self._totals)

    @property
    def account(self) -> list[SandboxCampaign]:
        """Every campaign of the account as it stands, records counted now."""
        return [
            attrs.evolve(campaign, records=self._totals[cid])
            for cid, campaign in self._entries.items()
        ]

    def add_campaign(
        self,
        campaign_id: str,
        total: int,
        *,
        name: str | None = None,
        status: str | None = None,
        created: datetime | None = None,
    ) -> None:
        """Create a campaign, or set the record count (and the fields given) of an existing one.

        A new campaign is named ``Campaign <id>``, ``completed``, and created at a time drawn
        from seed and id, unless told otherwise.
        """
        if not campaign_id or "/" in campaign_id:
            raise ValueError(f"campaign id must be non-empty without '/', got {campaign_id!r}")
        if not 0 <= total <= _MAX_RECORDS:
            raise ValueError(f"total must be between 0 and {_MAX_RECORDS}, got {total!r}")
        if status is not None and status.lower() not in CAMPAIGN_STATUSES:
            raise ValueError(f"status must be one of {CAMPAIGN_STATUSES}, got {status!r}")
        if created is not None and created.tzinfo is None:
            raise ValueError("created must be timezone-aware")
        old = self._entries.get(campaign_id) or SandboxCampaign(
            campaign_id, total, name=f"Campaign {campaign_id}"
        )
        self._entries[campaign_id] = attrs.evolve(
            old,
            name=old.name if name is None else name,
            status=old.status if status is None else status,
            created=old.created if created is None else created,
        )
        if created is not None:
            self._data.pop(campaign_id, None)  # its records' times follow its creation
        self._totals[campaign_id] = total

    def record(self, campaign_id: str, index: int) -> Record:
        """Return the ``data`` object of one record by its index in ascending order."""
        total = self._totals[campaign_id]
        if not 0 <= index < total:
            raise IndexError(f"index {index} out of range for {total} records")
        return self._campaign(campaign_id).record(index, self.progress, self._clock())

    def records(
        self,
        campaign_id: str,
        *,
        number: str | None = None,
        sort_by: str | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[Record]:
        """Return the ``data`` objects the API serves for a query, in served order."""
        if sort_by is not None and sort_by not in SORT_ORDERS:
            raise ValueError(f"sort_by must be one of {sorted(SORT_ORDERS)}, got {sort_by!r}")
        if offset < 0 or (limit is not None and limit < 0):
            raise ValueError(f"offset and limit must be >= 0, got {offset!r} and {limit!r}")
        total = self._totals[campaign_id]
        data = self._campaign(campaign_id)
        order = data.select(total, number=number, sort_by=sort_by)
        stop = None if limit is None else offset + limit
        now = self._clock()
        return [data.record(index, self.progress, now) for index in order[offset:stop]]

    def hold(self, *, after: int = 0) -> None:
        """Answer ``after`` more requests, then keep every later one waiting for ``release()``.

        For tests that act while a client is at a known point of its walk, with no timing:
        ``await sandbox.held()`` returns once a request waits.
        """
        self._holding = True
        self._passes = after

    def release(self, requests: int | None = None) -> None:
        """Let held requests go: all, and stop holding (None); or ``requests`` more of them."""
        if requests is None:
            self._holding = False
            count = len(self._held)
        else:
            count = min(requests, len(self._held))
            self._passes += requests - count  # the rest pass as they come
        for _ in range(count):
            future = self._held.popleft()
            if not future.done():
                future.set_result(None)

    async def held(self, requests: int = 1) -> None:
        """Return once ``requests`` requests are held."""
        while len(self._held) < requests:
            self._held_grew = self._held_grew or asyncio.Event()
            self._held_grew.clear()
            await self._held_grew.wait()

    async def _gate(self) -> None:
        """Wait here while holding, once the passes are spent."""
        if not self._holding:
            return
        if self._passes > 0:
            self._passes -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._held.append(future)
        if self._held_grew is not None:
            self._held_grew.set()
        try:
            await future
        finally:
            if future in self._held:  # the client hung up first
                self._held.remove(future)

    def reset_stats(self) -> None:
        """Clear the request log and counters (requests still in flight stay counted)."""
        self.request_log.clear()
        stats = self.stats
        stats.requests, stats.max_in_flight = 0, stats.in_flight
        stats.by_status.clear()
        stats.by_fault.clear()

    def _require_running(self) -> None:
        """Raise unless the sandbox is serving."""
        if self._runner is None:
            raise RuntimeError("the sandbox is not running: use 'async with Sandbox()'")

    def _campaign(self, campaign_id: str) -> CampaignData:
        """Return the record generator of a campaign, created on first use."""
        data = self._data.get(campaign_id)
        if data is None:
            created = self._entries[campaign_id].created
            epoch = None if created is None else int(created.timestamp())
            data = self._data[campaign_id] = CampaignData(self.seed, campaign_id, created=epoch)
        return data

    def _listed(self, campaign_id: str) -> Listed:
        """A campaign with its times settled, as the campaign routes serve it."""
        data = self._campaign(campaign_id)
        return Listed(
            self._entries[campaign_id],
            created=datetime.fromtimestamp(data.created, IST),
            start=datetime.fromtimestamp(data.schedule_epoch(0), IST),
        )

    def _status_counts(self, campaign_id: str) -> dict[str, int]:
        """Its records counted by status, computed once per record count."""
        total = self._totals[campaign_id]
        cached = self._counts.get(campaign_id)
        if cached is None or cached[0] != total:
            cached = self._counts[campaign_id] = (
                total,
                self._campaign(campaign_id).status_counts(total),
            )
        return cached[1]

    def _make_app(self) -> web.Application:
        """Build the aiohttp application with the three documented path forms."""

        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            """Route every request through the sandbox's bookkeeping and faults."""
            return await self._middleware(request, handler)

        app = web.Application(middlewares=[middleware])
        base = "/v2/accounts/{sid}"
        app.router.add_get(base + "/sms-campaigns/{cid}/sms-details", self._sms_details)
        app.router.add_get(base + "/sms-campaign/{cid}/sms-details", self._sms_details)
        app.router.add_get(base + "/message-campaigns/{cid}/message-details", self._messages)
        app.router.add_get(base + "/sms-campaigns", self._sms_campaign_list)
        app.router.add_get(base + "/message-campaigns", self._message_campaign_list)
        app.router.add_get(base + "/sms-campaigns/{cid}", self._one_campaign)
        app.router.add_get(base + "/message-campaigns/{cid}", self._one_campaign)
        app.router.add_get("/{tail:.*}", self._not_found)
        return app

    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Count, log, delay and fault every request, then grow the campaigns."""
        started, wall = time.monotonic(), self._clock()
        stats = self.stats
        stats.requests += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        status: int | None = None
        fault: str | None = None
        try:
            faults = self.faults
            if faults.latency:
                await self._sleep(faults.latency)
            await self._gate()
            response, fault = await self._respond(request, handler, faults)
            status = None if fault == "reset" else response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            self._account(request, status, fault, wall, time.monotonic() - started)

    def _account(
        self, request: web.Request, status: int | None, fault: str | None, wall: float, took: float
    ) -> None:
        """Update counters and the log for a finished request, then apply growth."""
        stats = self.stats
        stats.in_flight = max(stats.in_flight - 1, 0)
        if status is not None:
            stats.by_status[status] = stats.by_status.get(status, 0) + 1
        if fault is not None:
            stats.by_fault[fault] = stats.by_fault.get(fault, 0) + 1
        query = dict(request.query)
        entry = LoggedRequest(request.method, request.path, query, status, fault, wall, took)
        self.request_log.append(entry)
        grow = self.faults.grow_per_request
        if grow:
            for campaign_id, total in self._totals.items():
                self._totals[campaign_id] = min(total + grow, _MAX_RECORDS)

    async def _respond(
        self, request: web.Request, handler: Handler, faults: Faults
    ) -> tuple[web.StreamResponse, str | None]:
        """Answer a request, possibly with a fault; return the response and the fault's name."""
        limit_headers, throttle = self._rate_limit(faults.rate_limit)
        # Draw every knob on every request so one request's outcome never shifts the next's.
        roll = [self._rng.random() for _ in range(7)]
        response: web.StreamResponse
        fault: str | None
        if throttle is not None:
            response, fault = throttle, "rate_limit"
        elif faults.reflect_headers:
            response, fault = _reflected(request), "reflect_headers"
        elif roll[0] < faults.p_reset:
            _reset_connection(request)
            return web.Response(status=499), "reset"
        else:
            injected = _status_fault(faults, roll)
            response, fault = injected if injected else (await handler(request), None)
        response.headers.update(limit_headers)
        if fault is None and response.status == 200 and isinstance(response, web.Response):
            if roll[5] < faults.p_truncated:
                return await self._truncate(request, response), "truncated"
            if roll[6] < faults.p_malformed:
                return self._malform(response), "malformed"
            if faults.endless_body or faults.oversized_body:
                return await self._inflate(request, response, faults)
        return response, fault

    def _rate_limit(self, rule: RateLimit | None) -> tuple[dict[str, str], web.Response | None]:
        """Count the request against ``rule``: its headers, and the throttle if over."""
        if rule is None:
            self._counter = None
            return {}, None
        if self._counter is None or self._counter[0] != rule:
            self._counter = (rule, rule.counter())
        now = self._clock()
        admission = self._counter[1].admit(now)
        headers = rule.headers(admission, now)
        if admission.allowed:
            return headers, None
        throttle = _v1_error(
            rule.status, "Too Many Requests" if rule.status == 429 else "Service Unavailable"
        )
        if rule.retry_after:
            throttle.headers["Retry-After"] = str(max(math.ceil(admission.retry_in), 1))
        return headers, throttle

    async def _truncate(self, request: web.Request, response: web.Response) -> web.StreamResponse:
        """Promise the whole body, send half of it, then close the connection."""
        body = response.body
        assert isinstance(body, bytes)
        stream = web.StreamResponse(status=200, headers=response.headers)
        stream.content_length = len(body)
        await stream.prepare(request)
        await stream.write(body[: len(body) // 2])
        if request.transport is not None:
            request.transport.close()
        return stream

    async def _inflate(
        self, request: web.Request, response: web.Response, faults: Faults
    ) -> tuple[web.StreamResponse, str]:
        """Stream the page followed by whitespace: ``oversized_body`` bytes, or endlessly."""
        body = response.body
        assert isinstance(body, bytes)
        stream = web.StreamResponse(status=200, headers=response.headers)
        padding = None if faults.endless_body else faults.oversized_body
        if padding is not None:
            stream.content_length = len(body) + padding
        await stream.prepare(request)
        chunk = b" " * 65536
        with contextlib.suppress(ConnectionError):  # the client hung up, as it should
            await stream.write(body)
            while padding is None or padding > 0:
                piece = chunk if padding is None else chunk[:padding]
                await stream.write(piece)
                if padding is not None:
                    padding -= len(piece)
            await stream.write_eof()
        return stream, "endless_body" if faults.endless_body else "oversized_body"

    @staticmethod
    def _malform(response: web.Response) -> web.Response:
        """Return the same page with an unquoted string value, as in the product page's sample."""
        body = response.body
        assert isinstance(body, bytes)
        broken = body.replace(b'"method":"GET"', b'"method":GET', 1)
        return web.Response(status=200, body=broken, headers=response.headers)

    async def _sms_details(self, request: web.Request) -> web.Response:
        """Serve ``/sms-campaigns/{cid}/sms-details`` and its singular-path twin."""
        return self._serve_page(request, channel_required=False)

    async def _messages(self, request: web.Request) -> web.Response:
        """Serve ``/message-campaigns/{cid}/message-details``, which requires ``channel=sms``."""
        return self._serve_page(request, channel_required=True)

    async def _sms_campaign_list(self, request: web.Request) -> web.Response:
        """Serve ``/sms-campaigns``: the account's campaigns, a page at a time."""
        return self._serve_list(request, channel_required=False)

    async def _message_campaign_list(self, request: web.Request) -> web.Response:
        """Serve ``/message-campaigns``, which requires ``channel=sms``."""
        return self._serve_list(request, channel_required=True)

    async def _one_campaign(self, request: web.Request) -> web.Response:
        """Serve one campaign with its counters, in the shape ``campaign_shape`` picks."""
        try:
            self._authorize(request)
            if "channel" in request.query:  # optional here, but only sms if given
                _check_channel(request.query)
            campaign_id = self._known(request.match_info["cid"])
        except _Failure as failure:
            return _v2_error(failure.status, failure.code, failure.message, failure.description)
        shape = shape_of(self.seed, campaign_id, self.campaign_shape)
        data = self._listed(campaign_id).details(shape, self._status_counts(campaign_id))
        body = {
            "request_id": _request_id(),
            "method": "GET",
            "http_code": 200,
            "response": {"code": 200, "status": "success", "error_data": None, "data": data},
        }
        return web.Response(body=_dumps(body), content_type=_JSON)

    def _known(self, campaign_id: str) -> str:
        """Return ``campaign_id``, or raise the 404 of a campaign that does not exist."""
        if campaign_id not in self._totals:
            raise _Failure(404, 1000, "Not Found", f"No campaign with id {campaign_id}")
        return campaign_id

    def _serve_list(self, request: web.Request, *, channel_required: bool) -> web.Response:
        """Check credentials and filters, then send one page of the campaign list."""
        try:
            self._authorize(request)
            query = request.query
            if channel_required:
                _check_channel(query)
            offset, limit = _window(query, CAMPAIGN_MAX_LIMIT)
            chosen = self._select_campaigns(query)
        except _Failure as failure:
            return _v2_error(failure.status, failure.code, failure.message, failure.description)
        start = 0 if self.faults.ignore_offset else offset
        items = tuple(
            _success_item(_dumps(listed.listing(self._shape(listed))).decode())
            for listed in chosen[start : start + limit]
        )
        metadata = {"count": len(items), "offset": start, "total": len(chosen), "limit": limit}
        return self._page_response(_Page(_dumps(metadata), items, b",".join(items)), offset)

    def _shape(self, listed: Listed) -> str:
        """The shape one campaign is served in."""
        return shape_of(self.seed, listed.campaign.campaign_id, self.campaign_shape)

    def _select_campaigns(self, query: MultiMapping[str]) -> list[Listed]:
        """The campaigns a list query asks for, in its order; 400 for a bad filter."""
        statuses = _campaign_statuses(query.get("status"))
        name = query.get("name")
        if name is not None and len(name.strip()) < 3:
            raise _invalid("name must be at least 3 characters")
        sort_by = query.get("sort_by", "date_created:asc")
        if sort_by not in CAMPAIGN_SORT_ORDERS:
            raise _invalid(f"sort_by must be one of {', '.join(CAMPAIGN_SORT_ORDERS)}")
        chosen = [
            self._listed(cid)
            for cid, campaign in self._entries.items()
            if (statuses is None or campaign.status.lower() in statuses)
            and (name is None or name.strip().casefold() in (campaign.name or "").casefold())
        ]
        key, descending = CAMPAIGN_SORT_ORDERS[sort_by]
        chosen.sort(key=key, reverse=descending)
        return chosen

    async def _not_found(self, request: web.Request) -> web.Response:
        """Answer unknown paths with the v2 not-found envelope."""
        return _v2_error(404, 1000, "Not Found", f"No resource at {request.path}")

    def _serve_page(self, request: web.Request, *, channel_required: bool) -> web.Response:
        """Check credentials, account, campaign and parameters, then send one page."""
        try:
            self._authorize(request)
            campaign_id = self._known(request.match_info["cid"])
            if self.archived_gone and self._entries[campaign_id].status.lower() == "archived":
                raise _Failure(404, 1000, "Not Found", f"Campaign {campaign_id} is archived")
            query = request.query
            if channel_required:
                _check_channel(query)
            offset, limit, number, sort_by = self._parse_query(query)
            faults = self.faults
            page = self._page(
                campaign_id, 0 if faults.ignore_offset else offset, limit, number, sort_by
            )
        except _Failure as failure:
            return _v2_error(failure.status, failure.code, failure.message, failure.description)
        return self._page_response(page, offset)

    def _page_response(self, page: _Page, offset: int) -> web.Response:
        """Send a page, with the item failures and hostile shapes the faults call for."""
        faults = self.faults
        joined, metadata = page.joined, page.metadata
        if faults.p_item_failure:
            joined = b",".join(self._maybe_fail(item) for item in page.items)
        if faults.ignore_offset:
            metadata = _dumps({**json.loads(metadata), "offset": offset})
        if faults.nesting_depth:
            depth = faults.nesting_depth
            nested = b'"data":{"nested":' + b"[" * depth + b"]" * depth + b","
            joined = joined.replace(b'"data":{', nested)
        rid = _request_id().encode()
        parts = (_OK_HEAD, rid, _OK_MIDDLE, metadata, b',"response":[', joined, b"]}")
        body = b"".join(parts)
        return web.Response(body=body, content_type=_JSON)

    def _authorize(self, request: web.Request) -> None:
        """Raise 401 for missing or wrong Basic credentials, 403 for someone else's account."""
        header = request.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        key, colon, token = decoded.partition(":")
        good_key = hmac.compare_digest(key.encode(), self.api_key.encode())
        good_token = hmac.compare_digest(token.encode(), self.api_token.encode())
        if scheme.lower() != "basic" or not colon or not (good_key and good_token):
            raise _Failure(401, 1010, "Authorization failed", "Authorization failed")
        if request.match_info["sid"] != self.account_sid:
            description = "Authorization failed for this resource"
            raise _Failure(403, 1003, "Forbidden", description)

    def _parse_query(self, query: MultiMapping[str]) -> tuple[int, int, str | None, str | None]:
        """Validate offset, limit, number and sort_by, raising 400 (code 1002) on bad values."""
        offset, limit = _window(query, self.max_limit)
        number = query.get("number")
        if number == "":
            raise _invalid("number must not be empty")
        sort_by = query.get("sort_by")
        if sort_by is not None and sort_by not in SORT_ORDERS:
            raise _invalid(f"sort_by must be one of {', '.join(SORT_ORDERS)}")
        return offset, limit, number, sort_by

    def _page(
        self, campaign_id: str, offset: int, limit: int, number: str | None, sort_by: str | None
    ) -> _Page:
        """Return an encoded page, from the cache when the same window was served before."""
        total = self._totals[campaign_id]
        key = (campaign_id, offset, limit, number, sort_by, total)
        cache = self._cache
        page = cache.get(key)
        if page is not None and self.progress is None:
            cache.move_to_end(key)
            return page
        data = self._campaign(campaign_id)
        order = data.select(total, number=number, sort_by=sort_by)
        progress, now = self.progress, self._clock()
        window = order[offset : offset + limit]
        items = tuple(_success_item(data.record_json(i, progress, now)) for i in window)
        metadata = {"count": len(items), "offset": offset, "total": len(order), "limit": limit}
        page = _Page(_dumps(metadata), items, b",".join(items))
        if progress is not None:
            return page  # statuses move with the clock: nothing to reuse
        cache[key] = page
        if len(cache) > self._cache_pages:
            cache.popitem(last=False)
        return page

    def _maybe_fail(self, item: bytes) -> bytes:
        """Replace an item by a failed one with probability ``p_item_failure``."""
        if self._rng.random() >= self.faults.p_item_failure:
            return item
        return _failure_item(*self._rng.choice(_ITEM_FAILURES))


def _too_many(retry_after: int) -> web.Response:
    """Return a 429 in the v1 shape with ``Retry-After`` in seconds."""
    response = _v1_error(429, "Too Many Requests")
    response.headers["Retry-After"] = str(retry_after)
    return response


def _status_fault(faults: Faults, roll: list[float]) -> tuple[web.Response, str] | None:
    """Return the error response a 5xx or 429 knob calls for on this draw, if any."""
    if roll[1] < faults.p_500:
        return web.Response(status=500, text=_HTML_500, content_type="text/html"), "500"
    if roll[2] < faults.p_502:
        return _v1_error(502, "Bad Gateway"), "502"
    if roll[3] < faults.p_503:
        return _v1_error(503, "Service Unavailable"), "503"
    if roll[4] < faults.p_429:
        return _too_many(faults.retry_after), "429"
    return None


def _reflected(request: web.Request) -> web.Response:
    """A misconfigured proxy's error page that quotes the request's headers back."""
    echoed = "".join(f"{name}: {value}\n" for name, value in request.headers.items())
    text = f"<html><body><h1>502 Bad Gateway</h1><pre>{echoed}</pre></body></html>\n"
    return web.Response(status=502, text=text, content_type="text/html")


def _invalid(description: str) -> _Failure:
    """Return the 400 failure for an invalid parameter."""
    return _Failure(400, 1002, "Invalid parameter", description)


def _window(query: MultiMapping[str], max_limit: int) -> tuple[int, int]:
    """Validate ``offset`` and ``limit`` (default 20), raising 400 on bad values."""
    offset = _natural(query.get("offset"), 0)
    if offset is None:
        raise _invalid("offset must be a non-negative integer")
    limit = _natural(query.get("limit"), 20)
    if limit is None or not 1 <= limit <= max_limit:
        raise _invalid(f"limit must be an integer between 1 and {max_limit}")
    return offset, limit


def _campaign_statuses(raw: str | None) -> frozenset[str] | None:
    """The states a ``status`` filter names (one, or several comma-separated), folded."""
    if raw is None:
        return None
    wanted = frozenset(part.strip().lower() for part in raw.split(","))
    unknown = sorted(wanted - set(CAMPAIGN_STATUSES))
    if unknown:
        raise _invalid(f"status must be among {', '.join(CAMPAIGN_STATUSES)}, got {unknown[0]!r}")
    return wanted


def _check_channel(query: MultiMapping[str]) -> None:
    """Require ``channel=sms`` on the message-campaigns path form."""
    channel = query.get("channel")
    if channel is None:
        raise _Failure(400, 1001, "Mandatory parameter missing", "channel is mandatory")
    if channel != "sms":
        raise _Failure(400, 1002, "Invalid parameter", "channel must be sms")
