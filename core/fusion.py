"""How a model fuses an artist's modality embeddings: modality weights and modality completion.

Weights: the fused vector is the weighted sum of the unit embeddings an artist has,
normalised (all weights 1 is the paper's mean). They only matter for artists with two or more
modalities; a single embedding is its own direction whatever its weight.

Completion: an artist known by a weak modality alone (audio descriptors, say) has a fused
vector far from every other artist's, and is rarely anyone's neighbour however similar it is.
Completion adds the embeddings its missing modalities would most likely have, predicted by a
linear (ridge) map from the modalities it has, fitted after training on the artists that have
both sides (no ground truth). A completed subset's missing modality m enters the sum with
weight completion[subset] * weights[m].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core.artifacts import COMPLETION_FILE
from core.errors import CmarError
from core.modalities import MODALITY_NAMES
from core.vectors import FloatArray, l2_normalize

RIDGE_ALPHA = 1.0  # ridge regularisation of the completion maps, on unit-length inputs
MIN_FIT_ARTISTS = 10  # a completion map needs at least this many artists with both sides


def subset_name(names: list[str] | tuple[str, ...]) -> str:
    """The name of a set of modalities, in registry order: "audio", "audio+cf", ..."""
    return "+".join(n for n in MODALITY_NAMES if n in names)


def check_modality_weights(weights: dict[str, float]) -> list[str]:
    """Problems with fusion weights keyed by modality (empty if none)."""
    problems = []
    for name, weight in weights.items():
        if name not in MODALITY_NAMES:
            problems.append(
                f"modality weight for unknown modality {name!r}; expected one of {', '.join(MODALITY_NAMES)}"
            )
        if not np.isfinite(weight) or weight <= 0:
            problems.append(f"modality weight of {name!r} must be a number > 0, got {weight}")
    return problems


def check_completion(completion: dict[str, float]) -> list[str]:
    """Problems with completion weights keyed by subset name (empty if none)."""
    problems = []
    for key, weight in completion.items():
        parts = key.split("+")
        if any(p not in MODALITY_NAMES for p in parts) or subset_name(parts) != key:
            problems.append(
                f"completion subset {key!r} must name modalities of {', '.join(MODALITY_NAMES)} "
                "joined by '+', in that order"
            )
        elif len(parts) == len(MODALITY_NAMES):
            problems.append(f"completion subset {key!r} has every modality: nothing is missing to complete")
        if not np.isfinite(weight) or weight < 0:
            problems.append(f"completion weight of {key!r} must be a number >= 0, got {weight}")
    return problems


def ridge(x: FloatArray, y: FloatArray, alpha: float = RIDGE_ALPHA) -> tuple[FloatArray, FloatArray]:
    """Least squares with an L2 penalty on the weights, intercept unpenalised: (W (d, D), b (D,))."""
    x64, y64 = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    x_mean, y_mean = x64.mean(axis=0), y64.mean(axis=0)
    xc = x64 - x_mean
    w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x64.shape[1]), xc.T @ (y64 - y_mean))
    return w.astype(np.float32), (y_mean - x_mean @ w).astype(np.float32)


@dataclass
class Fusion:
    """Modality weights, completion weights per subset, and the maps (subset, missing modality) -> (W, b)."""

    weights: dict[str, float] = field(default_factory=dict)  # modality -> weight; absent = 1
    completion: dict[str, float] = field(default_factory=dict)  # subset -> completion weight
    maps: dict[tuple[str, str], tuple[FloatArray, FloatArray]] = field(default_factory=dict)

    def weight(self, name: str) -> float:
        """A modality's weight in the fused sum."""
        return self.weights.get(name, 1.0)

    def _weighted_sum(self, vectors: FloatArray, present: np.ndarray, names: list[str]) -> FloatArray:
        """Sum of the unit embeddings present, each times its modality weight: (M, N, D) -> (N, D)."""
        scale = np.asarray([self.weight(n) for n in names], dtype=np.float32)[:, None, None]
        return np.asarray((l2_normalize(vectors) * present[:, :, None] * scale).sum(axis=0), dtype=np.float32)

    @classmethod
    def fit(
        cls,
        encodings: dict[str, FloatArray],
        present: dict[str, np.ndarray],
        weights: dict[str, float],
        completion: dict[str, float],
        alpha: float = RIDGE_ALPHA,
    ) -> Fusion:
        """Fit a completion map for every weighted subset and every modality it lacks.

        encodings: modality -> (N, D) embeddings (rows of absent artists ignored);
        present: modality -> (N,) booleans. A map is fitted on the artists that have the whole
        subset and the target; with fewer than MIN_FIT_ARTISTS of them it is left out.
        """
        fusion = cls(dict(weights), {k: float(v) for k, v in completion.items() if v > 0})
        for subset in fusion.completion:
            sources = subset.split("+")
            if any(s not in encodings for s in sources):
                continue
            for target in encodings:
                if target in sources:
                    continue
                rows = np.flatnonzero(np.all([present[n] for n in [*sources, target]], axis=0))
                if rows.size < MIN_FIT_ARTISTS:
                    continue
                stack = np.stack([encodings[s][rows] for s in sources])
                x = l2_normalize(fusion._weighted_sum(stack, np.ones(stack.shape[:2], dtype=bool), sources))
                fusion.maps[(subset, target)] = ridge(x, l2_normalize(encodings[target][rows]), alpha)
        return fusion

    def fuse(self, vectors: npt.ArrayLike, present: npt.ArrayLike, names: list[str]) -> FloatArray:
        """Fuse per-modality embeddings (M, N, D) of the modalities `names` into unit vectors (N, D).

        With no weights and no completion this is `core.vectors.fuse`. An artist with no
        modality gets the zero vector.
        """
        vecs = np.asarray(vectors, dtype=np.float32)
        mask = np.asarray(present, dtype=bool)
        if vecs.ndim != 3 or mask.shape != vecs.shape[:2] or len(names) != len(mask):
            raise ValueError(
                f"fuse expects vectors (M, N, D), present (M, N) and M names; "
                f"got {vecs.shape}, {mask.shape} and {len(names)} names"
            )
        total = self._weighted_sum(vecs, mask, names)  # (N, D)
        if self.maps and mask.size:
            patterns = (mask.T.astype(np.int64) << np.arange(len(names))).sum(axis=1)  # bit m = modality m
            for pattern in np.unique(patterns):
                subset = subset_name([n for m, n in enumerate(names) if pattern >> m & 1])
                targets = [t for (s, t) in self.maps if s == subset]
                if not targets:
                    continue
                rows = np.flatnonzero(patterns == pattern)
                source = l2_normalize(total[rows])
                for target in targets:
                    w, b = self.maps[(subset, target)]
                    scale = self.completion.get(subset, 0.0) * self.weight(target)
                    total[rows] += scale * l2_normalize(source @ w + b)
        return l2_normalize(total)

    def save(self, folder: Path) -> None:
        """Write the completion maps to `folder` (nothing when there are none)."""
        if not self.maps:
            return
        arrays: dict[str, Any] = {}  # Any: numpy's stubs read a ** mapping of arrays as savez's allow_pickle
        for (subset, target), (w, b) in self.maps.items():
            arrays[f"{subset}>{target}:W"] = w
            arrays[f"{subset}>{target}:b"] = b
        np.savez(Path(folder) / COMPLETION_FILE, **arrays)

    @classmethod
    def load(cls, folder: Path, weights: dict[str, float], completion: dict[str, float], dim: int) -> Fusion:
        """The fusion of a model or checkpoint folder: the given weights and the maps of its completed subsets."""
        fusion = cls(dict(weights), {k: float(v) for k, v in completion.items() if v > 0})
        path = Path(folder) / COMPLETION_FILE
        if not fusion.completion or not path.is_file():
            return fusion
        try:
            with np.load(path, allow_pickle=False) as data:
                for key in data.files:
                    subset, _, rest = key.partition(">")
                    target, _, part = rest.partition(":")
                    if part != "W" or subset not in fusion.completion:
                        continue
                    w, b = data[key].astype(np.float32), data[f"{subset}>{target}:b"].astype(np.float32)
                    if w.shape != (dim, dim) or b.shape != (dim,):
                        raise CmarError(f"{path}: map {subset}>{target} has shape {w.shape}, expected ({dim}, {dim})")
                    fusion.maps[(subset, target)] = (w, b)
        except (OSError, ValueError, KeyError) as exc:
            raise CmarError(f"{path}: not a completion file ({exc})") from None
        return fusion
