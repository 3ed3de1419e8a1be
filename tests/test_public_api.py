"""The public surface: names that docs and users rely on."""

from __future__ import annotations

import ast
import inspect
import textwrap

import exotel_async


def test_all_is_pinned() -> None:
    """``__all__`` lists exactly the public names, sorted."""
    assert exotel_async.__all__ == [
        "APIConnectionError",
        "APIError",
        "APITimeoutError",
        "AuthenticationError",
        "BadRequestError",
        "Campaign",
        "CampaignStatus",
        "ExotelClient",
        "ExotelError",
        "ExportRefused",
        "ItemError",
        "MissingCredentials",
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


def test_export_module_names_are_pinned() -> None:
    """``exotel_async.export`` offers the format objects its ``FORMATS`` maps to."""
    import exotel_async.export

    assert sorted(exotel_async.export.__all__) == [
        "AccountExportRequest",
        "AccountProgress",
        "CSV_COLUMNS",
        "Checkpoint",
        "ExportProgress",
        "ExportRefused",
        "ExportRequest",
        "FORMATS",
        "Format",
        "Manifest",
        "ManifestEntry",
        "checkpoint_path",
        "load_checkpoint",
        "load_manifest",
        "manifest_path",
        "run_account_export",
        "run_export",
    ]
    assert all(
        isinstance(f, exotel_async.export.Format) for f in exotel_async.export.FORMATS.values()
    )


def _body_lines(function: object) -> int:
    """Lines of a function's body, its docstring left out."""
    node = ast.parse(textwrap.dedent(inspect.getsource(function))).body[0]
    assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    body = node.body
    first = body[0]
    if len(body) > 1 and isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        body = body[1:]
    return (node.end_lineno or node.lineno) - body[0].lineno + 1


def test_the_export_s_long_steps_stay_under_40_lines() -> None:
    """Deciding how an export starts, and the CLI's export command, each read in one screen."""
    from exotel_async import _export, cli

    lengths = {f.__name__: _body_lines(f) for f in (_export._plan, cli._export)}
    assert {name: n for name, n in lengths.items() if n > 40} == {}
