"""The loss against a direct, loop-based implementation of the paper's formula, and its masking."""

import math

import pytest
import torch
import torch.nn.functional as F

from model_export.loss import info_nce_terms, multimodal_loss, pair_loss


def _paper_formula(a: torch.Tensor, b: torch.Tensor, t: float) -> float:
    """L_ab = sum_i -log( exp(cos(a_i,b_i)/t) / sum_{k=1..2M, k!=i} exp(cos(a_i, zeta_k)/t) ), by loops."""
    m = a.shape[0]
    zeta = [a[j] for j in range(m)] + [b[j] for j in range(m)]
    total = 0.0
    for i in range(m):
        numerator = math.exp(float(F.cosine_similarity(a[i], b[i], dim=0)) / t)
        denominator = sum(
            math.exp(float(F.cosine_similarity(a[i], zeta[k], dim=0)) / t) for k in range(2 * m) if k != i
        )
        total += -math.log(numerator / denominator)
    return total


@pytest.mark.parametrize("m", [2, 5, 9])
def test_terms_sum_to_the_paper_formula(m: int) -> None:
    gen = torch.Generator().manual_seed(m)
    a = F.normalize(torch.randn(m, 6, generator=gen, dtype=torch.float64), dim=1)
    b = F.normalize(torch.randn(m, 6, generator=gen, dtype=torch.float64), dim=1)
    assert float(info_nce_terms(a, b, 0.1).sum()) == pytest.approx(_paper_formula(a, b, 0.1), rel=1e-9)
    assert float(pair_loss(a, b, 0.1)) == pytest.approx(
        (_paper_formula(a, b, 0.1) + _paper_formula(b, a, 0.1)) / (2 * m), rel=1e-9
    )


def test_aligned_pairs_give_a_lower_loss_than_shuffled_ones() -> None:
    a = F.normalize(torch.randn(16, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    assert float(pair_loss(a, a, 0.1)) < float(pair_loss(a, a.roll(1, dims=0), 0.1))


def test_missing_modalities_are_left_out_of_each_pair() -> None:
    gen = torch.Generator().manual_seed(1)
    emb = {n: F.normalize(torch.randn(6, 4, generator=gen, dtype=torch.float64), dim=1) for n in ("audio", "cf", "tag")}
    present = {
        "audio": torch.tensor([1, 1, 1, 0, 0, 1], dtype=torch.bool),
        "cf": torch.tensor([1, 1, 0, 1, 1, 0], dtype=torch.bool),
        "tag": torch.tensor([0, 0, 0, 1, 1, 1], dtype=torch.bool),
    }
    total, parts = multimodal_loss(emb, present, 0.1)
    # audio-cf: rows 0, 1; audio-tag: row 5 alone (no negatives, skipped); cf-tag: rows 3, 4.
    assert set(parts) == {"audio-cf", "cf-tag"}
    expected = pair_loss(emb["audio"][:2], emb["cf"][:2], 0.1) + pair_loss(emb["cf"][3:5], emb["tag"][3:5], 0.1)
    assert float(total) == pytest.approx(float(expected), rel=1e-9)
    # Garbage in the rows of absent modalities changes nothing.
    emb["tag"][:3] = 100.0
    assert float(multimodal_loss(emb, present, 0.1)[0]) == pytest.approx(float(expected), rel=1e-9)


def test_random_halves_are_disjoint_non_empty_and_cover_the_modalities() -> None:
    from model_export.loss import random_halves

    gen = torch.Generator().manual_seed(0)
    has = torch.rand(3, 500, generator=gen) < 0.7
    left, right = random_halves(has, gen)
    assert not (left & right).any()
    assert torch.equal(left | right, has)
    two_or_more = has.sum(dim=0) >= 2
    assert left.any(dim=0)[two_or_more].all() and right.any(dim=0)[two_or_more].all()
    # Both ways of splitting a 3-modality artist (1 vs 2 and 2 vs 1) occur.
    full = has.all(dim=0)
    assert set(left[:, full].sum(dim=0).tolist()) == {1, 2}


def test_fuse_torch_equals_core_fuse() -> None:
    import numpy as np

    from core.vectors import fuse
    from model_export.loss import fuse_torch

    gen = torch.Generator().manual_seed(1)
    emb = F.normalize(torch.randn(3, 10, 6, generator=gen), dim=-1)
    has = torch.rand(3, 10, generator=gen) < 0.6
    has[0] = True
    np.testing.assert_allclose(fuse_torch(emb, has).numpy(), fuse(emb.numpy(), has.numpy()), atol=1e-6)


def test_subset_loss_is_lower_when_halves_agree() -> None:
    from model_export.loss import subset_loss

    gen = torch.Generator().manual_seed(2)
    base = F.normalize(torch.randn(16, 8, generator=gen), dim=-1)
    present = {n: torch.ones(16, dtype=torch.bool) for n in ("audio", "cf", "tag")}
    agree = {n: base for n in present}
    disagree = {n: F.normalize(torch.randn(16, 8, generator=gen), dim=-1) for n in present}
    low = float(subset_loss(agree, present, 0.1, torch.Generator().manual_seed(0)))
    high = float(subset_loss(disagree, present, 0.1, torch.Generator().manual_seed(0)))
    assert low < high
