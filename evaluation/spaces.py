"""`cmar evaluate spaces`: the experiments of Tovstogan, Serra and Bogdanov (SMC 2022) on real data.

1. Jamendo: 28 independently made content spaces over the same tracks (MediaEval 2019
   submissions): S_n at every cutoff, cosine and Euclidean; the paper's Table 2 analysis
   adapted to what varies here: runs of one team against runs of different teams, and same
   against different architectures where the run names say which.
2. OLGA: artist-level CF spaces by ALS with 64, 96 and 128 factors, the tag space (each
   artist's weighted mean of its tags' PPMI + SVD vectors), the audio space (standardised
   Echo Nest descriptors), the product's fused space for two training seeds, and the first
   seed's per-modality encoder outputs; each pair compared over the artists it shares. Do CF
   spaces agree with each other more than with content spaces (the paper: yes)? How much
   does retraining with another seed change the served lists (S_10, S_200)?
3. Projections of the fused OLGA space and of one Jamendo space: PCA, a random projection,
   t-SNE (the default) and UMAP, two seeds each: preservation of the source's lists and
   seed-to-seed agreement, beside the paper's values.

Writes spaces.json, spaces.md and heatmaps. Each finding is one sentence beside the paper's.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import CmarError
from evaluation.maps import DEFAULT_METHOD, project, shares_kept
from evaluation.nn_similarity import Metric, Space, compare, heatmaps, load_space, neighbour_lists

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Run:
    """One trained product on OLGA: its catalogue, model and index folders."""

    catalog: Path
    model: Path
    index: Path

    @classmethod
    def of(cls, work: Path) -> Run:
        """The run in a workdir of `cmar evaluate olga` (work/catalog, work/model, work/index); CmarError if not one."""
        for part in ("catalog", "model", "index"):
            if not (work / part / "manifest.json").is_file():
                raise CmarError(f"{work}: expected a workdir with catalog/, model/ and index/ (cmar evaluate olga's)")
        return cls(work / "catalog", work / "model", work / "index")


CUTOFFS = (5, 10, 100, 200)
PROJECTIONS = ("pca", "random", "tsne", "umap")
MAP_SEEDS = (0, 1)
JAMENDO_MAP_SPACE = "baseline_vggish"
MIN_GROUP_PAIRS = 3  # pairs a group needs before a finding is drawn from it
CF_FACTORS = (64, 96, 128)
# The paper's reference values (Euclidean, S_10, projections against the original embeddings).
PAPER = {
    "preservation": {"pca": "0.14", "umap": "0.31-0.32", "tsne": "0.37-0.38"},
    "seed_agreement": {"tsne": "0.86", "umap": "0.54"},
}
# Architecture named in a run's name (lower case), most specific first; other runs: not said.
ARCHITECTURES = (
    ("vqvae+gru", "VQ-VAE + GRU"),
    ("vqvae+cnn", "VQ-VAE + CNN"),
    ("one_hot_gru", "GRU"),
    ("crnn", "CRNN"),
    ("resnet", "ResNet"),
    ("vggish", "VGGish CNN"),
)


def architecture(name: str) -> str | None:
    """The architecture a run's name says (see ARCHITECTURES), or None."""
    low = name.lower()
    return next((label for key, label in ARCHITECTURES if key in low), None)


def team(name: str) -> str:
    """The team of a MediaEval run: its name up to the first underscore (case kept: two Taiinn teams differ)."""
    return name.split("_")[0]


# 1. Jamendo


def jamendo_spaces(folder: Path) -> list[Space]:
    """The 28 spaces of a folder in the format of shared/data/jamendo, rows aligned with tracks.csv."""
    tracks = folder / "tracks.csv"
    try:
        with tracks.open(encoding="utf-8", newline="") as handle:
            ids = np.array([row["track_id"] for row in csv.DictReader(handle)])
    except (OSError, KeyError) as exc:
        raise CmarError(f"{tracks}: not a readable tracks.csv with a track_id column ({exc})") from None
    files = sorted((folder / "spaces").glob("*.npy"))
    if len(files) < 2:
        raise CmarError(f"{folder / 'spaces'}: fewer than two .npy spaces")
    spaces = []
    for path in files:
        vectors = np.load(path, allow_pickle=False).astype(np.float32)
        if vectors.shape[0] != len(ids):
            raise CmarError(f"{path}: {vectors.shape[0]} rows for {len(ids)} tracks")
        spaces.append(Space(path.stem, ids, vectors))
    return spaces


def group_pairs(names: list[str], matrix: list[list[float]]) -> dict[str, Any]:
    """Mean S_n of pairs of runs: same team vs different teams; same vs different architecture (where named)."""
    groups: dict[str, list[float]] = {"same_team": [], "other_team": [], "same_arch": [], "other_arch": []}
    for a, b in combinations(range(len(names)), 2):
        value = matrix[a][b]
        groups["same_team" if team(names[a]) == team(names[b]) else "other_team"].append(value)
        arch_a, arch_b = architecture(names[a]), architecture(names[b])
        if arch_a and arch_b and team(names[a]) != team(names[b]):  # across teams, so the team does not decide it
            groups["same_arch" if arch_a == arch_b else "other_arch"].append(value)
    return {k: {"mean": round(float(np.mean(v)), 4) if v else None, "pairs": len(v)} for k, v in groups.items()}


def jamendo_section(folder: Path, cutoffs: tuple[int, ...]) -> dict[str, Any]:
    """S_n among the Jamendo spaces, cosine and Euclidean, and the pair groups (see the module's docstring)."""
    spaces = jamendo_spaces(folder)
    out: dict[str, Any] = {"spaces": [s.name for s in spaces], "n_tracks": len(spaces[0].ids)}
    out["teams"] = {s.name: team(s.name) for s in spaces}
    out["architectures"] = {s.name: architecture(s.name) for s in spaces}
    for metric in ("cosine", "euclidean"):
        started = time.perf_counter()
        report = compare(spaces, list(cutoffs), metric)  # type: ignore[arg-type]
        report["seconds"] = round(time.perf_counter() - started, 1)
        names, matrices = report["spaces"], report["S"]
        assert isinstance(names, list) and isinstance(matrices, dict)
        report["groups"] = {n: group_pairs(names, m) for n, m in matrices.items()}
        out[metric] = report
    return out


# 2. OLGA


def olga_cf_spaces(olga: Path, factors: tuple[int, ...]) -> list[Space]:
    """Artist-level CF spaces by ALS with each number of factors (`catalog.olga.read_olga`), artists with plays."""
    from catalog.featurize import FeaturizeConfig
    from catalog.olga import read_olga
    from catalog.tables import VectorTable

    spaces = []
    for f in factors:
        data = read_olga(olga, FeaturizeConfig(cf_factors=f))
        cf = data.catalog.modalities["cf"]
        assert isinstance(cf, VectorTable)
        spaces.append(Space(f"cf_als{f}", data.catalog.artist_ids[cf.present].astype(str), cf.values[cf.present]))
        log.info("ALS with %d factors: %d artists", f, int(cf.present.sum()))
    return spaces


def pairwise(spaces: list[Space], cutoffs: tuple[int, ...], metric: Metric = "cosine") -> dict[str, Any]:
    """S_n of every pair of spaces, each pair over the items it shares: matrices in the spaces' order."""
    k = len(spaces)
    means = {str(n): np.eye(k).tolist() for n in cutoffs}
    shared = np.zeros((k, k), dtype=int)
    for a, b in combinations(range(k), 2):
        report = compare([spaces[a], spaces[b]], list(cutoffs), metric)
        shared[a, b] = shared[b, a] = int(report["n_items"])  # type: ignore[call-overload]
        for n in cutoffs:
            means[str(n)][a][b] = means[str(n)][b][a] = report["S"][str(n)][0][1]  # type: ignore[index]
    for a in range(k):
        shared[a, a] = len(spaces[a].ids)
    return {"spaces": [s.name for s in spaces], "metric": metric, "S": means, "shared_items": shared.tolist()}


def served_churn(first: Run, second: Run) -> dict[str, Any]:
    """S_10 and S_200 between the similar lists two runs' model and index serve, over all artists (`service.churn`)."""
    from inference.encoder import OnnxModel
    from inference.index import load_index
    from service.artifacts import Artifacts
    from service.churn import churn

    def served(run: Run) -> Artifacts:
        model = OnnxModel(run.model)
        return Artifacts(model, load_index(run.index, model=model.manifest))

    changed = churn(served(first), served(second), sample=10**9)
    return {"sampled": changed.sampled, "s10": changed.s10, "s200": changed.s200}


def olga_section(olga: Path, runs: list[Run], cutoffs: tuple[int, ...]) -> dict[str, Any]:
    """The OLGA spaces compared pairwise, the CF-vs-content finding and the seed-to-seed churn."""
    first = runs[0]
    spaces = olga_cf_spaces(olga, CF_FACTORS)
    spaces += [
        _named(load_space(f"{first.catalog}#tag"), "tag (PPMI+SVD)"),
        _named(load_space(f"{first.catalog}#audio"), "audio (Echo Nest)"),
    ]
    spaces += [_named(load_space(str(r.index)), f"fused seed {i}") for i, r in enumerate(runs)]
    spaces += [_named(load_space(f"{first.model}#{m}@{first.catalog}"), f"encoder {m}") for m in ("cf", "tag", "audio")]
    report = pairwise(spaces, cutoffs)
    names = report["spaces"]
    s10 = np.array(report["S"]["10"])
    cf = [i for i, n in enumerate(names) if n.startswith("cf_als")]
    content = [names.index("tag (PPMI+SVD)"), names.index("audio (Echo Nest)")]
    report["cf_within"] = round(float(np.mean([s10[a, b] for a, b in combinations(cf, 2)])), 4)
    report["cf_vs_content"] = round(float(np.mean([s10[a, b] for a in cf for b in content])), 4)
    if len(runs) > 1:
        a, b = names.index("fused seed 0"), names.index("fused seed 1")
        report["seed_vectors"] = {n: report["S"][n][a][b] for n in ("10", "200") if n in report["S"]}
        report["seed_served"] = served_churn(runs[0], runs[1])
    return report


def _named(space: Space, name: str) -> Space:
    return Space(name, space.ids, space.vectors, space.metric)


# 3. Projections


def projections(space: Space, metric: Metric, methods: tuple[str, ...] = PROJECTIONS) -> dict[str, Any]:
    """Per method and seed, preservation S_n of the space's lists; per method, seed-to-seed S_10 and S_200."""
    out: dict[str, Any] = {"space": space.name, "n_items": len(space.ids), "metric": metric, "methods": {}}
    usable = [c for c in CUTOFFS if c < len(space.ids)]
    if not usable:
        return out
    source_lists = neighbour_lists(space.vectors, max(usable), metric)  # once per space, for all its maps
    for method in methods:
        lists, kept, seconds = [], [], []
        for seed in MAP_SEEDS:
            started = time.perf_counter()
            coords = project(space.vectors, method, seed, metric)
            seconds.append(round(time.perf_counter() - started, 1))
            lists.append(neighbour_lists(coords, max(usable), "euclidean"))  # once per map: kept and agreement
            kept.append(shares_kept(source_lists, lists[-1], usable))
        agreement = shares_kept(lists[0], lists[1], [n for n in (10, 200) if n in usable])
        out["methods"][method] = {"preservation": kept, "seed_agreement": agreement, "seconds": seconds}
        log.info("%s of %s: kept S_10 %s, seeds agree %s", method, space.name, [k["10"] for k in kept], agreement)
    return out


# The command


def train_runs(olga: Path, out: Path, seeds: tuple[int, ...], epochs: int | None) -> list[Run]:
    """Featurize the OLGA folder once (out/work/catalog) and train, export and index the product per seed."""
    from catalog.olga import write_olga_catalog
    from model_export.config import TrainConfig
    from pipeline.workdir import Workdir, build_artifacts

    catalog = out / "work" / "catalog"
    if not (catalog / "manifest.json").is_file():
        write_olga_catalog(olga, catalog, overwrite=True)
    runs = []
    for seed in seeds:
        work = Workdir(out / "work" / f"seed{seed}")
        config = TrainConfig(seed=seed) if epochs is None else TrainConfig(seed=seed, epochs=epochs)
        build_artifacts(catalog, work, config, progress=True, overwrite=True)
        runs.append(Run(catalog, work.model, work.index))
    return runs


def run(
    out: Path,
    jamendo: Path | None,
    olga: Path | None,
    works: list[Path] | None = None,
    cutoffs: tuple[int, ...] = CUTOFFS,
    maps: bool = True,
    epochs: int | None = None,
) -> dict[str, Any]:
    """Run the sections whose data is given; write spaces.json, spaces.md and heatmaps into `out`.

    `works`: workdirs of `cmar evaluate olga` runs with different seeds (catalog, model, index);
    without them two seeds are trained here (out/work).
    """
    started = time.perf_counter()
    result: dict[str, Any] = {"cutoffs": list(cutoffs), "paper": PAPER}
    runs = [Run.of(w) for w in works or []]
    if jamendo is not None:
        result["jamendo"] = jamendo_section(jamendo, cutoffs)
        for metric in ("cosine", "euclidean"):
            folder = out / f"jamendo_{metric}"
            folder.mkdir(parents=True, exist_ok=True)
            heatmaps(result["jamendo"][metric], folder)
    if olga is not None:
        runs = runs or train_runs(olga, out, (0, 1), epochs)
        result["olga"] = olga_section(olga, runs, cutoffs)
        folder = out / "olga"
        folder.mkdir(parents=True, exist_ok=True)
        heatmaps({**result["olga"], "metric": "cosine"}, folder)
    if maps:
        result["projections"] = {}
        if olga is not None and runs:
            fused = _named(load_space(str(runs[0].index)), "fused seed 0")
            result["projections"]["olga_fused"] = projections(fused, "cosine")
        if jamendo is not None:
            named = [s for s in jamendo_spaces(jamendo) if s.name == JAMENDO_MAP_SPACE]
            space = named[0] if named else jamendo_spaces(jamendo)[0]
            result["projections"]["jamendo"] = projections(space, "euclidean")
    result["seconds"] = round(time.perf_counter() - started, 1)
    (out / "spaces.json").write_text(json.dumps(result, indent=1))
    (out / "spaces.md").write_text(summary(result))
    return result


def findings(result: dict[str, Any]) -> list[str]:
    """One sentence per finding, beside the paper's."""
    lines = []
    jam = result.get("jamendo")
    if jam:
        g = jam["cosine"]["groups"]["10"]
        verdict = "more" if (g["same_team"]["mean"] or 0) > (g["other_team"]["mean"] or 0) else "not more"
        lines.append(
            f"Runs of one team agree {verdict} than runs of different teams (Jamendo, cosine S_10 "
            f"{g['same_team']['mean']} over {g['same_team']['pairs']} pairs against {g['other_team']['mean']} over "
            f"{g['other_team']['pairs']}); the paper's Table 2 compares spaces that differ in one factor at a time, "
            "and here the factor the data names for every run is the team."
        )
        pairs = g["same_arch"]["pairs"]
        if pairs >= MIN_GROUP_PAIRS and g["other_arch"]["pairs"]:
            closer = "closer" if g["same_arch"]["mean"] > g["other_arch"]["mean"] else "not closer"
            lines.append(
                f"Across teams, runs of the same named architecture are {closer} (S_10 {g['same_arch']['mean']}, "
                f"{pairs} pairs, against {g['other_arch']['mean']}, {g['other_arch']['pairs']} pairs)."
            )
        else:
            lines.append(
                f"Too few runs of different teams name the same architecture ({pairs} pair) to say whether "
                "architecture matters: most run names do not say theirs."
            )
    olga = result.get("olga")
    if olga:
        agree = "agree with each other more" if olga["cf_within"] > olga["cf_vs_content"] else "do not agree more"
        lines.append(
            f"OLGA's CF spaces {agree} than with the content spaces (S_10 {olga['cf_within']} among ALS 64/96/128 "
            f"against {olga['cf_vs_content']} with tags and audio), as the paper found CF spaces mutually close "
            "and far from content spaces."
        )
        if "seed_served" in olga:
            served, vectors = olga["seed_served"], olga["seed_vectors"]
            lines.append(
                f"Retraining with another seed keeps S_10 = {served['s10']} and S_200 = {served['s200']} of the "
                f"served lists ({served['sampled']} artists; plain cosine of the fused vectors: {vectors.get('10')} "
                f"and {vectors.get('200')}); the paper does not measure this."
            )
    for key, part in result.get("projections", {}).items():
        for method, m in part["methods"].items():
            kept = ", ".join(str(k.get("10")) for k in m["preservation"])
            paper = PAPER["preservation"].get(method)
            seeds = PAPER["seed_agreement"].get(method)
            default = " (the default)" if method == DEFAULT_METHOD else ""
            lines.append(
                f"{key}, {method}{default}: keeps S_10 = {kept} (seeds 0, 1){f', the paper {paper}' if paper else ''}; "
                f"seeds agree at S_10 = {m['seed_agreement']['10']}{f', the paper {seeds}' if seeds else ''}."
            )
    return lines


def summary(result: dict[str, Any]) -> str:
    """spaces.md: the findings, then the tables."""
    lines = ["# Comparing latent spaces (Tovstogan et al. 2022) on real data", "", "## Findings", ""]
    lines += [f"- {f}" for f in findings(result)] + [""]
    jam = result.get("jamendo")
    if jam:
        lines += [f"## Jamendo: {len(jam['spaces'])} spaces over {jam['n_tracks']} tracks", ""]
        for metric in ("cosine", "euclidean"):
            lines += [f"Pair groups, {metric} ({jam[metric]['seconds']} s):", "", "| n | same team | other team | "
                      "same architecture | other architecture |", "| --- | --- | --- | --- | --- |"]  # fmt: skip
            for n, g in jam[metric]["groups"].items():
                cells = [
                    f"{g[k]['mean']} ({g[k]['pairs']})" for k in ("same_team", "other_team", "same_arch", "other_arch")
                ]
                lines.append(f"| {n} | " + " | ".join(cells) + " |")
            lines += ["", f"Heatmaps: `jamendo_{metric}/heatmap_S*.png`.", ""]
    olga = result.get("olga")
    if olga:
        lines += ["## OLGA artists (cosine, each pair over the artists it shares)", ""]
        for n in ("10", "200"):
            if n not in olga["S"]:
                continue
            names = olga["spaces"]
            lines += [f"S_{n}:", "", "| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
            for name, row in zip(names, olga["S"][n], strict=True):
                lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
            lines += [""]
    for part in result.get("projections", {}).values():
        lines += [f"## Projections of {part['space']} ({part['n_items']} items, source {part['metric']})", ""]
        lines += ["| method | kept S_10 (seed 0, 1) | kept S_200 | seeds agree S_10 | S_200 | seconds |",
                  "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for method, m in part["methods"].items():
            kept10 = ", ".join(str(k.get("10")) for k in m["preservation"])
            kept200 = ", ".join(str(k.get("200")) for k in m["preservation"])
            agree = m["seed_agreement"]
            lines.append(f"| {method} | {kept10} | {kept200} | {agree['10']} | {agree['200']} | {m['seconds']} |")
        lines += [""]
    lines += [f"Total {result['seconds']} s.", ""]
    return "\n".join(lines)
