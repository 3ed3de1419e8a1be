"""The public surface: names that docs and users rely on."""

from __future__ import annotations

import exotel_async


def test_all_is_pinned() -> None:
    """``__all__`` lists exactly the public names, sorted."""
    assert exotel_async.__all__ == [
        "APIConnectionError",
        "APIError",
        "APITimeoutError",
        "AuthenticationError",
        "BadRequestError",
        "ExotelClient",
        "ExotelError",
        "ExportRefused",
        "ItemError",
        "NoProgressError",
        "NotFoundError",
        "Outcome",
        "Page",
        "PageMetadata",
        "PageRequest",
        "PagedStream",
        "PathForm",
        "PermissionDeniedError",
        "RateLimitError",
        "Region",
        "ResponseDecodeError",
        "ServerError",
        "SmsDetailsStream",
        "SmsPage",
        "SmsRecord",
        "StreamStats",
        "TransportError",
        "__version__",
        "classify_status",
        "converter",
    ]


def test_every_public_name_exists() -> None:
    """Each name in ``__all__`` is importable from the package."""
    assert all(hasattr(exotel_async, name) for name in exotel_async.__all__)


def test_error_tree_is_as_documented() -> None:
    """API errors share APIError; transport failures share TransportError."""
    e = exotel_async
    api = [
        e.BadRequestError,
        e.AuthenticationError,
        e.PermissionDeniedError,
        e.NotFoundError,
        e.RateLimitError,
        e.ServerError,
    ]
    assert all(issubclass(cls, e.APIError) for cls in api)
    assert issubclass(e.APIConnectionError, e.TransportError)
    assert issubclass(e.APITimeoutError, e.TransportError)
    assert all(
        issubclass(cls, e.ExotelError)
        for cls in (e.APIError, e.TransportError, e.ResponseDecodeError, e.ItemError)
    )


def test_package_ships_py_typed() -> None:
    """The package declares its type hints to checkers."""
    from importlib.resources import files

    assert files("exotel_async").joinpath("py.typed").is_file()


def test_version_is_a_string() -> None:
    """``__version__`` comes from the installed metadata."""
    assert isinstance(exotel_async.__version__, str)
    assert exotel_async.__version__ != "0.0.0"
