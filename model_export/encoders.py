"""The per-modality encoders of the paper, each ending L2-normalised in the shared space."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from core.modalities import ModalityKind, get_modality
from model_export.config import TrainConfig


class Encoder(nn.Module):
    """What every modality encoder has: its output size and its input standardisation."""

    out_dim: int
    mean: torch.Tensor  # (in_dim,) buffer: mean of the training inputs
    std: torch.Tensor  # (in_dim,) buffer: their standard deviation
    centre: torch.Tensor  # (out_dim,) buffer: this modality's mean output, removed after training (0 before)

    def _setup(self, in_dim: int, out_dim: int) -> None:
        self.out_dim = out_dim
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        self.register_buffer("centre", torch.zeros(out_dim))

    def _output(self, h: torch.Tensor) -> torch.Tensor:
        """Unit vector in the shared space, minus the modality's centre, unit again. (B, D)"""
        return F.normalize(F.normalize(h, dim=-1) - self.centre, dim=-1)


class VectorEncoder(Encoder):
    """Standardise a fixed-length embedding, then an MLP with ReLUs into the shared space."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...], out_dim: int) -> None:
        super().__init__()
        self._setup(in_dim, out_dim)
        layers: list[nn.Module] = []
        width = in_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, out_dim))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_dim) -> (B, out_dim), unit length."""
        return self._output(self.mlp((x - self.mean) / self.std))


class TagEncoder(Encoder):
    """Multi-head self-attention over an artist's tag vectors, weighted mean pooling, projection."""

    def __init__(self, in_dim: int, width: int, heads: int, out_dim: int) -> None:
        super().__init__()
        self._setup(in_dim, out_dim)
        self.heads = heads
        self.inp = nn.Linear(in_dim, width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, out_dim)

    def forward(self, tags: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """tags (B, T, in_dim), weights (B, T) >= 0 (0 = padding) -> (B, out_dim), unit length."""
        mask = weights > 0  # (B, T)
        b, t, _ = tags.shape
        h = self.inp((tags - self.mean) / self.std)  # (B, T, W)
        w = h.shape[-1]
        q, k, v = self.qkv(h).split(w, dim=-1)
        q, k, v = (z.reshape(b, t, self.heads, w // self.heads).transpose(1, 2) for z in (q, k, v))  # (B, H, T, W/H)
        scores = q @ k.transpose(-2, -1) / math.sqrt(w // self.heads)  # (B, H, T, T)
        scores = scores.masked_fill(~mask[:, None, None, :], -1e9)  # padded tags receive no attention
        attended = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, t, w)  # (B, T, W)
        h = self.norm(h + self.proj(attended))
        pool = weights.to(h.dtype).unsqueeze(-1)  # (B, T, 1)
        pooled = (h * pool).sum(dim=1) / pool.sum(dim=1).clamp_min(1e-6)  # (B, W)
        return self._output(self.out(pooled))


def build_encoder(name: str, input_dim: int, config: TrainConfig) -> Encoder:
    """The encoder the paper uses for modality `name`."""
    modality = get_modality(name)
    if modality.kind is ModalityKind.SET:
        return TagEncoder(input_dim, config.tag_width, config.tag_heads, config.embedding_dim)
    return VectorEncoder(input_dim, config.hidden.get(name, modality.hidden), config.embedding_dim)


class CrossModalModel(nn.Module):
    """One encoder per modality the catalogue has."""

    def __init__(self, input_dims: dict[str, int], config: TrainConfig) -> None:
        super().__init__()
        self.input_dims = dict(input_dims)
        self.encoders = nn.ModuleDict({name: build_encoder(name, dim, config) for name, dim in input_dims.items()})

    def encoder(self, name: str) -> Encoder:
        """The encoder of one modality."""
        module = self.encoders[name]
        assert isinstance(module, Encoder)
        return module

    def items(self) -> list[tuple[str, Encoder]]:
        """(modality, encoder) pairs in catalogue order."""
        return [(name, self.encoder(name)) for name in self.encoders]
