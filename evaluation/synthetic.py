"""Evidence of quality on the synthetic catalogue: fused index vs single modalities, and cross-modal retrieval."""

from __future__ import annotations

import logging
from itertools import permutations
from pathlib import Path
from typing import Any

import numpy as np

from catalog.io import read_catalog
from catalog.synthetic import SyntheticSpec, read_styles, write_synthetic
from catalog.tables import Catalog, VectorTable
from core.balance import Balance, modality_mask, presence_bits
from evaluation.encodings import index_vectors, modality_encodings
from evaluation.report import fmt_ci, write_report
from evaluation.retrieval import Balanced, GroupTruth, Hub, evaluate_method, top_k
from model_export.config import TrainConfig
from pipeline.workdir import Workdir, build_artifacts

log = logging.getLogger(__name__)

K = 200


def raw_vectors(catalog: Catalog) -> dict[str, np.ndarray]:
    """Each modality's own input embedding per artist (tags: the weighted mean of their vectors)."""
    out = {}
    for name, table in catalog.modalities.items():
        out[name] = table.values if isinstance(table, VectorTable) else table.mean_vectors()
    return out


def evaluate(
    catalog: Catalog,
    styles: np.ndarray,
    fused: np.ndarray,
    encoded: dict[str, np.ndarray] | None = None,
    k: int = K,
    hub: Hub | None = None,
    balance: Balance | None = None,
) -> dict[str, Any]:
    """Raw and full-coverage settings for the fused index and each raw modality, plus cross-modal retrieval.

    `hub` and `balance` rank the contrastive methods as the product's index does (the modality
    balance with each artist's slot from the modalities the method feeds it).

    `single:m` is modality m's own input embedding; `contrastive[m]` is m alone through the
    trained encoder (from `encoded`). Both can only query and retrieve artists that have m;
    in the raw setting their nDCG is averaged over all queries (0 for those they cannot answer),
    and `ndcg_answerable` compares like with like: the mean over the queries that have m, for
    the method and for the fused index.
    """
    truth = GroupTruth(styles)
    present = {name: t.present for name, t in catalog.modalities.items()}
    everyone = np.ones(catalog.n_artists, dtype=bool)
    universe = np.flatnonzero(np.any(list(present.values()), axis=0))
    full = np.flatnonzero(np.all(list(present.values()), axis=0))
    raw = raw_vectors(catalog)
    organic = None if balance is None else (balance, balance.slots(presence_bits(present)))
    settings: dict[str, Any] = {}
    for setting, pool in (("raw", universe), ("fmc", full)):
        queries = pool[truth.n_relevant(pool, pool) > 0]
        methods: dict[str, Any] = {}
        methods["contrastive"], fused_per_query = evaluate_method(
            truth, queries, fused, everyone, pool, k, hub, organic
        )
        singles: list[tuple[str, str, np.ndarray, bool]] = [(f"single:{n}", n, v, False) for n, v in raw.items()]
        singles += [(f"contrastive[{n}]", n, v, True) for n, v in (encoded or {}).items()]
        for method, name, vectors, product in singles:
            alone = (
                None
                if balance is None or not product
                else (balance, np.full(catalog.n_artists, balance.slot(modality_mask([name]))))
            )
            result, per_query = evaluate_method(
                truth, queries, vectors, present[name], pool, k, hub if product else None, alone
            )
            has = present[name][queries]
            result["ndcg_answerable"] = float(per_query[has].mean()) if has.any() else 0.0
            result["contrastive_ndcg_answerable"] = float(fused_per_query[has].mean()) if has.any() else 0.0
            methods[method] = result
        settings[setting] = {"methods": methods, "n_universe": int(pool.size)}
    return {"settings": settings, "cross_modal": cross_modal(truth, present, fused, k, hub, organic)}


def cross_modal(
    truth: GroupTruth,
    present: dict[str, np.ndarray],
    fused: np.ndarray,
    k: int,
    hub: Hub | None = None,
    balance: Balanced | None = None,
) -> dict[str, Any]:
    """Artists known by one modality only querying the artists known by another one only."""
    out: dict[str, Any] = {}
    count = np.sum(list(present.values()), axis=0)
    only = {name: np.flatnonzero(has & (count == 1)) for name, has in present.items()}
    everyone = np.ones(len(fused), dtype=bool)
    for a, b in permutations(present, 2):
        if only[a].size == 0 or only[b].size < 2:
            continue
        queries = only[a][truth.n_relevant(only[a], only[b]) > 0]
        result, _ = evaluate_method(truth, queries, fused, everyone, only[b], k, hub, balance)
        top10 = top_k(fused[queries], fused[only[b]], only[b], queries, 10, hub, balance)
        result["precision_at_10"] = float(truth.relevant(queries, top10).mean())
        result["chance_precision"] = float(np.mean(truth.n_relevant(queries, only[b]) / only[b].size))
        del result["gini"]
        out[f"{a}-only -> {b}-only"] = result
    out["n_styles"] = int(truth.labels.max()) + 1
    return out


def summarise(metrics: dict[str, Any]) -> str:
    """The report as Markdown."""
    lines = ["# Synthetic catalogue: retrieval quality", ""]
    for setting, data in metrics["settings"].items():
        lines += [
            f"## {setting} setting ({data['n_universe']} artists)",
            "",
            "| method | nDCG@200 [95% CI] | Gini@200 | queries answered | nDCG on answered: method / fused |",
            "| --- | --- | --- | --- | --- |",
        ]
        for name, r in data["methods"].items():
            versus = (
                f"{r['ndcg_answerable']:.3f} / {r['contrastive_ndcg_answerable']:.3f}" if "ndcg_answerable" in r else ""
            )
            lines.append(
                f"| {name} | {fmt_ci(r)} | {r['gini']:.3f} | {r['n_answered']} / {r['n_queries']} | {versus} |"
            )
        lines.append("")
    lines += [
        "## Cross-modal retrieval (single-modality artists only)",
        "",
        "| queries -> candidates | nDCG@200 | precision@10 | chance |",
        "| --- | --- | --- | --- |",
    ]
    for name, r in metrics["cross_modal"].items():
        if isinstance(r, dict):
            lines.append(f"| {name} | {fmt_ci(r)} | {r['precision_at_10']:.3f} | {r['chance_precision']:.3f} |")
    return "\n".join(lines) + "\n"


def run(out_dir: Path, spec: SyntheticSpec, config: TrainConfig, progress: bool = True) -> dict[str, Any]:
    """Generate, train, export, index and evaluate; write metrics.json and summary.md into `out_dir`."""
    work = Workdir(out_dir / "work")
    write_synthetic(work.catalog, spec)
    manifest = build_artifacts(work.catalog, work, config, progress=progress)
    catalog = read_catalog(work.catalog)
    fused, _ = index_vectors(work.index, catalog.artist_ids)
    hub = (manifest.hub.k, manifest.hub.beta)  # rank as the product's index does
    balance = Balance.of(manifest.balance)
    encoded = modality_encodings(catalog, work.model)
    metrics = evaluate(catalog, read_styles(work.catalog), fused, encoded, hub=hub, balance=balance)
    metrics["hub_penalty"] = manifest.hub.model_dump()
    metrics["modality_balance"] = manifest.balance.model_dump()
    metrics["spec"] = spec.__dict__
    metrics["training"] = config.to_dict()
    metrics["model_version"] = manifest.model.model_version
    metrics["best_epoch"] = manifest.model.metrics.get("best_epoch")
    write_report(out_dir, metrics, summarise(metrics))
    log.info("report written to %s", out_dir)
    return metrics
