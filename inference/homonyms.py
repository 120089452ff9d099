"""Synthetic homonym groups and the choice of the clustering threshold (Royo-Letelier et al. 2018, Section 4).

No data set here has real homonyms with audio, so a group is made by pooling the tracks of 2
to 4 real artists under one name, in the paper's proportions (102 groups of 2 artists, 17 of
3, 3 of 4). The Ward threshold is the one with the best mean adjusted mutual information
(AMI) over groups. Needs scikit-learn (the `eval` or `train` extra) for AMI.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from core.vectors import FloatArray
from inference.tracks import cut_tree, ward_tree

IntArray = npt.NDArray[np.int64]
GROUP_SIZES = (2, 3, 4)
GROUP_WEIGHTS = (102, 17, 3)  # the paper's homonym set: 122 groups


def homonym_groups(artists: npt.ArrayLike, rng: np.random.Generator) -> list[IntArray]:
    """Partition `artists` (ids with enough tracks) into groups of 2-4 at the paper's rates.

    Artists left over when fewer than 2 remain are not used. Group sizes are drawn with
    probabilities 102/122, 17/122, 3/122 and shrunk to what is left.
    """
    order = rng.permutation(np.asarray(artists, dtype=np.int64))
    p = np.asarray(GROUP_WEIGHTS, dtype=float) / sum(GROUP_WEIGHTS)
    groups, start = [], 0
    while len(order) - start >= 2:
        size = min(int(rng.choice(GROUP_SIZES, p=p)), len(order) - start)
        groups.append(order[start : start + size])
        start += size
    return groups


def candidate_thresholds(embeddings: Sequence[FloatArray], n: int = 60) -> npt.NDArray[np.float64]:
    """`n` thresholds spread (log-uniformly) over the Ward heights that occur in these groups."""
    heights = np.concatenate([ward_tree(e)[:, 2] for e in embeddings if len(e) > 1] or [np.zeros(0, np.float32)])
    heights = heights[heights > 0]
    if heights.size == 0:
        return np.asarray([1.0])
    low, high = np.quantile(heights, 0.01), np.quantile(heights, 0.995) * 1.05
    return np.geomspace(max(low, 1e-6), max(high, low * 1.01, 1e-5), n)


def group_scores(
    embeddings: Sequence[FloatArray], labels: Sequence[IntArray], thresholds: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """ARI and AMI of every group (rows) at every threshold (columns): two (G, K) arrays."""
    from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

    ari = np.zeros((len(embeddings), len(thresholds)))
    ami = np.zeros_like(ari)
    for g, (emb, truth) in enumerate(zip(embeddings, labels, strict=True)):
        tree = ward_tree(emb) if len(emb) > 1 else None
        seen: dict[bytes, tuple[float, float]] = {}  # a group of m tracks has at most m distinct cuts
        for k, t in enumerate(thresholds):
            found = cut_tree(tree, len(emb), float(t)).labels
            key = found.tobytes()
            if key not in seen:
                seen[key] = (adjusted_rand_score(truth, found), adjusted_mutual_info_score(truth, found))
            ari[g, k], ami[g, k] = seen[key]
    return ari, ami


def best_threshold(thresholds: npt.NDArray[np.float64], mean_ami: npt.NDArray[np.float64]) -> int:
    """Index of the threshold with the best mean AMI; on a plateau of equal bests, its middle.

    The lowest of a plateau would split most, the highest merge most; the middle favours neither.
    """
    best = np.flatnonzero(mean_ami >= mean_ami.max() - 1e-12)
    return int(best[len(best) // 2])


def choose_threshold(embeddings: Sequence[FloatArray], labels: Sequence[IntArray]) -> tuple[float, float]:
    """The threshold with the best mean AMI over the groups (`best_threshold`), and that AMI."""
    thresholds = candidate_thresholds(embeddings)
    _, ami = group_scores(embeddings, labels, thresholds)
    best = best_threshold(thresholds, ami.mean(axis=0))
    return float(thresholds[best]), float(ami[:, best].mean())
