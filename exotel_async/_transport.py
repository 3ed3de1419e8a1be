"""The only module that touches aiohttp: one ``send()`` with timeouts and retries."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import contextvars
import heapq
import itertools
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

import aiohttp
import attrs
from yarl import URL

from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    ExotelError,
    ResponseDecodeError,
    TransportError,
    is_throttle,
)
from ._protocol import PageRequest, parse_retry_after
from ._ratelimit import RateController

T = TypeVar("T")
Parse = Callable[[int, Mapping[str, str], bytes], T]

logger = logging.getLogger("exotel_async")

#: Statuses worth asking again: throttling, and failures of Exotel or its proxies.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

#: Retries after the first attempt: 6 full-jitter waits span about a minute, enough to
#: ride out Exotel's per-minute throttling window in a long export.
DEFAULT_MAX_RETRIES = 6

#: Attempts at one request however its throttles are shared out: a bound on its time.
MAX_ATTEMPTS = 100

#: The largest body read: a 1000-record page is about 0.5 MB, so 16 MiB is only ever
#: reached by a server that misbehaves.
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
_CHUNK_BYTES = 64 * 1024
#: Shorter credential forms are not scrubbed: they cannot be told from ordinary text.
_MIN_SECRET_CHARS = 8
_REDACTED = b"[redacted]"


@attrs.frozen
class RetryPolicy:
    """How often and how long to retry: full-jitter exponential backoff from ``base``."""

    max_retries: int = DEFAULT_MAX_RETRIES
    base: float = 1.0
    cap: float = 30.0
    #: A ``Retry-After`` longer than this raises ``RateLimitError`` instead of sleeping.
    max_retry_after: float = 120.0

    def backoff(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number ``retry`` (0-based), with full jitter."""
        return float(rand() * min(self.cap, self.base * 2**retry))


def _retry_reason(exc: ExotelError) -> str | None:
    """Why ``exc`` deserves another attempt, or None when it does not."""
    if isinstance(exc, APIError):
        return f"HTTP {exc.status_code}" if exc.status_code in RETRY_STATUSES else None
    if isinstance(exc, ResponseDecodeError):
        return "garbled body" if exc.retryable else None
    if isinstance(exc, TransportError):
        return type(exc).__name__ if exc.retryable else None
    return None


#: How urgent the requests of the current task are when a client caps its requests in
#: flight: a freed slot goes to the waiting request of highest priority, in arrival order
#: among equals. The account export sets it per campaign, so that the campaign with the
#: most pages left never waits behind small ones and ends the run alone.
request_priority: contextvars.ContextVar[float] = contextvars.ContextVar(
    "request_priority", default=0.0
)


class _Slots:
    """At most ``size`` holders at once; a freed slot goes to the most urgent waiter."""

    def __init__(self, size: int) -> None:
        self._free = size
        self._order = itertools.count()
        self._waiting: list[tuple[float, int, asyncio.Future[None]]] = []

    async def __aenter__(self) -> None:
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        granted = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (-request_priority.get(), next(self._order), granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._release()  # granted just as it was cancelled: pass the slot on
            raise

    async def __aexit__(self, *_exc: object) -> None:
        self._release()

    def _release(self) -> None:
        while self._waiting:
            granted = heapq.heappop(self._waiting)[2]
            if not granted.done():  # a cancelled waiter is skipped
                granted.set_result(None)
                return
        self._free += 1


class RetryObserver(Protocol):
    """Told about every retry of a request and every wait for the rate limit, e.g. to count."""

    def retrying(self, error: ExotelError, delay: float, *, throttled: bool) -> None:
        """``error`` will be retried after ``delay`` seconds; ``throttled``: it said slow down."""

    def rate_waited(self, seconds: float) -> None:
        """A request waited ``seconds`` for the account's rate limit before it started."""


class Transport:
    """Sends GETs to one base URL with auth, timeouts and retries; knows no resource.

    It owns the ``aiohttp.ClientSession`` it opens (lazily, on first use) and closes it;
    a ``session`` passed in is used as is and never closed. A log line shows a request's
    query as the request itself writes it, with its personal params masked.
    """

    def __init__(
        self,
        *,
        base_url: URL,
        headers: Mapping[str, str],
        timeout: float,
        connect_timeout: float,
        retry: RetryPolicy,
        session: aiohttp.ClientSession | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_requests_per_minute: float | None = None,
        max_in_flight: int | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self._base = str(base_url).rstrip("/")
        self._headers = dict(headers)
        self._secrets = _secrets(self._headers.get("Authorization", ""))
        # A form that holds another (key:token holds the token) can only be in a body
        # that holds the shorter one: looking for the shortest forms alone is enough.
        self._needles = tuple(
            s for s in self._secrets if not any(o in s for o in self._secrets if o != s)
        )
        self._max_body = max_response_bytes
        self._session = session
        self._owns_session = session is None
        self._closed = False
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout)
        self._retry = retry
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._sleep = sleep
        self._clock = clock
        # A connection refused before the server ever answered means a wrong address, not
        # a flaky network: it fails at once instead of after a minute of retries.
        self._answered = False
        #: Requests of every stream of the client in flight at once, if capped.
        self._in_flight: contextlib.AbstractAsyncContextManager[Any] = (
            contextlib.nullcontext() if max_in_flight is None else _Slots(max_in_flight)
        )
        #: One per client: every stream and page of it shares the account's limit.
        self.rate = RateController(
            ceiling=max_requests_per_minute / 60.0 if max_requests_per_minute else None,
            backoff=(retry.base, retry.cap),
            clock=clock,
            sleep=sleep,
        )

    def __repr__(self) -> str:
        return f"<Transport {self._base}>"

    def check_open(self) -> None:
        """Raise if ``close()`` was called: no request may start any more."""
        if self._closed:
            raise RuntimeError("this ExotelClient is closed; create a new one")

    def session(self) -> aiohttp.ClientSession:
        """The session requests go through, opened on first use."""
        self.check_open()
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        """Close the session this transport opened (never one passed in); harmless twice."""
        self._closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()

    async def send(
        self, request: PageRequest, parse: Parse[T], observer: RetryObserver | None = None
    ) -> T:
        """GET ``request`` and parse the answer, retrying what is worth retrying."""
        attempt = failures = 0
        progress = self.rate.accepted
        first_at = self._clock()
        while True:
            attempt += 1
            started = time.perf_counter()
            status: int | None = None  # stays None when no answer arrived
            try:
                status, headers, body = await self._attempt(request, observer)
                result = parse(status, headers, body)
            except ExotelError as exc:
                exc.attempts = attempt
                self._log_attempt(request, attempt, started, status, exc)
                # A throttle after the client's other requests got through since this one's
                # last attempt, or one whose headers say the budget is spent (another process
                # of the account may be spending it all), is the account's budget shared
                # out, not a server that refuses us: only failures with neither use up the
                # retries. A budget spent for longer than max_retry_after is no longer
                # shared out but refused: from then on its throttles count.
                throttled = isinstance(exc, APIError) and exc.throttled
                sharing = self.rate.spent and self._clock() - first_at < self._retry.max_retry_after
                if not (throttled and (self.rate.accepted > progress or sharing)):
                    failures += 1
                progress = self.rate.accepted
                delay = self._delay_before_retry(exc, failures, attempt)
                if delay is None:
                    raise
                logger.warning(
                    "retrying %s in %.2fs after %s (attempt %d; failure %d of %d allowed)",
                    request.path,
                    delay,
                    _retry_reason(exc),
                    attempt,
                    failures,
                    self._retry.max_retries + 1,
                )
                if observer is not None:
                    observer.retrying(exc, delay, throttled=throttled)
                if delay > 0:
                    await self._sleep(delay)
            else:
                self._log_attempt(request, attempt, started, status, result)
                return result

    def _delay_before_retry(self, exc: ExotelError, failures: int, attempt: int) -> float | None:
        """Seconds to wait before the next attempt, or None to give up and raise."""
        if (
            _retry_reason(exc) is None
            or failures > self._retry.max_retries
            or attempt > MAX_ATTEMPTS
        ):
            return None
        retry_after = exc.retry_after if isinstance(exc, APIError) else None
        if retry_after is not None and retry_after > self._retry.max_retry_after:
            return None
        if isinstance(exc, APIError) and exc.throttled:
            return 0.0  # the rate controller holds every request of the client instead
        return retry_after if retry_after is not None else self._retry.backoff(failures - 1)

    async def _attempt(
        self, request: PageRequest, observer: RetryObserver | None
    ) -> tuple[int, Mapping[str, str], bytes]:
        """Make one request within the rate limits, and tell the controller its answer."""
        # The slot first: a ticket is the moment a request leaves, not when it queued.
        async with self._in_flight:
            return await self._attempt_in_slot(request, observer)

    async def _attempt_in_slot(
        self, request: PageRequest, observer: RetryObserver | None
    ) -> tuple[int, Mapping[str, str], bytes]:
        """``_attempt`` once its request may be in flight."""
        ticket = await self.rate.acquire()
        if observer is not None and ticket.waited > 0:
            observer.rate_waited(ticket.waited)
        status: int | None = None
        headers: Mapping[str, str] | None = None
        try:
            status, headers, body = await self._request(request)
            return status, headers, body
        finally:
            retry_after = None
            if headers is not None and is_throttle(status):
                retry_after = parse_retry_after(headers.get("Retry-After"))
            self.rate.learn(ticket, status, headers, retry_after)

    async def _request(self, request: PageRequest) -> tuple[int, Mapping[str, str], bytes]:
        """Make one request; map aiohttp's failures onto our transport errors."""
        failure: TransportError
        try:
            async with self.session().get(
                self._base + request.path,
                params=request.params,
                headers=self._headers,
                timeout=self._timeout,
                ssl=self._ssl,
                allow_redirects=False,
            ) as response:
                self._answered = True
                body = await self._read_body(response)
                return response.status, response.headers, self._scrub(body)
        except asyncio.TimeoutError:
            failure = APITimeoutError(f"no answer within {self._timeout.total}s from {self._base}")
        except aiohttp.ClientError as exc:
            described = self._scrub(_describe(exc).encode()).decode("utf-8", "replace")
            failure = self._refusal(exc) or APIConnectionError(
                f"{type(exc).__name__} talking to {self._base}: {described}",
                # A certificate that fails today fails on every retry too.
                retryable=not isinstance(exc, (aiohttp.ClientSSLError, ssl.SSLError)),
            )
        # Raised outside the except block so that neither __cause__ nor __context__ holds
        # aiohttp's exception: some carry the request's headers (the Authorization header)
        # and its full URL (the number filter).
        raise failure

    def _refusal(self, exc: aiohttp.ClientError) -> APIConnectionError | None:
        """The error for an address that cannot work, before any answer: not retried.

        A refused connection or a host name that does not resolve, before the server ever
        answered, is a wrong address or region, not a flaky network: retrying it would
        only keep the caller waiting a minute. Afterwards it is a restart or an outage.
        """
        if self._answered or not isinstance(exc, aiohttp.ClientConnectorError):
            return None
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            what = f"cannot resolve the host of {self._base}"
        elif isinstance(exc.os_error, ConnectionRefusedError):
            what = f"connection refused by {self._base}: nothing answers there"
        else:
            return None
        return APIConnectionError(
            f"{what}; check the base URL or region (EXOTEL_BASE_URL, EXOTEL_REGION)",
            retryable=False,
        )

    async def _read_body(self, response: aiohttp.ClientResponse) -> bytes:
        """Read the body, refusing it once it would pass ``max_response_bytes``."""
        announced = response.content_length
        if announced is not None and announced > self._max_body:
            raise self._too_large(response.status, f"announces {announced} bytes")
        if announced is not None and "Content-Encoding" not in response.headers:
            # aiohttp reads no more than an announced length of plain bytes: one read,
            # a few microseconds less per page than the loop below.
            return await response.read()
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
            size += len(chunk)
            if size > self._max_body:
                raise self._too_large(response.status, "kept coming")
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, status: int, what: str) -> ResponseDecodeError:
        """The error for a body past the cap: asking again would only fetch it again."""
        return ResponseDecodeError(
            f"response body {what}, more than max_response_bytes={self._max_body}",
            status_code=status,
        )

    def _scrub(self, data: bytes) -> bytes:
        """``data`` without the credentials a server or proxy may have echoed back."""
        if not any(needle in data for needle in self._needles):
            return data
        for secret in self._secrets:  # longest first: key:token before the token alone
            data = data.replace(secret, _REDACTED)
        return data

    def _log_attempt(
        self,
        request: PageRequest,
        attempt: int,
        started: float,
        status: int | None,
        outcome: object,
    ) -> None:
        """One DEBUG line per attempt: path, masked query, status, request id, timing."""
        if not logger.isEnabledFor(logging.DEBUG):
            return
        logger.debug(
            "GET %s?%s -> %s request_id=%s attempt=%d elapsed_ms=%.1f%s",
            request.path,
            request.loggable_query(),
            "-" if status is None else status,
            getattr(outcome, "request_id", None),
            attempt,
            (time.perf_counter() - started) * 1000,
            f" error={type(outcome).__name__}" if isinstance(outcome, Exception) else "",
        )


def _secrets(authorization: str) -> tuple[bytes, ...]:
    """The forms in which Basic credentials could come back, longest first.

    The base64 value, ``key:token`` and the token, each also with ``/`` escaped as JSON
    encoders may write it.
    """
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return ()
    try:
        pair = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        return ()
    forms = {encoded.encode(), pair, pair.partition(b":")[2]}
    forms |= {form.replace(b"/", b"\\/") for form in forms}
    return tuple(sorted((f for f in forms if len(f) >= _MIN_SECRET_CHARS), key=len, reverse=True))


def _describe(exc: aiohttp.ClientError) -> str:
    """What went wrong, without the URL or headers some aiohttp errors carry."""
    if isinstance(exc, aiohttp.ClientResponseError):
        return exc.message
    if isinstance(exc, aiohttp.ClientConnectorError):
        return str(exc.os_error)
    if isinstance(exc, aiohttp.InvalidURL):
        return "invalid URL"
    return str(exc) or type(exc).__name__
