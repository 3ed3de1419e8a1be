"""Test against a fake Exotel server: the sandbox, its fault knobs, and a pytest plugin.

``async with Sandbox() as sb:`` serves deterministic SMS campaign details on 127.0.0.1; point
a client at ``sb.base_url`` with ``sb.api_key``, ``sb.api_token`` and ``sb.account_sid``. It
also serves the account's campaign list and each campaign (``make_account`` generates an
account of many campaigns). The pytest plugin (``exotel_async.testing.plugin``) provides the
``exotel_sandbox`` and ``exotel_client`` fixtures. This package never imports the client.
"""

from exotel_async.testing._account import (
    CAMPAIGN_SHAPES,
    CAMPAIGN_STATUSES,
    SandboxCampaign,
    make_account,
)
from exotel_async.testing._data import SORT_ORDERS, Record, StatusProgress
from exotel_async.testing._ratelimits import RESET_FORMATS, WINDOW_KINDS, RateLimit
from exotel_async.testing._server import Faults, LoggedRequest, Sandbox, SandboxStats

__all__ = [
    "CAMPAIGN_SHAPES",
    "CAMPAIGN_STATUSES",
    "RESET_FORMATS",
    "SORT_ORDERS",
    "WINDOW_KINDS",
    "Faults",
    "LoggedRequest",
    "RateLimit",
    "Record",
    "Sandbox",
    "SandboxCampaign",
    "SandboxStats",
    "StatusProgress",
    "make_account",
]
