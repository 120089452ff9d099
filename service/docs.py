"""The API's documentation pages served from packaged assets: no request leaves the host.

FastAPI's /docs and /redoc load Swagger UI and ReDoc from a CDN (a blank page offline); these
pages load them from the `fastapi-offline` package's copies, served at /docs-assets, with no
web fonts, and a Content-Security-Policy that keeps the browser's fetches on this host. The
OpenAPI document's request bodies carry examples made from the served model (`examples`), so
"Try it out" answers on whatever model is served; not when reads need the key, since the
document itself is public.
"""

from __future__ import annotations

import importlib.resources
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from service.artifacts import Artifacts

ASSETS = "/docs-assets"
# The browser may fetch data, images and fonts from this host only: ReDoc's bundle draws its
# logo from its makers' CDN, which this blocks (scripts and styles are the packaged ones).
NO_OUTSIDE = (  # Swagger UI's page starts it with an inline script, hence 'unsafe-inline' for scripts
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def mount(app: FastAPI) -> None:
    """Serve /docs, /redoc and their assets from the package (the app must have docs_url=redoc_url=None)."""
    folder = importlib.resources.files("fastapi_offline") / "static"
    app.mount(ASSETS, StaticFiles(directory=str(folder)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json",
            title=f"{app.title}: documentation",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
        )
        page.headers["content-security-policy"] = NO_OUTSIDE
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}/openapi.json",
            title=f"{app.title}: reference",
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
        page.headers["content-security-policy"] = NO_OUTSIDE
        return page


def examples(artifacts: Artifacts | None, reads_closed: bool) -> dict[tuple[str, str], dict[str, Any]]:
    """Request body examples that the served model answers: (method, path) -> body.

    Three of the model's most carried tags (any three without counts), k=5, the first two
    indexed artists for the batch of similar lists; none before the
    artifacts are loaded, and none when reads need the key (the model's tags are data).
    """
    if artifacts is None or reads_closed:
        return {}
    tags = [t["tag"] for t in artifacts.tags.find("", 3) if t["modality"] == "tag"]
    if not tags:
        return {}
    return {
        ("post", "/similar"): {"tag": tags, "k": 5},
        ("post", "/similar/batch"): {"queries": [{"tag": tags[:1], "k": 5}, {"tag": tags, "k": 5, "explain": True}]},
        ("post", "/artists/similar"): {"artist_ids": artifacts.index.artist_ids[:2], "k": 5, "min_popularity": 0},
        ("put", "/artists/{artist_id}"): {"name": "A new artist", "tag": tags},
    }


def add_examples(document: dict[str, Any], bodies: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    """The OpenAPI document with each (method, path)'s JSON request body example set."""
    for (method, path), body in bodies.items():
        operation = document.get("paths", {}).get(path, {}).get(method)
        if operation and "requestBody" in operation:
            operation["requestBody"]["content"]["application/json"]["example"] = body
    return document
