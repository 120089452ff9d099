"""`cmar check ui`: the web page driven in a real browser (headless Chromium, by Playwright).

The scenario a new user follows: search a name on /ui/ with the keyboard, pick a suggestion,
read the artist's similar artists (with explanations), follow one, open it on the map and
read how many of its true neighbours the map keeps nearby; then describe a new artist with
tags on the cold-start form, and see the API's message for a bad vector; last, the artist's
page at a phone's width. Every request the browser makes is recorded, and none may leave the
host. Screenshots of each step are saved. Uses the system's Chromium (Debian's `chromium`
package, or CMAR_CHROMIUM): nothing is downloaded.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from core.errors import CmarError

log = logging.getLogger(__name__)

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT_MS = 20_000


def find_chromium() -> str:
    """The Chromium to drive: CMAR_CHROMIUM, else the first of BROWSERS on the PATH; CmarError if none."""
    given = os.environ.get("CMAR_CHROMIUM")
    if given:
        if not Path(given).is_file():
            raise CmarError(f"CMAR_CHROMIUM={given}: no such file")
        return given
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    raise CmarError("no Chromium found: install it (apt-get install -y chromium) or set CMAR_CHROMIUM to its path")


KEY_VARIABLE = "CMAR_CHECK_KEY"  # the read key of a service whose reads are closed (never on a command line)


def _reachable(base_url: str, key: str | None) -> None:
    """CmarError saying what is wrong when the service does not answer a read (down, or needs a key)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{base_url}/readyz", headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=10):
            return
    except urllib.error.HTTPError as error:
        error.close()
        if error.code in (401, 403):
            raise CmarError(
                f"{base_url} answers {error.code} to reads: give its read key in {KEY_VARIABLE}"
                + (" (this one is not valid)" if key else "")
            ) from None
        raise CmarError(f"{base_url}/readyz answers {error.code}") from None
    except OSError as exc:
        raise CmarError(f"{base_url}: not reachable ({exc})") from None


class Step:
    """One step of the scenario, timed and recorded."""

    def __init__(self, report: dict[str, Any], name: str) -> None:
        self.report, self.name = report, name

    def __enter__(self) -> dict[str, Any]:
        self.started = time.perf_counter()
        self.entry: dict[str, Any] = {"step": self.name}
        return self.entry

    def __exit__(self, kind: object, error: BaseException | None, trace: object) -> None:
        self.entry["seconds"] = round(time.perf_counter() - self.started, 2)
        self.entry["ok"] = error is None
        if error is not None:
            self.entry["error"] = str(error).splitlines()[0] if str(error) else type(error).__name__
        self.report["steps"].append(self.entry)


def run_scenario(base_url: str, out: Path, query: str = "artist", chromium: str | None = None) -> dict[str, Any]:
    """Drive the web page at `base_url` (e.g. http://127.0.0.1:8000) through the scenario; screenshots in `out`.

    Returns the report (steps, screenshots, requests made, requests that left the host,
    console errors) and writes it as ui.json and ui.md. Raises CmarError naming the first
    step that failed, or any request that left the host.
    """
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect, sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    host = urlsplit(base_url).netloc
    key = os.environ.get(KEY_VARIABLE) or None
    _reachable(base_url, key)
    report: dict[str, Any] = {"base_url": base_url, "query": query, "steps": [], "screenshots": []}
    requests: list[str] = []
    outside: list[str] = []
    console: list[str] = []

    def shot(page: Any, name: str, full: bool = False) -> None:
        path = out / f"{name}.png"
        page.screenshot(path=str(path), full_page=full)
        report["screenshots"].append(path.name)

    def watch(page: Any) -> None:
        def seen(request: Any) -> None:
            url = request.url
            requests.append(url)
            if not url.startswith("data:") and urlsplit(url).netloc != host:
                outside.append(url)

        page.on("request", seen)
        page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: console.append(f"page error: {e}"))

    with sync_playwright() as p:

        def new_page(**viewport: Any) -> Any:
            """A page in a context of its own: requests off the host refused (and recorded by `seen`),
            the read key in the tab's storage as a user who typed it into the page's form."""
            context = browser.new_context(**viewport)
            context.route(
                "**/*",
                lambda route: (
                    route.continue_()
                    if urlsplit(route.request.url).netloc == host or route.request.url.startswith("data:")
                    else route.abort()
                ),
            )
            context.set_default_timeout(TIMEOUT_MS)
            if key:
                context.add_init_script(f"sessionStorage.setItem('cmar-read-key', {json.dumps(key)})")
            page = context.new_page()
            watch(page)
            return page

        browser = p.chromium.launch(executable_path=chromium or find_chromium(), args=["--no-sandbox"])
        try:
            page = new_page(viewport={"width": 1200, "height": 900})
            try:
                _scenario(page, base_url, query, report, shot, expect, key)
                small = new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
                with Step(report, "phone: the artist's page at 390 px") as entry:
                    small.goto(report["artist_url"])
                    expect(small.locator("ol.results > li").first).to_be_visible()
                    width = small.evaluate("document.documentElement.scrollWidth")
                    entry["page_width_px"] = width
                    if width > 390:
                        raise CmarError(f"the page is {width} px wide on a 390 px screen (scrolls sideways)")
                    shot(small, "phone-artist", full=True)
            except (PlaywrightError, AssertionError, CmarError) as exc:
                failed = next((s for s in report["steps"] if not s["ok"]), None)
                where = failed["step"] if failed else "the scenario"
                with_shot = out / "failure.png"
                try:
                    page.screenshot(path=str(with_shot))
                    report["screenshots"].append(with_shot.name)
                except PlaywrightError:
                    pass
                _write(out, report, requests, outside, console)
                raise CmarError(f"web page check failed at {where}: {str(exc).splitlines()[0]}") from None
        finally:
            browser.close()
    _write(out, report, requests, outside, console)
    if outside:
        raise CmarError(f"the page made {len(outside)} request(s) off the host, e.g. {outside[0]}")
    return report


def _scenario(
    page: Any, base: str, query: str, report: dict[str, Any], shot: Any, expect: Any, key: str | None
) -> None:
    """The desktop steps (see the module's docstring)."""
    with Step(report, f"search {query!r} and pick the first suggestion with the keyboard") as entry:
        page.goto(f"{base}/ui/")
        box = page.get_by_role("combobox", name="Artist name")
        box.fill(query)
        expect(page.get_by_role("option").first).to_be_visible()
        entry["suggestions"] = page.get_by_role("option").count()
        shot(page, "1-search")
        box.press("ArrowDown")
        box.press("Enter")
        page.wait_for_url("**/ui/artists/**")
        report["artist_url"] = page.url

    with Step(report, "the artist's page lists similar artists with explanations") as entry:
        results = page.locator("ol.results > li")
        expect(results.first).to_be_visible()
        entry["artist"] = page.locator("h1").inner_text()
        entry["results"] = results.count()
        if entry["results"] < 1:
            raise CmarError("no similar artist listed")
        expect(results.first.locator(".why").first).to_contain_text("Closest through")
        shot(page, "2-artist")

    with Step(report, "follow the first similar artist") as entry:
        link = results.first.locator("a").first
        name = link.inner_text()
        link.click()
        expect(page.locator("h1")).to_have_text(name)
        expect(page.locator("ol.results > li").first).to_be_visible()
        entry["artist"] = name
        report["followed"] = name

    with Step(report, "the map highlights it and counts the neighbours it keeps nearby") as entry:
        page.get_by_role("link", name="See on the map").click()
        page.wait_for_url("**/ui/map?artist=**")
        kept = page.locator("#kept-count")
        expect(kept).to_contain_text("the map keeps")
        entry["says"] = kept.inner_text()
        if name not in entry["says"]:
            raise CmarError(f"the map does not name the selected artist {name!r}: {entry['says']!r}")
        expect(page.get_by_role("list", name="True nearest neighbours").locator("li").first).to_be_visible()
        shot(page, "3-map", full=True)

    with Step(report, "the cold-start form: tags chosen by autocomplete, answered with explanations") as entry:
        headers = {"Authorization": f"Bearer {key}"} if key else None
        common = page.request.get(f"{base}/tags?limit=1", headers=headers).json()["results"]
        if not common:
            raise CmarError("the model has no tags to choose from")
        entry["typed"] = common[0]["tag"][:3]  # the beginning of the most carried tag
        page.get_by_role("link", name="Cold start").click()
        tag = page.get_by_role("combobox", name="Add a tag")
        tag.fill(entry["typed"])
        expect(page.get_by_role("option").first).to_be_visible()
        tag.press("ArrowDown")
        tag.press("Enter")
        chosen = page.get_by_role("list", name="Tags of the query").locator("li")
        expect(chosen).to_have_count(1)
        page.get_by_role("button", name="Find similar artists").click()
        answers = page.locator("ol.results > li")
        expect(answers.first).to_be_visible()
        entry["tag"] = chosen.first.locator("label").inner_text()
        entry["results"] = answers.count()
        shot(page, "4-cold-start", full=True)

    with Step(report, "a bad vector shows the API's message") as entry:
        areas = page.locator("textarea")
        if areas.count() == 0:
            entry["skipped"] = "the model has no vector modality"
            return
        areas.first.fill("1, 2, 3")
        page.get_by_role("button", name="Find similar artists").click()
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text("expected a vector of")
        entry["message"] = alert.inner_text()
        shot(page, "5-error")


def _write(out: Path, report: dict[str, Any], requests: list[str], outside: list[str], console: list[str]) -> None:
    report["requests"] = len(requests)
    report["requests_off_host"] = outside
    report["console_errors"] = console
    (out / "ui.json").write_text(json.dumps(report, indent=1))
    lines = [
        "# Web page check (headless Chromium)",
        "",
        f"Page: {report['base_url']}/ui/. Requests made: {len(requests)}; off the host: {len(outside)}.",
        "",
        "| step | ok | seconds | detail |",
        "| --- | --- | --- | --- |",
    ]
    for s in report["steps"]:
        detail = "; ".join(f"{k}: {v}" for k, v in s.items() if k not in ("step", "ok", "seconds"))
        lines.append(f"| {s['step']} | {'yes' if s['ok'] else 'NO'} | {s['seconds']} | {detail} |")
    lines += ["", "Screenshots: " + ", ".join(report["screenshots"]), ""]
    if console:
        lines += ["Console errors (a 422 is the bad-vector step's, on purpose):", *[f"- {c}" for c in console], ""]
    (out / "ui.md").write_text("\n".join(lines))
