"""How a server might count its request limit and announce it: the sandbox plays each way.

Exotel documents a per-account limit but not whether its window is fixed, sliding or a
token bucket, nor how ``X-RateLimit-Reset`` is written, nor whether a throttle is a 429 or a
503 and carries ``Retry-After``. Every combination here is one plausible Exotel. No I/O.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Literal, Protocol

import attrs

WindowKind = Literal["fixed", "sliding", "token_bucket"]
ResetFormat = Literal["epoch_ms", "epoch_s", "delta_s", "none"]

WINDOW_KINDS: tuple[WindowKind, ...] = ("fixed", "sliding", "token_bucket")
RESET_FORMATS: tuple[ResetFormat, ...] = ("epoch_ms", "epoch_s", "delta_s", "none")


def _check(instance: RateLimit, _attribute: attrs.Attribute[Any], _value: object) -> None:
    """Reject a limit that no server could mean."""
    requests, seconds = instance.requests, instance.seconds
    if not isinstance(requests, int) or isinstance(requests, bool):
        raise ValueError(f"rate_limit requests must be a whole number, got {requests!r}")
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        raise ValueError(f"rate_limit seconds must be a number, got {seconds!r}")
    if requests < 1 or not seconds > 0:
        raise ValueError(
            f"rate_limit must allow >= 1 request per > 0 seconds, "
            f"got {instance.requests!r} per {instance.seconds!r}"
        )
    if instance.window not in WINDOW_KINDS:
        raise ValueError(f"window must be one of {WINDOW_KINDS}, got {instance.window!r}")
    if instance.reset not in RESET_FORMATS:
        raise ValueError(f"reset must be one of {RESET_FORMATS}, got {instance.reset!r}")
    if instance.status not in (429, 503):
        raise ValueError(f"status must be 429 or 503, got {instance.status!r}")


@attrs.frozen
class RateLimit:
    """One account-wide limit: ``requests`` per ``seconds``, counted and announced one way.

    - ``window``: ``"fixed"`` (windows aligned on multiples of ``seconds`` since the epoch),
      ``"sliding"`` (at most ``requests`` in any ``seconds``), or ``"token_bucket"``
      (``requests`` tokens, refilled continuously at ``requests / seconds``).
    - ``reset``: ``X-RateLimit-Reset`` as epoch seconds to the millisecond (rounded up),
      whole epoch seconds rounded down (up to a second early), whole seconds from now
      (rounded up), or ``"none"``: no ``X-RateLimit-*`` headers at all. It announces when the
      budget next grows: the window's end, the oldest request's expiry, or a full bucket.
    - ``status``: a throttled request is answered 429, or 503 as older Exotel SMS APIs do.
    - ``retry_after``: whether a throttle carries ``Retry-After`` (whole seconds, rounded up).
    """

    requests: int = attrs.field(validator=_check)
    seconds: float
    window: WindowKind = "sliding"
    reset: ResetFormat = "epoch_ms"
    status: int = 429
    retry_after: bool = True

    def counter(self) -> Counter:
        """A fresh counter of this limit, with nothing spent."""
        if self.window == "fixed":
            return _FixedWindow(self.requests, self.seconds)
        if self.window == "sliding":
            return _SlidingWindow(self.requests, self.seconds)
        return _TokenBucket(self.requests, self.seconds)

    def headers(self, admission: Admission, now: float) -> dict[str, str]:
        """The ``X-RateLimit-*`` headers of an answer given at ``now`` (epoch seconds)."""
        if self.reset == "none":
            return {}
        if self.reset == "epoch_ms":
            reset = f"{math.ceil(admission.reset_at * 1000) / 1000:.3f}"
        elif self.reset == "epoch_s":
            reset = str(math.floor(admission.reset_at))
        else:
            reset = str(max(math.ceil(admission.reset_at - now), 0))
        return {
            "X-RateLimit-Limit": str(self.requests),
            "X-RateLimit-Remaining": str(admission.remaining),
            "X-RateLimit-Reset": reset,
        }


@attrs.frozen
class Admission:
    """A counter's verdict on one request."""

    allowed: bool
    #: Requests still allowed after this one.
    remaining: int
    #: Epoch seconds at which the budget next grows (see ``RateLimit.reset``).
    reset_at: float
    #: Seconds until a request would be allowed; 0 when this one was.
    retry_in: float


class Counter(Protocol):
    """Counts requests against a limit; a refused request costs nothing."""

    def admit(self, now: float) -> Admission:
        """Count a request arriving at ``now`` (epoch seconds) if the limit allows it."""


class _FixedWindow:
    def __init__(self, requests: int, seconds: float) -> None:
        self._requests, self._seconds = requests, seconds
        self._index = -1
        self._used = 0

    def admit(self, now: float) -> Admission:
        index = math.floor(now / self._seconds)
        if index != self._index:
            self._index, self._used = index, 0
        reset_at = (index + 1) * self._seconds
        if self._used >= self._requests:
            return Admission(False, 0, reset_at, reset_at - now)
        self._used += 1
        return Admission(True, self._requests - self._used, reset_at, 0.0)


class _SlidingWindow:
    def __init__(self, requests: int, seconds: float) -> None:
        self._requests, self._seconds = requests, seconds
        self._log: deque[float] = deque()

    def admit(self, now: float) -> Admission:
        log = self._log
        while log and log[0] <= now - self._seconds:
            log.popleft()
        allowed = len(log) < self._requests
        if allowed:
            log.append(now)
        reset_at = log[0] + self._seconds
        retry_in = 0.0 if allowed else reset_at - now
        return Admission(allowed, self._requests - len(log), reset_at, retry_in)


class _TokenBucket:
    def __init__(self, requests: int, seconds: float) -> None:
        self._capacity = float(requests)
        self._rate = requests / seconds
        self._tokens = float(requests)
        self._at: float | None = None

    def admit(self, now: float) -> Admission:
        if self._at is not None:
            elapsed = max(now - self._at, 0.0)
            self._tokens = min(self._capacity, self._tokens + elapsed * self._rate)
        self._at = now
        allowed = self._tokens >= 1.0
        if allowed:
            self._tokens -= 1.0
        reset_at = now + (self._capacity - self._tokens) / self._rate
        retry_in = 0.0 if allowed else (1.0 - self._tokens) / self._rate
        return Admission(allowed, math.floor(self._tokens), reset_at, retry_in)
