"""The paper's experiments on an OLGA folder, end to end with the product's own code."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from catalog.csvfiles import read_csv, strings
from catalog.featurize import FeaturizeConfig
from catalog.io import write_catalog
from catalog.olga import read_olga
from catalog.tables import VectorTable
from core.balance import Balance, modality_mask, presence_bits
from core.fusion import Fusion
from evaluation import alignment, coherence
from evaluation.baselines import concatenated, fit_projection
from evaluation.cold_start import run_cold_start
from evaluation.encodings import index_vectors, modality_encodings, model_fusion
from evaluation.groups import Method, modality_groups, subsets
from evaluation.metrics import bootstrap_ci
from evaluation.retrieval import EdgeTruth, evaluate_method
from model_export.config import TrainConfig
from pipeline.workdir import Workdir, build_artifacts

log = logging.getLogger(__name__)

K = 200
N_POPULARITY_BINS = 20


def read_queries(path: Path, artist_ids: np.ndarray) -> np.ndarray:
    """Rows of the artists listed in a CSV file with an `mbid` column (unknown ones are ignored)."""
    wanted = set(strings(read_csv(path, ["mbid"], "no such queries file"), "mbid"))
    return np.flatnonzero(np.isin(artist_ids, list(wanted)))


def contrastive_method(encodings: dict[str, np.ndarray], fusion: Fusion) -> Method:
    """The model fed, for each artist, the modalities it keeps, fused as the product fuses them."""
    names = list(encodings)

    def method(keeps: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        mask = np.stack([keeps[n] for n in names])
        vectors = fusion.fuse(np.stack([encodings[n] for n in names]), mask, names)
        return vectors, np.asarray(mask.any(axis=0))

    return method


def single_method(raw: dict[str, np.ndarray], name: str) -> Method:
    """One modality's own input embedding: only artists that keep it."""

    def method(keeps: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return raw[name], keeps[name]

    return method


def projection_method(raw: dict[str, np.ndarray], projector: Any) -> Method:
    """PCA or Rand of the concatenated embeddings, missing modalities at their mean."""

    def method(keeps: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        vectors = np.asarray(projector.transform(concatenated(raw, keeps)), dtype=np.float32)
        return vectors, np.asarray(np.any(list(keeps.values()), axis=0))

    return method


def run(
    data_dir: Path,
    out_dir: Path,
    config: TrainConfig | None = None,
    featurize: FeaturizeConfig | None = None,
    queries_file: Path | None = None,
    compare_full_coverage: bool = True,
    progress: bool = True,
    cold_start: bool = True,
) -> dict[str, Any]:
    """Featurize, train, export, index and evaluate; write metrics.json, report.md and plots to `out_dir`."""
    from evaluation.olga_report import write_olga_report

    started = time.perf_counter()
    config = config or TrainConfig()
    featurize = featurize or FeaturizeConfig()
    data = read_olga(data_dir, featurize)
    catalog = data.catalog
    restrict = read_queries(queries_file, catalog.artist_ids) if queries_file else None
    work = Workdir(out_dir / "work")
    write_catalog(work.catalog, catalog, extra_artist_columns={"split": data.split, "plays": data.plays})
    manifest = build_artifacts(work.catalog, work, config, progress=progress)

    names = list(catalog.modalities)
    organic = {n: t.present for n, t in catalog.modalities.items()}  # what each artist really has
    full = np.flatnonzero(np.all(list(organic.values()), axis=0))
    raw = {
        n: t.values if isinstance(t, VectorTable) else data.tag_artist_vectors for n, t in catalog.modalities.items()
    }
    features = concatenated(raw, organic)
    encodings = modality_encodings(catalog, work.model)
    methods: dict[str, Method] = {"contrastive": contrastive_method(encodings, model_fusion(work.model))}
    methods |= {f"single:{n}": single_method(raw, n) for n in names}
    methods |= {m: projection_method(raw, fit_projection(features, full, m, seed=config.seed)) for m in ("pca", "rand")}
    if compare_full_coverage:
        fc = Workdir(out_dir / "work_full_coverage")
        # ~10x fewer artists means ~10x fewer steps per epoch: give the paper's setting room to converge.
        paper = replace(config, min_modalities=3, epochs=config.epochs * 10, patience=config.patience * 3)
        fc_manifest = build_artifacts(work.catalog, fc, paper, progress=progress)
        methods["contrastive_full_coverage"] = contrastive_method(
            modality_encodings(catalog, fc.model), model_fusion(fc.model)
        )

    variants = {name: method(organic) for name, method in methods.items()}
    fused, held = index_vectors(work.index, catalog.artist_ids)
    variants["contrastive"] = (fused, held)  # the product's own index
    for subset in subsets(names):
        only = {n: organic[n] if n in subset else np.zeros_like(organic[n]) for n in names}
        variants[f"contrastive[{'+'.join(subset)}]"] = methods["contrastive"](only)
    # Ablations: the product's ranking without its modality balance, without its hub penalty
    # (plain cosine), and the strongest baseline with the hub penalty.
    variants["contrastive (no modality balance)"] = variants["contrastive"]
    variants["contrastive (cosine)"] = variants["contrastive"]
    variants["rand (hub penalty)"] = variants["rand"]
    product_hub = (manifest.hub.k, manifest.hub.beta)
    hubs = {n: product_hub for n in variants if n.startswith("contrastive") and n != "contrastive (cosine)"}
    hubs["rand (hub penalty)"] = product_hub
    # The modality balance each contrastive variant ranks with (the model's own), and every
    # artist's slot in it from the modalities the variant feeds it.
    product_balance = Balance.of(manifest.balance)
    balances = {n: product_balance for n in hubs if n.startswith("contrastive") and "(no modality" not in n}
    if compare_full_coverage:
        balances["contrastive_full_coverage"] = Balance.of(fc_manifest.balance)
    organic_bits = presence_bits(organic)

    def balanced(name: str) -> tuple[Balance, np.ndarray] | None:
        rule = balances.get(name)
        if rule is None:
            return None
        fed = name[len("contrastive[") : -1].split("+") if name.startswith("contrastive[") else names
        return rule, rule.slots(organic_bits & modality_mask(fed))

    truth = EdgeTruth(data.edges, catalog.n_artists)
    settings: dict[str, Any] = {}
    per_query: dict[str, np.ndarray] = {}
    raw_queries = np.empty(0, dtype=np.int64)
    for setting, pool in (("raw", np.flatnonzero(held)), ("fmc", full)):
        queries = pool[truth.n_relevant(pool, pool) > 0]
        if restrict is not None:
            queries = np.intersect1d(queries, restrict)
        results: dict[str, Any] = {}
        for name, (vectors, can) in variants.items():
            results[name], values = evaluate_method(
                truth, queries, vectors, can, pool, K, hubs.get(name), balanced(name)
            )
            if setting == "raw":
                per_query[name], raw_queries = values, queries
        settings[setting] = {"methods": results, "n_universe": int(pool.size)}
        log.info("%s setting: %d queries over %d artists", setting, len(queries), pool.size)

    pairs = [n for n in per_query if n.startswith("contrastive[") and n.count("+") == 1]
    all_three = f"contrastive[{'+'.join(names)}]"
    all_vs_pairs = {}
    if all_three in per_query:
        for pair in pairs:
            diff = per_query[all_three] - per_query[pair]
            lo, hi = bootstrap_ci(diff)
            all_vs_pairs[pair] = {"diff": round(float(diff.mean()), 5), "diff_ci": [round(lo, 5), round(hi, 5)]}
    group_methods = methods | {
        "contrastive (no modality balance)": methods["contrastive"],
        "contrastive (cosine)": methods["contrastive"],
    }
    groups = modality_groups(
        group_methods, names, full, catalog.n_artists, seed=config.seed, hubs=hubs, balances=balances
    )
    cluster = {name: alignment.clusters(vectors, can, data.edges) for name, (vectors, can) in variants.items()}
    coherent = np.intersect1d(raw_queries, full)  # full-coverage artists with an nDCG@200 (sorted, as raw_queries)
    ecl: dict[str, Any] = {}
    if len(coherent) >= 3:
        ecl = coherence.analysis(
            {n: encodings[n][coherent] for n in names},
            np.log1p(data.plays[coherent]),
            per_query["contrastive"][np.searchsorted(raw_queries, coherent)],
        )
    else:
        log.warning("ECL not computed: %d full-coverage query artists (3 or more needed)", len(coherent))
    raw_ndcg = {name: r["ndcg"] for name, r in settings["raw"]["methods"].items()}
    metrics: dict[str, Any] = {
        "settings": settings,
        "alignment": {
            "cross_modal": alignment.cross_modal(encodings, organic, data.plays),
            "clusters": cluster,
            "clusters_vs_ndcg": alignment.method_ranking_tau(raw_ndcg, {n: c["ratio"] for n, c in cluster.items()}),
            **(
                {"ecl": {k: v for k, v in ecl.items() if k != "kendall_tau"}, "kendall_tau": ecl["kendall_tau"]}
                if ecl
                else {}
            ),
        },
        "all_vs_pairs": all_vs_pairs,  # raw nDCG@200 of all three minus each pair, paired over the same queries
        "modality_groups": {k: v for k, v in groups.items() if isinstance(v, dict)},
        "modality_group_names": groups["groups"],
        "modality_group_size": groups["group_size"],
        "popularity": popularity(data.plays, raw_queries, per_query),
        "coverage": data.coverage,
        "training": config.to_dict(),
        "featurize": featurize.to_dict(),
        "model_version": manifest.model.model_version,
        "hub_penalty": manifest.hub.model_dump(),
        "modality_balance": manifest.balance.model_dump(),
        "best_epoch": manifest.model.metrics.get("best_epoch"),
        "epochs_run": len(manifest.model.metrics.get("history", [])),
        "queries_file": str(queries_file) if queries_file else None,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if cold_start:
        metrics["cold_start"] = run_cold_start(data, out_dir / "work_cold_start", config, progress=progress)
        metrics["seconds"] = round(time.perf_counter() - started, 1)
    write_olga_report(out_dir, metrics)
    log.info("OLGA report written to %s in %.0f s", out_dir, metrics["seconds"])
    return metrics


def popularity(plays: np.ndarray, queries: np.ndarray, per_query: dict[str, np.ndarray]) -> dict[str, Any]:
    """nDCG@200 per popularity bin (POP = log(plays + 1), 20 equal-count bins of queries, least popular first)."""
    if len(queries) < N_POPULARITY_BINS:
        return {}
    pop = np.log1p(plays[queries])
    order = np.argsort(pop, kind="stable")
    bins = np.array_split(order, N_POPULARITY_BINS)
    out: dict[str, Any] = {"bin_mean_pop": [float(pop[b].mean()) for b in bins], "methods": {}}
    for name, values in per_query.items():
        out["methods"][name] = [float(values[b].mean()) for b in bins]
    if "single:cf" in per_query:
        cf = np.asarray(out["methods"]["single:cf"])
        out["relative_to_cf"] = {n: (np.asarray(v) - cf).tolist() for n, v in out["methods"].items()}
    return out
