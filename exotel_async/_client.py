"""``ExotelClient``: configuration, session lifecycle, and the public methods."""

from __future__ import annotations

import asyncio
import base64
import enum
import ipaddress
import logging
import math
import os
import ssl
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, TypeAlias, TypeVar

import aiohttp
import attrs
from yarl import URL

from ._follow import DEFAULT_DEADLINE
from ._models import Campaign, CampaignStatus, Page, SmsPage, SmsRecord
from ._pagination import FetchPage, PagedStream, compact_key
from ._protocol import (
    MAX_LIMIT,
    PageRequest,
    PathForm,
    campaign_request,
    campaigns_request,
    check_int,
    check_number,
    check_page_request,
    check_path_segment,
    check_sort_by,
    mask_number,
    parse_item,
    parse_page,
    sms_details_request,
)
from ._transport import (
    DEFAULT_MAX_RESPONSE_BYTES,
    RetryObserver,
    RetryPolicy,
    Transport,
)

if TYPE_CHECKING:
    from ._follow import Follow, FollowSummary

logger = logging.getLogger("exotel_async")


class Region(str, enum.Enum):
    """Exotel's clusters; each has its own API host."""

    SINGAPORE = "singapore"
    MUMBAI = "mumbai"

    @property
    def host(self) -> str:
        """The API host of this cluster."""
        return {"singapore": "api.exotel.com", "mumbai": "api.in.exotel.com"}[self.value]


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_base_url(base_url: str | URL) -> URL:
    """Accept https anywhere and plain http only on loopback (tests, the sandbox)."""
    if not isinstance(base_url, (str, URL)):
        raise TypeError(f"base_url must be a str, got {type(base_url).__name__}")
    # No message below quotes the URL whole: it may carry a token, in any shape.
    try:
        url = URL(base_url)
    except ValueError:
        raise ValueError("base_url is not a valid URL") from None
    if url.user or url.password:
        raise ValueError("base_url must not carry credentials; pass api_key and api_token")
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(
            f"base_url must be an http(s) URL with a host, like https://api.exotel.com; "
            f"got scheme {url.scheme!r}"
        )
    if url.query_string or url.fragment:
        raise ValueError("base_url must not have a query or fragment")
    if url.scheme == "http" and not _is_loopback(url.host):
        raise ValueError("base_url must use https (plain http is allowed only for loopback hosts)")
    return url


def _check_str(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty")
    return value


E = TypeVar("E", bound=enum.Enum)
T = TypeVar("T")
_RETRY = RetryPolicy()


def _check_choice(name: str, choices: type[E], value: object) -> E:
    if isinstance(value, str) and not isinstance(value, enum.Enum):
        value = value.strip().lower()  # EXOTEL_REGION=Mumbai means mumbai
    try:
        return choices(value)
    except ValueError:
        allowed = ", ".join(repr(c.value) for c in choices)
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}") from None


def _check_positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a positive number, got {type(value).__name__}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return float(value)


def check_ceiling(value: object) -> float:
    """A ceiling in requests a minute: below one it is no ceiling an export could use (and
    one too small to divide becomes none at all)."""
    per_minute = _check_positive("max_requests_per_minute", value)
    if per_minute < 1:
        raise ValueError(f"max_requests_per_minute must be at least 1, got {value}")
    return per_minute


def _check_collaborators(
    ssl_context: object, session: object, clock: object, sleep: object
) -> None:
    """Refuse the objects the client hands on, when they are not what it needs."""
    if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
        raise TypeError("ssl_context must be an ssl.SSLContext")
    if session is not None and not isinstance(session, aiohttp.ClientSession):
        raise TypeError("session must be an aiohttp.ClientSession")
    if not callable(clock) or not callable(sleep):
        raise TypeError("clock and sleep must be functions, like time.time and asyncio.sleep")


_CREDENTIALS = ("api_key", "api_token", "account_sid")


class MissingCredentials(ValueError):
    """``from_env()`` found credential variables unset; ``variables`` names them all."""

    def __init__(self, variables: list[str]) -> None:
        self.variables = variables
        if len(variables) == 1:
            text = f"environment variable {variables[0]} is not set"
        else:
            names = f"{', '.join(variables[:-1])} and {variables[-1]}"
            text = f"environment variables {names} are not set"
        super().__init__(text)


def _missing_credentials(overrides: Mapping[str, object]) -> list[str]:
    """The ``EXOTEL_*`` credential variables that are unset and not overridden."""
    return [
        f"EXOTEL_{name.upper()}"
        for name in _CREDENTIALS
        if name not in overrides and not os.environ.get(f"EXOTEL_{name.upper()}")
    ]


if TYPE_CHECKING:
    SmsDetailsStream: TypeAlias = PagedStream[SmsRecord]
else:
    # The class itself at run time, so that ``isinstance(stream, SmsDetailsStream)`` works.
    SmsDetailsStream = PagedStream


def _check_record_class(item_type: object) -> None:
    """Refuse at the call what the converter could never structure a page into."""
    if not (isinstance(item_type, type) and attrs.has(item_type)):
        raise TypeError(f"item_type must be an attrs class, got {item_type!r}")


def _sid(record: SmsRecord) -> Hashable:
    return compact_key(record.sid)


def _campaign_id(campaign: Campaign) -> str:
    return campaign.campaign_id


#: Exotel documents 50 as the campaign list's largest page.
MAX_CAMPAIGNS_LIMIT = 50


class ExotelClient:
    """An asyncio client for Exotel's "SMS details of a campaign" API.

    Use it as ``async with ExotelClient(...) as client:``; it then owns an
    ``aiohttp.ClientSession`` and closes it on exit. A ``session`` passed in is used
    as is and never closed by the client.

    Args:
        api_key: The API key from the Exotel dashboard.
        api_token: The API token; it is sent only in the ``Authorization`` header.
        account_sid: The account sid.
        region: ``"singapore"`` (api.exotel.com) or ``"mumbai"`` (api.in.exotel.com).
        base_url: Overrides ``region``; https, or http on a loopback host.
        timeout: Seconds one attempt may take in all.
        connect_timeout: Seconds to establish a connection.
        max_retries: Retries after the first attempt for transient failures; 0 disables.
            A throttle counts only if no other request of the client got through since.
        backoff_base: Seconds of the first backoff step; retry n waits up to base x 2^n.
        backoff_cap: The longest wait between two attempts, in seconds.
        max_retry_after: A ``Retry-After`` longer than this raises ``RateLimitError`` at once.
        max_requests_per_minute: A hard ceiling on this client's request rate, across all
            its streams, at least 1; requests are spaced evenly. None (default) relies on
            Exotel's ``X-RateLimit-*`` headers and on backing off when throttled.
        max_in_flight: A ceiling on this client's requests in flight at once, across all
            its streams and pages: many campaigns exported side by side then share it.
            Waits between retries hold no slot. None (default): each stream's
            ``concurrency`` alone bounds its own.
        path_form: ``"sms-campaigns"`` (default) or ``"message-campaigns"``, the newer URL.
        ssl_context: A context for a private CA; certificates are always verified.
        session: An ``aiohttp.ClientSession`` to use instead of the client's own.
        max_response_bytes: The largest response body read; a larger one raises
            ``ResponseDecodeError`` without a retry. The default, 16 MiB, is about 30 times
            a 1000-record page.
        clock: Epoch seconds, for the rate controller; tests pass a fake one.
        sleep: Waits for retries and the rate limit; tests pass a fake one.
    """

    def __init__(
        self,
        api_key: str,
        api_token: str,
        account_sid: str,
        *,
        region: Region | str = Region.SINGAPORE,
        base_url: str | URL | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        max_retries: int = _RETRY.max_retries,
        backoff_base: float = _RETRY.base,
        backoff_cap: float = _RETRY.cap,
        max_retry_after: float = _RETRY.max_retry_after,
        max_requests_per_minute: float | None = None,
        max_in_flight: int | None = None,
        path_form: PathForm | str = PathForm.SMS_CAMPAIGNS,
        ssl_context: ssl.SSLContext | None = None,
        session: aiohttp.ClientSession | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if ":" in _check_str("api_key", api_key):
            # Basic auth joins key and token with ':'; the server would split at the first.
            raise ValueError("api_key must not contain ':'")
        _check_str("api_token", api_token)
        self.account_sid = check_path_segment("account_sid", account_sid)
        self.region = _check_choice("region", Region, region)
        self.base_url = (
            _check_base_url(base_url)
            if base_url is not None
            else URL(f"https://{self.region.host}")
        )
        self.path_form = _check_choice("path_form", PathForm, path_form)
        self.max_requests_per_minute = (
            None if max_requests_per_minute is None else check_ceiling(max_requests_per_minute)
        )
        check_int("max_retries", max_retries, minimum=0, maximum=100)
        _check_collaborators(ssl_context, session, clock, sleep)
        credentials = base64.b64encode(f"{api_key}:{api_token}".encode()).decode("ascii")
        self._transport = Transport(
            base_url=self.base_url,
            headers={"Authorization": f"Basic {credentials}", "Accept": "application/json"},
            session=session,
            timeout=_check_positive("timeout", timeout),
            connect_timeout=_check_positive("connect_timeout", connect_timeout),
            retry=RetryPolicy(
                max_retries=max_retries,
                base=_check_positive("backoff_base", backoff_base),
                cap=_check_positive("backoff_cap", backoff_cap),
                max_retry_after=_check_positive("max_retry_after", max_retry_after),
            ),
            ssl_context=ssl_context,
            max_requests_per_minute=self.max_requests_per_minute,
            max_in_flight=(
                None
                if max_in_flight is None
                else check_int("max_in_flight", max_in_flight, minimum=1, maximum=1000)
            ),
            max_response_bytes=check_int("max_response_bytes", max_response_bytes, minimum=1),
            clock=clock,
            sleep=sleep,
        )
        # Follows wait on the same clock as retries and the rate limit.
        self._clock, self._sleep = clock, sleep

    @classmethod
    def from_env(cls, **overrides: object) -> ExotelClient:
        """Build a client from the ``EXOTEL_*`` environment variables.

        Reads ``EXOTEL_API_KEY``, ``EXOTEL_API_TOKEN`` and ``EXOTEL_ACCOUNT_SID``, and
        ``EXOTEL_REGION`` or ``EXOTEL_BASE_URL`` when set.

        Args:
            **overrides: Constructor arguments that win over the environment, e.g.
                ``max_requests_per_minute=100``.

        Returns:
            A client, not yet opened: use it with ``async with``.

        Raises:
            ValueError: Required variables are missing (the message names them all).
        """
        missing = _missing_credentials(overrides)
        if missing:
            raise MissingCredentials(missing)
        kwargs: dict[str, object] = {
            name: os.environ.get(f"EXOTEL_{name.upper()}") for name in _CREDENTIALS
        }
        for name in ("region", "base_url"):
            value = os.environ.get(f"EXOTEL_{name.upper()}")
            if value:
                kwargs[name] = value
        kwargs.update(overrides)
        return cls(**kwargs)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"<ExotelClient account_sid={self.account_sid!r} host={self.base_url.host!r}>"

    # --- lifecycle ---------------------------------------------------------------------

    async def close(self) -> None:
        """Close the session the client opened (never one passed in); harmless twice."""
        await self._transport.close()

    async def __aenter__(self) -> ExotelClient:
        self._transport.session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- API ---------------------------------------------------------------------------

    async def sms_details_page(
        self,
        campaign_id: str,
        *,
        offset: int = 0,
        limit: int = 20,
        number: str | None = None,
        sort_by: str | None = None,
    ) -> SmsPage:
        """Fetch one page of a campaign's SMS details with exactly one GET (plus retries).

        Args:
            campaign_id: The campaign sid.
            offset: The first record's position, zero-based.
            limit: Records to ask for (1 to 1000; Exotel's default is 20).
            number: Only the SMS to this phone number (exact match).
            sort_by: ``schedule_time:asc|desc`` or ``date_created:asc|desc``.

        Returns:
            The page: its records, Exotel's ``metadata`` and ``request_id``. Items whose own
            status is ``failure`` are in ``page.item_errors``, not raised.

        Raises:
            ValueError: An argument is out of range or malformed (before any request).
            TypeError: An argument has the wrong type (before any request).
            APIError: Exotel answered with an error status (a subclass names which).
            TransportError: No usable answer arrived, retries included.
            ResponseDecodeError: The answer is not the documented envelope.

        Example:
            ```python
            page = await client.sms_details_page("491dd6c97d64475ba0ce346a18530ce5", limit=20)
            print(page.metadata.total, [sms.number for sms in page.records])
            ```
        """
        request = self._sms_details_request(campaign_id, number, sort_by)
        check_int("offset", offset, minimum=0)
        check_int("limit", limit, minimum=1, maximum=MAX_LIMIT)
        return await self._fetcher(request, SmsRecord)(offset, limit, None)

    def sms_details(
        self,
        campaign_id: str,
        *,
        page_size: int = 50,
        offset: int = 0,
        max_items: int | None = None,
        number: str | None = None,
        sort_by: str | None = None,
        concurrency: int = 4,
        skip_item_errors: bool = False,
    ) -> SmsDetailsStream:
        """Stream every SMS of a campaign, in order, each once.

        Args:
            campaign_id: The campaign sid.
            page_size: Records asked per request (1 to 1000; Exotel documents 50 as a maximum
                for sibling endpoints).
            offset: Start at this record (zero-based): resume an interrupted walk.
            max_items: Stop after this many records.
            number: Only the SMS to this phone number (exact match).
            sort_by: ``schedule_time:asc|desc`` or ``date_created:asc|desc``.
            concurrency: Pages in flight at once.
            skip_item_errors: Collect failed items on ``stream.item_errors`` instead of
                raising ``ItemError``.

        Returns:
            A stream: ``async for sms in stream`` yields ``SmsRecord`` in offset order, and
            ``stream.pages()`` yields ``SmsPage``. Nothing is requested until it is iterated.

        Raises:
            ValueError: An argument is out of range or malformed (at the call).
            TypeError: An argument has the wrong type (at the call).

        Iterating raises what ``sms_details_page`` raises, and ``ItemError`` for a failed
        item unless ``skip_item_errors`` is set.

        Example:
            ```python
            async with client.sms_details("491dd6c97d64475ba0ce346a18530ce5") as stream:
                async for sms in stream:
                    print(sms.number, sms.outcome.value)
            print(stream.stats)
            ```
        """
        return self.paginate(
            self._sms_details_request(campaign_id, number, sort_by),
            SmsRecord,
            key=_sid,
            page_size=page_size,
            offset=offset,
            max_items=max_items,
            concurrency=concurrency,
            skip_item_errors=skip_item_errors,
        )

    def campaigns(
        self,
        *,
        status: CampaignStatus | str | None = None,
        name: str | None = None,
        sort_by: str | None = None,
        page_size: int = 20,
        path_form: PathForm | str | None = None,
    ) -> PagedStream[Campaign]:
        """Stream the account's SMS campaigns, each once.

        Args:
            status: Only campaigns in this state (``completed``, ``in-progress``, ... in any
                casing, or a ``CampaignStatus``).
            name: Only campaigns whose name contains this (at least 3 characters).
            sort_by: E.g. ``date_created:desc``, ``name:asc``, ``schedule.start_time:asc``.
            page_size: Campaigns asked per request (1 to 50, Exotel's maximum).
            path_form: ``"sms-campaigns"`` or ``"message-campaigns"``; the client's by default.

        Returns:
            A ``PagedStream[Campaign]``; list items may carry no counters (then None):
            ``await client.campaign(id)`` has them.

        Raises:
            ValueError: An argument is out of range or malformed (at the call).
            TypeError: An argument has the wrong type (at the call).

        Example:
            ```python
            async for campaign in client.campaigns(status="completed"):
                print(campaign.campaign_id, campaign.name, campaign.date_created)
            ```
        """
        state = None if status is None else _check_choice("status", CampaignStatus, status)
        if state is CampaignStatus.UNKNOWN:
            raise ValueError("status must be a campaign state, not 'unknown'")
        if name is not None and len(_check_str("name", name).strip()) < 3:
            raise ValueError(f"name must have at least 3 characters, got {name!r}")
        check_int("page_size", page_size, minimum=1, maximum=MAX_CAMPAIGNS_LIMIT)
        form = (
            self.path_form if path_form is None else _check_choice("path_form", PathForm, path_form)
        )
        request = campaigns_request(
            self.account_sid,
            status=None if state is None else state.value,
            name=name,
            sort_by=check_sort_by(sort_by),
            path_form=form,
        )
        return self.paginate(request, Campaign, key=_campaign_id, page_size=page_size)

    async def campaign(
        self, campaign_id: str, *, path_form: PathForm | str | None = None
    ) -> Campaign:
        """Fetch one SMS campaign with its counters, with one GET (plus retries).

        Args:
            campaign_id: The campaign's id.
            path_form: ``"sms-campaigns"`` or ``"message-campaigns"``; the client's by default.

        Returns:
            The campaign: its counters are flat (``scheduled``, ``sent``, ...) or from a
            ``stats`` object (``total``, ``delivered``, ...), as Exotel answered.

        Raises:
            ValueError: ``campaign_id`` is malformed (before any request).
            NotFoundError: No such campaign.
            APIError, TransportError, ResponseDecodeError: As for ``sms_details_page``.

        Example:
            ```python
            campaign = await client.campaign(campaign_id)
            print(campaign.state, campaign.size)
            ```
        """
        campaign_id = check_path_segment("campaign_id", campaign_id)
        form = (
            self.path_form if path_form is None else _check_choice("path_form", PathForm, path_form)
        )
        return await self._get_item(
            campaign_request(self.account_sid, campaign_id, path_form=form), Campaign
        )

    def paginate(
        self,
        request: str | PageRequest,
        item_type: type[T],
        *,
        key: Callable[[T], Hashable],
        params: Mapping[str, str] | None = None,
        page_size: int = 50,
        offset: int = 0,
        max_items: int | None = None,
        concurrency: int = 4,
        skip_item_errors: bool = False,
    ) -> PagedStream[T]:
        """Stream every record of any offset/limit endpoint of Exotel's v2 envelope.

        The building block of ``sms_details()``, and of any endpoint this version does not
        wrap: it adds ``offset`` and ``limit`` to each page's query and structures each
        item's ``data`` into ``item_type`` with the library's converter.

        Args:
            request: The path below the base URL, such as
                ``f"/v2/accounts/{client.account_sid}/sms-campaigns"``, or a ``PageRequest``
                with the path and its filter parameters.
            item_type: The record class: an attrs class; one with an ``extra`` field keeps
                the keys it does not declare there.
            key: What tells two records apart, e.g. ``operator.attrgetter("sid")``; a record
                whose key was seen recently is dropped.
            params: Query parameters sent with every page (filters), after ``request``'s.
            page_size: Records asked per request (1 to 1000).
            offset: Start at this record (zero-based).
            max_items: Stop after this many records.
            concurrency: Pages in flight at once (1 to 64).
            skip_item_errors: Collect failed items on ``stream.item_errors`` instead of
                raising ``ItemError``.

        Returns:
            A ``PagedStream[T]``: ``async for`` yields records in offset order, ``.pages()``
            yields ``Page[T]``. Nothing is requested until it is iterated.

        Raises:
            ValueError: An argument is out of range, the path holds ``?`` or ``#``, or the
                params set ``offset`` or ``limit`` (at the call).
            TypeError: An argument has the wrong type, or ``item_type`` is not an attrs
                class (at the call).

        Example:
            ```python
            @attrs.frozen
            class Campaign:
                sid: str
                name: str | None = None
                extra: Mapping[str, Any] = attrs.field(factory=dict)

            path = f"/v2/accounts/{client.account_sid}/sms-campaigns"
            campaigns = client.paginate(
                path, Campaign, key=attrgetter("sid"), params={"status": "completed"}
            )
            async for campaign in campaigns:
                print(campaign.sid, campaign.name)
            ```
        """
        request = check_page_request(request, params)
        _check_record_class(item_type)
        check_int("page_size", page_size, minimum=1, maximum=MAX_LIMIT)
        return PagedStream(
            self._fetcher(request, item_type),
            key=key,
            page_size=page_size,
            offset=offset,
            max_items=max_items,
            concurrency=concurrency,
            skip_item_errors=skip_item_errors,
        )

    def _sms_details_request(
        self, campaign_id: str, number: str | None, sort_by: str | None
    ) -> PageRequest:
        """Validate a campaign's filters and build its sms-details request."""
        campaign_id = check_path_segment("campaign_id", campaign_id)
        number = check_number(number)
        if number is not None and not number.startswith("+"):
            logger.warning(
                "number %s is not in E.164 form (+ and country code, e.g. +919876543210): "
                "Exotel matches numbers exactly, so this filter may match nothing",
                mask_number(number),
            )
        return sms_details_request(
            self.account_sid,
            campaign_id,
            number=number,
            sort_by=check_sort_by(sort_by),
            path_form=self.path_form,
        )

    async def _get_item(self, request: PageRequest, item_type: type[T]) -> T:
        """GET one object (no paging) and structure it into ``item_type``."""
        self._transport.check_open()

        def parse(status: int, headers: Mapping[str, str], body: bytes) -> T:
            return parse_item(item_type, status, headers, body)

        return await self._transport.send(request, parse)

    def _fetcher(self, request: PageRequest, item_type: type[T]) -> FetchPage[T]:
        """``fetch(offset, limit, observer)``: one page of ``request`` as ``Page[T]``."""
        self._transport.check_open()
        send = self._transport.send

        async def fetch(offset: int, limit: int, observer: RetryObserver | None) -> Page[T]:
            def parse(status: int, headers: Mapping[str, str], body: bytes) -> Page[T]:
                return parse_page(item_type, status, headers, body, expected_offset=offset)

            return await send(request.at(offset, limit), parse, observer)

        return fetch

    # --- following a campaign ---------------------------------------------------------------

    def follow(
        self,
        campaign_id: str,
        *,
        interval: float | timedelta = 300.0,
        until_final: bool = True,
        deadline: float | timedelta | None = DEFAULT_DEADLINE,
        skip_final_pages: bool = False,
        page_size: int = 50,
        concurrency: int = 4,
    ) -> Follow:
        """Re-walk a campaign every ``interval`` seconds, yielding each change of status.

        Args:
            campaign_id: The campaign sid.
            interval: Seconds (or a ``timedelta``) from one walk's start to the next's;
                at least 1.
            until_final: End once every SMS is delivered or failed.
            deadline: End after a last walk this long after the start (48 hours); None
                never. Checked between walks: the follow ends at most one walk past it.
            skip_final_pages: Walk in ``schedule_time`` order and re-read only the pages
                that held an SMS not yet final (see "Sync to a database").
            page_size: Records asked per request.
            concurrency: Pages in flight at once.

        Returns:
            An async iterator of ``Transition`` (old status, new status, record): the first
            walk learns each SMS's status, later walks yield the SMS whose status or
            detailed status changed. ``.summary`` says how it ended.

        Example:
            ```python
            async for change in client.follow("491dd6c9...", interval=60):
                print(change.record.sid, change.old_status, "->", change.new_status)
            ```
        """
        from ._sync import follow

        return follow(
            self,
            campaign_id,
            interval=interval,
            until_final=until_final,
            deadline=deadline,
            skip_final_pages=skip_final_pages,
            page_size=page_size,
            concurrency=concurrency,
        )

    async def wait_until_final(
        self,
        campaign_id: str,
        *,
        deadline: float | timedelta | None = DEFAULT_DEADLINE,
        interval: float | timedelta = 300.0,
        skip_final_pages: bool = False,
        page_size: int = 50,
        concurrency: int = 4,
    ) -> FollowSummary:
        """Re-walk a campaign until every SMS is delivered or failed, or ``deadline`` passes.

        Returns:
            The summary: ``final`` says whether every SMS settled before the deadline, and
            ``outcomes`` counts the SMS by outcome.

        Example:
            ```python
            summary = await client.wait_until_final("491dd6c9...", deadline=timedelta(hours=48))
            print(summary.final, summary.outcomes)
            ```
        """
        from ._sync import wait_until_final

        return await wait_until_final(
            self,
            campaign_id,
            deadline=deadline,
            interval=interval,
            skip_final_pages=skip_final_pages,
            page_size=page_size,
            concurrency=concurrency,
        )
