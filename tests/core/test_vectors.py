"""Normalise and fuse."""

import numpy as np
import pytest

from core.vectors import fuse, l2_normalize


def test_l2_normalize_unit_length_and_zero_stays_zero() -> None:
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    out = l2_normalize(x)
    np.testing.assert_allclose(out[0], [0.6, 0.8], rtol=1e-6)
    np.testing.assert_array_equal(out[1], [0.0, 0.0])
    assert out.dtype == np.float32


def test_fuse_averages_normalised_vectors_of_present_modalities_only() -> None:
    vectors = np.array(
        [
            [[10.0, 0.0], [0.0, 2.0], [5.0, 5.0]],  # modality 0 for three artists
            [[0.0, 3.0], [7.0, 7.0], [1.0, 0.0]],  # modality 1
        ]
    )
    present = np.array([[True, True, False], [True, False, False]])
    fused = fuse(vectors, present)
    s = 1 / np.sqrt(2)
    np.testing.assert_allclose(fused[0], [s, s], rtol=1e-6)  # mean of (1,0) and (0,1), renormalised
    np.testing.assert_allclose(fused[1], [0.0, 1.0], rtol=1e-6)  # only modality 0; the 7,7 row is ignored
    np.testing.assert_array_equal(fused[2], [0.0, 0.0])  # no modality: zero vector


def test_fuse_is_invariant_to_input_scale() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3, 5, 8))
    present = rng.random((3, 5)) < 0.7
    present[0] = True
    scaled = vectors * rng.uniform(0.1, 10, size=(3, 5, 1))
    np.testing.assert_allclose(fuse(vectors, present), fuse(scaled, present), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(fuse(vectors, present), axis=1), 1.0, rtol=1e-5)


def test_fuse_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="fuse expects"):
        fuse(np.zeros((2, 3, 4)), np.zeros((3, 2), dtype=bool))


def test_hub_penalty_forms_give_cosine_minus_penalty() -> None:
    from core.vectors import as_candidates, as_queries, hub_penalty

    rng = np.random.default_rng(0)
    cands, queries = l2_normalize(rng.normal(size=(6, 4))), l2_normalize(rng.normal(size=(3, 4)))
    sims = np.array([[0.9, 0.5], [0.2, 0.2], [0.0, 0.4], [1.0, 1.0], [0.3, 0.1], [0.6, 0.2]])
    penalty = hub_penalty(sims, beta=0.5)
    np.testing.assert_allclose(penalty, 0.25 * sims.mean(axis=1), rtol=1e-6)
    scores = as_queries(queries) @ as_candidates(cands, penalty).T
    np.testing.assert_allclose(scores, queries @ cands.T - penalty[None, :], atol=1e-6)
