"""`cmar`: one command line for every stage (catalogue, train, export, index, serve, evaluate)."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from tqdm.contrib.logging import logging_redirect_tqdm

from core.errors import CmarError

log = logging.getLogger("cmar")

DEFAULT_WORKDIR = Path("cmar-data")
DEFAULT_PORT = 8000
EXTRAS = {  # module -> the extra that installs it
    "torch": "train",
    "onnx": "train",
    "onnxscript": "train",
    "onnxruntime": "index",
    "faiss": "index",
    "fastapi": "serve",
    "uvicorn": "serve",
    "pydantic_settings": "serve",
    "implicit": "eval",
    "sklearn": "eval",
    "scipy": "eval",
    "matplotlib": "eval",
    "threadpoolctl": "eval",
}


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        raise SystemExit(2)


def _train_options(parser: argparse.ArgumentParser) -> None:
    """Training hyperparameters; defaults come from TrainConfig (without importing torch)."""
    group = parser.add_argument_group("training")
    group.add_argument("--epochs", type=int, help="maximum epochs (default 60)")
    group.add_argument("--batch-size", type=int, help="artists per batch (default 128)")
    group.add_argument("--lr", type=float, help="Adam learning rate (default 1e-4)")
    group.add_argument("--temperature", type=float, help="InfoNCE temperature (default 0.1)")
    group.add_argument("--patience", type=int, help="early-stopping patience in epochs, 0 = off (default 10)")
    group.add_argument(
        "--min-modalities",
        type=int,
        choices=(2, 3),
        help="train on artists with at least this many modalities (default 2; the paper: 3)",
    )
    group.add_argument("--seed", type=int, help="random seed (default 0)")
    group.add_argument(
        "--subset-weight",
        type=float,
        help="weight of the loss between fuses of random modality halves (default 0, off)",
    )


def _train_config(args: argparse.Namespace) -> Any:
    from model_export.config import TrainConfig

    names = ("epochs", "batch_size", "lr", "temperature", "patience", "min_modalities", "seed", "subset_weight")
    return TrainConfig(**{n: getattr(args, n) for n in names if getattr(args, n, None) is not None})


def build_parser() -> argparse.ArgumentParser:
    """The full command line."""
    parser = _Parser(prog="cmar", description="Cross-modal artist retrieval: train, index and serve similar artists.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only, no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("run", help="the main job: (demo catalogue), train, export, build the index, serve")
    p.add_argument("--catalog", type=Path, help="a catalogue folder (default: generate the demo catalogue)")
    p.add_argument(
        "--workdir", type=Path, default=DEFAULT_WORKDIR, help=f"where artifacts go (default {DEFAULT_WORKDIR})"
    )
    p.add_argument("--skip-existing", action="store_true", help="reuse the artifacts in --workdir if they verify")
    p.add_argument("--no-serve", action="store_true", help="stop after building the artifacts")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free port)")
    _train_options(p)
    p.set_defaults(func=cmd_run)

    cat = sub.add_parser("catalog", help="make or check a catalogue")
    cat_sub = cat.add_subparsers(dest="catalog_command", required=True, metavar="ACTION", parser_class=_Parser)
    p = cat_sub.add_parser("synthetic", help="generate a synthetic catalogue with known answers")
    p.add_argument("out", type=Path, help="folder to write")
    p.add_argument("--n-artists", type=int, default=4000)
    p.add_argument("--n-styles", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_catalog_synthetic)
    p = cat_sub.add_parser("validate", help="check a catalogue folder and print what it holds")
    p.add_argument("folder", type=Path)
    p.set_defaults(func=cmd_catalog_validate)

    p = sub.add_parser("train", help="train the encoders on a catalogue")
    p.add_argument("catalog", type=Path, help="catalogue folder")
    p.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    _train_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="export a checkpoint to ONNX with a manifest")
    p.add_argument("checkpoint", type=Path, help="checkpoint folder (cmar train)")
    p.add_argument("--out", type=Path, required=True, help="model folder to write")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("build-index", help="encode and fuse every artist into a FAISS index")
    p.add_argument("catalog", type=Path, help="catalogue folder")
    p.add_argument("--model", type=Path, required=True, help="model folder (cmar export)")
    p.add_argument("--out", type=Path, required=True, help="index folder to write")
    p.add_argument("--batch-size", type=int, default=4096, help="artists per ONNX Runtime call (default 4096)")
    p.set_defaults(func=cmd_build_index)

    p = sub.add_parser("serve", help="start the HTTP API (settings also from CMAR_* variables)")
    p.add_argument("--model", type=Path, help="model folder (default $CMAR_MODEL_DIR or cmar-data/model)")
    p.add_argument("--index", type=Path, help="index folder (default $CMAR_INDEX_DIR or cmar-data/index)")
    p.add_argument("--host", help="address (default $CMAR_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help=f"port (default $CMAR_PORT or {DEFAULT_PORT}; 0 = any free port)")
    p.set_defaults(func=cmd_serve)

    ev = sub.add_parser("evaluate", help="measure retrieval quality and write a report")
    ev_sub = ev.add_subparsers(dest="evaluate_command", required=True, metavar="DATASET", parser_class=_Parser)
    p = ev_sub.add_parser("synthetic", help="the synthetic catalogue: fused index against single modalities")
    p.add_argument("--out", type=Path, required=True, help="report folder")
    p.add_argument("--n-artists", type=int, default=4000)
    p.add_argument("--n-styles", type=int, default=40)
    p.add_argument("--data-seed", type=int, default=0, help="seed of the generated catalogue")
    _train_options(p)
    p.set_defaults(func=cmd_evaluate_synthetic)
    p = ev_sub.add_parser("olga", help="the paper's experiments on an OLGA folder (format of shared/data/olga)")
    p.add_argument("data_dir", type=Path, help="folder with artists.csv, similar.csv, lastfm_*.csv, ...")
    p.add_argument("--out", type=Path, required=True, help="report folder")
    p.add_argument("--queries", type=Path, help="CSV with an mbid column: only these artists query (all stay indexed)")
    p.add_argument(
        "--no-full-coverage-run",
        action="store_true",
        help="skip the second training on full-coverage artists (claim d)",
    )
    _train_options(p)
    p.set_defaults(func=cmd_evaluate_olga)
    p = ev_sub.add_parser("olga-search", help="the searches behind the OLGA defaults (featurizers, training)")
    p.add_argument("data_dir", type=Path, help="an OLGA folder")
    p.add_argument("--out", type=Path, required=True, help="report folder")
    p.add_argument("--skip-featurizers", action="store_true", help="only the training search")
    p.add_argument("--skip-training", action="store_true", help="only the featurizer search")
    p.set_defaults(func=cmd_evaluate_olga_search)
    return parser


def _progress() -> bool:
    return logging.getLogger().level <= logging.INFO


def cmd_catalog_synthetic(args: argparse.Namespace) -> None:
    """Write a synthetic catalogue."""
    from catalog.synthetic import SyntheticSpec, write_synthetic

    spec = SyntheticSpec(n_artists=args.n_artists, n_styles=args.n_styles, seed=args.seed)
    if spec.n_artists < 2 or spec.n_styles < 1:
        raise CmarError("--n-artists must be >= 2 and --n-styles >= 1")
    write_synthetic(args.out, spec)
    log.info("synthetic catalogue of %d artists written to %s", spec.n_artists, args.out)


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


def cmd_train(args: argparse.Namespace) -> None:
    """Train and write a checkpoint."""
    from model_export.train import train

    train(args.catalog, args.out, _train_config(args), progress=_progress())


def cmd_export(args: argparse.Namespace) -> None:
    """Export a checkpoint to ONNX."""
    from model_export.export import export

    export(args.checkpoint, args.out)


def cmd_build_index(args: argparse.Namespace) -> None:
    """Build an index."""
    from index_build.build import build_index

    if args.batch_size < 1:
        raise CmarError("--batch-size must be >= 1")
    build_index(args.catalog, args.model, args.out, batch_size=args.batch_size, progress=_progress())


def _free_port(host: str, port: int) -> int:
    """`port` if it can be bound on `host` (any free port for 0); a CmarError if it is taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise CmarError(f"cannot listen on {host}:{port} ({exc.strerror}); pass another --port") from None
        return int(sock.getsockname()[1])


def serve(model_dir: Path | None, index_dir: Path | None, host: str | None, port: int | None) -> None:
    """Verify the artifacts, then run the API under uvicorn until interrupted."""
    import uvicorn

    from service.app import create_app
    from service.artifacts import Artifacts
    from service.settings import load_settings

    overrides = {"model_dir": model_dir, "index_dir": index_dir, "host": host, "port": port}
    settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    artifacts = Artifacts.load(settings)  # refuse to start, with one line, if anything does not verify
    bound = _free_port(settings.host, settings.port)
    log.info("API on http://%s:%d (docs at http://%s:%d/docs)", settings.host, bound, settings.host, bound)
    uvicorn.run(create_app(settings, artifacts), host=settings.host, port=bound, log_level=settings.log_level)


def cmd_serve(args: argparse.Namespace) -> None:
    """Serve the API."""
    if args.port is not None and not 0 <= args.port <= 65535:
        raise CmarError("--port must be between 0 and 65535")
    serve(args.model, args.index, args.host, args.port)


def cmd_run(args: argparse.Namespace) -> None:
    """The main job."""
    from cli.pipeline import Workdir, artifacts_ready, build_artifacts

    work = Workdir(args.workdir)
    catalog = args.catalog
    if catalog is not None and not catalog.is_dir():
        raise CmarError(f"{catalog}: no such catalogue folder")
    if catalog is None:
        from catalog.synthetic import SyntheticSpec, write_synthetic

        write_synthetic(work.catalog, SyntheticSpec())
        catalog = work.catalog
        log.info("demo catalogue generated in %s", catalog)
    if args.skip_existing and artifacts_ready(work, catalog):
        log.info("artifacts in %s verify and match the catalogue; skipping the build", work.root)
    else:
        build_artifacts(catalog, work, _train_config(args), progress=_progress())
    if not args.no_serve:
        serve(work.model, work.index, args.host, args.port)


def cmd_evaluate_synthetic(args: argparse.Namespace) -> None:
    """Evaluate on a synthetic catalogue."""
    from catalog.synthetic import SyntheticSpec
    from evaluation.synthetic import run

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
    run(
        args.data_dir,
        args.out,
        _train_config(args),
        queries_file=args.queries,
        compare_full_coverage=not args.no_full_coverage_run,
        progress=_progress(),
    )
    log.info("report: %s", args.out / "report.md")


def cmd_evaluate_olga_search(args: argparse.Namespace) -> None:
    """Run the documented searches on an OLGA folder."""
    from evaluation.search import run, training_candidates

    if not args.data_dir.is_dir():
        raise CmarError(f"{args.data_dir}: no such folder")
    candidates = {} if args.skip_training else training_candidates()
    run(args.data_dir, args.out, candidates, featurizers=not args.skip_featurizers)
    log.info("summary:\n%s", (args.out / "summary.md").read_text())


def _configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    root = logging.getLogger()
    if root.handlers:  # already configured (by an embedding program or a test runner): only set the level
        root.setLevel(level)
    else:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("onnx_ir", "onnxscript", "torch.onnx", "httpx", "faiss.loader"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ok, 1 user error, 2 usage error)."""
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose, args.quiet)
    func: Callable[[argparse.Namespace], None] = args.func
    try:
        with logging_redirect_tqdm():  # log lines go above progress bars instead of through them
            func(args)
    except CmarError as exc:
        sys.stderr.write(f"cmar: error: {exc}\n")
        return 1
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get((exc.name or "").split(".")[0])
        hint = f"install the {extra} extra: pip install -c constraints.txt -e '.[{extra}]'" if extra else str(exc)
        sys.stderr.write(f"cmar: error: missing package {exc.name}; {hint}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("cmar: interrupted\n")
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
