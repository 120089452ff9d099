"""What each `cmar` subcommand does: thin wrappers over the stages' typed functions."""

from __future__ import annotations

import argparse
import logging
import socket
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import CmarError

log = logging.getLogger("cmar")


def _train_config(args: argparse.Namespace) -> Any:
    from model_export.config import TrainConfig

    names = (
        "epochs",
        "batch_size",
        "lr",
        "temperature",
        "patience",
        "min_modalities",
        "seed",
        "subset_weight",
        "thin_tags",
    )
    values = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    for option, key, example in (
        ("--modality-weights", "modality_weights", "tag=2"),
        ("--completion", "completion", "audio=1"),
    ):
        spec = getattr(args, key, None)
        if spec is not None:
            values[key] = parse_weights(option, spec, example)
    return TrainConfig(**values)


def parse_weights(option: str, spec: str, example: str) -> dict[str, float]:
    """`NAME=WEIGHT,NAME=WEIGHT` (or `none`) as a dict; a CmarError names the option and the bad part."""
    if spec.strip().lower() in ("none", ""):
        return {}
    weights: dict[str, float] = {}
    for part in spec.split(","):
        name, _, weight = part.partition("=")
        try:
            weights[name.strip()] = float(weight)
        except ValueError:  # also a part without "="
            raise CmarError(f"{option}: expected NAME=WEIGHT (e.g. {example}), got {part.strip()!r}") from None
    return weights


def report_folder(args: argparse.Namespace) -> None:
    """Claim `args.out` for a report (`core.outputs`) and mark it as one, before the work starts."""
    from core.outputs import claim_output, mark_folder

    claim_output(args.out, "report", args.overwrite)
    mark_folder(args.out, "report", command=" ".join(["cmar", args.command, *_subcommand(args)]))


def _subcommand(args: argparse.Namespace) -> list[str]:
    return [v for k in ("evaluate_command", "check_command", "tracks_command") if (v := getattr(args, k, None))]


def _progress() -> bool:
    return logging.getLogger().level <= logging.INFO


def cmd_catalog_synthetic(args: argparse.Namespace) -> None:
    """Write a synthetic catalogue."""
    from catalog.synthetic import SyntheticSpec, write_synthetic

    spec = SyntheticSpec(n_artists=args.n_artists, n_styles=args.n_styles, seed=args.seed)
    if spec.n_artists < 2 or spec.n_styles < 1:
        raise CmarError("--n-artists must be >= 2 and --n-styles >= 1")
    write_synthetic(args.out, spec, overwrite=args.overwrite)
    log.info("synthetic catalogue of %d artists written to %s", spec.n_artists, args.out)


def cmd_catalog_from_raw(args: argparse.Namespace) -> None:
    """Featurize raw CSV files into a catalogue."""
    from catalog.io import write_catalog
    from catalog.raw import CsvFormat, read_raw
    from core.outputs import claim_output

    claim_output(args.out, "catalog", args.overwrite)  # before any featurizing
    delimiter = "\t" if args.delimiter in ("\\t", "tab") else args.delimiter
    raw = read_raw(
        args.artists, args.plays, args.tags, args.audio, args.tracks, fmt=CsvFormat(args.encoding, delimiter)
    )
    log.info("from-raw: %s", raw.summary())
    write_catalog(args.out, raw.catalog, overwrite=args.overwrite, changes=raw.changes)
    log.info(
        "catalogue of %d artists written to %s (%s)",
        raw.catalog.n_artists,
        args.out,
        ", ".join(f"{n}: {int(t.present.sum())}" for n, t in raw.catalog.modalities.items()),
    )


def cmd_catalog_olga(args: argparse.Namespace) -> None:
    """Featurize an OLGA folder into a catalogue."""
    from catalog.olga import write_olga_catalog

    if not args.data_dir.is_dir():
        raise CmarError(f"{args.data_dir}: no such folder")
    data = write_olga_catalog(args.data_dir, args.out, overwrite=args.overwrite)
    log.info("catalogue of %d artists written to %s", data.catalog.n_artists, args.out)


def cmd_catalog_add_writes(args: argparse.Namespace) -> None:
    """Merge the service's writes into a catalogue."""
    from catalog.io import read_catalog, write_catalog
    from catalog.writes import merge_writes, read_writes
    from core.outputs import claim_output

    claim_output(args.out, "catalog", args.overwrite)
    merged = merge_writes(read_catalog(args.catalog), read_writes(args.db))
    write_catalog(args.out, merged.catalog, overwrite=args.overwrite)
    log.info(
        "catalogue of %d artists written to %s (%d added, %d replaced, %d removed)",
        merged.catalog.n_artists,
        args.out,
        merged.added,
        merged.replaced,
        merged.removed,
    )


def cmd_catalog_validate(args: argparse.Namespace) -> None:
    """Validate a catalogue and log what it holds."""
    from catalog.io import read_catalog

    catalog = read_catalog(args.folder)
    present = catalog.present()
    log.info(
        "%s: %d artists; %s; %d with no modality",
        args.folder,
        catalog.n_artists,
        ", ".join(f"{n}: {t.present.sum()} (dim {t.dim})" for n, t in catalog.modalities.items()),
        int((~present.any(axis=0)).sum()),
    )
    if catalog.tracks is not None:
        log.info(
            "%s: %d tracks (dim %d) of %d artists",
            args.folder,
            len(catalog.tracks),
            catalog.tracks.dim,
            len(np.unique(catalog.tracks.rows)),
        )


def cmd_train(args: argparse.Namespace) -> None:
    """Train and write a checkpoint."""
    from model_export.train import train

    train(args.catalog, args.out, _train_config(args), progress=_progress(), overwrite=args.overwrite)


def cmd_export(args: argparse.Namespace) -> None:
    """Export a checkpoint to ONNX."""
    from core.outputs import claim_output
    from model_export.export import export

    claim_output(args.out, "model", args.overwrite)
    export(args.checkpoint, args.out, overwrite=args.overwrite)


def cmd_build_index(args: argparse.Namespace) -> None:
    """Build an index."""
    from index_build.build import build_index

    if args.batch_size < 1:
        raise CmarError("--batch-size must be >= 1")
    if args.neighbours < 0 or args.exact_limit < 0:
        raise CmarError("--neighbours and --exact-limit must be >= 0")
    build_index(
        args.catalog,
        args.model,
        args.out,
        batch_size=args.batch_size,
        progress=_progress(),
        neighbours_k=args.neighbours,
        exact_limit=args.exact_limit,
        overwrite=args.overwrite,
        balance_strength=args.modality_balance,
    )


def _free_port(host: str, port: int) -> int:
    """`port` if it can be bound on `host` (any free port for 0); a CmarError if it is taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the server binds: SO_REUSEADDR, so that connections of a stopped server in
        # TIME_WAIT do not make a free port look taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise CmarError(f"cannot listen on {host}:{port} ({exc.strerror}); pass another --port") from None
        return int(sock.getsockname()[1])


def serve(
    model_dir: Path | None,
    index_dir: Path | None,
    host: str | None,
    port: int | None,
    server: str | None = None,
    track_model_dir: Path | None = None,
    map_dir: Path | None = None,
) -> None:
    """Verify the artifacts, then run the API (uvicorn, or CMAR_SERVER's server) until interrupted."""
    from core.logs import use_safe_text_logs
    from core.store import WriteStore
    from service.app import create_app
    from service.observe import use_json_logs
    from service.server import run
    from service.settings import load_map, load_settings, load_track_model, writes_db
    from service.writes import load_served

    overrides = {
        "model_dir": model_dir,
        "index_dir": index_dir,
        "host": host,
        "port": port,
        "server": server,
        "track_model_dir": track_model_dir,
        "map_dir": map_dir,
    }
    settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    if settings.log_format == "json":
        use_json_logs()
    else:
        use_safe_text_logs()
    artifacts = load_served(settings)  # refuse to start, with one line, if nothing verifies
    store = WriteStore(writes_db(settings))  # likewise for a write database that cannot be opened
    tracks = load_track_model(settings)  # and for a track model that does not verify
    served_map = load_map(settings)  # and for a map folder that does not read
    bound = _free_port(settings.host, settings.port)
    log.info(
        "API on http://%s:%d (docs at http://%s:%d/docs), served by %s",
        settings.host, bound, settings.host, bound, settings.server,
    )  # fmt: skip
    run(create_app(settings, artifacts, store, tracks, served_map), settings, bound)


def cmd_serve(args: argparse.Namespace) -> None:
    """Serve the API."""
    if args.port is not None and not 0 <= args.port <= 65535:
        raise CmarError("--port must be between 0 and 65535")
    serve(args.model, args.index, args.host, args.port, args.server, args.track_model, args.map)


def cmd_run(args: argparse.Namespace) -> None:
    """The main job."""
    from pipeline.workdir import Workdir, artifacts_ready, build_artifacts

    work = Workdir(args.workdir)
    catalog = args.catalog
    work.claim(args.overwrite, demo_catalog=catalog is None)
    if catalog is not None and not catalog.is_dir():
        raise CmarError(f"{catalog}: no such catalogue folder")
    if not args.no_serve and args.port:
        _free_port(args.host, args.port)  # a taken port fails now, not after a minute of training
    if catalog is None:
        from catalog.synthetic import SyntheticSpec, write_synthetic

        write_synthetic(work.catalog, SyntheticSpec(), overwrite=args.overwrite)
        catalog = work.catalog
        log.info("demo catalogue generated in %s", catalog)
    if args.skip_existing and artifacts_ready(work, catalog):
        log.info("artifacts in %s verify and match the catalogue; skipping the build", work.root)
    else:
        build_artifacts(catalog, work, _train_config(args), progress=_progress(), overwrite=args.overwrite)
        demo_map(work.index, work.root / "map", args.overwrite)
    if not (work.root / "map" / "manifest.json").is_file():  # a workdir from before maps
        demo_map(work.index, work.root / "map", args.overwrite)
    if not args.no_serve:
        serve(work.model, work.index, args.host, args.port, map_dir=work.root / "map")


def demo_map(index_dir: Path, out: Path, overwrite: bool = False) -> None:
    """The main job's map of its index, for GET /map and the web page: the default t-SNE when
    openTSNE is installed (the `train` extra has it), PCA otherwise."""
    import importlib.util

    from evaluation.maps import DEFAULT_METHOD, make_map
    from evaluation.nn_similarity import load_space

    method = DEFAULT_METHOD if importlib.util.find_spec("openTSNE") else "pca"
    manifest = make_map(load_space(str(index_dir)), method, 0, out, overwrite=overwrite)
    log.info("map of the index (%s) in %s: S_10 kept %s", method, out, manifest["preservation"].get("10"))


def cmd_evaluate_synthetic(args: argparse.Namespace) -> None:
    """Evaluate on a synthetic catalogue."""
    from catalog.synthetic import SyntheticSpec
    from evaluation.synthetic import run

    report_folder(args)
    run(
        args.out,
        SyntheticSpec(n_artists=args.n_artists, n_styles=args.n_styles, seed=args.data_seed),
        _train_config(args),
        progress=_progress(),
    )
    log.info("summary:\n%s", (args.out / "summary.md").read_text())


def cmd_evaluate_olga(args: argparse.Namespace) -> None:
    """Evaluate on an OLGA folder."""
    from evaluation.olga import run

    if not args.data_dir.is_dir():
        raise CmarError(f"{args.data_dir}: no such folder")
    report_folder(args)
    run(
        args.data_dir,
        args.out,
        _train_config(args),
        queries_file=args.queries,
        compare_full_coverage=not args.no_full_coverage_run,
        cold_start=not args.no_cold_start,
        progress=_progress(),
    )
    log.info("report: %s", args.out / "report.md")


def cmd_evaluate_spaces(args: argparse.Namespace) -> None:
    """NN-similarity among the real spaces and their maps: spaces.json, spaces.md and heatmaps."""
    from evaluation.spaces import Run, run

    if args.jamendo is None and args.olga is None:
        raise CmarError("give --jamendo DIR, --olga DIR or both")
    for folder in (args.jamendo, args.olga, *(args.olga_work or [])):
        if folder is not None and not folder.is_dir():
            raise CmarError(f"{folder}: no such folder")
    if any(n < 1 for n in args.n) or not {10, 200} <= set(args.n):
        raise CmarError("--n: every cutoff must be >= 1, and 10 and 200 must be among them (the findings use them)")
    for work in args.olga_work or []:
        Run.of(work)  # a workdir that is not one fails now, not after the Jamendo section
    report_folder(args)
    result = run(args.out, args.jamendo, args.olga, args.olga_work, tuple(sorted(set(args.n))), not args.no_maps,
                 args.epochs)  # fmt: skip
    log.info("spaces compared in %.0f s (%s)", result["seconds"], args.out / "spaces.md")


def cmd_evaluate_disambiguation(args: argparse.Namespace) -> None:
    """Disambiguation from track audio on unseen artists: metrics.json, summary.md and two plots."""
    from evaluation.disambiguation import DisambiguationConfig, run
    from evaluation.disambiguation_report import summary
    from evaluation.report import write_report
    from evaluation.track_sets import load_track_set

    if not 0 < args.test_fraction < 1:
        raise CmarError(f"--test-fraction: expected a number between 0 and 1, got {args.test_fraction}")
    data = load_track_set(args.data_dir)
    test_artists = None
    if args.test_artists is not None:
        try:
            text = args.test_artists.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CmarError(f"{args.test_artists}: cannot read ({exc})") from None
        test_artists = list(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))
    report_folder(args)
    config = DisambiguationConfig(
        test_fraction=args.test_fraction,
        draws=args.draws,
        seed=args.seed,
        iterations=args.iterations,
        methods=tuple(dict.fromkeys(args.methods)),
    )
    report = run(data, test_artists, config, plots=args.out, progress=_progress())
    write_report(args.out, report, summary(report))
    log.info("report: %s", args.out / "summary.md")


def cmd_tracks_train(args: argparse.Namespace) -> None:
    """Train and export a track encoder (Royo-Letelier et al. 2018)."""
    from model_export.track_export import train_track_model
    from model_export.tracks import method_config

    config = method_config(args.method, iterations=args.iterations, margin=args.margin, seed=args.seed)
    manifest = train_track_model(args.catalog, args.out, config, progress=_progress(), overwrite=args.overwrite)
    log.info(
        "track model %s (%s) in %s: threshold %.3f, held-out homonym AMI %.3f",
        manifest.model_version, manifest.method, args.out, manifest.cluster_threshold,
        manifest.metrics["threshold_ami"],
    )  # fmt: skip


def cmd_disambiguate(args: argparse.Namespace) -> None:
    """Suspected homonyms and mis-filed tracks of a catalogue: disambiguation.json and summary.md."""
    from core.outputs import claim_output
    from evaluation.report import write_report
    from pipeline.disambiguate import disambiguate, summary

    claim_output(args.out, "report", args.overwrite)  # checked first; made only once there is a report
    report = disambiguate(args.catalog, args.model, args.min_tracks, progress=_progress())
    report_folder(args)
    write_report(args.out, report, summary(report), name="disambiguation")
    log.info("%d of %d artists split into 2+ clusters: %s", report["n_suspected"], report["n_artists_checked"],
             args.out / "summary.md")  # fmt: skip


def cmd_evaluate_olga_search(args: argparse.Namespace) -> None:
    """Run the documented searches on an OLGA folder."""
    from evaluation.search import run, training_candidates

    if not args.data_dir.is_dir():
        raise CmarError(f"{args.data_dir}: no such folder")
    report_folder(args)
    candidates = {} if args.skip_training else training_candidates()
    run(args.data_dir, args.out, candidates, featurizers=not args.skip_featurizers)
    log.info("summary:\n%s", (args.out / "summary.md").read_text())


def cmd_bench(args: argparse.Namespace) -> None:
    """Run the benchmarks and write bench.json and bench.md."""
    import shlex
    import sys

    from bench.run import SECTIONS, BenchConfig, run_bench

    if args.duration <= 0 or any(c < 1 for c in args.concurrency):
        raise CmarError("--duration must be > 0 and every --concurrency >= 1")
    if args.scale < 0 or args.demo_artists < 2:
        raise CmarError("--scale must be >= 0 and --demo-artists >= 2")
    if args.olga is not None and not args.olga.is_dir():
        raise CmarError(f"{args.olga}: no such folder")
    if args.scale and args.scale < 2:
        raise CmarError("--scale must be 0 or at least 2")
    if 0 < args.compare_items < 1000:
        raise CmarError(f"--compare-items must be 0 (skip) or at least 1000, got {args.compare_items}")
    only = set(args.only or ())
    if "olga" in only and args.olga is None:
        raise CmarError("--only olga needs --olga DATA_DIR")
    if "compare" in only and not args.compare_items:
        raise CmarError("--only compare needs --compare-items above 0")
    if "scale" in only and not args.scale:
        raise CmarError("--only scale needs --scale above 0")
    report_folder(args)
    config = BenchConfig(
        out=args.out,
        duration_s=args.duration,
        concurrency=tuple(args.concurrency),
        demo_artists=args.demo_artists,
        servers=tuple(dict.fromkeys(args.server)),
        scale_artists=args.scale,
        exact_limit=args.exact_limit,
        epochs=args.epochs,
        olga=args.olga,
        peer=not args.no_peer,
        compare_items=args.compare_items,
        sections=tuple(args.only) if args.only else SECTIONS,
        command=shlex.join(["cmar", *sys.argv[1:]]) if sys.argv[0].endswith("cmar") else "cmar bench",
    )
    run_bench(config)
    log.info("benchmark report: %s", args.out / "bench.md")


def cmd_check_schema(args: argparse.Namespace) -> None:
    """Fuzz the live API from its OpenAPI schema."""
    from bench.checks import check_schema

    if args.examples < 1:
        raise CmarError("--examples must be >= 1")
    report_folder(args)
    result = check_schema(args.out, args.examples, args.epochs)
    log.info("schemathesis: %d generated requests, no failure (%s)", result["generated"], args.out / "schema.json")


def cmd_check_load(args: argparse.Namespace) -> None:
    """Load the live API while writing artists and swapping the model."""
    from bench.checks import check_load

    if args.duration <= 0 or args.concurrency < 1:
        raise CmarError("--duration must be > 0 and --concurrency >= 1")
    report_folder(args)
    result = check_load(args.out, args.duration, args.concurrency, args.epochs)
    load = result["load"]
    log.info(
        "load: %d requests (%.0f/s), %d failed; %d writes; %d answers checked against their version, %d inconsistent",
        load["requests"],
        load["rps"],
        load["errors"],
        result["writes"],
        result["checked"],
        result["inconsistent"],
    )


def cmd_compare(args: argparse.Namespace) -> None:
    """NN-similarity between spaces (Tovstogan et al. 2022): compare.json and compare.md."""
    import json
    import time

    from evaluation.nn_similarity import compare, heatmaps, load_space, summary

    if len(args.spaces) < 2:
        raise CmarError("give at least two spaces to compare")
    if any(n < 1 for n in args.n):
        raise CmarError("every --n must be >= 1")
    spaces = [load_space(spec, args.ids) for spec in args.spaces]
    report_folder(args)
    started = time.perf_counter()
    try:
        report = compare(spaces, sorted(set(args.n)), args.metric)
    except ValueError as exc:
        raise CmarError(str(exc)) from None
    report["seconds"] = round(time.perf_counter() - started, 1)
    (args.out / "compare.json").write_text(json.dumps(report, indent=1))
    (args.out / "compare.md").write_text(summary(report))
    heatmaps(report, args.out)
    log.info("compared %d spaces over %d shared items in %.1f s (%s)", len(spaces), report["n_items"],
             report["seconds"], args.out / "compare.md")  # fmt: skip


def cmd_map(args: argparse.Namespace) -> None:
    """A 2D map of a space and how many neighbours it keeps (Tovstogan et al. 2022)."""
    from core.outputs import claim_output
    from evaluation.maps import make_map
    from evaluation.nn_similarity import load_space

    claim_output(args.out, "map", args.overwrite)
    space = load_space(args.space, args.ids)
    manifest = make_map(space, args.method, args.seed, args.out, args.metric, overwrite=args.overwrite)
    log.info("map written to %s: S_10 kept %s", args.out, manifest["preservation"].get("10"))


def cmd_check_ui(args: argparse.Namespace) -> None:
    """Drive the web page in headless Chromium and save screenshots."""
    from bench.checks import check_ui

    if args.url is not None and not args.url.startswith(("http://", "https://")):
        raise CmarError(f"--url must start with http:// or https://, got {args.url!r}")
    report_folder(args)
    report = check_ui(args.out, args.url, args.query, args.epochs)
    log.info(
        "web page: %d steps passed, %d requests, none off the host; screenshots in %s",
        len(report["steps"]), report["requests"], args.out,
    )  # fmt: skip


def cmd_check_containers(args: argparse.Namespace) -> None:
    """Build and run the container images for real (podman, podman-compose) and write a report."""
    from bench.containers import run_check

    report_folder(args)
    script = args.base_script or (args.context.resolve().parent / "shared" / "tools" / "container-base.sh")
    report = run_check(args.out, args.context, script)
    images = report["images"]
    log.info(
        "containers: every check passed; api image %.0f MB, builder %.0f MB, first up to ready %.0f s (%s)",
        images["api"]["size_mb"], images["builder"]["size_mb"], report["first_up"]["up_to_healthy_s"],
        args.out / "containers.md",
    )  # fmt: skip


def cmd_check_faults(args: argparse.Namespace) -> None:
    """Floods, storage faults, races and replay time against live servers."""
    from bench.faults import check_faults

    if any(n < 0 for n in args.replay_sizes):
        raise CmarError("--replay-sizes must be >= 0")
    report_folder(args)
    report = check_faults(args.out, args.epochs, args.replay_sizes)
    log.info("faults: every check passed (%s)", args.out / "faults.md")
    for row in report["replay"]:
        log.info("replay of %d stored writes: ready after %.1f s", row["writes"], row["startup_s"])
