"""The web page (/ui/): search by name, an artist's similar artists with explanations, cold starts, the map.

One HTML shell for every page (the script draws the page from the path), a script and a
style sheet, all shipped in the package (`service/web_assets`) and served by the same app:
nothing loads from elsewhere, and a Content-Security-Policy keeps the browser on this host.
The page holds no data; it reads the public API, so it is served without a key (when reads
need one, the page asks for it and sends it with its requests).
"""

from __future__ import annotations

import importlib.resources

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

ASSETS = importlib.resources.files("service") / "web_assets"
PAGES = ("", "cold-start", "map")  # and artists/{id}
SHELL = (ASSETS / "index.html").read_text(encoding="utf-8")  # every page's HTML, read once
# Everything from this host; no inline script; styles only from the sheet (the script sets
# element styles through the DOM, which the policy allows).
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def _is_page(path: str) -> bool:
    if path in PAGES:
        return True
    head, _, rest = path.partition("/")
    return head == "artists" and bool(rest)


async def page(request: Request) -> Response:
    """The HTML shell of a page of the web UI (404 for a path that is not a page)."""
    path = request.path_params.get("path", "")
    if not _is_page(path):
        return PlainTextResponse("no such page", status_code=404)
    root = request.scope.get("root_path", "").removesuffix("/ui")  # the app's own root path, not the mount's
    html = SHELL.replace("{{root}}", _attribute(root))
    return HTMLResponse(html, headers={"content-security-policy": POLICY, "cache-control": "no-cache"})


async def to_home(request: Request) -> Response:
    """/ui -> /ui/ (relative to the app's root path)."""
    return RedirectResponse(request.scope.get("root_path", "") + "/ui/", status_code=308)


def _attribute(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def mount(app: FastAPI) -> None:
    """Serve the web page at /ui/ and its assets at /ui/static/ (outside FastAPI's dependencies)."""
    static = StaticFiles(directory=str(ASSETS))
    ui = Starlette(
        routes=[
            Mount("/static", app=static, name="ui-static"),
            Route("/{path:path}", page, methods=["GET", "HEAD"]),
        ]
    )
    app.router.routes.append(Route("/ui", to_home, methods=["GET", "HEAD"]))
    app.mount("/ui", ui, name="ui")
