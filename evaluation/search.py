"""The documented searches behind the OLGA defaults: featurizer settings and training settings.

Each candidate is scored on the development data given; a report lists every candidate so the
choice can be checked and redone on other data.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from catalog.featurize import FeaturizeConfig
from catalog.io import write_catalog
from catalog.olga import OlgaData, read_olga
from catalog.tables import VectorTable
from core.fusion import Fusion
from evaluation.encodings import modality_encodings, model_fusion
from evaluation.groups import Method, modality_groups
from evaluation.olga import contrastive_method
from evaluation.report import write_report
from evaluation.retrieval import EdgeTruth, evaluate_method
from index_build.hubs import DEFAULT_HUB_BETA, DEFAULT_HUB_K
from model_export.config import DEFAULT_MODALITY_WEIGHTS, TrainConfig
from pipeline.workdir import Workdir, build_artifacts

log = logging.getLogger(__name__)

K = 200

# Featurizer candidates: each changes one group of settings of the default.
FEATURIZE_GRID: dict[str, dict[str, Any]] = {
    **{
        f"cf f{f} reg{r} {s} a{a}": {"cf_factors": f, "cf_regularization": r, "cf_scaling": s, "cf_alpha": a}
        for f in (32, 64, 128)
        for r in (0.01, 0.1, 1.0, 5.0)
        for s, a in (("log", 0.5), ("log", 1.0), ("log", 2.0), ("log", 10.0), ("linear", 0.05))
    },
    **{f"tag d{d} min{m}": {"tag_dim": d, "tag_min_artists": m} for d in (64, 128, 200) for m in (2, 3, 5)},
}


def training_candidates() -> dict[str, TrainConfig]:
    """The training settings tried around the defaults (one change each)."""
    return {
        "default": TrainConfig(),
        "no centring": TrainConfig(centre=False),
        "temperature 0.05": TrainConfig(temperature=0.05),
        "temperature 0.2": TrainConfig(temperature=0.2),
        "lr 3e-4": TrainConfig(lr=3e-4),
        "batch 512, lr 3e-4": TrainConfig(batch_size=512, lr=3e-4),
        "max_tags 32": TrainConfig(max_tags=32),
        "full coverage only (paper)": TrainConfig(min_modalities=3),
    }


def single_scores(data: OlgaData) -> dict[str, float]:
    """nDCG@200 of each raw single-modality embedding over the queries that have it (raw setting)."""
    catalog = data.catalog
    truth = EdgeTruth(data.edges, catalog.n_artists)
    present = catalog.present().any(axis=0)
    pool = np.flatnonzero(present)
    queries = pool[truth.n_relevant(pool, pool) > 0]
    out = {}
    for name, table in catalog.modalities.items():
        vectors = table.values if isinstance(table, VectorTable) else data.tag_artist_vectors
        asked = queries[table.present[queries]]
        result, _ = evaluate_method(truth, asked, vectors, table.present, pool, K)
        out[name] = result["ndcg"]
    return out


def search_featurizers(data_dir: Path, base: FeaturizeConfig) -> dict[str, Any]:
    """Score every featurizer candidate by its own modality's nDCG@200."""
    results: dict[str, Any] = {}
    for name, change in FEATURIZE_GRID.items():
        config = replace(base, **change)
        scores = single_scores(read_olga(data_dir, config))
        modality = "cf" if name.startswith("cf") else "tag"
        results[name] = {"config": change, "ndcg": scores[modality], "modality": modality}
        log.info("%s: %s nDCG@200 %.4f", name, modality, scores[modality])
    return results


def score_method(data: OlgaData, method: Method, hub: tuple[int, float]) -> dict[str, Any]:
    """Raw and FMC nDCG@200, Gini@200 and modality-group entropy of a contrastive method.

    Ranked with the hub penalty but without the modality balance (`core.balance`): the search
    compares fusions and training settings, and the balance is fitted over whichever is chosen.
    """
    catalog = data.catalog
    truth = EdgeTruth(data.edges, catalog.n_artists)
    organic = {n: t.present for n, t in catalog.modalities.items()}
    vectors, held = method(organic)
    full = np.flatnonzero(catalog.present().all(axis=0))
    out: dict[str, Any] = {}
    for setting, pool in (("raw", np.flatnonzero(held)), ("fmc", full)):
        queries = pool[truth.n_relevant(pool, pool) > 0]
        result, _ = evaluate_method(truth, queries, vectors, held, pool, K, hub)
        out[setting] = {"ndcg": result["ndcg"], "ndcg_ci": result["ndcg_ci"], "gini": result["gini"]}
    groups = modality_groups({"c": method}, list(catalog.modalities), full, catalog.n_artists, hubs={"c": hub})
    out["entropy"] = groups["c"]["entropy"]
    return out


def score_contrastive(
    data: OlgaData, work: Workdir, hub_k: int = DEFAULT_HUB_K, hub_beta: float = DEFAULT_HUB_BETA
) -> dict[str, Any]:
    """Raw and FMC nDCG@200, Gini@200 and modality-group entropy of the model in `work`, fused as it fuses."""
    method = contrastive_method(modality_encodings(data.catalog, work.model), model_fusion(work.model))
    return score_method(data, method, (int(hub_k), float(hub_beta)))


def fusion_candidates() -> dict[str, tuple[dict[str, float], dict[str, float]]]:
    """Fusion settings tried on one trained model: name -> (modality weights, completion)."""
    audio = {"audio": 1.0}
    return {
        "plain mean, no completion (paper)": ({}, {}),
        "plain mean, audio completed": ({}, audio),
        **{
            f"audio {a:g}, cf 1, tag {t:g}, audio completed": ({"audio": a, "cf": 1.0, "tag": t}, audio)
            for a in (1.0, 0.5, 0.25)
            for t in (1.0, 2.0, 3.0)
            if (a, t) != (1.0, 1.0)
        },
        "audio 0.5, cf 0.5, tag 1, audio completed": ({"audio": 0.5, "cf": 0.5, "tag": 1.0}, audio),
        "default weights, no completion": (DEFAULT_MODALITY_WEIGHTS, {}),
        "default weights, audio completed at 0.5": (DEFAULT_MODALITY_WEIGHTS, {"audio": 0.5}),
        "default weights, audio completed at 2": (DEFAULT_MODALITY_WEIGHTS, {"audio": 2.0}),
        "default weights, every single modality completed": (
            DEFAULT_MODALITY_WEIGHTS,
            {"audio": 1.0, "cf": 1.0, "tag": 1.0},
        ),
        "default weights, audio and the audio pairs completed": (
            DEFAULT_MODALITY_WEIGHTS,
            {"audio": 1.0, "audio+cf": 1.0, "audio+tag": 1.0},
        ),
    }


def _scores_line(r: dict[str, Any]) -> str:
    """One candidate's scores (from `score_method`) for the log."""
    return (
        f"raw {r['raw']['ndcg']:.4f} gini {r['raw']['gini']:.3f} fmc {r['fmc']['ndcg']:.4f} entropy {r['entropy']:.3f}"
    )


def search_fusion(data: OlgaData, model_dir: Path) -> dict[str, Any]:
    """Score every fusion candidate on one trained model (no retraining: fusion comes after training)."""
    catalog = data.catalog
    encodings = modality_encodings(catalog, model_dir)
    organic = {n: t.present for n, t in catalog.modalities.items()}
    hub = (DEFAULT_HUB_K, DEFAULT_HUB_BETA)
    results: dict[str, Any] = {}
    for name, (weights, completion) in fusion_candidates().items():
        fusion = Fusion.fit(encodings, organic, weights, completion)
        results[name] = {
            **score_method(data, contrastive_method(encodings, fusion), hub),
            "weights": weights,
            "completion": completion,
        }
        log.info("fusion %s: %s", name, _scores_line(results[name]))
    return results


def search_training(
    data_dir: Path, out_dir: Path, candidates: dict[str, TrainConfig], featurize: FeaturizeConfig
) -> dict[str, Any]:
    """Train, export and index each candidate config; score it. On the default's model, the fusion search too."""
    data = read_olga(data_dir, featurize)
    catalog_dir = out_dir / "work" / "catalog"
    write_catalog(catalog_dir, data.catalog)
    results: dict[str, Any] = {}
    fusion: dict[str, Any] = {}
    for name, config in candidates.items():
        work = Workdir(out_dir / "work" / name.replace(" ", "_"))
        manifest = build_artifacts(catalog_dir, work, config, progress=False)
        results[name] = {
            **score_contrastive(data, work),
            "best_epoch": manifest.model.metrics.get("best_epoch"),
            "config": config.to_dict(),
        }
        log.info("%s: %s (best epoch %s)", name, _scores_line(results[name]), results[name]["best_epoch"])
        if name == "default":
            fusion = search_fusion(data, work.model)
    return {"candidates": results, "fusion": fusion}


def _scores_table(title: str, results: dict[str, Any], with_epoch: bool = False) -> list[str]:
    """A Markdown table of candidates scored by `score_method` (raw and FMC nDCG, Gini, entropy)."""
    epoch = " best epoch |" if with_epoch else ""
    lines = [
        f"## {title}",
        "",
        f"| candidate | raw nDCG@200 | raw Gini@200 | FMC nDCG@200 | entropy |{epoch}",
        "| --- | --- | --- | --- | --- |" + (" --- |" if with_epoch else ""),
    ]
    for name, r in results.items():
        scores = f"{r['raw']['ndcg']:.4f} | {r['raw']['gini']:.3f} | {r['fmc']['ndcg']:.4f} | {r['entropy']:.3f}"
        lines.append(f"| {name} | {scores} |" + (f" {r['best_epoch']} |" if with_epoch else ""))
    return lines


def summarise(featurizers: dict[str, Any], training: dict[str, Any]) -> str:
    """The search report as Markdown."""
    lines = ["# OLGA searches", ""]
    if featurizers:
        lines += [
            "## Featurizers (nDCG@200 of the modality alone, over the queries that have it)",
            "",
            "| candidate | modality | nDCG@200 |",
            "| --- | --- | --- |",
        ]
        for name, r in sorted(featurizers.items(), key=lambda kv: (kv[1]["modality"], -kv[1]["ndcg"])):
            lines.append(f"| {name} | {r['modality']} | {r['ndcg']:.4f} |")
        lines.append("")
    if training.get("candidates"):
        lines += [*_scores_table("Training (the fused index)", training["candidates"], with_epoch=True), ""]
    if training.get("fusion"):
        lines += _scores_table(
            "Fusion (modality weights and completion, on the default's trained model)", training["fusion"]
        )
    return "\n".join(lines) + "\n"


def run(data_dir: Path, out_dir: Path, candidates: dict[str, TrainConfig], featurizers: bool = True) -> None:
    """Both searches; write search.json and summary.md into `out_dir`."""
    base = FeaturizeConfig()
    feats = search_featurizers(data_dir, base) if featurizers else {}
    training = search_training(data_dir, out_dir, candidates, base) if candidates else {}
    write_report(out_dir, {"featurizers": feats, "training": training}, summarise(feats, training), name="search")
