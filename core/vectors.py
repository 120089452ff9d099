"""Vector maths shared by training-time evaluation, the index build and the service."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
EPS = 1e-12


def l2_normalize(x: npt.ArrayLike, axis: int = -1) -> FloatArray:
    """Scale each vector along `axis` to unit length; zero vectors stay zero."""
    arr = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(arr, axis=axis, keepdims=True)
    return (arr / np.maximum(norms, EPS)).astype(np.float32, copy=False)


def weighted_sum(vectors: npt.ArrayLike, present: npt.ArrayLike, weights: npt.ArrayLike | None = None) -> FloatArray:
    """Sum of the L2-normalised embeddings each artist has, each times its modality's weight.

    vectors: (M, N, D) embeddings of M modalities for N artists (rows of absent ones ignored).
    present: (M, N) booleans, which modalities each artist has. weights: (M,), default all 1.
    Returns (N, D); an artist with no modality gets the zero vector.
    """
    vecs = np.asarray(vectors, dtype=np.float32)
    mask = np.asarray(present, dtype=bool)
    if vecs.ndim != 3 or mask.shape != vecs.shape[:2]:
        raise ValueError(f"fuse expects vectors (M, N, D) and present (M, N); got {vecs.shape} and {mask.shape}")
    scale = mask.astype(np.float32)
    if weights is not None:
        scale *= np.asarray(weights, dtype=np.float32).reshape(-1, 1)
    return np.einsum("mnd,mn->nd", l2_normalize(vecs), scale).astype(np.float32, copy=False)


def fuse(vectors: npt.ArrayLike, present: npt.ArrayLike) -> FloatArray:
    """Fuse per-modality embeddings into one unit vector per artist: the paper's plain mean.

    The mean of the L2-normalised vectors an artist has (M, N, D) with presence (M, N),
    normalised again: (N, D). An artist with no modality gets the zero vector; callers must not
    index it. A model's own fusion (weights, completion) is `core.fusion.Fusion.fuse`.
    """
    return l2_normalize(weighted_sum(vectors, present))


def item_weights(weights: npt.ArrayLike) -> FloatArray:
    """Pooling weight of set items (tags): log(1 + weight); 0 marks padding.

    The log keeps one heavily used tag from drowning the others, as tf-idf-like weightings do.
    """
    return np.log1p(np.maximum(np.asarray(weights, dtype=np.float64), 0)).astype(np.float32)


def hub_penalty(neighbour_sims: npt.ArrayLike, beta: float) -> FloatArray:
    """Each candidate's penalty: beta/2 times its mean cosine to its k nearest neighbours, (N, k) -> (N,).

    Ranking by cos(q, c) - penalty(c) is CSLS (Lample et al., 2018) up to a factor: artists that
    sit close to everything (hubs) stop crowding every list, and the long tail gets retrieved.
    """
    sims = np.asarray(neighbour_sims, dtype=np.float32)
    return (beta / 2 * sims.mean(axis=1)).astype(np.float32)


def row_cosines(vectors: npt.ArrayLike, query: npt.ArrayLike) -> FloatArray:
    """Dot products (n,) of float32 rows (n, D) with a query (D,), each row summed alone.

    The one arithmetic every ranking of the served artists uses (the build's precomputed
    lists, searches, filtered rankings, written artists): a row's value never depends on the
    other rows or their number, as a BLAS product's would (kernels chosen by size), so two
    paths that rank the same artists agree to the last bit and break ties the same way.
    """
    rows = np.ascontiguousarray(vectors, dtype=np.float32)
    return np.einsum("nd,d->n", rows, np.asarray(query, dtype=np.float32))


def as_candidates(vectors: npt.ArrayLike, penalty: npt.ArrayLike) -> FloatArray:
    """Stored form of unit vectors (N, D) with what each query slot subtracts from their cosines.

    `penalty` (N,) (the hub penalty) or (S, N) (per query slot, `core.balance.Balance.penalties`):
    returns (N, D + S) = [v, -penalty[0] / sqrt(S), ..., -penalty[S - 1] / sqrt(S)]. The scale
    keeps what the S coordinates add to the inner product of two stored vectors (which an HNSW
    graph is built by) as small as one coordinate's; queries carry sqrt(S) (`as_queries`).
    """
    v = np.asarray(vectors, dtype=np.float32)
    p = np.asarray(penalty, dtype=np.float32).reshape(-1, len(v))
    return np.concatenate([v, -p.T / np.float32(np.sqrt(len(p)))], axis=1)


def as_queries(vectors: npt.ArrayLike, slots: npt.ArrayLike | None = None, width: int = 1) -> FloatArray:
    """Query form of unit vectors (B, D): (B, D + width) = [q, sqrt(width) times the one-hot of the query's
    slot] (slot 0 by default), so the inner product with a stored candidate (`as_candidates`) is
    cos(q, c) minus the slot's penalty of c."""
    q = np.asarray(vectors, dtype=np.float32)
    hot = np.zeros((q.shape[0], width), dtype=np.float32)
    rows = np.arange(q.shape[0])
    hot[rows, np.zeros(q.shape[0], dtype=np.int64) if slots is None else np.asarray(slots)] = np.sqrt(width)
    return np.concatenate([q, hot], axis=1)
