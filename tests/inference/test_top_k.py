"""The exact index's selection: the k largest scores of each row, best first, as a full sort gives them."""

import numpy as np
import pytest

from inference.index import BLOCK, _top_k


@pytest.mark.parametrize("n", [5, BLOCK - 1, BLOCK * 3, BLOCK * 40 + 17, 3756])
@pytest.mark.parametrize("k", [1, 2, 10, 19, 64, 300])
def test_top_k_equals_a_full_sort(n: int, k: int) -> None:
    rng = np.random.default_rng(n * 1000 + k)
    scores = rng.standard_normal((7, n)).astype(np.float32)
    scores[3] = np.round(scores[3], 1)  # many ties
    scores[4, : n // 2] = scores[4].max() + 1  # the best all in the first blocks
    k = min(k, n)
    values, columns = _top_k(scores, k)
    assert values.shape == columns.shape == (7, k)
    expected = -np.sort(-scores, axis=1)[:, :k]
    np.testing.assert_array_equal(values, expected)  # the same values, best first (ties in any order)
    np.testing.assert_array_equal(np.take_along_axis(scores, columns, axis=1), values)
    assert all(len(set(row.tolist())) == k for row in columns)  # no column twice
