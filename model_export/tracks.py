"""The track encoder: audio metric learning with the triplet loss (Royo-Letelier et al., ISMIR 2018).

A network maps a track's audio features to the unit sphere. It is trained with the triplet
loss l = max(0, |f(a) - f(p)|^2 - |f(a) - f(n)|^2 + alpha) on the hard and semi-hard triplets
of each batch (Section 3.1); with probability p a negative is drawn among tracks sharing a tag
with the anchor (side information, Section 3.2). The paper's baseline is the last hidden layer
of an artist classifier (Section 4.2), trained here with the same trunk.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from tqdm import tqdm

from core.errors import CmarError

log = logging.getLogger(__name__)

Method = Literal["triplet", "triplet_sideinfo", "classifier"]
METHODS: tuple[str, ...] = ("triplet", "triplet_sideinfo", "classifier")


@dataclass
class TrackConfig:
    """Everything that defines a track-encoder training run; the paper's values unless noted."""

    method: str = "triplet"  # triplet | triplet_sideinfo | classifier (the paper's baseline)
    margin: float = 0.2  # alpha of the triplet loss
    artists_per_batch: int = 32  # N artists drawn per iteration
    tracks_per_artist: int = 4  # n tracks per artist (fewer when an artist has fewer)
    side_info_p: float = 0.5  # triplet_sideinfo: probability of a same-tag negative
    hidden: tuple[int, ...] = (256,)  # hidden layers of the trunk (cmar: small, for track-level descriptors)
    embedding_dim: int = 64  # output dimension, on the unit sphere
    dropout: float = 0.1  # after each hidden layer (cmar)
    lr: float = 3e-4  # Adam learning rate (cmar: chosen on validation artists, see METHOD_DEFAULTS)
    weight_decay: float = 1e-4  # Adam weight decay (cmar)
    iterations: int = 4000  # optimisation steps
    classifier_batch: int = 256  # tracks per step of the classifier baseline
    val_fraction: float = 0.2  # share of artists held out to choose the clustering threshold
    seed: int = 0  # seeds torch, the batches and the split
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes carried into the manifest

    def __post_init__(self) -> None:
        problems = []
        if self.method not in METHODS:
            problems.append(f"method must be one of {', '.join(METHODS)}")
        if not 0 < self.margin <= 4:
            problems.append("margin must be in (0, 4]: squared distances on the unit sphere are at most 4")
        if self.artists_per_batch < 2 or self.tracks_per_artist < 2:
            problems.append("artists_per_batch and tracks_per_artist must be >= 2")
        if not 0 <= self.side_info_p <= 1:
            problems.append("side_info_p must be in [0, 1]")
        if self.embedding_dim < 1 or any(h < 1 for h in self.hidden):
            problems.append("embedding_dim and hidden sizes must be >= 1")
        if not 0 <= self.dropout < 1 or not 0 <= self.val_fraction < 1:
            problems.append("dropout and val_fraction must be in [0, 1)")
        if not math.isfinite(self.lr) or self.lr <= 0 or self.weight_decay < 0:
            problems.append("lr must be > 0 and weight_decay >= 0")
        if not 1 <= self.iterations <= 10_000_000 or self.classifier_batch < 2:
            problems.append("iterations must be 1 to 10,000,000 and classifier_batch >= 2")
        if not 0 <= self.seed < 2**32:
            problems.append("seed must be between 0 and 2^32 - 1")
        if problems:
            raise CmarError("invalid track config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = asdict(self)
        out["hidden"] = list(self.hidden)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrackConfig:
        """Rebuild from `to_dict`'s output."""
        return cls(**{**data, "hidden": tuple(data.get("hidden", (256,)))})


# Each method's settings where they differ from TrackConfig's, chosen on validation artists carved
# from the training artists of both shared data sets (never the test artists): the mean homonym
# AMI of five variants (README, Artist disambiguation).
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "triplet": {},
    "triplet_sideinfo": {},
    "classifier": {"lr": 1e-3, "iterations": 1500},
}


def method_config(method: str, **overrides: Any) -> TrackConfig:
    """The config of `method` with its defaults (METHOD_DEFAULTS), then `overrides` (None values ignored)."""
    if method not in METHODS:
        raise CmarError(f"unknown track method {method!r}; expected one of {', '.join(METHODS)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    return TrackConfig(**{**METHOD_DEFAULTS[method], **given, "method": method})


class TrackEncoder(nn.Module):
    """Standardise, MLP trunk, linear head, L2-normalise: audio (B, d) -> unit vectors (B, e)."""

    mean: torch.Tensor  # (d,) buffers: the training tracks' mean and standard deviation
    std: torch.Tensor

    def __init__(self, input_dim: int, config: TrackConfig, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float())
        layers: list[nn.Module] = []
        width = input_dim
        for h in config.hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(config.dropout)]
            width = h
        layers.append(nn.Linear(width, config.embedding_dim))
        self.net = nn.Sequential(*layers)
        self.embedding_dim = config.embedding_dim

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """The head's output before normalisation (the classifier's last hidden layer)."""
        return self.net((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.raw(x)
        # Scaled by its largest value first, so that the norm cannot overflow for large inputs.
        z = z / z.abs().amax(dim=-1, keepdim=True).clamp_min(1e-30)
        return nn.functional.normalize(z, dim=-1)


def triplet_losses(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float) -> torch.Tensor:
    """(B,) the triplet loss max(0, |a - p|^2 - |a - n|^2 + margin) of each triplet (the paper's Eq. 1)."""
    d_ap = (anchor - positive).pow(2).sum(-1)
    d_an = (anchor - negative).pow(2).sum(-1)
    return torch.relu(d_ap - d_an + margin)


def informative(d_ap: torch.Tensor, d_an: torch.Tensor, margin: float) -> torch.Tensor:
    """(B,) True for the hard (d_an < d_ap) and semi-hard (d_ap <= d_an < d_ap + margin) triplets.

    `d_ap`, `d_an` are squared distances; easy triplets (d_an >= d_ap + margin) are dropped.
    """
    return d_an < d_ap + margin


def selected_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float) -> torch.Tensor:
    """The mean triplet loss over the hard and semi-hard triplets only (0 when there are none)."""
    d_ap = (anchor - positive).pow(2).sum(-1)
    d_an = (anchor - negative).pow(2).sum(-1)
    keep = informative(d_ap, d_an, margin)
    if not bool(keep.any()):
        return (anchor * 0).sum()
    return torch.relu(d_ap[keep] - d_an[keep] + margin).mean()


SIDE_INFO_TRIES = 8  # draws among same-tag tracks before falling back to any other artist


class TripletSampler:
    """Draws the paper's batches: N artists x n tracks, every positive pair, one negative each.

    `labels` (T,) artist of each track; `tags` (T,) each track's tags (side information) or
    None. With probability `side_info_p` a negative is drawn among other artists' tracks that
    share a tag with the anchor; when there is none it falls back to any other artist's track.
    """

    def __init__(
        self,
        labels: npt.NDArray[np.int64],
        tags: list[tuple[str, ...]] | None,
        artists_per_batch: int,
        tracks_per_artist: int,
        side_info_p: float,
        rng: np.random.Generator,
    ) -> None:
        self.labels = np.asarray(labels, dtype=np.int64)
        self.rng = rng
        self.n_artists, self.n_tracks, self.p = artists_per_batch, tracks_per_artist, side_info_p
        order = np.argsort(self.labels, kind="stable")
        bounds = np.flatnonzero(np.r_[True, self.labels[order][1:] != self.labels[order][:-1], True])
        self.tracks_of = {int(self.labels[order[s]]): order[s:e] for s, e in itertools.pairwise(bounds)}
        self.eligible = np.array([a for a, t in self.tracks_of.items() if len(t) >= 2], dtype=np.int64)
        if len(self.eligible) < 1 or len(self.tracks_of) < 2:
            raise CmarError("triplet training needs at least 2 artists, one of them with 2 tracks or more")
        self.with_tag: dict[str, npt.NDArray[np.int64]] = {}
        self.tags = tags
        if tags is not None and side_info_p > 0:
            members: dict[str, list[int]] = {}
            for t, names in enumerate(tags):
                for name in names:
                    members.setdefault(name, []).append(t)
            self.with_tag = {k: np.asarray(v, dtype=np.int64) for k, v in members.items()}
        self.side_info_draws = 0  # negatives drawn among same-tag tracks
        self.draws = 0

    def negative(self, anchor: int) -> int:
        """One negative for `anchor`: a same-tag track of another artist with probability p, else any other.

        A same-tag negative is drawn as one of the anchor's tags, then one of that tag's tracks,
        a few tries to find another artist's (constant time, whatever the catalogue's size).
        """
        self.draws += 1
        own = self.labels[anchor]
        if self.with_tag and self.tags is not None and self.tags[anchor] and self.rng.random() < self.p:
            for _ in range(SIDE_INFO_TRIES):
                pool = self.with_tag[self.tags[anchor][int(self.rng.integers(len(self.tags[anchor])))]]
                candidate = int(pool[int(self.rng.integers(len(pool)))])
                if self.labels[candidate] != own:
                    self.side_info_draws += 1
                    return candidate
        while True:
            candidate = int(self.rng.integers(len(self.labels)))
            if self.labels[candidate] != own:
                return candidate

    def batch(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(anchors, positives, negatives): track indices of N * n(n-1)/2 triplets (fewer for small artists)."""
        artists = self.rng.choice(self.eligible, size=min(self.n_artists, len(self.eligible)), replace=False)
        a, p = [], []
        for artist in artists:
            tracks = self.tracks_of[int(artist)]
            drawn = self.rng.choice(tracks, size=min(self.n_tracks, len(tracks)), replace=False)
            i, j = np.triu_indices(len(drawn), k=1)
            a.append(drawn[i])
            p.append(drawn[j])
        anchors, positives = np.concatenate(a), np.concatenate(p)
        negatives = np.fromiter((self.negative(int(x)) for x in anchors), dtype=np.int64, count=len(anchors))
        return anchors, positives, negatives


@dataclass
class TrainedTracks:
    """A trained track encoder and its loss history (mean loss per 100 iterations)."""

    encoder: TrackEncoder
    config: TrackConfig
    losses: list[float]
    side_info_rate: float | None  # share of negatives drawn among same-tag tracks (triplet methods)


def train_tracks(
    audio: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int64],
    tags: list[tuple[str, ...]] | None,
    config: TrackConfig,
    progress: bool = True,
) -> TrainedTracks:
    """Train a track encoder on tracks `audio` (T, d) of artists `labels` (T,) with `config.method`.

    Raises CmarError when there is too little to learn from (fewer than 2 artists, or no
    artist with 2 tracks for the triplet methods).
    """
    audio = np.asarray(audio, dtype=np.float32)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    x = torch.from_numpy(audio)
    std = x.std(dim=0, unbiased=False)
    encoder = TrackEncoder(audio.shape[1], config, x.mean(dim=0), torch.where(std > 0, std, torch.ones_like(std)))
    if config.method == "classifier":
        losses, rate = _train_classifier(encoder, x, labels, config, progress), None
    else:
        sampler = TripletSampler(
            labels,
            tags,
            config.artists_per_batch,
            config.tracks_per_artist,
            config.side_info_p if config.method == "triplet_sideinfo" else 0.0,
            rng,
        )
        losses = _train_triplet(encoder, x, sampler, config, progress)
        rate = sampler.side_info_draws / max(sampler.draws, 1)
    encoder.eval()
    return TrainedTracks(encoder, config, losses, rate)


def _train_triplet(
    encoder: TrackEncoder, x: torch.Tensor, sampler: TripletSampler, config: TrackConfig, progress: bool
) -> list[float]:
    def step() -> torch.Tensor:
        anchors, positives, negatives = sampler.batch()
        used, inverse = np.unique(np.concatenate([anchors, positives, negatives]), return_inverse=True)
        out = encoder(x[torch.from_numpy(used)])
        k = len(anchors)
        idx = torch.from_numpy(inverse)
        return selected_loss(out[idx[:k]], out[idx[k : 2 * k]], out[idx[2 * k :]], config.margin)

    return _optimise(step, list(encoder.parameters()), encoder, config, "triplet", progress)


def _train_classifier(
    encoder: TrackEncoder, x: torch.Tensor, labels: npt.NDArray[np.int64], config: TrackConfig, progress: bool
) -> list[float]:
    classes, y = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise CmarError("the classifier baseline needs tracks of at least 2 artists")
    head = nn.Sequential(nn.ReLU(), nn.Dropout(config.dropout), nn.Linear(config.embedding_dim, len(classes)))
    target = torch.from_numpy(y.astype(np.int64))
    gen = torch.Generator().manual_seed(config.seed)

    def step() -> torch.Tensor:
        batch = torch.randint(len(x), (min(config.classifier_batch, len(x)),), generator=gen)
        return nn.functional.cross_entropy(head(encoder.raw(x[batch])), target[batch])

    params = list(encoder.parameters()) + list(head.parameters())
    return _optimise(step, params, encoder, config, "classifier", progress)


def _optimise(
    step: Callable[[], torch.Tensor],
    params: list[nn.Parameter],
    encoder: TrackEncoder,
    config: TrackConfig,
    desc: str,
    progress: bool,
) -> list[float]:
    """`config.iterations` Adam steps on the loss `step` computes; the mean loss of every 100 steps (and the rest)."""
    optimiser = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    encoder.train()
    history: list[float] = []
    window: list[float] = []
    for _ in tqdm(range(config.iterations), desc=desc, disable=not progress, leave=False):
        loss = step()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        window.append(loss.item())
        if len(window) == 100:
            history.append(float(np.mean(window)))
            window = []
    return history + ([float(np.mean(window))] if window else [])


def embed(encoder: TrackEncoder, audio: npt.NDArray[np.float32], batch: int = 4096) -> npt.NDArray[np.float32]:
    """(T, d) audio -> (T, e) unit vectors with the PyTorch encoder (evaluation mode)."""
    encoder.eval()
    with torch.no_grad():
        parts = [
            encoder(torch.from_numpy(np.asarray(audio[i : i + batch], dtype=np.float32)))
            for i in range(0, len(audio), batch)
        ]
    return torch.cat(parts).numpy() if parts else np.zeros((0, encoder.embedding_dim), dtype=np.float32)
