"""pytest plugin: the ``exotel_sandbox`` and ``exotel_client`` fixtures.

Registered through the ``pytest11`` entry point, so installing exotel-async enables it. The
fixtures are async and need pytest-asyncio; without it they fail with a message saying so
instead of breaking every pytest run at import time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import pytest

from exotel_async.testing._server import Sandbox

if TYPE_CHECKING:
    from exotel_async import ExotelClient

__all__ = ["exotel_client", "exotel_sandbox", "pytest_configure"]

_F = TypeVar("_F", bound=Callable[..., Any])


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``exotel_sandbox`` marker."""
    config.addinivalue_line(
        "markers",
        "exotel_sandbox(**options): Sandbox options for the exotel_sandbox fixture "
        "(campaigns=, seed=, max_limit=, faults=, api_key=, ...)",
    )


def _async_fixture(function: _F) -> _F:
    """Declare an async fixture with pytest-asyncio, or a stub explaining it is missing."""
    try:
        import pytest_asyncio
    except ImportError:
        name = function.__name__

        @pytest.fixture(name=name)
        def _needs_pytest_asyncio() -> NoReturn:
            """Fail with installation advice."""
            pytest.fail(f"the {name} fixture needs pytest-asyncio: pip install pytest-asyncio")

        return _needs_pytest_asyncio  # type: ignore[return-value]
    return pytest_asyncio.fixture(function)  # type: ignore[return-value]


@_async_fixture
async def exotel_sandbox(request: pytest.FixtureRequest) -> AsyncIterator[Sandbox]:
    """A running Sandbox, configured by the test's ``@pytest.mark.exotel_sandbox(...)``."""
    marker = request.node.get_closest_marker("exotel_sandbox")
    if marker is not None and marker.args:
        raise TypeError("@pytest.mark.exotel_sandbox takes keyword arguments only")
    options: dict[str, Any] = {} if marker is None else dict(marker.kwargs)
    async with Sandbox(**options) as sandbox:
        yield sandbox


@_async_fixture
async def exotel_client(exotel_sandbox: Sandbox) -> AsyncIterator[ExotelClient]:
    """An ``ExotelClient`` pointed at ``exotel_sandbox``, closed after the test."""
    # Imported here so the sandbox and this plugin never depend on the client at import time.
    from exotel_async import ExotelClient

    client = ExotelClient(
        api_key=exotel_sandbox.api_key,
        api_token=exotel_sandbox.api_token,
        account_sid=exotel_sandbox.account_sid,
        base_url=exotel_sandbox.base_url,
    )
    async with client:
        yield client
