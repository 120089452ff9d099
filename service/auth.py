"""API keys: writes and admin always need the API key; reads, when the settings close them, the read key
(CMAR_READ_KEY, which opens nothing else) or the API key.

One check (`check_key`) over a header look-up, used by the query endpoints
(`service.endpoints.read_access`) and by FastAPI's routes (`require_key`, `read_access`).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import HTTPException, Request
from pydantic import SecretStr

from service.settings import Settings

KEY_HEADER = "X-API-Key"

HeaderLookup = Callable[[str], "str | None"]  # a lower-case header name -> its value, or None


def _given_key(header: HeaderLookup) -> str | None:
    authorization = header("authorization") or ""
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip() or None
    return header(KEY_HEADER.lower()) or None


def _raw(text: str) -> bytes:
    """A header value's bytes: servers decode headers as Latin-1, so this gives back what was sent (UTF-8 keys too)."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:  # not from a server's Latin-1 decoding: compare its UTF-8 form
        return text.encode()


def check_key(settings: Settings, header: HeaderLookup, what: str, also: SecretStr | None = None) -> None:
    """Raise 401 without a key, 403 with a wrong one (or when the server has none), each saying so.

    The API key (CMAR_API_KEY) always passes; `also` is another key accepted (reads: CMAR_READ_KEY).
    """
    accepted = [k for k in (settings.api_key, also) if k is not None]
    if not accepted:
        keys = "CMAR_API_KEY" + (", or CMAR_READ_KEY for reads only" if also is None and what == "reading" else "")
        raise HTTPException(403, f"{what} is disabled: the server has no key for it (set {keys})")
    given = _given_key(header)
    if given is None:
        raise HTTPException(
            401,
            f"{what} needs an API key: send 'Authorization: Bearer <key>' or '{KEY_HEADER}: <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    raw = _raw(given)  # the header's bytes, as sent
    matches = [hmac.compare_digest(raw, k.get_secret_value().encode()) for k in accepted]  # constant time
    if not any(matches):
        raise HTTPException(403, "the API key is not valid")


def check_read(settings: Settings, header: HeaderLookup) -> None:
    """Check the key of a read, if the settings close reads: the read key (CMAR_READ_KEY) or the API key."""
    if settings.read_key_required:
        check_key(settings, header, "reading", also=settings.read_key)


async def require_key(request: Request) -> None:
    """Dependency of write and admin endpoints."""
    check_key(request.app.state.serving.settings, request.headers.get, f"{request.method} {request.url.path}")


async def read_access(request: Request) -> None:
    """Dependency of FastAPI's read routes (/readyz, /metrics): the key, if the settings close reads."""
    check_read(request.app.state.serving.settings, request.headers.get)
