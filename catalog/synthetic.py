"""A synthetic catalogue with known answers: artists of latent styles seen through noisy modalities.

Each artist belongs to one style and has a latent vector near its style's centre. Every
modality is a different noisy non-linear view of that latent vector; tags are drawn mostly
from the style's own vocabulary. Availability is uneven and tied to popularity: popular
artists tend to have listening data (CF) and tags, niche ones often only audio. Two
artists are similar (ground truth) exactly when they share a style.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from catalog.io import ARTISTS_FILE, write_catalog
from catalog.tables import Catalog, SetTable, VectorTable
from core.errors import CmarError

STYLE_COLUMN = "style"  # the ground-truth column written into artists.parquet


@dataclass(frozen=True)
class SyntheticSpec:
    """Size and difficulty of a synthetic catalogue."""

    n_artists: int = 4000
    n_styles: int = 40
    latent_dim: int = 16  # dimension of the hidden "musical identity"
    spread: float = 0.9  # within-style spread of the latent vectors (style centres have unit scale)
    audio_dim: int = 64
    cf_dim: int = 48
    tag_dim: int = 32  # dimension of the tag vocabulary's vectors
    audio_noise: float = 1.2  # noise of each view, relative to its signal
    cf_noise: float = 0.9
    tags_per_style: int = 10
    generic_tags: int = 40
    seed: int = 0


@dataclass
class SyntheticCatalog:
    """A generated catalogue and its ground truth."""

    catalog: Catalog
    styles: np.ndarray  # (N,) style of every artist


def _view(rng: np.random.Generator, latent: np.ndarray, dim: int, noise: float) -> np.ndarray:
    """A random two-layer non-linear map of the latent vectors plus isotropic noise."""
    d = latent.shape[1]
    w1 = rng.normal(0, 1 / np.sqrt(d), (d, 2 * dim))
    w2 = rng.normal(0, 1 / np.sqrt(2 * dim), (2 * dim, dim))
    clean = np.tanh(latent @ w1 + rng.normal(0, 0.3, 2 * dim)) @ w2
    clean /= clean.std()
    return (clean + rng.normal(0, noise, clean.shape)).astype(np.float32)


def generate(spec: SyntheticSpec = SyntheticSpec()) -> SyntheticCatalog:
    """Generate a catalogue deterministically from `spec.seed`."""
    rng = np.random.default_rng(spec.seed)
    n = spec.n_artists
    styles = rng.integers(0, spec.n_styles, n)
    centres = rng.normal(0, 1, (spec.n_styles, spec.latent_dim))
    latent = centres[styles] + rng.normal(0, spec.spread, (n, spec.latent_dim))

    popularity = rng.lognormal(mean=6.0, sigma=1.8, size=n).astype(np.float32)
    quantile = popularity.argsort().argsort() / max(n - 1, 1)  # 0 = most niche, 1 = most popular

    def sigmoid(x: np.ndarray) -> np.ndarray:
        return np.asarray(1 / (1 + np.exp(-x)))

    has_cf = rng.random(n) < sigmoid(8 * (quantile - 0.45))
    has_audio = rng.random(n) < 0.85 - 0.45 * quantile
    has_tag = rng.random(n) < 0.25 + 0.65 * quantile

    audio = _view(rng, latent, spec.audio_dim, spec.audio_noise)
    cf = _view(rng, latent, spec.cf_dim, spec.cf_noise)
    tags = _tags(rng, spec, styles, centres, quantile, has_tag)

    ids = np.asarray([f"a{i:07d}" for i in range(n)], dtype=object)
    names = np.asarray([f"Artist {i} ({_style_name(s)})" for i, s in enumerate(styles)], dtype=object)
    catalog = Catalog(
        artist_ids=ids,
        names=names,
        popularity=popularity,
        modalities={
            "audio": VectorTable(present=has_audio, values=audio * has_audio[:, None]),
            "cf": VectorTable(present=has_cf, values=cf * has_cf[:, None]),
            "tag": tags,
        },
    )
    return SyntheticCatalog(catalog=catalog, styles=styles)


def _style_name(style: int) -> str:
    return f"style{style:02d}"


def _tags(
    rng: np.random.Generator,
    spec: SyntheticSpec,
    styles: np.ndarray,
    centres: np.ndarray,
    quantile: np.ndarray,
    has_tag: np.ndarray,
) -> SetTable:
    """Style tags (vectors near a view of the style centre) and generic tags (random vectors)."""
    n_style_tags = spec.n_styles * spec.tags_per_style
    vocab = [f"{_style_name(s)}-tag{j}" for s in range(spec.n_styles) for j in range(spec.tags_per_style)]
    vocab += [f"generic{j}" for j in range(spec.generic_tags)]
    tag_style = np.repeat(np.arange(spec.n_styles), spec.tags_per_style)
    style_view = _view(rng, centres, spec.tag_dim, 0.0)
    vectors = np.concatenate(
        [
            style_view[tag_style] + rng.normal(0, 0.8, (n_style_tags, spec.tag_dim)),
            rng.normal(0, 1.0, (spec.generic_tags, spec.tag_dim)),
        ]
    ).astype(np.float32)

    indptr = [0]
    items: list[int] = []
    weights: list[float] = []
    for i in range(len(styles)):
        if has_tag[i]:
            count = int(rng.integers(2, 4 + int(10 * quantile[i])))
            source = rng.random(count)
            own = styles[i] * spec.tags_per_style + rng.integers(0, spec.tags_per_style, count)
            other = rng.integers(0, n_style_tags, count)
            generic = n_style_tags + rng.integers(0, spec.generic_tags, count)
            drawn = np.where(source < 0.6, own, np.where(source < 0.8, other, generic))
            chosen, counts = np.unique(drawn, return_counts=True)
            weight = counts * rng.integers(1, 100, len(chosen))
            order = np.lexsort((chosen, -weight))
            items.extend(chosen[order].tolist())
            weights.extend(weight[order].astype(float).tolist())
        indptr.append(len(items))
    return SetTable(
        vocab=vocab,
        vocab_vectors=vectors,
        indptr=np.asarray(indptr, dtype=np.int64),
        items=np.asarray(items, dtype=np.int64),
        weights=np.asarray(weights, dtype=np.float32),
    )


def write_synthetic(folder: Path, spec: SyntheticSpec = SyntheticSpec(), overwrite: bool = False) -> SyntheticCatalog:
    """Generate a catalogue and write it to `folder`, with each artist's style as ground truth (see `write_catalog`)."""
    synthetic = generate(spec)
    write_catalog(
        folder,
        synthetic.catalog,
        extra_artist_columns={STYLE_COLUMN: synthetic.styles},
        overwrite=overwrite,
        source={"synthetic": asdict(spec)},
    )
    return synthetic


def read_styles(folder: Path) -> np.ndarray:
    """The ground-truth style of every artist of a synthetic catalogue folder, in artist order."""
    path = Path(folder) / ARTISTS_FILE
    table = pq.read_table(path)
    if STYLE_COLUMN not in table.column_names:
        raise CmarError(f"{path}: no {STYLE_COLUMN} column; is this a synthetic catalogue (cmar catalog synthetic)?")
    return np.asarray(table.column(STYLE_COLUMN).to_numpy(zero_copy_only=False), dtype=np.int64)
