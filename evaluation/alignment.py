"""Distances in the shared space: how close an artist's modalities are, and its similar artists.

Our reading of the paper's Figure 5 analysis, kept beside the paper's own ECL analysis
(`evaluation.coherence`):

- cross-modal alignment: for each pair of modalities, the mean cosine distance (1 - cos)
  between the two embeddings of the same artist (intra) and of two different artists (inter);
- ground-truth clusters: for each method, the mean cosine distance from an artist to its
  ground-truth similar artists (intra-cluster) and to random other artists (inter-cluster);
- Kendall's tau between an artist's popularity and the alignment of its modalities (are
  popular artists' modalities closer together?).
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
from scipy.stats import kendalltau

from core.vectors import l2_normalize


def cross_modal(
    encodings: dict[str, np.ndarray], present: dict[str, np.ndarray], plays: np.ndarray, seed: int = 0
) -> dict[str, Any]:
    """Intra-artist and inter-artist distances for every modality pair, and their link to popularity."""
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for a, b in combinations(encodings, 2):
        rows = np.flatnonzero(present[a] & present[b])
        if rows.size < 3:
            continue
        ea, eb = l2_normalize(encodings[a][rows]), l2_normalize(encodings[b][rows])
        intra = 1 - np.einsum("ij,ij->i", ea, eb)
        shuffled = rng.permutation(rows.size)
        shuffled = np.where(shuffled == np.arange(rows.size), (shuffled + 1) % rows.size, shuffled)
        inter = 1 - np.einsum("ij,ij->i", ea, eb[shuffled])
        tau = kendalltau(np.log1p(plays[rows]), intra)
        out[f"{a}-{b}"] = {
            "n_artists": int(rows.size),
            "intra": float(intra.mean()),
            "inter": float(inter.mean()),
            "kendall_tau_popularity_vs_intra": float(tau.statistic),
            "kendall_p": float(tau.pvalue),
        }
    return out


def clusters(vectors: np.ndarray, can: np.ndarray, edges: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Mean cosine distance to ground-truth similar artists (intra) and to random artists (inter)."""
    rng = np.random.default_rng(seed)
    keep = can[edges[:, 0]] & can[edges[:, 1]]
    a, b = edges[keep, 0], edges[keep, 1]
    if a.size == 0:
        return {"intra": float("nan"), "inter": float("nan"), "ratio": float("nan"), "n_edges": 0}
    unit = l2_normalize(vectors)
    intra = 1 - np.einsum("ij,ij->i", unit[a], unit[b])
    pool = np.flatnonzero(can)
    other = pool[rng.integers(0, pool.size, a.size)]
    inter = 1 - np.einsum("ij,ij->i", unit[a], unit[other])
    return {
        "intra": float(intra.mean()),
        "inter": float(inter.mean()),
        "ratio": float(intra.mean() / max(inter.mean(), 1e-12)),
        "n_edges": int(a.size),
    }


def method_ranking_tau(ndcg: dict[str, float], ratios: dict[str, float]) -> dict[str, float]:
    """Kendall's tau between the methods' nDCG and their cluster separation (lower intra/inter is better)."""
    names = [n for n in ndcg if n in ratios and np.isfinite(ratios[n])]
    if len(names) < 3:
        return {}
    tau = kendalltau([ndcg[n] for n in names], [-ratios[n] for n in names])
    return {"kendall_tau": float(tau.statistic), "p_value": float(tau.pvalue), "n_methods": len(names)}
