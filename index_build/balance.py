"""Fit the modality balance (`core.balance`) at build time, without ground truth.

The paper's modality-group experiment (Ferraro et al. 2023, Section 4.3) takes the artists
that have every modality, splits them at random into one group per modality subset, keeps in
each group only its subset's modalities, and asks how evenly each group's top 5 spreads over
the groups. The fit runs that simulation on the catalogue's own full-coverage artists: since
the artists of every group are alike but for the signals they keep, any preference of one
group's queries for another group's candidates is the subset's doing, not the music's. For
each query subset s it finds the offsets B[s, :] that give every candidate subset the same
share of s's top k (an iterative proportional fit: an over-retrieved subset's offset goes down
by a step times the log of its excess), averages them over random splits, and keeps
`strength` of them (a shrinkage: the full offsets cost ranking quality on real catalogues).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from tqdm import tqdm

from core.balance import DEFAULT_BALANCE_STRENGTH, all_subsets
from core.manifest import ModalityBalance
from core.vectors import FloatArray, l2_normalize
from index_build.hubs import penalties

log = logging.getLogger(__name__)

BALANCE_K = 5  # the list length the shares are evened out at (the paper's experiment's)
BALANCE_SPLITS = 8  # random assignments of the full-coverage artists to subsets, averaged
BALANCE_MAX_ARTISTS = 1_000  # full-coverage artists simulated (a random sample above)
MIN_PER_SUBSET = 10  # fewer full-coverage artists per subset than this: no balance
ITERATIONS = 60
STEP = 0.1  # step of the fit, in units of the pool's typical gap between ranks 1 and 2k

Fuse = Callable[[FloatArray, np.ndarray, list[str]], FloatArray]  # (M, N, D), (M, N), names -> (N, D)


def fit_balance(
    parts: FloatArray,
    present: np.ndarray,
    names: list[str],
    fuse: Fuse,
    hub_k: int,
    hub_beta: float,
    strength: float = DEFAULT_BALANCE_STRENGTH,
    k: int = BALANCE_K,
    splits: int = BALANCE_SPLITS,
    seed: int = 0,
    progress: bool = False,
) -> ModalityBalance:
    """The offsets of the modality balance for a catalogue's modality embeddings.

    parts: (M, N, D) each modality's unit embeddings of the N indexed artists; present: (M, N)
    which they have; fuse: the model's fusion (weights and completion), so the simulated
    artists are fused as the index fuses real ones; hub_k, hub_beta: the hub penalty, computed
    among the simulated artists. Returns an empty record (no balance) when `strength` is 0,
    there is one modality, or fewer than MIN_PER_SUBSET full-coverage artists per subset.
    """
    subsets = all_subsets(names)
    full = np.flatnonzero(np.asarray(present, dtype=bool).all(axis=0))
    n_subsets = len(subsets)
    if strength <= 0 or n_subsets < 2 or len(full) < MIN_PER_SUBSET * n_subsets:
        if strength > 0 and n_subsets >= 2:
            log.warning(
                "no modality balance: %d artists have every modality (%s), %d needed",
                len(full),
                ", ".join(names),
                MIN_PER_SUBSET * n_subsets,
            )
        return ModalityBalance()
    rng = np.random.default_rng(seed)
    if len(full) > BALANCE_MAX_ARTISTS:
        full = np.sort(rng.choice(full, BALANCE_MAX_ARTISTS, replace=False))
    keeps = np.array([[name in s.split("+") for name in names] for s in subsets])  # (S, M)
    size = len(full) // n_subsets
    fitted, shares = [], []
    for _ in tqdm(range(splits), desc="modality balance", unit="split", disable=not progress):
        order = rng.permutation(full)[: size * n_subsets]
        group = np.repeat(np.arange(n_subsets), size)
        mask = keeps[group].T  # (M, n) which modalities each simulated artist keeps
        vectors = l2_normalize(fuse(np.asarray(parts[:, order], dtype=np.float32), mask, names))
        offsets, share = _fit_split(_scores(vectors, hub_k, hub_beta), group, n_subsets, k)
        fitted.append(offsets)
        shares.append(share)
    offsets = strength * np.mean(fitted, axis=0)
    return ModalityBalance(
        subsets=subsets,
        offsets=np.round(offsets, 6).tolist(),
        strength=strength,
        k=k,
        artists=int(size * n_subsets),
        splits=splits,
        shares=np.round(np.mean(shares, axis=0), 4).tolist(),
    )


def _scores(vectors: FloatArray, hub_k: int, hub_beta: float) -> np.ndarray:
    """(n, n) cosine minus hub penalty among the simulated artists, -inf on the diagonal."""
    scores = (vectors @ vectors.T - penalties(vectors, hub_k, hub_beta)[None, :]).astype(np.float32)
    np.fill_diagonal(scores, -np.inf)
    return scores


def _fit_split(scores: np.ndarray, group: np.ndarray, n_subsets: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (S, S) that even out every query group's top k over the candidate groups in one split,
    and the shares (S, S) they leave before any shrinkage."""
    k = min(k, len(group) - 1)
    top2k = -np.partition(-scores, min(2 * k, len(group) - 1), axis=1)
    step = STEP * float(np.mean(top2k[:, 0] - top2k[:, min(2 * k, len(group) - 1)]))
    offsets = np.zeros((n_subsets, n_subsets))
    share = np.zeros((n_subsets, n_subsets))
    for _ in range(ITERATIONS):
        top = np.argpartition(-(scores + offsets.astype(np.float32)[group][:, group]), k - 1, axis=1)[:, :k]
        for s in range(n_subsets):
            found = group[top[group == s]].ravel()
            share[s] = np.bincount(found, minlength=n_subsets) / max(found.size, 1)
        offsets -= step * np.log(np.maximum(share * n_subsets, 1e-3))
        offsets -= offsets.mean(axis=1, keepdims=True)
    return offsets, share
