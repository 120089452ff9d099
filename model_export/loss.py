"""The paper's pairwise InfoNCE, summed over every pair of modalities, with missing-modality masking."""

from __future__ import annotations

import torch

from core.modalities import modality_pairs


def info_nce_terms(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per-anchor terms of the paper's loss L_ab for unit vectors a, b of shape (M, D).

    Term i is -log( exp(cos(a_i, b_i)/t) / sum_{k != i} exp(cos(a_i, zeta_k)/t) ) with
    zeta = [a; b], the 2M outputs of both modalities: 2M - 1 candidates, the positive b_i among them.
    Returns (M,); their sum is L_ab.
    """
    m = a.shape[0]
    zeta = torch.cat([a, b], dim=0)  # (2M, D)
    logits = a @ zeta.T / temperature  # (M, 2M)
    self_mask = torch.eye(m, 2 * m, dtype=torch.bool, device=a.device)  # k == i: a_i against itself
    logits = logits.masked_fill(self_mask, float("-inf"))
    positive = torch.arange(m, device=a.device) + m  # b_i sits at index M + i of zeta
    return -logits.log_softmax(dim=1)[torch.arange(m, device=a.device), positive]


def pair_loss(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE of one modality pair: the mean term with a as anchors and with b as anchors."""
    return 0.5 * (info_nce_terms(a, b, temperature).mean() + info_nce_terms(b, a, temperature).mean())


def multimodal_loss(
    embeddings: dict[str, torch.Tensor],
    present: dict[str, torch.Tensor],
    temperature: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum of pair losses over every modality pair, each over the artists that have both sides.

    embeddings: name -> (B, D) unit vectors (rows of artists lacking the modality are ignored).
    present: name -> (B,) bool. A pair with fewer than two such artists has no negatives and is skipped.
    Returns the total and each pair's value (for logging).
    """
    names = tuple(name for name in embeddings)
    total = next(iter(embeddings.values())).new_zeros(())
    parts: dict[str, float] = {}
    for a, b in modality_pairs(names):
        both = present[a] & present[b]
        if int(both.sum()) < 2:
            continue
        value = pair_loss(embeddings[a][both], embeddings[b][both], temperature)
        parts[f"{a}-{b}"] = float(value.detach())
        total = total + value
    return total, parts


def fuse_torch(embeddings: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Differentiable twin of core.vectors.fuse: (M, B, D) unit vectors, (M, B) bool -> (B, D)."""
    weights = present.to(embeddings.dtype).unsqueeze(-1)  # (M, B, 1)
    mean = (embeddings * weights).sum(dim=0) / weights.sum(dim=0).clamp_min(1.0)
    return torch.nn.functional.normalize(mean, dim=-1)


def random_halves(has: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Split each artist's present modalities (M, B) at random into two disjoint halves.

    An artist with at least two modalities gets two non-empty halves; one with fewer gets
    what it has on one side.
    """
    side = torch.rand(has.shape, generator=generator) < 0.5  # (M, B): which half each modality goes to
    left, right = has & side, has & ~side
    # Where a half came out empty, the first present modality moves to it from the other half.
    first = torch.argmax(has.to(torch.int8), dim=0)  # (B,)
    moved = torch.nn.functional.one_hot(first, has.shape[0]).T.bool() & has  # (M, B)
    empty_left, empty_right = ~left.any(dim=0), ~right.any(dim=0)
    left, right = torch.where(empty_left, moved, left), torch.where(empty_left, has & ~moved, right)
    right, left = torch.where(empty_right, moved, right), torch.where(empty_right, has & ~moved, left)
    return left, right


def subset_loss(
    embeddings: dict[str, torch.Tensor],
    present: dict[str, torch.Tensor],
    temperature: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """InfoNCE between the fuses of two random disjoint halves of each artist's modalities.

    Every artist with at least two modalities has them split at random into two non-empty
    groups; the fuse of one group must find the fuse of the other among the batch. This trains
    fused vectors of different modality subsets of one artist to agree, which is what retrieval
    across artists with different modalities needs.
    """
    names = list(embeddings)
    stack = torch.stack([embeddings[n] for n in names])  # (M, B, D)
    has = torch.stack([present[n] for n in names])  # (M, B)
    eligible = has.sum(dim=0) >= 2
    if int(eligible.sum()) < 2:
        return stack.new_zeros(())
    left, right = random_halves(has, generator)
    a = fuse_torch(stack, left)[eligible]
    b = fuse_torch(stack, right)[eligible]
    return pair_loss(a, b, temperature)
