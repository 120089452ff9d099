"""The track encoder run by ONNX Runtime, and the Ward clustering that splits an artist's tracks.

Royo-Letelier et al., "Disambiguating Music Artists at Scale with Audio Metric Learning"
(ISMIR 2018), Section 3.3: the tracks filed under one name are embedded and clustered by
agglomerative clustering with Ward linkage, cut at a distance threshold; each cluster is
taken for one real artist.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from scipy.cluster.hierarchy import fcluster, linkage

from core.artifacts import TRACK_ONNX_FILE
from core.errors import CmarError
from core.manifest import TrackModelManifest, read_files, read_manifest
from core.vectors import FloatArray

IntArray = npt.NDArray[np.int64]


class TrackInputError(CmarError):
    """Track audio the model cannot embed: values beyond float32, or so large that the embedding overflows."""

    def __init__(self, rows: npt.NDArray[np.int64]) -> None:
        self.rows = rows
        super().__init__(
            f"track audio at row(s) {', '.join(map(str, rows[:5].tolist()))} is too large for the track model "
            "(beyond float32, or the embedding overflows); give features in the training tracks' units"
        )


class TrackModel:
    """A verified track model folder: audio features (B, d) -> unit vectors (B, e)."""

    def __init__(self, folder: Path, verify: bool = True, threads: int = 0) -> None:
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder, TrackModelManifest, verify=False)
        files = read_files(self.folder, self.manifest, verify)  # loaded from these verified bytes only
        if TRACK_ONNX_FILE not in files:
            raise CmarError(f"{self.folder}: the manifest does not list {TRACK_ONNX_FILE}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(files[TRACK_ONNX_FILE], options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ONNX Runtime raises its own, unexported exception types
            raise CmarError(f"{self.folder / TRACK_ONNX_FILE}: ONNX Runtime cannot load it ({exc})") from None
        given, made = self.session.get_inputs()[0], self.session.get_outputs()[0]
        self._input = given.name
        widths = (given.shape[-1], made.shape[-1])
        expected = (self.manifest.input_dim, self.manifest.embedding_dim)
        if any(isinstance(w, int) and w != e for w, e in zip(widths, expected, strict=True)):
            raise CmarError(
                f"{self.folder / TRACK_ONNX_FILE}: takes {widths[0]} values and gives {widths[1]}; the manifest says "
                f"{expected[0]} and {expected[1]}"
            )

    @property
    def input_dim(self) -> int:
        """Audio values per track."""
        return self.manifest.input_dim

    @property
    def threshold(self) -> float:
        """The Ward linkage height chosen at training time (`inference.homonyms.choose_threshold`)."""
        return self.manifest.cluster_threshold

    @property
    def version(self) -> str:
        """The model version from the manifest."""
        return self.manifest.model_version

    def embed(self, audio: npt.ArrayLike) -> FloatArray:
        """(B, input_dim) track audio -> (B, embedding_dim) unit vectors.

        Raises CmarError for another width, and TrackInputError (naming the rows) for values
        beyond float32 or an embedding that is not a finite unit vector.
        """
        with np.errstate(over="ignore"):  # beyond float32 becomes infinite: refused below, by row
            x = np.ascontiguousarray(audio, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise CmarError(f"track audio must be (n, {self.input_dim}), got {tuple(x.shape)}")
        if len(x) == 0:
            return np.zeros((0, self.manifest.embedding_dim), dtype=np.float32)
        bad = ~np.isfinite(x).all(axis=1)
        if bad.any():
            raise TrackInputError(np.flatnonzero(bad))
        out = np.asarray(self.session.run(None, {self._input: x})[0], dtype=np.float32)
        with np.errstate(invalid="ignore", over="ignore"):
            bad = ~(np.abs(np.linalg.norm(out, axis=1) - 1) < 1e-3)  # NaN included
        if bad.any():
            raise TrackInputError(np.flatnonzero(bad))
        return out


@dataclass(frozen=True)
class Clustering:
    """Clusters of n tracks: a label per track (0 = the first track's cluster, in order of appearance)."""

    labels: IntArray  # (n,)
    threshold: float  # the Ward height the tree was cut at
    split_height: float  # height of the lowest merge that was refused (inf with one cluster)

    @property
    def n_clusters(self) -> int:
        """Number of clusters."""
        return int(self.labels.max(initial=-1)) + 1

    @property
    def confidence(self) -> float:
        """How clearly the tracks split: 1 - threshold / split_height, in [0, 1]; 0 for one cluster.

        Near 0 the clusters would merge at a slightly higher threshold; near 1 they are far
        apart for the threshold (cmar's measure, not the paper's).
        """
        if self.n_clusters < 2:
            return 0.0
        return float(max(0.0, 1.0 - self.threshold / self.split_height))


def ward_tree(embeddings: FloatArray) -> FloatArray:
    """The Ward linkage tree (scipy's (n - 1, 4) matrix) of `embeddings` (n, e), n >= 2; CmarError if not finite."""
    x = np.asarray(embeddings, dtype=np.float64)
    if not np.isfinite(x).all():
        raise CmarError("track embeddings hold NaN or infinity")
    return np.asarray(linkage(x, method="ward"))


def cut_tree(tree: FloatArray | None, n: int, threshold: float) -> Clustering:
    """Cut a Ward tree of `n` items at `threshold` (`tree` None when n < 2)."""
    if not threshold > 0:
        raise CmarError(f"threshold must be a number > 0, got {threshold}")
    if tree is None or n < 2:
        return Clustering(np.zeros(n, dtype=np.int64), threshold, float("inf"))
    raw = fcluster(tree, t=threshold, criterion="distance")
    _, first, inverse = np.unique(raw, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))  # clusters numbered by their first track
    heights = tree[:, 2]
    above = heights[heights > threshold]
    return Clustering(rank[inverse].astype(np.int64), threshold, float(above.min()) if above.size else float("inf"))


def ward_clusters(embeddings: FloatArray, threshold: float) -> Clustering:
    """Agglomerative clustering with Ward linkage cut at `threshold` (scipy; the paper's Section 3.3).

    `embeddings` (n, e); n = 0 or 1 gives no or one cluster. Raises CmarError for a threshold
    that is not > 0 or embeddings that are not finite.
    """
    n = len(embeddings)
    return cut_tree(ward_tree(embeddings) if n >= 2 else None, n, threshold)
