"""The offline index job: encode every artist, fuse its modalities, write an exact inner-product index."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from catalog.io import catalog_fingerprint, read_catalog
from catalog.tables import Catalog, SetTable, VectorTable
from core.artifacts import INDEX_ARTISTS_FILE, INDEX_FILE
from core.errors import CmarError
from core.files import atomic_folder
from core.manifest import IndexManifest, write_manifest
from core.vectors import FloatArray, as_candidates, fuse
from index_build.encoder import OnnxModel
from index_build.hubs import DEFAULT_HUB_BETA, DEFAULT_HUB_K, penalties

log = logging.getLogger(__name__)

UNINDEXED_FILE = "unindexed.json"
SELF_CHECK_LIMIT = 200_000  # artists whose self-query is checked at build time


def check_compatible(catalog: Catalog, model: OnnxModel) -> list[str]:
    """The modalities the build can use; raise if a shared modality's input dimension differs."""
    usable = []
    for name, table in catalog.modalities.items():
        if name not in model.sessions:
            log.warning("the model has no %s encoder; the catalogue's %s table is ignored", name, name)
            continue
        if table.dim != model.input_dim(name):
            raise CmarError(
                f"{name}: the catalogue's vectors have {table.dim} values, model {model.version} expects "
                f"{model.input_dim(name)}; rebuild with the catalogue the model was trained on"
            )
        if isinstance(table, SetTable) and table.vocab != model.vocabularies[name].names:
            log.warning("the catalogue's %s vocabulary differs from the model's; using the catalogue's vectors", name)
        usable.append(name)
    if not usable:
        raise CmarError(f"the catalogue shares no modality with model {model.version}")
    return usable


def encode_catalog(
    catalog: Catalog, model: OnnxModel, rows: np.ndarray, names: list[str], batch_size: int, progress: bool
) -> FloatArray:
    """Fused unit vectors (len(rows), D) of the given artists, encoded with ONNX Runtime in batches."""
    out = np.zeros((rows.size, model.dim), dtype=np.float32)
    bar = tqdm(total=rows.size, desc="encode", unit="artist", disable=not progress)
    for begin in range(0, rows.size, batch_size):
        batch = rows[begin : begin + batch_size]
        stack = np.zeros((len(names), batch.size, model.dim), dtype=np.float32)  # (M, B, D)
        present = np.zeros((len(names), batch.size), dtype=bool)
        for m, name in enumerate(names):
            table = catalog.modalities[name]
            where = np.flatnonzero(table.present[batch])
            if where.size == 0:
                continue
            present[m, where] = True
            if isinstance(table, VectorTable):
                stack[m, where] = model.encode_vectors(name, table.values[batch[where]])
            else:
                items, weights = table.padded_inputs(batch[where], model.manifest.max_tags)
                stack[m, where] = model.encode_set(name, items, weights)
        out[begin : begin + batch.size] = fuse(stack, present)
        bar.update(batch.size)
    bar.close()
    return out


def self_check(index: faiss.Index, vectors: FloatArray, limit: int = SELF_CHECK_LIMIT) -> dict[str, object]:
    """Query the index with (up to `limit`) indexed vectors: each must find itself first.

    A tie (another artist with an identical vector scoring as high) counts as found first.
    """
    n = min(limit, len(vectors))
    rows = np.arange(n) if n == len(vectors) else np.random.default_rng(0).choice(len(vectors), n, replace=False)
    ok = 0
    for begin in range(0, n, 8192):
        batch = rows[begin : begin + 8192]
        scores, ids = index.search(vectors[batch], 1)
        self_score = np.einsum("ij,ij->i", vectors[batch], vectors[batch])
        ok += int(((ids[:, 0] == batch) | (scores[:, 0] <= self_score + 1e-5)).sum())
    return {"checked": int(n), "first_is_self": ok, "ok": ok == n}


def build_index(
    catalog_dir: Path,
    model_dir: Path,
    out_dir: Path,
    batch_size: int = 4096,
    progress: bool = True,
    hub_k: int = DEFAULT_HUB_K,
    hub_beta: float = DEFAULT_HUB_BETA,
) -> IndexManifest:
    """Build the index folder for a catalogue with a model folder; return its manifest.

    With `hub_beta` > 0 the index ranks by cos(q, c) - penalty(c), penalty(c) = beta/2 times c's
    mean cosine to its `hub_k` nearest artists: each stored vector is [v, -penalty] and queries
    are [q, 1]. With 0 it ranks by cosine.
    """
    started = time.perf_counter()
    catalog = read_catalog(catalog_dir)
    model = OnnxModel(model_dir)
    names = check_compatible(catalog, model)
    present = np.stack([catalog.modalities[n].present for n in names])  # (M, N)
    has_any = present.any(axis=0)
    rows = np.flatnonzero(has_any)
    unindexed = catalog.artist_ids[~has_any].astype(str).tolist()
    if unindexed:
        log.warning(
            "%d artist(s) have no modality the model knows and are not indexed (listed in %s), e.g. %s",
            len(unindexed),
            UNINDEXED_FILE,
            ", ".join(unindexed[:3]),
        )
    if rows.size == 0:
        raise CmarError("no artist has a modality the model knows; nothing to index")

    t0 = time.perf_counter()
    vectors = encode_catalog(catalog, model, rows, names, batch_size, progress)
    encode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    plain = faiss.IndexFlatIP(model.dim)
    plain.add(vectors)
    check = self_check(plain, vectors)  # by cosine: every artist is its own nearest neighbour
    if not check["ok"]:
        raise CmarError(
            f"self-check failed: {check['first_is_self']} of {check['checked']} artists find themselves first"
        )
    penalty = penalties(vectors, hub_k, hub_beta)
    if hub_beta > 0:
        index = faiss.IndexFlatIP(model.dim + 1)
        index.add(as_candidates(vectors, penalty))
    else:
        index = plain
    index_s = time.perf_counter() - t0

    with atomic_folder(Path(out_dir)) as tmp:
        faiss.write_index(index, str(tmp / INDEX_FILE))
        modality_lists = [[n for m, n in enumerate(names) if present[m, r]] for r in rows]
        table = {
            "artist_id": pa.array(catalog.artist_ids[rows].astype(str).tolist(), pa.string()),
            "name": pa.array(catalog.names[rows].astype(str).tolist(), pa.string()),
            "modalities": pa.array(modality_lists, pa.list_(pa.string())),
            "hub_penalty": pa.array(penalty, pa.float32()),
        }
        if catalog.popularity is not None:
            table["popularity"] = pa.array(catalog.popularity[rows], pa.float32())
        pq.write_table(pa.table(table), tmp / INDEX_ARTISTS_FILE)
        (tmp / UNINDEXED_FILE).write_text(json.dumps(unindexed))
        manifest = write_manifest(
            tmp,
            IndexManifest(
                embedding_dim=model.dim,
                model=model.manifest,
                index_type="IndexFlatIP",
                hub={"k": hub_k, "beta": hub_beta},
                n_artists=int(rows.size),
                n_unindexed=len(unindexed),
                modality_counts={n: int(present[m].sum()) for m, n in enumerate(names)},
                self_check=check,
                build={
                    "catalog": str(catalog_dir),
                    "catalog_fingerprint": catalog_fingerprint(catalog_dir),
                    "encode_fuse_s": round(encode_s, 3),
                    "index_s": round(index_s, 3),
                    "total_s": round(time.perf_counter() - started, 3),
                    "batch_size": batch_size,
                },
            ),
        )
    log.info(
        "index %s: %d artists (%d not indexed), self-check %d/%d, written to %s",
        manifest.index_version,
        rows.size,
        len(unindexed),
        check["first_is_self"],
        check["checked"],
        out_dir,
    )
    return manifest
