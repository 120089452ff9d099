"""API keys: writes and admin always need one, reads when the settings say so.

One check (`check_key`) over a header look-up, used by the query endpoints
(`service.endpoints.read_access`) and by FastAPI's routes (`require_key`, `read_access`).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import HTTPException, Request

from service.settings import Settings

KEY_HEADER = "X-API-Key"

HeaderLookup = Callable[[str], "str | None"]  # a lower-case header name -> its value, or None


def _given_key(header: HeaderLookup) -> str | None:
    authorization = header("authorization") or ""
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip() or None
    return header(KEY_HEADER.lower()) or None


def check_key(settings: Settings, header: HeaderLookup, what: str) -> None:
    """Raise 401 without a key, 403 with a wrong one (or when the server has none), each saying so."""
    expected = settings.api_key
    if expected is None:
        raise HTTPException(403, f"{what} is disabled: the server has no API key (set CMAR_API_KEY)")
    given = _given_key(header)
    if given is None:
        raise HTTPException(
            401,
            f"{what} needs an API key: send 'Authorization: Bearer <key>' or '{KEY_HEADER}: <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):  # constant time
        raise HTTPException(403, "the API key is not valid")


def check_read(settings: Settings, header: HeaderLookup) -> None:
    """Check the key of a read, if the settings close reads."""
    if settings.read_key_required:
        check_key(settings, header, "reading")


async def require_key(request: Request) -> None:
    """Dependency of write and admin endpoints."""
    check_key(request.app.state.serving.settings, request.headers.get, f"{request.method} {request.url.path}")


async def read_access(request: Request) -> None:
    """Dependency of FastAPI's read routes (/readyz, /metrics): the key, if the settings close reads."""
    check_read(request.app.state.serving.settings, request.headers.get)
