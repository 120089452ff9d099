"""`cmar check containers`: build the images, `compose up` for real, query, restart, tear down, report.

Runs the project's Dockerfile and compose files with podman and podman-compose (no Docker
engine is needed): makes the local `python:3.11-slim` base with the shared script when it is
missing, fills `wheels/` with torch's CPU wheel from this machine's pip (the builder is built
with `TORCH_PIP_ARGS="--no-index --find-links /app/wheels"`), builds both images, brings the
compose file up, checks `/healthz`, `/readyz`, the README's requests, the image's healthcheck
command and a write, brings it down and up again (the write survives in the `writes` volume,
the artifacts are not rebuilt), then runs `docker-compose.catalog.yml` on a catalogue of its
own. Everything it made (containers, volumes, images, the catalogue) is removed at the end,
also after a failure; the base image and the wheels stay as caches. Writes containers.json
and containers.md.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.server import free_port
from core.errors import CmarError

log = logging.getLogger(__name__)

BASE_IMAGE = "docker.io/library/python:3.11-slim"
HEALTHY_TIMEOUT_S = 600.0  # the first up trains the demo model inside the builder


@dataclass
class Podman:
    """podman and podman-compose with this machine's settings (CONTAINERS_CONF) in one folder."""

    context: Path  # the folder with the Dockerfile and the compose files
    conf: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    def environ(self) -> dict[str, str]:
        extra = {"CONTAINERS_CONF": str(self.conf)} if self.conf is not None else {}
        return {**os.environ, **extra, **self.env}

    def run(self, *args: str, check: bool = True, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        """A podman or podman-compose command in the context folder; a CmarError naming it if it fails."""
        done = subprocess.run(
            list(args), cwd=self.context, env=self.environ(), capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise CmarError(f"`{' '.join(args)}` failed with exit code {done.returncode}: {' | '.join(tail)}")
        return done

    def compose(self, project: str, files: list[str], *args: str, timeout: float = 1800) -> None:
        command = [sys.executable, "-m", "podman_compose", "-p", project]
        for name in files:
            command += ["-f", name]
        self.run(*command, *args, timeout=timeout)


def _http(port: int, method: str, path: str, body: Any = None, key: str | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    request.add_header("content-type", "application/json")
    if key:
        request.add_header("authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _wait_healthy(port: int, timeout: float = HEALTHY_TIMEOUT_S) -> float:
    """Seconds until /readyz answers 200 on the published port; a CmarError after `timeout`."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        try:
            if _http(port, "GET", "/readyz")[0] == 200:
                return time.perf_counter() - started
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    raise CmarError(f"the API on port {port} was not ready after {timeout:.0f} s")


def make_base(podman: Podman, script: Path | None) -> dict[str, Any]:
    """The local python:3.11-slim base and the podman settings: made by the shared script when missing."""
    cache = Path.home() / ".cache" / "container-base"
    conf = cache / "containers.conf"
    if shutil.which("podman") and conf.is_file():
        podman.conf = conf
        if podman.run("podman", "image", "exists", BASE_IMAGE, check=False).returncode == 0:
            return {"made": False, "conf": str(conf)}
    if script is None or not script.is_file():
        raise CmarError(
            "podman and a local python:3.11-slim image are needed: run ../shared/tools/container-base.sh as root "
            "(or pass --base-script)"
        )
    started = time.perf_counter()
    done = subprocess.run(["bash", str(script), str(cache)], capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise CmarError(f"{script} failed with exit code {done.returncode}: {done.stderr.strip()[-300:]}")
    podman.conf = conf
    return {"made": True, "conf": str(conf), "seconds": round(time.perf_counter() - started, 1)}


def fill_wheels(context: Path) -> dict[str, Any]:
    """torch's CPU wheel and its dependencies in wheels/, from this machine's pip (which serves the CPU build)."""
    pin = next(
        (line.split("==", 1)[1].strip() for line in (context / "constraints.txt").read_text().splitlines()
         if line.startswith("torch==")),
        None,
    )  # fmt: skip
    if pin is None:
        raise CmarError(f"{context / 'constraints.txt'}: no torch pin")
    started = time.perf_counter()
    command = [sys.executable, "-m", "pip", "download", "-q", "-d", str(context / "wheels"), f"torch=={pin}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise CmarError(f"pip download torch=={pin} failed: {done.stderr.strip()[-300:]}")
    wheels = sorted(p.name for p in (context / "wheels").glob("*.whl"))
    if not any(w.startswith(f"torch-{pin}+cpu") for w in wheels):
        raise CmarError(f"pip did not give torch {pin}'s CPU build here ({', '.join(wheels)})")
    return {"torch": pin, "wheels": wheels, "seconds": round(time.perf_counter() - started, 1)}


def _image_mb(podman: Podman, image: str) -> float:
    size = podman.run("podman", "image", "inspect", "--format", "{{.Size}}", image).stdout.strip()
    return round(int(size) / 2**20, 1)


def build_images(podman: Podman, prefix: str) -> dict[str, Any]:
    """Both images, tagged PREFIX-api and PREFIX-builder: build seconds and sizes."""
    out: dict[str, Any] = {}
    from_wheels = ["--build-arg", "TORCH_PIP_ARGS=--no-index --find-links /app/wheels"]
    for target, args in (("api", []), ("builder", from_wheels)):
        image = f"{prefix}-{target}"
        started = time.perf_counter()
        podman.run("podman", "build", "--network", "host", "--target", target, *args, "-t", image, ".")
        seconds = round(time.perf_counter() - started, 1)
        torch = podman.run("podman", "run", "--rm", image, "python", "-c", "import torch", check=False).returncode == 0
        out[target] = {"image": image, "build_s": seconds, "size_mb": _image_mb(podman, image), "has_torch": torch}
    if out["api"]["has_torch"] or not out["builder"]["has_torch"]:
        raise CmarError("the API image must have no torch and the builder image must have it")
    return out


def _container(podman: Podman, project: str, service: str) -> str:
    names = podman.run("podman", "ps", "-a", "--format", "{{.Names}}").stdout.split()
    found = [n for n in names if n.startswith(f"{project}_{service}_") or n.startswith(f"{project}-{service}-")]
    if not found:
        raise CmarError(f"no {service} container of compose project {project}")
    return found[0]


def _queries(port: int, key: str) -> dict[str, Any]:
    """The README's requests and a write, on the published port; raises CmarError on an unexpected answer."""
    checks: dict[str, Any] = {}
    status, ready = _http(port, "GET", "/readyz")
    checks["readyz"] = {"status": status, "n_artists": ready["n_artists"], "index_version": ready["index_version"]}
    status, similar = _http(port, "GET", "/artists/a0000001/similar?k=5")
    checks["similar"] = {"status": status, "results": len(similar.get("results", []))}
    status, artist = _http(port, "GET", "/artists/a0000001")
    checks["artist"] = {"status": status, "name": artist.get("name") if isinstance(artist, dict) else None}
    query = {"tag": ["style03-tag1", "style03-tag4"], "k": 5}
    status, cold = _http(port, "POST", "/similar", query)
    checks["cold_start"] = {"status": status, "results": len(cold.get("results", []))}
    mixed = {"audio": [((i * 7919) % 200) / 100 - 1 for i in range(64)], "tag": ["style03-tag1"], "k": 5}
    status, cold = _http(port, "POST", "/similar", mixed)
    checks["cold_start_audio_tags"] = {"status": status, "results": len(cold.get("results", []))}
    status, _ = _http(port, "GET", "/healthz")
    checks["healthz"] = {"status": status}
    bad = {name: c for name, c in checks.items() if c["status"] != 200}
    if bad or any(c.get("results", 5) != 5 for c in checks.values()):
        raise CmarError(f"unexpected answers from the container: {bad or checks}")
    return checks


def _write(port: int, key: str) -> int:
    body = {"name": "Written in a container", "tag": ["style03-tag1"]}
    return _http(port, "PUT", "/artists/written-by-check", body, key)[0]


@contextmanager
def _cleanup(podman: Podman, projects: list[tuple[str, list[str]]], images: list[str]) -> Iterator[None]:
    """Bring every project down with its volumes and remove the images, whatever happened."""
    try:
        yield
    finally:
        for project, files in projects:
            try:
                podman.compose(project, files, "down", "-v", timeout=300)
            except (CmarError, subprocess.TimeoutExpired) as exc:
                log.warning("compose down of %s: %s", project, exc)
        for image in images:
            podman.run("podman", "rmi", "-f", image, check=False)


def run_check(out: Path, context: Path, base_script: Path | None) -> dict[str, Any]:
    """Every step of the module docstring; the report (also written to out/containers.json and .md)."""
    context = context.resolve()
    if not (context / "Dockerfile").is_file() or not (context / "docker-compose.yml").is_file():
        raise CmarError(f"{context}: no Dockerfile and docker-compose.yml here; pass --context, the project's folder")
    podman = Podman(context)
    report: dict[str, Any] = {"started": time.time()}
    report["base"] = make_base(podman, base_script)
    report["wheels"] = fill_wheels(context)
    tag = f"cmarcheck{os.getpid()}{secrets.token_hex(2)}"
    key = secrets.token_hex(8)
    port = free_port()
    podman.env = {"CMAR_IMAGE_PREFIX": tag, "CMAR_PUBLISHED_PORT": str(port), "CMAR_API_KEY": key}
    demo = (tag, ["docker-compose.yml"])
    mine = (f"{tag}cat", ["docker-compose.yml", "docker-compose.catalog.yml"])
    catalog = Path(tempfile.mkdtemp(prefix="cmar-check-catalog-"))
    try:
        with _cleanup(podman, [demo, mine], [f"{tag}-api", f"{tag}-builder"]):
            report["images"] = build_images(podman, tag)
            started = time.perf_counter()
            podman.compose(*demo, "up", "-d")
            report["first_up"] = {"healthy_s": round(_wait_healthy(port) + 0, 1), **_queries(port, key)}
            report["first_up"]["up_to_healthy_s"] = round(time.perf_counter() - started, 1)
            api = _container(podman, demo[0], "api")
            report["first_up"]["healthcheck"] = podman.run("podman", "healthcheck", "run", api, check=False).returncode
            report["first_up"]["put_status"] = _write(port, key)
            podman.compose(*demo, "down")  # the volumes stay
            started = time.perf_counter()
            podman.compose(*demo, "up", "-d")
            _wait_healthy(port)
            again = _queries(port, key)
            logs = podman.run("podman", "logs", _container(podman, demo[0], "build"))
            builder_log = logs.stdout + logs.stderr
            written = _http(port, "GET", "/artists/written-by-check")[0]
            report["second_up"] = {
                "up_to_healthy_s": round(time.perf_counter() - started, 1),
                **again,
                "rebuilt": "skipping the build" not in builder_log,
                "same_index": again["readyz"]["index_version"] == report["first_up"]["readyz"]["index_version"],
                "write_served": written == 200,
            }
            podman.compose(*demo, "down", "-v")
            synthetic = ["catalog", "synthetic", str(catalog / "c"), "--n-artists", "700"]
            subprocess.run([sys.executable, "-m", "cli.main", "-q", *synthetic], check=True, capture_output=True)
            podman.env["CMAR_CATALOG"] = str(catalog / "c")
            started = time.perf_counter()
            podman.compose(*mine, "up", "-d")
            _wait_healthy(port)
            own = _http(port, "GET", "/readyz")[1]
            report["own_catalogue"] = {
                "up_to_healthy_s": round(time.perf_counter() - started, 1),
                "catalogue_artists": 700,
                "n_artists": own["n_artists"],
            }
    finally:
        shutil.rmtree(catalog, ignore_errors=True)
    report["passed"] = _passed(report)
    report["finished"] = time.time()
    write(out, report)
    if not report["passed"]:
        raise CmarError(f"the container check failed; see {out / 'containers.md'}")
    return report


def _passed(report: dict[str, Any]) -> bool:
    first, second = report.get("first_up", {}), report.get("second_up", {})
    own = report.get("own_catalogue", {})
    return (
        first.get("healthcheck") == 0
        and first.get("put_status") == 201
        and second.get("write_served") is True
        and second.get("rebuilt") is False
        and second.get("same_index") is True
        and 0 < own.get("n_artists", 0) <= 700
    )


def write(out: Path, report: dict[str, Any]) -> None:
    """containers.json and a readable containers.md."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "containers.json").write_text(json.dumps(report, indent=1))
    images = report.get("images", {})
    lines = ["# cmar container check", "", f"Passed: **{report.get('passed')}**", ""]
    lines += ["| image | size MB | build s | torch |", "|---|---|---|---|"]
    lines += [f"| {t} | {i['size_mb']} | {i['build_s']} | {i['has_torch']} |" for t, i in images.items()]
    first, second, own = report.get("first_up", {}), report.get("second_up", {}), report.get("own_catalogue", {})
    answers = ", ".join(f"{name} {value.get('status')}" for name, value in first.items() if isinstance(value, dict))
    lines += [
        "",
        f"- first `compose up` (trains the demo in the builder) to ready: {first.get('up_to_healthy_s')} s; "
        f"healthcheck command exit {first.get('healthcheck')}; README requests: {answers}; "
        f"PUT {first.get('put_status')}",
        f"- `down` then `up` to ready: {second.get('up_to_healthy_s')} s; artifacts rebuilt: {second.get('rebuilt')}; "
        f"same index: {second.get('same_index')}; the write still served: {second.get('write_served')}",
        f"- `docker-compose.catalog.yml` on a {own.get('catalogue_artists')}-artist catalogue to ready: "
        f"{own.get('up_to_healthy_s')} s, {own.get('n_artists')} artists served",
        "",
    ]
    (out / "containers.md").write_text("\n".join(lines))
