"""The web page in a real browser: headless Chromium (the system's) driven by Playwright.

The scenario is `cmar check ui`'s (`bench.ui_check`): search, an artist's page with
explanations, follow a similar artist, the map, the cold-start form, an API error shown,
a phone's width; no request may leave the host. Skipped where no Chromium is installed
(CI installs Debian's `chromium`).
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import server
from bench.ui_check import find_chromium, run_scenario
from core.errors import CmarError
from evaluation.maps import make_map
from evaluation.nn_similarity import load_space
from tests.conftest import Built


def _chromium() -> str:
    try:
        return find_chromium()
    except CmarError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def base_url(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("ui")
    make_map(load_space(str(built.index)), "pca", 0, work / "map")
    env = {"CMAR_MAP_DIR": str(work / "map"), "CMAR_WRITES_DB": str(work / "writes.sqlite3")}
    with server.start(built.model, built.index, work / "server.log", env) as running:
        yield f"http://{server.HOST}:{running.port}"


def test_the_scenario_passes_in_chromium_with_no_request_off_the_host(base_url: str, tmp_path: Path) -> None:
    report = run_scenario(base_url, tmp_path, "artist", _chromium())
    assert all(step["ok"] for step in report["steps"]) and len(report["steps"]) == 7
    assert report["requests_off_host"] == [] and report["requests"] > 10
    by_name = {s["step"].split(":")[0]: s for s in report["steps"]}
    assert by_name["the artist's page lists similar artists with explanations"]["results"] == 20
    assert "the map keeps" in by_name["the map highlights it and counts the neighbours it keeps nearby"]["says"]
    assert "expected a vector of" in by_name["a bad vector shows the API's message"]["message"]
    assert by_name["phone"]["page_width_px"] <= 390
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(report["screenshots"])
    assert (tmp_path / "ui.json").is_file() and "| yes |" in (tmp_path / "ui.md").read_text()


def test_ui_pages_are_html_shells_with_a_strict_policy(base_url: str) -> None:
    import urllib.error
    import urllib.request

    for path in ("/ui/", "/ui/map", "/ui/cold-start", "/ui/artists/anything"):
        with urllib.request.urlopen(base_url + path) as r:
            assert r.status == 200 and "default-src 'self'" in r.headers["content-security-policy"]
            assert b"/ui/static/app.js" in r.read()
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(base_url + "/ui/nothing-here")
    assert missing.value.code == 404
    missing.value.close()


def test_a_service_with_closed_reads_is_checked_with_its_read_key(
    built: Built, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path_factory.mktemp("ui-closed")
    make_map(load_space(str(built.index)), "pca", 0, work / "map")
    env = {
        "CMAR_MAP_DIR": str(work / "map"),
        "CMAR_WRITES_DB": str(work / "writes.sqlite3"),
        "CMAR_READ_KEY_REQUIRED": "true",
        "CMAR_READ_KEY": "reader-only",
    }
    chromium = _chromium()
    with server.start(built.model, built.index, work / "server.log", env) as running:
        url = f"http://{server.HOST}:{running.port}"
        monkeypatch.delenv("CMAR_CHECK_KEY", raising=False)
        with pytest.raises(CmarError, match="give its read key in CMAR_CHECK_KEY"):
            run_scenario(url, work / "no-key", "artist", chromium)
        monkeypatch.setenv("CMAR_CHECK_KEY", "reader-only")
        report = run_scenario(url, work / "with-key", "artist", chromium)
    assert all(step["ok"] for step in report["steps"]) and report["requests_off_host"] == []
