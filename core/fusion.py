"""How a model fuses an artist's modality embeddings: modality weights and modality completion.

Weights: the fused vector is the weighted sum of the unit embeddings an artist has,
normalised (all weights 1 is the paper's mean). They matter for artists with two or more
modalities and for completed ones; a single embedding alone is its own direction whatever its
weight.

Completion: an artist known by a weak modality alone (audio descriptors, say) has a fused
vector far from every other artist's, and is rarely anyone's neighbour however similar it is.
Completion adds the embeddings its missing modalities would most likely have, predicted by a
linear (ridge) map from the modalities it has, fitted after training on the artists that have
both sides (no ground truth). A completed subset's missing modality m enters the sum with
weight completion[subset] * weights[m].
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core.artifacts import COMPLETION_FILE
from core.errors import CmarError
from core.modalities import MODALITY_NAMES
from core.vectors import FloatArray, l2_normalize, weighted_sum

RIDGE_ALPHA = 1.0  # ridge regularisation of the completion maps, on unit-length inputs
MIN_FIT_ARTISTS = 10  # a completion map needs at least this many artists with both sides


def subset_name(names: list[str] | tuple[str, ...]) -> str:
    """The name of a set of modalities, in registry order: "audio", "audio+cf", ..."""
    return "+".join(n for n in MODALITY_NAMES if n in names)


def subset_groups(present: np.ndarray, names: list[str]) -> list[tuple[list[str], np.ndarray]]:
    """Artists grouped by the modalities they have: (those modalities' names, the artists' columns) per group.

    present: (M, N) booleans for the modalities `names`.
    """
    if present.shape[1] == 1:  # one query (the service): nothing to group
        return [([n for n, has in zip(names, present[:, 0], strict=True) if has], np.zeros(1, dtype=np.int64))]
    patterns = (present.T.astype(np.int64) << np.arange(len(names))).sum(axis=1)  # bit m = modality m
    return [
        ([n for m, n in enumerate(names) if p >> m & 1], np.flatnonzero(patterns == p)) for p in np.unique(patterns)
    ]


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


def _read_maps(
    source: Path | io.BytesIO, subsets: set[str], dim: int
) -> dict[tuple[str, str], tuple[FloatArray, FloatArray]]:
    """The maps of the given subsets in a completion file (path or bytes), shapes checked (ValueError otherwise)."""
    maps: dict[tuple[str, str], tuple[FloatArray, FloatArray]] = {}
    with source if isinstance(source, io.BytesIO) else open(source, "rb") as handle:  # ours to close
        data = np.load(handle, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
        for key in data.files:
            subset, _, rest = key.partition(">")
            target, _, part = rest.partition(":")
            if part != "W" or subset not in subsets:
                continue
            w, b = data[key].astype(np.float32), data[f"{subset}>{target}:b"].astype(np.float32)
            if w.shape != (dim, dim) or b.shape != (dim,):
                raise ValueError(f"map {subset}>{target} has shape {w.shape}, expected ({dim}, {dim})")
            maps[(subset, target)] = (w, b)
    return maps


@dataclass
class Fusion:
    """Modality weights, completion weights per subset, and the maps (subset, missing modality) -> (W, b)."""

    weights: dict[str, float] = field(default_factory=dict)  # modality -> weight; absent = 1
    completion: dict[str, float] = field(default_factory=dict)  # subset -> completion weight
    maps: dict[tuple[str, str], tuple[FloatArray, FloatArray]] = field(default_factory=dict)
    # subset -> [(W, b, completion weight * target's modality weight)], derived from the above
    _plan: dict[str, list[tuple[FloatArray, FloatArray, float]]] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.completion = {k: float(v) for k, v in self.completion.items() if v > 0}
        for (subset, target), (w, b) in self.maps.items():
            if subset in self.completion:
                scale = self.completion[subset] * self.weight(target)
                self._plan.setdefault(subset, []).append((w, b, scale))

    def weight(self, name: str) -> float:
        """A modality's weight in the fused sum."""
        return self.weights.get(name, 1.0)

    def _sum(self, vectors: npt.ArrayLike, present: npt.ArrayLike, names: list[str]) -> FloatArray:
        return weighted_sum(vectors, present, [self.weight(n) for n in names])

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
        plain = cls(dict(weights))
        maps: dict[tuple[str, str], tuple[FloatArray, FloatArray]] = {}
        for subset, weight in completion.items():
            sources = subset.split("+")
            if weight <= 0 or any(s not in encodings for s in sources):
                continue
            for target in encodings:
                if target in sources:
                    continue
                rows = np.flatnonzero(np.all([present[n] for n in [*sources, target]], axis=0))
                if rows.size < MIN_FIT_ARTISTS:
                    continue
                stack = np.stack([encodings[s][rows] for s in sources])
                x = l2_normalize(plain._sum(stack, np.ones(stack.shape[:2], dtype=bool), sources))
                maps[(subset, target)] = ridge(x, l2_normalize(encodings[target][rows]), alpha)
        return cls(dict(weights), dict(completion), maps)

    def terms(self, own: dict[str, FloatArray]) -> tuple[dict[str, FloatArray], dict[str, float]]:
        """One artist's terms of the fused sum, as `fuse` adds them: its own unit embeddings (D,) by
        modality, plus the predicted unit embeddings of the modalities its subset is completed with;
        and each term's scale (its modality weight, times the completion weight for a predicted one).
        What explanations expand the served cosine over (`service.explain`)."""
        names = [n for n in MODALITY_NAMES if n in own]
        scales = {n: self.weight(n) for n in names}
        embeddings = {n: np.asarray(own[n], dtype=np.float32) for n in names}
        subset = subset_name(names)
        if not names or subset not in self._plan:
            return embeddings, scales
        source = l2_normalize(self._sum(np.stack([embeddings[n] for n in names])[:, None, :],
                                        np.ones((len(names), 1), dtype=bool), names))[0]  # fmt: skip
        for (have, target), (w, b) in self.maps.items():
            if have == subset and target not in embeddings:
                embeddings[target] = l2_normalize((source @ w + b)[None, :])[0]
                scales[target] = self.completion[subset] * self.weight(target)
        return embeddings, scales

    def fuse(
        self, vectors: npt.ArrayLike, present: npt.ArrayLike, names: list[str], batch_invariant: bool = False
    ) -> FloatArray:
        """Fuse per-modality embeddings (M, N, D) of the modalities `names` into unit vectors (N, D).

        The weighted sum of the unit embeddings an artist has, plus, for a completed subset,
        each missing modality's predicted unit vector times the subset's completion weight and
        the modality's weight; normalised. With no weights and no completion this is
        `core.vectors.fuse`. An artist with no modality gets the zero vector.

        batch_invariant: each artist's vector is the same to the last bit whatever the other
        artists (the service's batched queries): the completion maps are applied one artist at
        a time, since BLAS computes a small matrix product by kernels that depend on its size.
        """
        mask = np.asarray(present, dtype=bool)
        if len(names) != len(mask):
            raise ValueError(f"fuse expects one name per modality row; got {len(names)} names for {len(mask)} rows")
        total = self._sum(vectors, mask, names)  # (N, D)
        if not self._plan or not mask.size:
            return l2_normalize(total)
        for have, rows in subset_groups(mask, names):
            subset = subset_name(have)
            if subset not in self._plan:
                continue
            source = l2_normalize(total[rows])
            for w, b, scale in self._plan[subset]:
                mapped = np.stack([row @ w for row in source]) if batch_invariant else source @ w
                total[rows] += scale * l2_normalize(mapped + b)
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
    def load(
        cls,
        folder: Path,
        weights: dict[str, float],
        completion: dict[str, float],
        dim: int,
        require: bool = True,
        data: bytes | None = None,
    ) -> Fusion:
        """The fusion of a model or checkpoint folder: the given weights and the maps of its completed subsets.

        With `require` (a model folder, whose manifest lists only subsets that have maps), a
        completed subset without a map is an error; a checkpoint may lack maps its config asked
        for (too few artists to fit them). `data`: the completion file's bytes, already read and
        verified (the model loader's); otherwise it is read from `folder`.
        """
        wanted = {k for k, v in completion.items() if v > 0}
        path = Path(folder) / COMPLETION_FILE
        maps: dict[tuple[str, str], tuple[FloatArray, FloatArray]] = {}
        if wanted and (data is not None or path.is_file()):
            try:
                maps = _read_maps(io.BytesIO(data) if data is not None else path, wanted, dim)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
                raise CmarError(f"{path}: not a completion file ({exc})") from None
        missing = sorted(wanted - {subset for subset, _ in maps})
        if require and missing:
            raise CmarError(f"{path}: no completion map for {', '.join(missing)}, which the manifest completes")
        return cls(dict(weights), dict(completion), maps)
