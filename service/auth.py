"""API keys: writes and admin always need one, reads when the settings say so."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request

from service.settings import Settings

KEY_HEADER = "X-API-Key"


def _given_key(request: Request) -> str | None:
    authorization = request.headers.get("authorization", "")
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip() or None
    return request.headers.get(KEY_HEADER) or None


def check_key(settings: Settings, request: Request, what: str) -> None:
    """Raise 401 without a key, 403 with a wrong one (or when the server has none), each saying so."""
    expected = settings.api_key
    if expected is None:
        raise HTTPException(403, f"{what} is disabled: the server has no API key (set CMAR_API_KEY)")
    given = _given_key(request)
    if given is None:
        raise HTTPException(
            401,
            f"{what} needs an API key: send 'Authorization: Bearer <key>' or '{KEY_HEADER}: <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):  # constant time
        raise HTTPException(403, "the API key is not valid")


async def require_key(request: Request) -> None:
    """Dependency of write and admin endpoints."""
    check_key(request.app.state.serving.settings, request, f"{request.method} {request.url.path}")


async def read_access(request: Request) -> None:
    """Dependency of read endpoints: checks the key only if the settings close reads."""
    settings: Settings = request.app.state.serving.settings
    if settings.read_key_required:
        check_key(settings, request, "reading")
