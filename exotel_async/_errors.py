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
    └── ItemError                   one record of a page failed on Exotel's side

Other statuses (402, 409, ...) raise ``APIError`` itself. No message ever holds the
API token: errors are built from the response, never from the request's headers.
"""

from __future__ import annotations

from typing import Any


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
