"""A client for tests against the sandbox: its retries and holds wait on a fake clock."""

from __future__ import annotations

from typing import Any

from exotel_async import ExotelClient
from exotel_async.testing import Sandbox
from tests._virtual_time import FakeSleep


def fast_client(sandbox: Sandbox, **kwargs: Any) -> ExotelClient:
    """A client of ``sandbox`` whose retries and throttle holds move a fake clock, never wait.

    Pass ``clock`` and ``sleep`` to share a fake clock with the sandbox (its rate limit).
    """
    sleep = FakeSleep()
    options: dict[str, Any] = {
        "base_url": sandbox.base_url,
        "clock": sleep.clock,
        "sleep": sleep,
        **kwargs,
    }
    return ExotelClient(sandbox.api_key, sandbox.api_token, sandbox.account_sid, **options)
