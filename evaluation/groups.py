"""Modality groups: how much a method's results stay within the query's own modality subset."""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations
from typing import Any

import numpy as np

from core.balance import Balance, presence_bits
from evaluation.retrieval import Hub, top_k

# A method: given the modality subset each artist keeps, (vectors (N, D), which rows it can represent).
Method = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]


def subsets(names: list[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset, singles first, then pairs, then all (audio, tag, CF, audio+tag, ...)."""
    return [c for r in range(1, len(names) + 1) for c in combinations(names, r)]


def assign_groups(full: np.ndarray, n_groups: int, seed: int = 0) -> list[np.ndarray]:
    """Split the full-coverage artists at random into `n_groups` equal groups (the remainder is left out)."""
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(full)
    size = len(full) // n_groups
    return [np.sort(shuffled[g * size : (g + 1) * size]) for g in range(n_groups)]


def entropy(distribution: np.ndarray) -> float:
    """Shannon entropy (natural log) of a distribution; 0 for an all-zero row."""
    p = np.asarray(distribution, dtype=np.float64)
    if p.sum() <= 0:
        return 0.0
    p = p / p.sum()
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _one_split(
    methods: dict[str, Method],
    names: list[str],
    groups: list[np.ndarray],
    n_artists: int,
    k: int,
    hubs: dict[str, Hub],
    balances: dict[str, Balance],
) -> dict[str, np.ndarray]:
    """The share matrix of every method for one assignment of artists to groups."""
    groups_subsets = subsets(names)
    group_of = np.full(n_artists, -1)
    keeps: dict[str, np.ndarray] = {name: np.zeros(n_artists, dtype=bool) for name in names}
    for g, (rows, subset) in enumerate(zip(groups, groups_subsets, strict=True)):
        group_of[rows] = g
        for name in subset:
            keeps[name][rows] = True
    members = np.concatenate(groups)
    bits = presence_bits(keeps)
    out = {}
    for method_name, method in methods.items():
        vectors, can = method(keeps)
        pool = members[can[members]]
        matrix = np.zeros((len(groups), len(groups)))
        for g, rows in enumerate(groups):
            queries = rows[can[rows]]
            if queries.size == 0 or pool.size < 2:
                continue
            rule = balances.get(method_name)
            balance = None if rule is None else (rule, rule.slots(bits))
            retrieved = top_k(vectors[queries], vectors[pool], pool, queries, k, hubs.get(method_name), balance)
            found = group_of[retrieved[retrieved >= 0]]
            matrix[g] = np.bincount(found, minlength=len(groups)) / max(found.size, 1)
        out[method_name] = matrix
    return out


def modality_groups(
    methods: dict[str, Method],
    names: list[str],
    full: np.ndarray,
    n_artists: int,
    k: int = 5,
    seed: int = 0,
    hubs: dict[str, Hub] | None = None,
    n_splits: int = 5,
    balances: dict[str, Balance] | None = None,
) -> dict[str, Any]:
    """The 7x7 share matrix and mean entropy of every method, averaged over random splits.

    Row g of the share matrix: of all top-k results of the queries in group g, the share that
    belongs to each group. A group a method cannot query gets an all-zero row, entropy 0. The
    entropy is the mean over the 7 query groups; with ~90 artists a group one split is noisy,
    so it is averaged over `n_splits` random assignments of artists to groups (its spread is
    reported as `entropy_sd`), and the matrix is the mean of the splits' matrices.
    """
    groups_subsets = subsets(names)
    n_groups = len(groups_subsets)
    matrices: dict[str, list[np.ndarray]] = {name: [] for name in methods}
    for split in range(n_splits):
        groups = assign_groups(full, n_groups, seed + split)
        for name, matrix in _one_split(methods, names, groups, n_artists, k, hubs or {}, balances or {}).items():
            matrices[name].append(matrix)
    out: dict[str, Any] = {"groups": ["+".join(s) for s in groups_subsets], "group_size": len(full) // n_groups}
    for name, mats in matrices.items():
        entropies = [float(np.mean([entropy(row) for row in m])) for m in mats]
        out[name] = {
            "matrix": np.mean(mats, axis=0).round(4).tolist(),
            "entropy": float(np.mean(entropies)),
            "entropy_sd": float(np.std(entropies)),
            "n_splits": n_splits,
        }
    return out
