"""The neutral ceiling: a bare ASGI app that answers every request with a constant body.

Served by the same server, protocol and limits as `cmar serve` (`service.server`), in its own
process, it measures what the server and the machine allow before any of cmar's code runs;
`cmar bench` reports every API figure as a ratio to it. Run: `python -m bench.bare PORT`.
"""

from __future__ import annotations

import sys
from typing import Any

BODY = b'{"status":"ok"}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer 200 with `BODY` to every HTTP request; accept the lifespan."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def main(argv: list[str]) -> int:
    """Serve `app` on 127.0.0.1:PORT with `cmar serve`'s server and its settings (CMAR_SERVER among them)."""
    from service.server import run
    from service.settings import load_settings

    settings = load_settings(host="127.0.0.1", port=int(argv[0]), log_level="warning")
    run(app, settings, settings.port)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
