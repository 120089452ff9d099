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
