"""The exceptions exotel-async raises, one tree::

    ExotelError                     anything this library raises on purpose
    ├── APIError                    Exotel answered with an error status
    │   ├── BadRequestError         400: a parameter Exotel refused
    │   ├── AuthenticationError     401: wrong API key or token
    │   ├── PermissionDeniedError   403: the credentials may not see this account
    │   ├── NotFoundError           404: no such campaign or account
    │   ├── RateLimitError          429: throttled (``retry_after`` in seconds)
    │   └── ServerError             5xx: Exotel or a proxy in front of it failed
    ├── TransportError              no usable answer arrived
    │   ├── APIConnectionError      connect, reset, TLS or payload failure
    │   └── APITimeoutError         no answer within the timeout
    ├── ResponseDecodeError         an answer that is not the documented envelope
    ├── ItemError                   one record of a page failed on Exotel's side
    ├── ExportRefused               an export cannot start as asked (files on disk, flags)
    └── NoProgressError             pages in a row held only records already seen

Other statuses (402, 409, ...) raise ``APIError`` itself. ``APIError.throttled`` is true
for a 429 and for a 503, by which older Exotel SMS APIs throttle. No message ever holds the
API token: errors are built from the response, never from the request's headers.
"""

from __future__ import annotations

from typing import Any

#: Statuses by which Exotel says "slow down" (older docs throttle SMS APIs with 503).
THROTTLE_STATUSES = frozenset({429, 503})


def is_throttle(status: int | None) -> bool:
    """Whether an answer's status says "slow down": the one place throttles are told apart."""
    return status in THROTTLE_STATUSES


class ExotelError(Exception):
    """Base class of every error exotel-async raises on purpose."""

    #: How many requests were made before this error was raised (retries included).
    attempts: int = 1

    def _with_attempts(self, text: str) -> str:
        return f"{text} | after {self.attempts} attempts" if self.attempts > 1 else text


class APIError(ExotelError):
    """Exotel answered with an HTTP error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        request_id: str | None = None,
        error_code: int | str | None = None,
        description: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.request_id = request_id
        self.error_code = error_code
        self.description = description
        #: Seconds the server asked to wait (``Retry-After``), on 429 and 503 alike.
        self.retry_after = retry_after

    @property
    def throttled(self) -> bool:
        """Whether Exotel said "slow down": a 429, or a 503 (a ``ServerError`` by its status)."""
        return is_throttle(self.status_code)

    def __str__(self) -> str:
        text = f"HTTP {self.status_code}: {self.args[0]}"
        # Exotel's description is the useful half ("limit must be an integer between 1
        # and 50"); its message is often only the status's name ("Invalid parameter").
        if self.description and self.description != self.args[0]:
            text += f": {self.description}"
        parts = [text]
        if self.error_code is not None:
            parts.append(f"error code {self.error_code}")
        if self.request_id:
            parts.append(f"request id {self.request_id}")
        return self._with_attempts(" | ".join(parts))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status_code={self.status_code}, "
            f"request_id={self.request_id!r}, error_code={self.error_code!r}, "
            f"message={self.args[0]!r}, description={self.description!r})"
        )


class BadRequestError(APIError):
    """400: Exotel refused a parameter (codes 1001 missing, 1002 invalid)."""


class AuthenticationError(APIError):
    """401: the API key or token is wrong (code 1010)."""


class PermissionDeniedError(APIError):
    """403: the credentials may not read this account or campaign (code 1003)."""


class NotFoundError(APIError):
    """404: no such account or campaign (code 1000)."""


class RateLimitError(APIError):
    """429: Exotel throttled the account; ``retry_after`` is its advice in seconds."""


class ServerError(APIError):
    """5xx: Exotel, or a proxy in front of it, failed."""


class TransportError(ExotelError):
    """No usable HTTP answer arrived."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        #: False when asking again cannot help (a certificate that fails verification).
        self.retryable = retryable

    def __str__(self) -> str:
        return self._with_attempts(str(self.args[0]))


class APIConnectionError(TransportError):
    """The connection failed, was reset, or the body arrived incomplete."""


class APITimeoutError(TransportError):
    """Exotel did not answer within the configured timeout."""


class ResponseDecodeError(ExotelError):
    """The answer is not the documented envelope (malformed JSON, missing fields, ...)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        excerpt: str = "",
        request_id: str | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.excerpt = excerpt
        self.request_id = request_id
        #: True when the body looks cut or garbled in transit, so asking again may help.
        self.retryable = retryable

    def __str__(self) -> str:
        text = f"HTTP {self.status_code}: {self.args[0]}"
        if self.request_id:
            text += f" | request id {self.request_id}"
        if self.excerpt:
            text += f" | body starts {self.excerpt!r}"
        return self._with_attempts(text)


class ItemError(ExotelError):
    """One item of a successful page carries ``status: failure``."""

    def __init__(
        self,
        message: str,
        *,
        offset: int,
        code: int | str | None,
        error_data: Any,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.offset = offset
        self.code = code
        self.error_data = error_data
        self.request_id = request_id

    def __str__(self) -> str:
        return f"item at offset {self.offset} failed (code {self.code}): {self.args[0]}"


class NoProgressError(ExotelError):
    """Pages in a row held only records already seen: the server is not honouring offset."""

    def __init__(self, message: str, *, offset: int, pages: int) -> None:
        super().__init__(message)
        #: The offset of the last page that made no progress.
        self.offset = offset
        #: How many pages in a row made none.
        self.pages = pages


class ExportRefused(ExotelError):
    """An export cannot start as asked: an existing output, a mismatched checkpoint, ...

    Nothing was fetched or written; asking again unchanged gets the same answer.
    """
