"""`cmar`: one command line for every stage (catalogue, train, export, index, serve, evaluate)."""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from tqdm.contrib.logging import logging_redirect_tqdm

from cli.commands import (
    cmd_bench,
    cmd_build_index,
    cmd_catalog_add_writes,
    cmd_catalog_from_raw,
    cmd_catalog_olga,
    cmd_catalog_synthetic,
    cmd_catalog_validate,
    cmd_check_containers,
    cmd_check_faults,
    cmd_check_load,
    cmd_check_schema,
    cmd_check_ui,
    cmd_compare,
    cmd_disambiguate,
    cmd_evaluate_disambiguation,
    cmd_evaluate_olga,
    cmd_evaluate_olga_search,
    cmd_evaluate_spaces,
    cmd_evaluate_synthetic,
    cmd_export,
    cmd_map,
    cmd_run,
    cmd_serve,
    cmd_tracks_train,
    cmd_train,
)
from core.balance import DEFAULT_BALANCE_STRENGTH
from core.errors import CmarError
from core.logs import TEXT_FORMAT, use_safe_text_logs
from core.search import DEFAULT_NEIGHBOURS_K, EXACT_LIMIT, PRECOMPUTE_LIMIT

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
    "orjson": "serve",
    "prometheus_client": "serve",
    "usearch": "bench",
    "schemathesis": "bench",
    "podman_compose": "bench",
    "implicit": "eval",
    "sklearn": "eval",
    "scipy": "index",
    "matplotlib": "eval",
    "openTSNE": "maps",
    "umap": "maps",
    "threadpoolctl": "eval",
}


OVERWRITE_HELP = (
    "replace the output path even if it is not an earlier cmar folder of the same kind (by default refused)"
)


def _int_in(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {low} to {high:,}, got {value}")
        return value

    return parse


def _positive(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


def _share(text: str) -> float:
    """An argparse type: a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text}")
    return value


PORT = _int_in(0, 65535)
SEED = _int_in(0, 2**32 - 1)
ARTISTS = _int_in(2, 50_000_000)
STYLES = _int_in(1, 100_000)


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        raise SystemExit(2)


def _spec(weights: dict[str, float]) -> str:
    return ",".join(f"{k}={v:g}" for k, v in weights.items()) or "none"


def _train_options(parser: argparse.ArgumentParser) -> None:
    """Training hyperparameters; the defaults shown are TrainConfig's (model_export.config imports no torch)."""
    from model_export.config import TrainConfig

    d = TrainConfig()
    group = parser.add_argument_group("training")
    group.add_argument("--epochs", type=_int_in(1, 100_000), help=f"maximum epochs (default {d.epochs})")
    group.add_argument("--batch-size", type=_int_in(2, 1_000_000), help=f"artists per batch (default {d.batch_size})")
    group.add_argument("--lr", type=_positive, help=f"Adam learning rate (default {d.lr:g})")
    group.add_argument("--temperature", type=_positive, help=f"InfoNCE temperature (default {d.temperature:g})")
    group.add_argument(
        "--patience", type=int, help=f"early-stopping patience in epochs, 0 = off (default {d.patience})"
    )
    group.add_argument(
        "--min-modalities",
        type=int,
        choices=(2, 3),
        help=f"train on artists with at least this many modalities (default {d.min_modalities}; the paper: 3)",
    )
    group.add_argument("--seed", type=SEED, help=f"random seed (default {d.seed})")
    group.add_argument(
        "--subset-weight",
        type=float,
        help=f"weight of the loss between fuses of random modality halves (default {d.subset_weight:g}; 0 = off)",
    )
    group.add_argument(
        "--thin-tags",
        type=float,
        help="share of training artists whose tag set is cut to its 1 to 3 heaviest tags in each batch, "
        f"so that few-tag cold starts land well (default {d.thin_tags:g}; 0 = off)",
    )
    group.add_argument(
        "--modality-weights",
        metavar="SPEC",
        help="each modality's weight in an artist's fused vector: NAME=WEIGHT pairs joined by commas, "
        f"unlisted modalities weigh 1 (default {_spec(d.modality_weights)}; none = the paper's plain mean)",
    )
    group.add_argument(
        "--completion",
        metavar="SPEC",
        help="modality completion: SUBSET=WEIGHT pairs joined by commas, e.g. audio=1,audio+cf=0.5, "
        f"or none (default {_spec(d.completion)}: artists known by audio alone get their CF and tag "
        "embeddings predicted)",
    )


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
    p.add_argument("--port", type=PORT, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free port)")
    _train_options(p)
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=cmd_run)

    cat = sub.add_parser("catalog", help="make or check a catalogue")
    cat_sub = cat.add_subparsers(dest="catalog_command", required=True, metavar="ACTION", parser_class=_Parser)
    p = cat_sub.add_parser("synthetic", help="generate a synthetic catalogue with known answers")
    p.add_argument("out", type=Path, help="folder to write")
    p.add_argument("--n-artists", type=ARTISTS, default=4000)
    p.add_argument("--n-styles", type=STYLES, default=40)
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=cmd_catalog_synthetic)
    p = cat_sub.add_parser(
        "from-raw", help="featurize your raw files (CSV): ALS of listening counts, PPMI + SVD of tags, audio"
    )
    p.add_argument("out", type=Path, help="catalogue folder to write")
    p.add_argument("--artists", type=Path, required=True, help="CSV: artist_id, name[, popularity]")
    p.add_argument("--plays", type=Path, help="CSV: user_id, artist_id, count (listening counts)")
    p.add_argument("--tags", type=Path, help="CSV: artist_id, tag, count (how often the tag was applied)")
    p.add_argument("--audio", type=Path, help="CSV: artist_id and numeric feature columns")
    p.add_argument(
        "--tracks",
        type=Path,
        help="CSV: track_id, artist_id, optional tags (';'-separated) and numeric audio feature columns",
    )
    p.add_argument(
        "--encoding", default="utf-8", help="text encoding of the CSV files (default utf-8; HetRec: latin-1)"
    )
    p.add_argument(
        "--delimiter", default=",", help="field delimiter of the CSV files (default ','; '\\t' for tab-separated)"
    )
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=cmd_catalog_from_raw)
    p = cat_sub.add_parser("olga", help="featurize a folder in the format of shared/data/olga into a catalogue")
    p.add_argument("data_dir", type=Path, help="folder with artists.csv, lastfm_*.csv, ...")
    p.add_argument("out", type=Path, help="catalogue folder to write")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=cmd_catalog_olga)
    p = cat_sub.add_parser("add-writes", help="take the artists written through the API into a catalogue")
    p.add_argument("catalog", type=Path, help="the catalogue the index was built from")
    p.add_argument("--db", type=Path, required=True, help="the service's write database (CMAR_WRITES_DB)")
    p.add_argument("--out", type=Path, required=True, help="catalogue folder to write")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=cmd_catalog_add_writes)
    p = cat_sub.add_parser("validate", help="check a catalogue folder and print what it holds")
    p.add_argument("folder", type=Path)
    p.set_defaults(func=cmd_catalog_validate)

    p = sub.add_parser("train", help="train the encoders on a catalogue")
    p.add_argument("catalog", type=Path, help="catalogue folder")
    p.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    _train_options(p)
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="export a checkpoint to ONNX with a manifest")
    p.add_argument("checkpoint", type=Path, help="checkpoint folder (cmar train)")
    p.add_argument("--out", type=Path, required=True, help="model folder to write")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("build-index", help="encode and fuse every artist into a FAISS index")
    p.add_argument("catalog", type=Path, help="catalogue folder")
    p.add_argument("--model", type=Path, required=True, help="model folder (cmar export)")
    p.add_argument("--out", type=Path, required=True, help="index folder to write")
    p.add_argument(
        "--batch-size", type=_int_in(1, 10_000_000), default=16384, help="artists encoded per batch (default 16384)"
    )
    p.add_argument(
        "--exact-limit",
        type=_int_in(0, 2**40),
        default=EXACT_LIMIT,
        help=f"largest catalogue given an exact index; above it an HNSW graph (default {EXACT_LIMIT})",
    )
    p.add_argument(
        "--neighbours",
        type=_int_in(0, 10_000),
        default=DEFAULT_NEIGHBOURS_K,
        help=f"similar artists precomputed per artist (up to {PRECOMPUTE_LIMIT} artists; 0 = none; "
        f"default {DEFAULT_NEIGHBOURS_K})",
    )
    p.add_argument(
        "--modality-balance",
        type=_share,
        default=DEFAULT_BALANCE_STRENGTH,
        help="share of the fitted modality-balance offsets applied, so that which signals an artist has does not "
        f"decide how often it is found (0 = off; default {DEFAULT_BALANCE_STRENGTH})",
    )
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=cmd_build_index)

    p = sub.add_parser("serve", help="start the HTTP API (settings also from CMAR_* variables)")
    p.add_argument("--model", type=Path, help="model folder (default $CMAR_MODEL_DIR or cmar-data/model)")
    p.add_argument("--index", type=Path, help="index folder (default $CMAR_INDEX_DIR or cmar-data/index)")
    p.add_argument(
        "--track-model", type=Path, help="track model folder for POST /tracks/clusters (default $CMAR_TRACK_MODEL_DIR)"
    )
    p.add_argument(
        "--map", type=Path, help="map folder (cmar map) for GET /map and the web page's map (default $CMAR_MAP_DIR)"
    )
    p.add_argument("--host", help="address (default $CMAR_HOST or 127.0.0.1)")
    p.add_argument("--port", type=PORT, help=f"port (default $CMAR_PORT or {DEFAULT_PORT}; 0 = any free port)")
    p.add_argument(
        "--server",
        choices=["uvicorn", "granian"],
        help="HTTP server (default $CMAR_SERVER or uvicorn; granian has no connection cap, see the README)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("compare", help="NN-similarity between spaces: how much nearest-neighbour lists change")
    p.add_argument(
        "spaces", nargs="+", metavar="SPACE", help="an index folder, CATALOG_DIR#MODALITY, or FILE.npy (with --ids)"
    )
    p.add_argument("--out", type=Path, required=True, help="report folder (compare.json, compare.md)")
    p.add_argument("--n", type=int, nargs="+", default=[5, 10, 100, 200], help="cutoffs (default 5 10 100 200)")
    p.add_argument("--metric", choices=["cosine", "euclidean"], default="cosine", help="neighbours by (default cosine)")
    p.add_argument("--ids", help="for .npy spaces: a file with one id per row (first column)")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=cmd_compare)

    ev = sub.add_parser("evaluate", help="measure retrieval quality and write a report")
    ev_sub = ev.add_subparsers(dest="evaluate_command", required=True, metavar="DATASET", parser_class=_Parser)
    p = ev_sub.add_parser("synthetic", help="the synthetic catalogue: fused index against single modalities")
    p.add_argument("--out", type=Path, required=True, help="report folder")
    p.add_argument("--n-artists", type=ARTISTS, default=4000)
    p.add_argument("--n-styles", type=STYLES, default=40)
    p.add_argument("--data-seed", type=int, default=0, help="seed of the generated catalogue")
    _train_options(p)
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
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
    p.add_argument(
        "--no-cold-start",
        action="store_true",
        help="skip the cold-start evaluation (a second training without 500 query artists)",
    )
    _train_options(p)
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=cmd_evaluate_olga)
    p = ev_sub.add_parser(
        "disambiguation",
        help="artist disambiguation from track audio (Royo-Letelier et al. 2018) on unseen artists",
    )
    p.add_argument("data_dir", type=Path, help="a folder in the format of shared/data/jamendo or shared/data/msd_songs")
    p.add_argument("--out", type=Path, required=True, help="report folder (metrics.json, summary.md, plots)")
    p.add_argument("--test-artists", type=Path, help="text file, one artist id per line: the unseen artists")
    p.add_argument("--test-fraction", type=float, default=0.3, help="share of artists held out (default 0.3)")
    p.add_argument("--draws", type=_int_in(1, 1000), default=10, help="draws of homonym groups (default 10)")
    p.add_argument(
        "--iterations", type=_int_in(1, 1_000_000), help="training steps (default: each method's, 4000 or 1500)"
    )
    p.add_argument(
        "--methods", nargs="+", choices=("raw", "classifier", "triplet", "triplet_sideinfo"),
        default=["raw", "classifier", "triplet", "triplet_sideinfo"], help="methods to compare (default all)",
    )  # fmt: skip
    p.add_argument("--seed", type=SEED, default=0, help="random seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=cmd_evaluate_disambiguation)
    p = ev_sub.add_parser(
        "spaces", help="NN-similarity among real spaces and maps (Tovstogan et al. 2022): Jamendo, OLGA, projections"
    )
    p.add_argument("--out", type=Path, required=True, help="report folder (spaces.json, spaces.md, heatmaps)")
    p.add_argument("--jamendo", type=Path, help="a folder in the format of shared/data/jamendo (28 spaces)")
    p.add_argument("--olga", type=Path, help="an OLGA folder (CF by ALS with 64/96/128 factors; tags; audio)")
    p.add_argument(
        "--olga-work", type=Path, nargs="+", metavar="WORKDIR",
        help="workdirs of `cmar evaluate olga` runs with other seeds (REPORT/work); default: train two seeds here",
    )  # fmt: skip
    p.add_argument("--n", type=int, nargs="+", default=[5, 10, 100, 200], help="cutoffs (default 5 10 100 200)")
    p.add_argument("--no-maps", action="store_true", help="skip the projections (two seeds of four methods)")
    p.add_argument("--epochs", type=int, help="training epochs when training the two seeds here")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=cmd_evaluate_spaces)
    p = ev_sub.add_parser("olga-search", help="the searches behind the OLGA defaults (featurizers, training)")
    p.add_argument("data_dir", type=Path, help="an OLGA folder")
    p.add_argument("--out", type=Path, required=True, help="report folder")
    p.add_argument("--skip-featurizers", action="store_true", help="only the training search")
    p.add_argument("--skip-training", action="store_true", help="only the featurizer search")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=cmd_evaluate_olga_search)
    p = sub.add_parser("map", help="a 2D map of a space (PCA, random, t-SNE, UMAP) and the neighbours it keeps")
    p.add_argument("space", help="a space as cmar compare reads it (index folder, CATALOG#MODALITY, FILE.npy)")
    p.add_argument("--out", type=Path, required=True, help="map folder to write (map.parquet, manifest.json)")
    p.add_argument("--method", choices=("pca", "random", "tsne", "umap"), default="tsne", help="default tsne")
    p.add_argument("--seed", type=SEED, default=0, help="random seed (default 0)")
    p.add_argument("--metric", choices=["cosine", "euclidean"], default="cosine", help="the source space's metric")
    p.add_argument("--ids", help="for a .npy space: a file with one id per row (first column)")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=cmd_map)
    p = sub.add_parser("tracks", help="the track encoder for artist disambiguation (Royo-Letelier et al. 2018)")
    tr_sub = p.add_subparsers(dest="tracks_command", required=True, metavar="ACTION", parser_class=_Parser)
    p = tr_sub.add_parser("train", help="train a track encoder on a catalogue's tracks and export it to ONNX")
    p.add_argument("catalog", type=Path, help="a catalogue folder with tracks.parquet")
    p.add_argument("--out", type=Path, required=True, help="track model folder to write")
    p.add_argument(
        "--method", choices=("triplet", "triplet_sideinfo", "classifier"), default="triplet",
        help="triplet loss, with side-information negatives, or the classifier baseline (default triplet)",
    )  # fmt: skip
    p.add_argument("--iterations", type=_int_in(1, 10_000_000), help="training steps (default 4000; classifier 1500)")
    p.add_argument("--margin", type=_positive, default=0.2, help="triplet margin alpha (default 0.2)")
    p.add_argument("--seed", type=SEED, default=0, help="random seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=cmd_tracks_train)
    p = sub.add_parser(
        "disambiguate", help="list artists whose tracks split into 2+ clusters (homonyms or mis-filed tracks)"
    )
    p.add_argument("catalog", type=Path, help="a catalogue folder with tracks.parquet")
    p.add_argument("--model", type=Path, required=True, help="track model folder (cmar tracks train)")
    p.add_argument("--out", type=Path, required=True, help="report folder (disambiguation.json, summary.md)")
    p.add_argument(
        "--min-tracks", type=_int_in(2, 1_000_000), default=4, help="check artists with this many tracks (default 4)"
    )
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=cmd_disambiguate)
    p = sub.add_parser("bench", help="speed and scale: the API under load, the build, training, 1M artists, a peer")
    p.add_argument("--out", type=Path, required=True, help="report folder (bench.json, bench.md)")
    p.add_argument("--duration", type=_positive, default=10.0, help="measured seconds per API case and concurrency")
    p.add_argument(
        "--concurrency", type=_int_in(1, 10_000), nargs="+", default=[1, 16, 64], help="connections (default 1 16 64)"
    )
    p.add_argument("--demo-artists", type=ARTISTS, default=4000, help="synthetic catalogue the API serves")
    p.add_argument(
        "--scale", type=_int_in(0, 50_000_000), default=1_000_000, help="artists of the large catalogue (0 = skip)"
    )
    p.add_argument(
        "--exact-limit", type=_int_in(0, 2**40), help=f"exact index up to this many artists (default {EXACT_LIMIT})"
    )
    p.add_argument("--epochs", type=int, help="training epochs (default: the training default)")
    p.add_argument("--olga", type=Path, help="an OLGA folder: also time featurizing and training on it")
    p.add_argument("--no-peer", action="store_true", help="skip the peer engine (usearch)")
    p.add_argument(
        "--compare-items",
        type=_int_in(0, 1_000_000),
        default=100_000,
        help="items of each of the two spaces `cmar compare` is timed on: 0 (skip) or 1000 to 1000000 (default 100000)",
    )
    p.add_argument(
        "--only",
        nargs="+",
        choices=["api", "scale", "compare", "olga"],
        help="run only these sections (default: all; olga needs --olga)",
    )
    p.add_argument(
        "--server",
        nargs="+",
        choices=["uvicorn", "granian"],
        default=["uvicorn"],
        help="HTTP servers to measure the API under, each against its own neutral ceiling (default uvicorn)",
    )
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=cmd_bench)

    chk = sub.add_parser("check", help="production evidence against a live server: schema fuzzing, load with writes")
    chk_sub = chk.add_subparsers(dest="check_command", required=True, metavar="CHECK", parser_class=_Parser)
    p = chk_sub.add_parser("schema", help="schemathesis against the live OpenAPI schema: no 5xx, no schema violation")
    p.add_argument("--out", type=Path, required=True, help="report folder (schema.json, schemathesis.txt)")
    p.add_argument("--examples", type=int, default=150, help="examples per operation and phase (default 150)")
    p.add_argument("--epochs", type=int, help="training epochs of the demo model")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=cmd_check_schema)
    p = chk_sub.add_parser("load", help="GET load at concurrency 64 while artists are written and the model swapped")
    p.add_argument("--out", type=Path, required=True, help="report folder (load.json)")
    p.add_argument("--duration", type=_positive, default=60.0, help="seconds of load (default 60)")
    p.add_argument("--concurrency", type=_int_in(1, 10_000), default=64, help="connections (default 64)")
    p.add_argument("--epochs", type=int, help="training epochs of the two demo models")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=cmd_check_load)
    p = chk_sub.add_parser(
        "faults", help="floods, storage faults, races, swaps under stored writes, replay time: a report"
    )
    p.add_argument("--out", type=Path, required=True, help="report folder (faults.json, faults.md)")
    p.add_argument(
        "--replay-sizes",
        type=int,
        nargs="+",
        default=[0, 1000, 10_000, 100_000],
        help="stored writes to time the start-up with (default 0 1000 10000 100000)",
    )
    p.add_argument("--epochs", type=int, help="training epochs of the demo model")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=cmd_check_faults)
    p = chk_sub.add_parser(
        "ui", help="the web page in headless Chromium: search, an artist, the map, a cold start; screenshots"
    )
    p.add_argument("--out", type=Path, required=True, help="report folder (ui.json, ui.md, screenshots)")
    p.add_argument("--url", help="a running service to check (default: serve a demo with its map)")
    p.add_argument("--query", default="artist", help="the name to search for (default 'artist', the demo's names)")
    p.add_argument("--epochs", type=int, help="training epochs of the demo model")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=cmd_check_ui)
    p = chk_sub.add_parser(
        "containers", help="build the images, compose up with podman, query, restart, tear down: a report"
    )
    p.add_argument("--out", type=Path, required=True, help="report folder (containers.json, containers.md)")
    p.add_argument("--context", type=Path, default=Path("."), help="the project folder with the Dockerfile (default .)")
    p.add_argument(
        "--base-script",
        type=Path,
        help="script making podman's python:3.11-slim base when missing (default ../shared/tools/container-base.sh)",
    )
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=cmd_check_containers)
    return parser


def _configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    root = logging.getLogger()
    if root.handlers:  # already configured (by an embedding program or a test runner): only set the level
        root.setLevel(level)
    else:
        logging.basicConfig(level=level, format=TEXT_FORMAT)
        use_safe_text_logs(("",))
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
        sys.stderr.write(f"cmar: error: {' '.join(str(exc).split())}\n")  # one line, whatever the cause says
        return 1
    except OSError as exc:  # a file or folder the user named cannot be read or written
        where = f"{exc.filename}: " if exc.filename else ""
        sys.stderr.write(f"cmar: error: {where}{exc.strerror or exc}\n")
        return 1
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get((exc.name or "").split(".")[0])
        hint = f"install the {extra} extra: pip install -c constraints.txt -e '.[{extra}]'" if extra else str(exc)
        sys.stderr.write(f"cmar: error: missing package {exc.name}; {hint}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("cmar: interrupted\n")
        return 130
    except MemoryError:
        sys.stderr.write("cmar: error: out of memory; try smaller sizes (--n-artists, --batch-size, --scale)\n")
        return 1
    except Exception as exc:  # no traceback for anything: one line, the traceback with -v
        log.debug("traceback of the error below", exc_info=True)
        first = (str(exc).splitlines() or [""])[0][:300]
        sys.stderr.write(
            f"cmar: error: {type(exc).__name__}: {first} (unexpected: please report it; -v shows the traceback)\n"
        )
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
