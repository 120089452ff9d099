"""The offline index job: encode every artist, fuse its modalities, write an exact inner-product index."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from catalog.io import catalog_fingerprint, read_catalog
from catalog.tables import Catalog, SetTable, VectorTable
from core.artifacts import (
    ARTIST_ITEMS_FILE,
    INDEX_ARTISTS_FILE,
    INDEX_FILE,
    MODALITY_EMBEDDINGS_FILE,
    NEIGHBOUR_SCORES_FILE,
    NEIGHBOURS_FILE,
    TAG_COUNTS_FILE,
)
from core.balance import DEFAULT_BALANCE_STRENGTH, Balance, presence_bits
from core.errors import CmarError
from core.files import atomic_folder
from core.fusion import subset_groups
from core.manifest import BuildRecord, HubPenalty, IndexManifest, SearchSetting, SelfCheck, write_manifest
from core.outputs import claim_output
from core.search import DEFAULT_NEIGHBOURS_K, EXACT_LIMIT, PRECOMPUTE_LIMIT, RESCORE_MARGIN
from core.vectors import FloatArray, as_candidates, as_queries, row_cosines
from index_build import structure
from index_build.balance import fit_balance
from index_build.hubs import (
    DEFAULT_HUB_BETA,
    DEFAULT_HUB_K,
    penalties_from,
    sampled_penalties,
    search_all,
    self_found,
)
from inference.encoder import OnnxModel

log = logging.getLogger(__name__)

UNINDEXED_FILE = "unindexed.json"
SELF_CHECK_LIMIT = 20_000  # artists whose self-query is checked when no all-artist search is run


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


def encode_sets(model: OnnxModel, name: str, table: SetTable, rows: np.ndarray, chunk: int = 1024) -> FloatArray:
    """(len(rows), D) set-modality embeddings of artists that have items.

    Artists go through the encoder in chunks of similar list length, each padded only to its
    own longest list: attention and projections cost in proportion to the padded length, and
    most artists have far fewer items than `max_tags`. Padding never changes a result.
    """
    lengths = np.minimum(table.lengths(rows), model.manifest.max_tags)
    order = np.argsort(lengths, kind="stable")
    out = np.empty((rows.size, model.dim), dtype=np.float32)
    for begin in range(0, rows.size, chunk):
        part = order[begin : begin + chunk]
        items, weights = table.padded_inputs(rows[part], model.manifest.max_tags, trim=True)
        out[part] = model.encode_set(name, items, weights)
    return out


def tag_counts(catalog: Catalog, rows: np.ndarray, names: list[str]) -> dict[str, dict[str, int]]:
    """For each set modality the index uses: how many of the indexed artists (`rows`) carry each item."""
    out: dict[str, dict[str, int]] = {}
    for name in names:
        table = catalog.modalities[name]
        if not isinstance(table, SetTable):
            continue
        spans = [table.items[table.indptr[r] : table.indptr[r + 1]] for r in rows.tolist()]
        items = np.concatenate(spans) if spans else np.zeros(0, dtype=np.int64)
        counts = np.bincount(items, minlength=len(table.vocab))
        out[name] = {table.vocab[i]: int(c) for i, c in enumerate(counts.tolist()) if c}
    return out


def encode_modalities(
    catalog: Catalog, model: OnnxModel, rows: np.ndarray, names: list[str]
) -> tuple[FloatArray, np.ndarray]:
    """Each modality's own unit embeddings of the given artists.

    Returns (M, len(rows), D), zero where an artist lacks the modality, and (M, len(rows)) presence.
    """
    stack = np.zeros((len(names), rows.size, model.dim), dtype=np.float32)
    present = np.zeros((len(names), rows.size), dtype=bool)
    for m, name in enumerate(names):
        table = catalog.modalities[name]
        where = np.flatnonzero(table.present[rows])
        if where.size == 0:
            continue
        present[m, where] = True
        if isinstance(table, VectorTable):
            stack[m, where] = model.encode_vectors(name, table.values[rows[where]])
        else:
            stack[m, where] = encode_sets(model, name, table, rows[where])
    return stack, present


def encode_catalog(
    catalog: Catalog, model: OnnxModel, rows: np.ndarray, names: list[str], batch_size: int, progress: bool
) -> tuple[FloatArray, np.ndarray]:
    """Fused unit vectors (len(rows), D) of the given artists, encoded with ONNX Runtime in batches,
    and each modality's own embeddings (M, len(rows), D) in float16, zero where absent (for explanations)."""
    out = np.zeros((rows.size, model.dim), dtype=np.float32)
    parts = np.zeros((len(names), rows.size, model.dim), dtype=np.float16)
    bar = tqdm(total=rows.size, desc="encode", unit="artist", disable=not progress)
    for begin in range(0, rows.size, batch_size):
        batch = rows[begin : begin + batch_size]
        stack, present = encode_modalities(catalog, model, batch, names)
        out[begin : begin + batch.size] = model.fuse(stack, present, names)
        parts[:, begin : begin + batch.size] = stack
        bar.update(batch.size)
    bar.close()
    return out, parts


def artist_items(catalog: Catalog, rows: np.ndarray, names: list[str], max_items: int) -> pa.Table:
    """Each indexed artist's items of every set modality, heaviest first, as its encoder took them.

    Columns `{name}_items` (list of strings) and `{name}_weights` (list of floats), one row per
    artist of `rows`; at most `max_items` each (the model's `max_tags`).
    """
    columns: dict[str, pa.Array] = {}
    for name in names:
        table = catalog.modalities[name]
        if not isinstance(table, SetTable):
            continue
        starts = table.indptr[rows]
        lengths = np.minimum(table.indptr[rows + 1] - starts, max_items)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        positions = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        vocab = pa.array(table.vocab, pa.string())
        items = pa.DictionaryArray.from_arrays(pa.array(table.items[positions], pa.int32()), vocab)
        columns[f"{name}_items"] = pa.ListArray.from_arrays(pa.array(offsets), items.cast(pa.string()))
        columns[f"{name}_weights"] = pa.ListArray.from_arrays(
            pa.array(offsets), pa.array(table.weights[positions], pa.float32())
        )
    return pa.table(columns) if columns else pa.table({"none": pa.nulls(rows.size, pa.bool_())})


@dataclass
class BuiltIndex:
    """What the index stage computes, before it is written."""

    index: faiss.Index
    penalty: FloatArray  # (N,) hub penalty of each artist
    plan: structure.Structure
    tuning: structure.Tuning
    self_check: dict[str, object]
    neighbours: np.ndarray | None  # (N, K) rows, or None when not precomputed
    neighbour_scores: FloatArray | None  # (N, K) their cosines
    timings: dict[str, float]


def _sample(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.arange(n) if n <= size else np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def index_vectors(
    vectors: FloatArray,
    hub_k: int = DEFAULT_HUB_K,
    hub_beta: float = DEFAULT_HUB_BETA,
    neighbours_k: int = DEFAULT_NEIGHBOURS_K,
    exact_limit: int = EXACT_LIMIT,
    progress: bool = False,
    balance: Balance | None = None,
    slots: np.ndarray | None = None,
) -> BuiltIndex:
    """Index fused unit vectors (N, D): hub penalties, the index, its tuning, the similar lists.

    With a `balance` (`core.balance`) and each artist's slot in it (`slots`, (N,)), the index
    ranks by cosine minus hub penalty plus the balance's offset, and every artist's list is
    ranked for a query of its own slot.

    Exact index: one exact search of every artist gives the self-check (each finds itself
    first by cosine) and, from its next `hub_k` hits, the hub penalties. Graph index: the
    penalties are estimated against a sample (`sampled_penalties`) and the self-check asks a
    sample of artists to find themselves in their top 10 of the served index. Then the served
    index over [v, -penalty], its recall@200 measured against exact search, and up to
    `PRECOMPUTE_LIMIT` artists each artist's `neighbours_k` most similar others.
    """
    n = len(vectors)
    plan = structure.choose(n, exact_limit)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if plan.kind == "flat":
        plain = structure.make(plan, vectors)
        width = min(hub_k, n - 1) + 1 if hub_beta > 0 else 1
        rows = np.arange(n) if hub_beta > 0 else _sample(n, SELF_CHECK_LIMIT)
        scores, hits = search_all(plain, vectors[rows], width, progress=progress, desc="neighbours")
        found = self_found(scores, hits, vectors[rows], rows)
        penalty = penalties_from(scores[:, 1:], hub_beta)
        del plain
    else:
        penalty = sampled_penalties(vectors, hub_k, hub_beta, progress)
    timings["hub_penalties_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    balance = balance or Balance()
    slots = np.zeros(n, dtype=np.int64) if slots is None else np.asarray(slots, dtype=np.int64)
    per_slot = balance.penalties(penalty, slots)
    if hub_beta > 0 or balance.subsets:
        stored, queries = as_candidates(vectors, per_slot), as_queries(vectors, slots, balance.width)
    else:
        stored, queries = vectors, vectors
    index = structure.make(plan, stored, progress)
    timings["index_add_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tuning = structure.tune(index, stored, queries[_sample(n, structure.RECALL_QUERIES)])
    structure.set_ef_search(index, tuning.ef_search)
    timings["tune_s"] = time.perf_counter() - t0
    check: dict[str, object]
    if plan.kind == "flat":
        check = {"checked": int(found.size), "first_is_self": int(found.sum()), "ok": bool(found.all())}
    else:
        rows = _sample(n, SELF_CHECK_LIMIT)
        _, hits = search_all(index, queries[rows], min(10, n))
        found = (hits == rows[:, None]).any(axis=1)
        check = {"checked": int(found.size), "self_in_top10": int(found.sum()), "ok": bool(found.mean() >= 0.99)}
    if not check["ok"]:
        raise CmarError(f"self-check failed: {check}")

    t0 = time.perf_counter()
    lists = lists_scores = None
    if neighbours_k > 0 and n > 1 and n <= PRECOMPUTE_LIMIT:
        lists, lists_scores = _precompute(index, vectors, queries, per_slot, slots, min(neighbours_k, n - 1), progress)
    timings["precompute_s"] = time.perf_counter() - t0
    return BuiltIndex(index, penalty, plan, tuning, check, lists, lists_scores, timings)


def _precompute(
    index: faiss.Index,
    vectors: FloatArray,
    queries: FloatArray,
    penalties: FloatArray,
    slots: np.ndarray,
    k: int,
    progress: bool,
) -> tuple[np.ndarray, FloatArray]:
    """Every artist's k most similar others: rows (N, k) int32 and cosines (N, k).

    The index proposes k + 1 + RESCORE_MARGIN candidates; each is rescored as the service
    ranks (`core.vectors.row_cosines` minus what the artist's balance slot subtracts, `penalties`
    (S, N): the hub penalty less the balance's offset; ties by row; every artist when a
    tie at the cut may reach past the candidates), so a precomputed list is exactly the list
    a search or a filtered ranking of the service gives (exact indexes: lists are precomputed
    only for those).
    """
    n = len(vectors)
    want = min(n, k + 1 + RESCORE_MARGIN)
    _, found = search_all(index, queries, want, progress=progress, desc="similar lists")
    rows = np.empty((n, k), dtype=np.int32)
    cosines = np.empty((n, k), dtype=np.float32)
    for i in range(n):
        penalty = penalties[slots[i]]
        cands = np.sort(found[i][(found[i] >= 0) & (found[i] != i)])  # by row, so that ties rank by row
        cos = row_cosines(vectors[cands], vectors[i])
        ranked = cos - penalty[cands]
        if want < n and ranked.size > k and ranked.min() >= np.sort(ranked)[-k]:  # a tie may reach past the fetch
            cands = np.delete(np.arange(n), i)
            cos = row_cosines(vectors[cands], vectors[i])
            ranked = cos - penalty[cands]
        best = np.argsort(-ranked, kind="stable")[:k]
        if best.size < k:  # only a graph index could return fewer; lists are precomputed for exact ones
            raise CmarError(f"precomputing similar lists: artist row {i} has {best.size} candidates, {k} needed")
        rows[i], cosines[i] = cands[best], cos[best]
    return rows, cosines


def build_index(
    catalog_dir: Path,
    model_dir: Path,
    out_dir: Path,
    batch_size: int = 16384,
    progress: bool = True,
    hub_k: int = DEFAULT_HUB_K,
    hub_beta: float = DEFAULT_HUB_BETA,
    neighbours_k: int = DEFAULT_NEIGHBOURS_K,
    exact_limit: int = EXACT_LIMIT,
    overwrite: bool = False,
    balance_strength: float = DEFAULT_BALANCE_STRENGTH,
) -> IndexManifest:
    """Build the index folder for a catalogue with a model folder; return its manifest.

    `out_dir` may replace only an earlier index folder unless `overwrite` (`core.outputs`);
    that is checked before any work.

    With `hub_beta` > 0 the index ranks by cos(q, c) - penalty(c), penalty(c) = beta/2 times c's
    mean cosine to its `hub_k` nearest artists: each stored vector is [v, -penalty] and queries
    are [q, 1]. With 0 it ranks by cosine. The index is exact up to `exact_limit` artists and an
    HNSW graph above, its efSearch tuned to recall@200 (see `index_build.structure`); up to
    `PRECOMPUTE_LIMIT` artists each artist's `neighbours_k` most similar others are stored as
    well (0 = none). With `balance_strength` > 0 the modality balance is fitted on the
    catalogue's full-coverage artists (`index_build.balance`) and added to the ranking
    (`core.balance`); 0 turns it off.
    """
    claim_output(out_dir, "index", overwrite)
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
    vectors, parts = encode_catalog(catalog, model, rows, names, batch_size, progress)
    encode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    record = fit_balance(
        parts, present[:, rows], names, model.fuse, hub_k, hub_beta, balance_strength, progress=progress
    )
    balance = Balance.of(record)
    balance_s = time.perf_counter() - t0
    if record.subsets:
        log.info(
            "modality balance: %d subsets fitted on %d full-coverage artists, strength %g, offsets %.4f to %.4f",
            len(record.subsets),
            record.artists,
            record.strength,
            float(balance.offsets.min()),
            float(balance.offsets.max()),
        )
    slots = balance.slots(presence_bits({name: present[m, rows] for m, name in enumerate(names)}))
    t0 = time.perf_counter()
    built = index_vectors(vectors, hub_k, hub_beta, neighbours_k, exact_limit, progress, balance, slots)
    index_s = time.perf_counter() - t0
    penalty, check = built.penalty, built.self_check

    with atomic_folder(Path(out_dir), "index", overwrite) as tmp:
        faiss.write_index(built.index, str(tmp / INDEX_FILE))
        if built.neighbours is not None and built.neighbour_scores is not None:
            np.save(tmp / NEIGHBOURS_FILE, built.neighbours)
            np.save(tmp / NEIGHBOUR_SCORES_FILE, built.neighbour_scores)
        modality_lists: list[list[str]] = [[] for _ in range(rows.size)]
        for have, where in subset_groups(present[:, rows], names):
            for i in where.tolist():
                modality_lists[i] = have
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
        (tmp / TAG_COUNTS_FILE).write_text(json.dumps(tag_counts(catalog, rows, names)))
        np.savez(tmp / MODALITY_EMBEDDINGS_FILE, **{name: parts[m] for m, name in enumerate(names)})
        pq.write_table(artist_items(catalog, rows, names, model.manifest.max_tags), tmp / ARTIST_ITEMS_FILE)
        manifest = write_manifest(
            tmp,
            IndexManifest(
                embedding_dim=model.dim,
                model=model.manifest,
                index_type=built.plan.name,
                hub=HubPenalty(k=hub_k, beta=hub_beta),
                balance=record,
                n_artists=int(rows.size),
                n_unindexed=len(unindexed),
                modality_counts={n: int(present[m].sum()) for m, n in enumerate(names)},
                self_check=SelfCheck.model_validate(check),
                search=SearchSetting(
                    ef_search=built.tuning.ef_search,
                    recall_k=built.tuning.k,
                    recall=round(built.tuning.recall, 4),
                    recall_queries=built.tuning.queries,
                ),
                neighbours_k=0 if built.neighbours is None else int(built.neighbours.shape[1]),
                build=BuildRecord.model_validate(
                    {
                        "catalog": str(catalog_dir),
                        "catalog_fingerprint": catalog_fingerprint(catalog_dir),
                        "encode_fuse_s": round(encode_s, 3),
                        "balance_s": round(balance_s, 3),
                        "index_s": round(index_s, 3),
                        **{name: round(value, 3) for name, value in built.timings.items()},
                        "total_s": round(time.perf_counter() - started, 3),
                        "batch_size": batch_size,
                    }
                ),
            ),
        )
    log.info(
        "index %s (%s, recall@%d %.3f): %d artists (%d not indexed), self-check %s, written to %s",
        manifest.index_version,
        manifest.index_type,
        built.tuning.k,
        built.tuning.recall,
        rows.size,
        len(unindexed),
        check,
        out_dir,
    )
    return manifest
