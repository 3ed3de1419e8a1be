"""The sandbox's rate limits: counters and headers sans I/O, throttles on a fake clock."""

from __future__ import annotations

import base64
import math
from typing import Any

import aiohttp
import pytest

from exotel_async.testing import WINDOW_KINDS, Faults, RateLimit, Sandbox
from exotel_async.testing._ratelimits import Admission, Counter

PATH = "/v2/accounts/sandbox-sid/sms-campaigns/demo/sms-details"
AUTH = {"Authorization": "Basic " + base64.b64encode(b"sandbox-key:sandbox-token").decode()}
EPOCH = 1_700_000_000.0


def admit_all(counter: Counter, times: list[float]) -> list[bool]:
    """Whether each request, arriving at the given times in turn, was allowed."""
    return [counter.admit(now).allowed for now in times]


# --- fixed windows -----------------------------------------------------------------------------


def test_fixed_window_refuses_the_request_past_the_limit_until_the_window_ends() -> None:
    """The (requests+1)-th in a window is refused, retry_in running to the window's end."""
    counter = RateLimit(3, 10.0, window="fixed").counter()
    assert admit_all(counter, [1003.0, 1004.0, 1005.0]) == [True, True, True]
    assert counter.admit(1006.5) == Admission(False, 0, 1010.0, 3.5)


def test_fixed_windows_align_on_multiples_of_seconds_since_the_epoch() -> None:
    """A window started mid-period still ends at the next multiple of ``seconds``."""
    counter = RateLimit(1, 10.0, window="fixed").counter()
    assert counter.admit(1009.5) == Admission(True, 0, 1010.0, 0.0)
    assert counter.admit(1010.0) == Admission(True, 0, 1020.0, 0.0)


def test_fixed_window_counts_remaining_down_within_a_window() -> None:
    """Each allowed request lowers remaining by one; the reset is the window's end."""
    counter = RateLimit(3, 10.0, window="fixed").counter()
    got = [counter.admit(now) for now in (1000.0, 1001.0, 1002.0)]
    assert [(a.remaining, a.reset_at) for a in got] == [(2, 1010.0), (1, 1010.0), (0, 1010.0)]


# --- sliding windows ---------------------------------------------------------------------------


def test_sliding_window_frees_a_slot_exactly_seconds_after_each_accepted_request() -> None:
    """Each accepted request's slot comes back ``seconds`` after it, not a moment sooner."""
    counter = RateLimit(2, 10.0, window="sliding").counter()
    assert admit_all(counter, [100.0, 103.0]) == [True, True]
    assert counter.admit(109.5) == Admission(False, 0, 110.0, 0.5)
    assert counter.admit(110.0) == Admission(True, 0, 113.0, 0.0)
    assert counter.admit(112.5) == Admission(False, 0, 113.0, 0.5)
    assert counter.admit(113.0).allowed


def test_sliding_window_reset_is_the_oldest_requests_expiry() -> None:
    """The reset announced is when the oldest request in the window leaves it."""
    counter = RateLimit(3, 10.0, window="sliding").counter()
    counter.admit(100.0)
    assert counter.admit(104.0) == Admission(True, 1, 110.0, 0.0)


# --- token buckets -----------------------------------------------------------------------------


def test_token_bucket_allows_a_burst_of_its_capacity_then_refuses() -> None:
    """A full bucket of 4 lets 4 through at once; the fifth waits one token's refill."""
    counter = RateLimit(4, 2.0, window="token_bucket").counter()
    assert admit_all(counter, [100.0] * 4) == [True] * 4
    assert counter.admit(100.0) == Admission(False, 0, 102.0, 0.5)


def test_token_bucket_refills_continuously() -> None:
    """Half a token is not enough; a whole one, a refill period later, is."""
    counter = RateLimit(4, 2.0, window="token_bucket").counter()
    admit_all(counter, [100.0] * 4)
    assert counter.admit(100.25) == Admission(False, 0, 102.0, 0.25)
    assert counter.admit(100.5) == Admission(True, 0, 102.5, 0.0)


def test_token_bucket_reset_announces_when_it_is_full() -> None:
    """At the announced reset a whole capacity's burst goes through again."""
    counter = RateLimit(4, 2.0, window="token_bucket").counter()
    admit_all(counter, [100.0] * 3)
    reset_at = counter.admit(100.0).reset_at
    assert reset_at == 102.0
    assert admit_all(counter, [reset_at] * 5) == [True] * 4 + [False]


def test_token_bucket_never_holds_more_than_its_capacity() -> None:
    """After a long idle spell the bucket holds ``requests`` tokens, no more."""
    counter = RateLimit(4, 2.0, window="token_bucket").counter()
    counter.admit(100.0)
    assert counter.admit(1000.0) == Admission(True, 3, 1000.5, 0.0)


# --- every counter -----------------------------------------------------------------------------


@pytest.mark.parametrize("window", WINDOW_KINDS)
def test_a_refused_request_costs_nothing(window: Any) -> None:
    """A counter that refused a storm of requests answers later ones as if none had come."""
    limit = RateLimit(2, 8.0, window=window)
    stormed, calm = limit.counter(), limit.counter()
    for counter in (stormed, calm):
        admit_all(counter, [96.0, 96.0])
    assert not any(admit_all(stormed, [97.0, 98.0, 99.0, 99.5]))
    probes = [100.0, 102.0, 104.0, 104.0, 104.0]
    after_storm = [stormed.admit(now) for now in probes]
    assert after_storm == [calm.admit(now) for now in probes]
    assert any(admission.allowed for admission in after_storm)


@pytest.mark.parametrize("window", WINDOW_KINDS)
def test_a_fresh_counter_allows_exactly_requests_at_once(window: Any) -> None:
    """Every kind of counter lets ``requests`` through at one instant and refuses the next."""
    counter = RateLimit(5, 10.0, window=window).counter()
    assert admit_all(counter, [EPOCH] * 6) == [True] * 5 + [False]


# --- header formats ----------------------------------------------------------------------------


def reset_header(reset: Any, reset_at: float, now: float = EPOCH) -> str:
    """The X-RateLimit-Reset a limit announcing ``reset`` sends for ``reset_at``."""
    headers = RateLimit(10, 60.0, reset=reset).headers(Admission(True, 4, reset_at, 0.0), now)
    return headers["X-RateLimit-Reset"]


def test_headers_carry_the_limit_and_what_remains() -> None:
    """X-RateLimit-Limit is ``requests`` and X-RateLimit-Remaining the admission's count."""
    headers = RateLimit(10, 60.0).headers(Admission(True, 4, EPOCH + 1, 0.0), EPOCH)
    assert (headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]) == ("10", "4")


@pytest.mark.parametrize(
    ("reset_at", "expected"),
    [(EPOCH + 2.0, "1700000002.000"), (EPOCH + 2.0004, "1700000002.001")],
)
def test_epoch_ms_reset_is_rounded_up_to_the_millisecond(reset_at: float, expected: str) -> None:
    """epoch_ms writes epoch seconds with three decimals, never before the true reset."""
    assert reset_header("epoch_ms", reset_at) == expected


@pytest.mark.parametrize(
    ("reset_at", "expected"), [(EPOCH + 2.0, "1700000002"), (EPOCH + 2.9, "1700000002")]
)
def test_epoch_s_reset_is_rounded_down_to_whole_seconds(reset_at: float, expected: str) -> None:
    """epoch_s writes whole epoch seconds, up to a second before the true reset."""
    assert reset_header("epoch_s", reset_at) == expected


@pytest.mark.parametrize(
    ("reset_at", "expected"),
    [(EPOCH + 2.0, "2"), (EPOCH + 2.25, "3"), (EPOCH + 0.001, "1"), (EPOCH - 1.0, "0")],
)
def test_delta_s_reset_is_whole_seconds_from_now_rounded_up(reset_at: float, expected: str) -> None:
    """delta_s writes seconds from now, rounded up, and never a negative number."""
    assert reset_header("delta_s", reset_at) == expected


def test_reset_none_sends_no_ratelimit_headers() -> None:
    """reset="none" announces nothing: no X-RateLimit-* header at all."""
    limit = RateLimit(10, 60.0, reset="none")
    assert limit.headers(Admission(True, 4, EPOCH + 1, 0.0), EPOCH) == {}


# --- argument checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"requests": 0, "seconds": 1.0}, "rate_limit must allow >= 1 request per > 0 seconds"),
        ({"requests": 5, "seconds": 0.0}, "rate_limit must allow >= 1 request per > 0 seconds"),
        ({"requests": 5, "seconds": -1.0}, "got 5 per -1.0"),
        ({"requests": 5, "seconds": math.nan}, "got 5 per nan"),
        ({"requests": 5, "seconds": 1.0, "window": "leaky"}, "window must be one of .*'leaky'"),
        ({"requests": 5, "seconds": 1.0, "reset": "iso"}, "reset must be one of .*'iso'"),
        ({"requests": 5, "seconds": 1.0, "status": 500}, "status must be 429 or 503, got 500"),
    ],
)
def test_invalid_rate_limits_are_refused_with_a_clear_message(
    kwargs: dict[str, Any], message: str
) -> None:
    """A limit no server could mean raises ValueError naming the bad argument."""
    with pytest.raises(ValueError, match=message):
        RateLimit(**kwargs)


@pytest.mark.parametrize("value", [(5,), (5, 1.0, "sliding"), "5/1s"])
def test_faults_refuse_a_rate_limit_of_the_wrong_shape(value: Any) -> None:
    """Faults.rate_limit refuses a bare number, a string or a tuple of the wrong length."""
    with pytest.raises(
        ValueError, match=r"rate_limit must be a RateLimit or \(requests, seconds\)"
    ):
        Faults(rate_limit=value)


def test_faults_read_a_pair_as_a_sliding_window_announced_in_milliseconds() -> None:
    """``(requests, seconds)`` means a sliding window, epoch_ms resets, 429 with Retry-After."""
    assert Faults(rate_limit=(5, 1.0)).rate_limit == RateLimit(5, 1.0, "sliding", "epoch_ms")


# --- over loopback, on a fake clock ------------------------------------------------------------


async def throttled_answer(limit: RateLimit, now: list[float], advance: float = 0.0) -> Any:
    """Spend ``limit``'s whole budget, move the fake clock on, and return the next answer."""
    async with (
        Sandbox(
            campaigns={"demo": 10}, faults=Faults(rate_limit=limit), clock=lambda: now[0]
        ) as sb,
        aiohttp.ClientSession(sb.base_url, headers=AUTH) as http,
    ):
        for _ in range(limit.requests):
            async with http.get(PATH) as response:
                assert response.status == 200
        now[0] += advance
        async with http.get(PATH) as response:
            await response.read()
            return response.status, response.headers, sb.stats.by_fault


async def test_throttle_is_503_when_configured() -> None:
    """A limit with status=503 answers the request past it 503, counted as a rate_limit fault."""
    status, _, by_fault = await throttled_answer(RateLimit(2, 10.0, status=503), [100.0])
    assert (status, by_fault) == (503, {"rate_limit": 1})


async def test_throttle_without_retry_after_when_disabled() -> None:
    """retry_after=False: the throttle has no Retry-After, but still the X-RateLimit headers."""
    _, headers, _ = await throttled_answer(RateLimit(2, 10.0, retry_after=False), [100.0])
    assert "Retry-After" not in headers
    assert headers["X-RateLimit-Remaining"] == "0"


@pytest.mark.parametrize(("advance", "expected"), [(2.5, "8"), (9.75, "1"), (0.0, "10")])
async def test_retry_after_is_whole_seconds_rounded_up(advance: float, expected: str) -> None:
    """Retry-After gives the seconds until a request is allowed, rounded up, at least 1."""
    _, headers, _ = await throttled_answer(RateLimit(1, 10.0), [100.0], advance)
    assert headers["Retry-After"] == expected


async def test_reset_none_sends_no_ratelimit_headers_over_the_wire() -> None:
    """A limit with reset="none" throttles without any X-RateLimit-* header."""
    status, headers, _ = await throttled_answer(RateLimit(1, 10.0, reset="none"), [100.0])
    assert status == 429
    assert not [name for name in headers if name.lower().startswith("x-ratelimit")]


async def test_a_new_rate_limit_starts_a_fresh_count() -> None:
    """Switching sandbox.faults.rate_limit to another RateLimit forgets what the old one counted."""
    now = [100.0]
    async with (
        Sandbox(faults=Faults(rate_limit=RateLimit(1, 10.0)), clock=lambda: now[0]) as sb,
        aiohttp.ClientSession(sb.base_url, headers=AUTH) as http,
    ):
        statuses = []
        for limit in (RateLimit(1, 10.0), RateLimit(2, 10.0)):
            sb.faults.rate_limit = limit
            for _ in range(limit.requests + 1):
                async with http.get(PATH) as response:
                    statuses.append(response.status)
    assert statuses == [200, 429, 200, 200, 429]


async def test_an_equal_rate_limit_keeps_the_count() -> None:
    """Assigning a RateLimit equal to the current one does not reset the counter."""
    now = [100.0]
    async with (
        Sandbox(faults=Faults(rate_limit=RateLimit(1, 10.0)), clock=lambda: now[0]) as sb,
        aiohttp.ClientSession(sb.base_url, headers=AUTH) as http,
    ):
        statuses = []
        for _ in range(2):
            sb.faults.rate_limit = RateLimit(1, 10.0)
            async with http.get(PATH) as response:
                statuses.append(response.status)
    assert statuses == [200, 429]
