"""API keys: ``Authorization: Bearer <key>``, compared in constant time.

With no key configured every route is open. With keys, write and admin routes always
require one, read routes only when ``read_requires_key``. Keys are never logged: the
settings hold them as ``SecretStr`` and nothing here formats a header into a message.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request

from recloop.serving.errors import ApiError

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="recloop"'}


class KeyChecker:
    """Checks requests against a fixed set of keys.

    Parameters
    ----------
    keys
        The accepted keys (bytes); empty turns checking off.
    read_requires_key
        Whether read routes need a key too.
    """

    def __init__(self, keys: tuple[bytes, ...], read_requires_key: bool) -> None:
        self.keys = keys
        self.read_requires_key = read_requires_key and bool(keys)

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def valid(self, presented: bytes) -> bool:
        """Whether ``presented`` is one of the keys; every key is compared, in constant time."""
        ok = False
        for key in self.keys:
            ok |= hmac.compare_digest(presented, key)
        return ok

    def require(self, request: Request, write: bool) -> None:
        """Raise a 401 ``ApiError`` unless the request may use a read (or write) route."""
        if not self.keys or not (write or self.read_requires_key):
            return
        header = request.headers.get("authorization")
        if header is None:
            raise ApiError(
                401,
                "authorization",
                "an API key is required: send 'Authorization: Bearer <key>'",
                _CHALLENGE,
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "authorization", "must be 'Bearer <key>'", _CHALLENGE)
        if not self.valid(token.strip().encode("utf-8", "surrogateescape")):
            raise ApiError(401, "authorization", "invalid API key", _CHALLENGE)
