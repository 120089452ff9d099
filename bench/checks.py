"""`cmar check`: the production evidence, each against a live `cmar serve` on this machine.

- `schema`: schemathesis generates requests from the live OpenAPI schema (every operation,
  with the API key) and checks there is no 5xx, no undocumented status, no response that
  violates its schema or content type.
- `load`: the load generator at concurrency 64 on GET similar for 60 s while a writer PUTs
  and DELETEs artists and, half way, the artifacts are swapped for another model's; a checker
  reads answers meanwhile and verifies each against the version in its header (every score is
  the cosine, in that version's index, of the two artists).
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from bench import jobs, server
from bench.loadgen import Request, run_load_subprocess
from core.errors import CmarError
from inference.index import LoadedIndex, load_index, vectors_of

log = logging.getLogger(__name__)

KEY = "cmar-check-key"


def _demo(work: Path, seed: int, epochs: int | None, catalog: Path | None = None) -> tuple[Path, Path, Path]:
    """A demo catalogue (made once), a model trained with `seed`, and its index: (catalog, model, index)."""
    catalog = catalog or work / "catalog"
    if not catalog.exists():
        jobs.run_cmar(["catalog", "synthetic", str(catalog)], work)
    out = work / f"seed{seed}"
    extra = ["--epochs", str(epochs)] if epochs else []
    jobs.run_cmar(["train", str(catalog), "--out", str(out / "checkpoint"), "--seed", str(seed), *extra], out)
    jobs.run_cmar(["export", str(out / "checkpoint"), "--out", str(out / "model")], out)
    jobs.run_cmar(["build-index", str(catalog), "--model", str(out / "model"), "--out", str(out / "index")], out)
    return catalog, out / "model", out / "index"


def _env(work: Path) -> dict[str, str]:
    return {"CMAR_API_KEY": KEY, "CMAR_WRITES_DB": str(work / "writes.sqlite3"), "CMAR_LOG_LEVEL": "warning"}


def check_schema(out: Path, examples: int = 150, epochs: int | None = None) -> dict[str, Any]:
    """Run schemathesis against a live server; write schema.json; raise CmarError if it finds failures."""
    work = out / "work-schema"
    _, model, index = _demo(work, 0, epochs)
    with server.start(model, index, work / "server.log", _env(work)) as running:
        checks = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
        schema = f"http://{server.HOST}:{running.port}/openapi.json"
        command = [
            str(Path(sys.executable).parent / "schemathesis"), "run", schema, "-H", f"Authorization: Bearer {KEY}",
            "-n", str(examples), "--phases", "examples,coverage,fuzzing", "--checks", checks,
            "--seed", "1", "--no-color",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    (out / "schemathesis.txt").write_text(done.stdout + done.stderr)
    counts = re.search(r"(\d+) generated, (\d+) (?:passed|found)", done.stdout)
    failures = re.search(r"(\d+) failures?", done.stdout.splitlines()[-1] if done.stdout else "")
    result = {
        "generated": int(counts.group(1)) if counts else 0,
        "exit_code": done.returncode,
        "failures": int(failures.group(1)) if failures else (0 if done.returncode == 0 else None),
        "output": str(out / "schemathesis.txt"),
    }
    (out / "schema.json").write_text(json.dumps(result, indent=1))
    if done.returncode != 0:
        raise CmarError(f"schemathesis found failures; see {out / 'schemathesis.txt'}")
    return result


def _call(
    port: int, method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json", "authorization": f"Bearer {KEY}"}
    request = urllib.request.Request(f"http://{server.HOST}:{port}{path}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return int(error.code), json.loads(error.read() or b"{}"), dict(error.headers)


def _consistent(body: dict[str, Any], index: LoadedIndex, written: set[str]) -> bool:
    """Every score of a GET similar answer is the cosine of the two artists in `index`."""
    row = index.row_of.get(body["artist_id"])
    if row is None:
        return False
    query = vectors_of(index, np.array([row]))[0]
    for result in body["results"]:
        other = index.row_of.get(result["artist_id"])
        if other is None:
            if result["artist_id"] not in written:
                return False
            continue
        if abs(float(vectors_of(index, np.array([other]))[0] @ query) - result["score"]) > 1e-4:
            return False
    return True


def check_load(out: Path, duration_s: float = 60.0, concurrency: int = 64, epochs: int | None = None) -> dict[str, Any]:
    """The load test with writes and a hot swap; write load.json; raise CmarError on any failure."""
    work = out / "work-load"
    catalog, model_a, index_a = _demo(work, 0, epochs)
    _, model_b, index_b = _demo(work, 1, epochs, catalog)
    indexes = {load_index(p, verify=False).version: load_index(p, verify=False) for p in (index_a, index_b)}
    first = next(iter(indexes.values()))
    targets = first.artist_ids[: min(1000, len(first))]
    audio_dim = first.manifest.model.modalities["audio"].input_dim
    stats: dict[str, Any] = {"writes": 0, "write_errors": 0, "checked": 0, "inconsistent": 0, "checker_errors": 0}
    written: set[str] = set()
    stop = threading.Event()

    with server.start(model_a, index_a, work / "server.log", _env(work)) as running:

        def writer() -> None:
            i = 0
            while not stop.is_set():
                artist = f"live-{i % 50}"
                body = {"name": f"Live {i}", "audio": [float((i + j) % 7) for j in range(audio_dim)]}
                status = _call(running.port, "PUT", f"/artists/{artist}", body)[0] if i % 5 else 0
                if i % 5 == 0 and artist in written:
                    status = _call(running.port, "DELETE", f"/artists/{artist}")[0]
                    written.discard(artist)
                elif status in (200, 201):
                    written.add(artist)
                stats["writes"] += status in (200, 201)
                stats["write_errors"] += status not in (0, 200, 201)
                i += 1
                time.sleep(0.05)

        def checker() -> None:
            rng = np.random.default_rng(0)
            while not stop.is_set():
                artist = targets[int(rng.integers(len(targets)))]
                status, body, headers = _call(running.port, "GET", f"/artists/{artist}/similar?k=10")
                version = headers.get("X-Index-Version") or headers.get("x-index-version")
                if status != 200 or version not in indexes:
                    stats["checker_errors"] += 1
                    continue
                stats["checked"] += 1
                stats["inconsistent"] += not _consistent(
                    body, indexes[version], set(written) | {f"live-{j}" for j in range(50)}
                )

        def swapper() -> None:
            stop.wait(duration_s / 2)
            if not stop.is_set():
                status, body, _ = _call(
                    running.port, "POST", "/admin/swap", {"model_dir": str(model_b), "index_dir": str(index_b)}
                )
                stats["swap"] = {"status": status, **body}

        threads = [threading.Thread(target=f, daemon=True) for f in (writer, checker, swapper)]
        for thread in threads:
            thread.start()
        load = run_load_subprocess(
            running.port, [Request("GET", f"/artists/{a}/similar?k=10") for a in targets], concurrency, duration_s, 1.0
        )
        stop.set()
        for thread in threads:
            thread.join(60)
        served = server.get_json(running.port, "/readyz")
    result = {
        "duration_s": duration_s,
        "concurrency": concurrency,
        "load": load.to_dict(),
        **stats,
        "served_after": served,
        "versions": list(indexes),
    }
    (out / "load.json").write_text(json.dumps(result, indent=1, default=str))
    swap = stats.get("swap", {})
    problems = [
        f"{load.errors} failed requests" if load.errors else "",
        f"{stats['write_errors']} failed writes" if stats["write_errors"] else "",
        f"{stats['inconsistent']} answers inconsistent with their version" if stats["inconsistent"] else "",
        f"{stats['checker_errors']} failed checks" if stats["checker_errors"] else "",
        "" if swap.get("status") == 200 else f"the swap failed: {swap}",
    ]
    if any(problems):
        raise CmarError("load check failed: " + "; ".join(p for p in problems if p) + f" (see {out / 'load.json'})")
    return result


def check_ui(out: Path, url: str | None = None, query: str = "artist", epochs: int | None = None) -> dict[str, Any]:
    """The web page in headless Chromium (`bench.ui_check`), against `url` or a demo served with its map.

    Writes ui.json, ui.md and the screenshots in `out`; raises CmarError naming the step that failed.
    """
    from bench.ui_check import find_chromium, run_scenario

    chromium = find_chromium()  # before a minute of training
    if url is not None:
        return run_scenario(url.rstrip("/"), out, query, chromium)
    work = out / "work-ui"
    _, model, index = _demo(work, 0, epochs)
    jobs.run_cmar(["map", str(index), "--out", str(work / "map"), "--overwrite"], work)
    env = {**_env(work), "CMAR_MAP_DIR": str(work / "map")}
    with server.start(model, index, work / "server.log", env) as running:
        return run_scenario(f"http://{server.HOST}:{running.port}", out, query, chromium)
