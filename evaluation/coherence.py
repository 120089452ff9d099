"""The paper's coherence analysis: Expected Contrastive Loss (ECL), CD_intra, CD_inter and their Kendall's tau.

Ferraro et al. (ISMIR 2023), Section 5, Figures 3 and 5, as DESIGN.md defines them. With
d_ij^uv the cosine distance between artist i's modality-u embedding and artist j's modality-v
embedding, ECL(i, u, v) = d_ii^uv - mean_{j != i} d_ij^uv and ECL(i) = the mean over ordered
pairs u != v; CD_intra(i) = the mean cosine distance of i's modality embeddings to their
centroid; CD_inter(i) = the mean cosine distance from i's centroid to every other artist's
centroid. Computed over artists that have every modality.

The mean over j != i of n - 1 cosine distances is exact without the n x n matrix: the cosine
is linear in the unit vector e_j, so mean_{j != i} cos(a_i, e_j) = a_i . (sum_j e_j - e_i) / (n - 1).
"""

from __future__ import annotations

from itertools import permutations
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import kendalltau

FloatArray = npt.NDArray[np.float64]


def _unit(x: npt.ArrayLike) -> FloatArray:
    """Rows scaled to unit length in float64 (zero rows stay zero)."""
    arr = np.asarray(x, dtype=np.float64)
    return arr / np.maximum(np.linalg.norm(arr, axis=-1, keepdims=True), 1e-12)


def _mean_distance_to_others(a: FloatArray, b: FloatArray) -> FloatArray:
    """(n,) mean over j != i of 1 - cos(a_i, b_j), for unit rows a, b (n, d); O(n d)."""
    n = len(a)
    own = np.einsum("ij,ij->i", a, b)
    return 1 - (a @ b.sum(axis=0) - own) / (n - 1)


def coherence(embeddings: dict[str, npt.ArrayLike]) -> dict[str, FloatArray]:
    """Per-artist ECL, CD_intra and CD_inter of n artists given every modality's embedding (n, d).

    Returns {"ecl", "cd_intra", "cd_inter", "ecl_pairs": {"u-v": (n,)}} (each (n,) float64).
    Raises ValueError for fewer than 2 modalities or 2 artists, or shapes that differ.
    """
    unit = {m: _unit(e) for m, e in embeddings.items()}
    shapes = {u.shape for u in unit.values()}
    if len(unit) < 2 or len(shapes) != 1 or next(iter(shapes))[0] < 2:
        raise ValueError("coherence needs 2+ modalities of the same 2+ artists")
    pairs: dict[str, FloatArray] = {}
    for u, v in permutations(unit, 2):
        own = 1 - np.einsum("ij,ij->i", unit[u], unit[v])
        pairs[f"{u}-{v}"] = own - _mean_distance_to_others(unit[u], unit[v])
    centroid = np.mean(list(unit.values()), axis=0)
    centre = _unit(centroid)
    cd_intra = np.mean([1 - np.einsum("ij,ij->i", u, centre) for u in unit.values()], axis=0)
    return {
        "ecl": np.mean(list(pairs.values()), axis=0),
        "cd_intra": cd_intra,
        "cd_inter": _mean_distance_to_others(centre, centre),
        "ecl_pairs": pairs,  # type: ignore[dict-item]
    }


def kendall_matrix(columns: dict[str, npt.ArrayLike]) -> dict[str, Any]:
    """Kendall's tau (tau-b) and its p-value between every two columns: {"names", "tau", "p"} (matrices as lists)."""
    names = list(columns)
    values = [np.asarray(columns[n], dtype=np.float64) for n in names]
    tau = np.eye(len(names))
    p = np.zeros((len(names), len(names)))
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            result = kendalltau(values[i], values[j])
            tau[i, j] = tau[j, i] = float(result.statistic)
            p[i, j] = p[j, i] = float(result.pvalue)
    return {"names": names, "tau": tau.tolist(), "p": p.tolist()}


def findings(matrix: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The paper's three findings, each with the tau measured and whether it holds here.

    1. ECL strongly tied to CD_intra (|tau| >= 0.3, and larger than with CD_inter);
    2. ECL nearly independent of CD_inter (|tau| < 0.1);
    3. ECL negatively correlated with nDCG (tau < 0 at p < 0.05).
    """
    names = matrix["names"]

    def cell(a: str, b: str) -> tuple[float, float]:
        i, j = names.index(a), names.index(b)
        return matrix["tau"][i][j], matrix["p"][i][j]

    intra, inter, ndcg = cell("ecl", "cd_intra"), cell("ecl", "cd_inter"), cell("ecl", "ndcg")
    return {
        "ecl_tied_to_cd_intra": {
            "tau": intra[0],
            "p": intra[1],
            "holds": abs(intra[0]) >= 0.3 and abs(intra[0]) > abs(inter[0]),
        },
        "ecl_independent_of_cd_inter": {"tau": inter[0], "p": inter[1], "holds": abs(inter[0]) < 0.1},
        "ecl_negative_with_ndcg": {"tau": ndcg[0], "p": ndcg[1], "holds": ndcg[0] < 0 and ndcg[1] < 0.05},
    }


def analysis(
    embeddings: dict[str, npt.ArrayLike], pop: npt.ArrayLike, ndcg: npt.ArrayLike, max_points: int = 5000
) -> dict[str, Any]:
    """ECL and CD of n full-coverage artists, the Kendall's tau matrix with nDCG@200 and POP, the findings.

    `pop` (n,) = log(plays + 1); `ndcg` (n,) each artist's nDCG@200. The per-artist values
    behind Figure 3 are kept for up to `max_points` artists (seeded sample).
    """
    values = coherence(embeddings)
    pop, ndcg = np.asarray(pop, dtype=np.float64), np.asarray(ndcg, dtype=np.float64)
    columns: dict[str, npt.ArrayLike] = {
        "ecl": values["ecl"],
        "cd_intra": values["cd_intra"],
        "cd_inter": values["cd_inter"],
        "ndcg": ndcg,
        "pop": pop,
    }
    matrix = kendall_matrix(columns)
    sample = np.sort(np.random.default_rng(0).permutation(len(pop))[:max_points])
    return {
        "n_artists": len(pop),
        "mean": {k: float(np.mean(np.asarray(v))) for k, v in columns.items()},
        "ecl_pairs_mean": {k: float(np.mean(v)) for k, v in values["ecl_pairs"].items()},  # type: ignore[attr-defined]
        "kendall_tau": matrix,
        "findings": findings(matrix),
        "points": {k: np.round(np.asarray(v)[sample], 5).tolist() for k, v in columns.items()},
    }


FINDING_TEXT = {
    "ecl_tied_to_cd_intra": "ECL is strongly tied to CD_intra (the paper: yes)",
    "ecl_independent_of_cd_inter": "ECL is nearly independent of CD_inter (the paper: yes)",
    "ecl_negative_with_ndcg": "ECL is negatively correlated with nDCG@200 (the paper: yes)",
}


def report_lines(ecl: dict[str, Any]) -> list[str]:
    """The report's section: means, the Kendall's tau matrix (Figure 5) and one sentence per finding."""
    if not ecl:
        return []
    m = ecl["kendall_tau"]
    lines = [
        f"## Coherence: ECL, CD_intra, CD_inter (the paper's Figures 3 and 5; {ecl['n_artists']:,} full-coverage "
        "query artists, the product's model)",
        "",
        "Means: "
        + ", ".join(f"{k} {v:.3f}" for k, v in ecl["mean"].items())
        + ". ECL by ordered modality pair: "
        + ", ".join(f"{k} {v:+.3f}" for k, v in ecl["ecl_pairs_mean"].items())
        + ".",
        "",
        "Kendall's tau (Figure 5):",
        "",
        "| | " + " | ".join(m["names"]) + " |",
        "| --- " * (len(m["names"]) + 1) + "|",
    ]
    for i, name in enumerate(m["names"]):
        lines.append(f"| {name} | " + " | ".join(f"{t:+.3f}" for t in m["tau"][i]) + " |")
    lines.append("")
    for key, finding in ecl["findings"].items():
        verdict = "holds here" if finding["holds"] else "does not hold here"
        lines.append(f"- {FINDING_TEXT[key]}: {verdict}, tau {finding['tau']:+.3f} (p {finding['p']:.1g}).")
    return [*lines, "", "Plots: `figure3_ecl.png` (POP against ECL, coloured by nDCG), `figure5_kendall.png`.", ""]


def plots(out_dir: Path, ecl: dict[str, Any]) -> None:
    """Figure 3 (POP against ECL coloured by nDCG@200) and Figure 5 (the tau matrix) as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not ecl:
        return
    pts = ecl["points"]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    sc = ax.scatter(pts["ecl"], pts["pop"], c=pts["ndcg"], s=6, cmap="viridis")
    fig.colorbar(sc, ax=ax, label="nDCG@200")
    ax.set_xlabel("ECL")
    ax.set_ylabel("POP = log(plays + 1)")
    ax.set_title("Figure 3: popularity against ECL")
    fig.tight_layout()
    fig.savefig(out_dir / "figure3_ecl.png", dpi=110)
    plt.close(fig)
    m = ecl["kendall_tau"]
    fig, ax = plt.subplots(figsize=(5, 4.2))
    im = ax.imshow(np.array(m["tau"]), vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(m["names"])), m["names"])
    ax.set_yticks(range(len(m["names"])), m["names"])
    for i in range(len(m["names"])):
        for j in range(len(m["names"])):
            ax.text(j, i, f"{m['tau'][i][j]:+.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=ax, label="Kendall's tau")
    ax.set_title("Figure 5: Kendall's tau")
    fig.tight_layout()
    fig.savefig(out_dir / "figure5_kendall.png", dpi=110)
    plt.close(fig)
