"""Shared test set-up."""

from __future__ import annotations

import inspect
from typing import Any
from unittest import mock

import aioresponses.core
from aiohttp import ClientResponse

# aiohttp 3.14 added a required ``stream_writer`` argument to ClientResponse that
# aioresponses 0.7.x does not pass (pnuckowski/aioresponses#289). Supply a stand-in
# until a fixed release exists, rather than pin aiohttp below a security release.
if "stream_writer" in inspect.signature(ClientResponse.__init__).parameters:

    class _CompatResponse(ClientResponse):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("stream_writer", mock.Mock(output_size=0))
            super().__init__(*args, **kwargs)

    aioresponses.core.ClientResponse = _CompatResponse  # type: ignore[misc]
