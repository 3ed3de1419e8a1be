"""exotel-async: an asyncio client for Exotel's SMS campaign details API."""

import logging
from importlib.metadata import PackageNotFoundError, version

from ._client import ExotelClient, MissingCredentials, Region, SmsDetailsStream
from ._converter import converter
from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ExotelError,
    ExportRefused,
    ItemError,
    NoProgressError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
    TransportError,
)
from ._models import (
    Campaign,
    CampaignStatus,
    Outcome,
    Page,
    PageMetadata,
    SmsPage,
    SmsRecord,
    classify_status,
)
from ._pagination import PagedStream, StreamStats
from ._protocol import PageRequest, PathForm

# A library logs; the application decides where to (the logging HOWTO's advice).
logging.getLogger("exotel_async").addHandler(logging.NullHandler())

try:
    __version__ = version("exotel-async")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
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
