"""The paper's baselines: PCA and Gaussian random projection of the concatenated embeddings."""

from __future__ import annotations

from typing import Any

import numpy as np

from core.vectors import FloatArray


def concatenated(raw: dict[str, FloatArray], present: dict[str, np.ndarray]) -> FloatArray:
    """Standardise each modality over the artists that have it, replace missing ones by the mean (0), concatenate."""
    blocks = []
    for name, values in raw.items():
        has = present[name]
        block = np.zeros_like(values, dtype=np.float32)
        if has.any():
            mean, std = values[has].mean(axis=0), values[has].std(axis=0)
            block[has] = (values[has] - mean) / np.where(std > 0, std, 1.0)
        blocks.append(block)  # absent rows stay 0: the modality's global mean after standardisation
    return np.concatenate(blocks, axis=1)


def fit_projection(features: FloatArray, fit_rows: np.ndarray, method: str, dim: int = 200, seed: int = 0) -> Any:
    """Fit PCA or a Gaussian random projection to `dim` dimensions on `fit_rows` (the full-coverage artists)."""
    from sklearn.decomposition import PCA
    from sklearn.random_projection import GaussianRandomProjection

    n_components = min(dim, features.shape[1], len(fit_rows))
    if method == "pca":
        model = PCA(n_components=n_components, random_state=seed)
    elif method == "rand":
        model = GaussianRandomProjection(n_components=n_components, random_state=seed)
    else:
        raise ValueError(f"unknown projection {method!r}")
    return model.fit(features[fit_rows])
