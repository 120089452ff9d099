"""`cmar bench`: every benchmark in one run, written to bench.json and bench.md."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import api, compare, jobs, report, scale, server
from core.errors import CmarError
from service.settings import Settings

log = logging.getLogger(__name__)


SECTIONS = ("api", "scale", "compare", "olga")  # api: the demo's training, build and API; scale: 1M + peer


@dataclass(frozen=True)
class BenchConfig:
    """What `cmar bench` measures and how long."""

    out: Path
    duration_s: float = 10.0  # measured seconds per API case and concurrency (after 1 s of warm-up)
    concurrency: tuple[int, ...] = api.CONCURRENCY
    demo_artists: int = 4000  # the synthetic catalogue the API is measured on
    scale_artists: int = 1_000_000  # the large catalogue (0 = skip the scale and peer sections)
    exact_limit: int | None = None  # override the build's exact/HNSW threshold (tests use a tiny one)
    epochs: int | None = None  # override training epochs (tests)
    olga: Path | None = None  # an OLGA folder: also time featurising and training on it
    peer: bool = True
    servers: tuple[str, ...] = ("uvicorn",)  # HTTP servers the API is measured under; the first fills `api`
    compare_items: int = compare.ITEMS  # items of each space `cmar compare` is timed on (0 = skip)
    sections: tuple[str, ...] = SECTIONS  # which sections run
    command: str = "cmar bench"


def run_bench(config: BenchConfig) -> dict[str, Any]:
    """The sections of `config.sections`: the demo's API under load, the large catalogue and a peer,
    `cmar compare` on two large spaces, training on OLGA; bench.json and bench.md after each."""
    work = config.out / "work"
    marker = work / ".cmar-bench-work"
    if work.exists() and not marker.is_file():
        raise CmarError(f"{work}: a folder cmar bench did not make; refusing to delete it (move it, or choose --out)")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    marker.write_text("made by cmar bench; deleted and made anew by each run\n")
    bench: dict[str, Any] = {"command": config.command, "machine": report.machine(), "started": time.time()}
    if "api" in config.sections or "scale" in config.sections:
        _api_and_scale(config, work, bench)
    if "compare" in config.sections and config.compare_items:
        bench["compare"] = compare.measure(work / "compare", config.compare_items)
        report.write(config.out, bench)
    if "olga" in config.sections and config.olga is not None:
        bench.setdefault("training", {})["olga"] = _olga_training(config.olga, work / "olga", config.epochs)
    bench["finished"] = time.time()
    report.write(config.out, bench)
    return bench


def _api_and_scale(config: BenchConfig, work: Path, bench: dict[str, Any]) -> None:
    """Train and build the demo; measure its API (section api) and the large catalogue and peer (section scale)."""
    demo = work / "demo"
    epochs = ["--epochs", str(config.epochs)] if config.epochs else []
    jobs.run_cmar(["catalog", "synthetic", str(demo / "catalog"), "--n-artists", str(config.demo_artists)], demo)
    trained = jobs.run_cmar(["train", str(demo / "catalog"), "--out", str(demo / "checkpoint"), *epochs], demo)
    bench["training"] = {"synthetic": jobs.training(demo / "checkpoint", trained)}
    jobs.run_cmar(["export", str(demo / "checkpoint"), "--out", str(demo / "model")], demo)
    built = jobs.run_cmar(
        ["build-index", str(demo / "catalog"), "--model", str(demo / "model"), "--out", str(demo / "index")], demo
    )
    bench["build_demo"] = jobs.build(demo / "index", built)
    report.write(config.out, bench)

    settings = Settings(model_dir=demo / "model", index_dir=demo / "index")
    bench["profile_us"] = api.profile(settings, demo / "catalog")
    cases = api.requests(demo / "catalog", demo / "index")
    bench["api_by_server"] = {}
    for name in config.servers if "api" in config.sections else ():
        env = {"CMAR_SERVER": name}
        with (
            server.start_bare(work / f"bare-{name}.log", env) as bare,
            server.start(demo / "model", demo / "index", work / f"server-{name}.log", env) as running,
        ):
            measured = api.run(running, cases, config.duration_s, config.concurrency, bare=bare)
            bench["api_by_server"][name] = measured
            if name == config.servers[0]:
                bench["api"] = measured
                bench["api_server_rss_mb"] = round(running.rss_mb())
                bench["api_setup"] = (
                    f"`cmar serve` ({name}, one process) on the demo catalogue ({bench['build_demo']['n_artists']} "
                    f"artists, {bench['build_demo']['index_type']}); the ceiling a bare ASGI app with a constant "
                    "body on the same server and settings in its own process; the load generator in its own "
                    f"process; {config.duration_s:g} s measured per row after 1 s of warm-up; started in "
                    f"{running.startup_s:.1f} s."
                )
        report.write(config.out, bench)

    if config.scale_artists and "scale" in config.sections:
        big = work / "scale"
        section, _, index = scale.build(demo / "model", big, config.scale_artists, config.exact_limit)
        bench["build"] = jobs.build(index, jobs.Measured(section["build_s"], section["build_peak_rss_mb"]))
        ours = scale.search_latency(index)
        section |= {k: v for k, v in ours.items() if not k.startswith("_")}
        section |= scale.serve(demo / "model", index, work / "server-scale.log", min(config.duration_s, 5.0))
        bench["scale"] = section
        report.write(config.out, bench)
        if config.peer:
            bench["peer"] = scale.peer(ours)
        del ours
        shutil.rmtree(big / "catalog", ignore_errors=True)  # the largest files; the index stays for inspection
    else:
        bench["build"] = bench["build_demo"]


def _olga_training(folder: Path, work: Path, epochs: int | None) -> dict[str, Any]:
    """Featurise an OLGA folder (timed) and train on it."""
    started = time.perf_counter()
    jobs.run_cmar(["catalog", "olga", str(folder), str(work / "catalog")], work)
    featurise_s = time.perf_counter() - started
    extra = ["--epochs", str(epochs)] if epochs else []
    trained = jobs.run_cmar(["train", str(work / "catalog"), "--out", str(work / "checkpoint"), *extra], work)
    return {**jobs.training(work / "checkpoint", trained), "featurise_s": round(featurise_s, 1)}
