"""A client for tests against the sandbox: millisecond backoff, so faults cost no real time."""

from __future__ import annotations

from typing import Any

from exotel_async import ExotelClient
from exotel_async.testing import Sandbox


def fast_client(sandbox: Sandbox, **kwargs: Any) -> ExotelClient:
    """A client of ``sandbox`` whose retries and throttle holds wait milliseconds."""
    options: dict[str, Any] = {
        "base_url": sandbox.base_url,
        "backoff_base": 0.001,
        "backoff_cap": 0.005,
        **kwargs,
    }
    return ExotelClient(sandbox.api_key, sandbox.api_token, sandbox.account_sid, **options)
