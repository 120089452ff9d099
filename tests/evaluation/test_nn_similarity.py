"""NN-similarity (Tovstogan et al. 2022): the paper's example, exact lists against a full sort, the command."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evaluation.nn_similarity import Space, compare, neighbour_lists, overlap
from tests.conftest import Built


def test_the_paper_s_worked_example() -> None:
    x = np.array([[1, 2, 3, 4, 5]])  # (t1, ..., t5)
    y = np.array([[2, 6, 3, 7, 8]])  # (t2, t6, t3, t7, t8)
    assert overlap(x, y, 5).tolist() == [0.4]


def _scores(vectors: np.ndarray, metric: str) -> np.ndarray:
    x = vectors.astype(np.float64)
    if metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        return x @ x.T
    return -((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2)


@pytest.mark.parametrize("block", [4096, 32])  # one batch of queries; several
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_lists_are_exact_and_ties_go_to_the_lower_index(metric: str, block: int) -> None:
    rng = np.random.default_rng(4)
    x = np.round(rng.standard_normal((120, 6)), 0).astype(np.float32)  # coarse values: many exact ties
    x[7] = x[3]  # duplicates
    x[50] = x[3]
    lists = neighbour_lists(x, 10, metric, batch=block)  # type: ignore[arg-type]
    score = _scores(x, metric)
    assert (lists != np.arange(120)[:, None]).all()  # never its own neighbour
    assert lists[3][:2].tolist() == [7, 50]  # equal (identical) vectors, lower index first
    for i in range(120):  # a full sort's scores at every place (FAISS computes in float32: equal to its precision)
        others = np.delete(score[i], i)
        best = -np.sort(-others)[:10]
        np.testing.assert_allclose(score[i, lists[i]], best, atol=1e-4 * max(1.0, float(np.abs(best).max())))


@pytest.mark.parametrize("block", [4096, 16])
def test_euclidean_lists_on_a_grid_equal_a_full_sort_by_distance_then_index(block: int) -> None:
    grid = np.array([(i, j) for i in range(12) for j in range(9)], dtype=np.float32) * 3.0  # exact, tied distances
    order = np.random.default_rng(1).permutation(len(grid))
    x = grid[order]
    score = _scores(x, "euclidean")
    np.fill_diagonal(score, -np.inf)
    want = np.lexsort((np.broadcast_to(np.arange(len(x)), score.shape), -score), axis=1)[:, :10]
    assert np.array_equal(neighbour_lists(x, 10, "euclidean", batch=block), want)


def test_compare_over_shared_items_whatever_their_order() -> None:
    rng = np.random.default_rng(0)
    ids = np.array([f"a{i}" for i in range(300)])
    x = rng.standard_normal((300, 8)).astype(np.float32)
    shuffled = rng.permutation(300)
    extra = np.vstack([x[shuffled], rng.standard_normal((5, 8)).astype(np.float32)])
    same = Space("same", np.concatenate([ids[shuffled], [f"new{i}" for i in range(5)]]), extra)
    other = Space("other", ids, rng.standard_normal((300, 8)).astype(np.float32))
    report = compare([Space("x", ids, x), same, other], [5, 10], "cosine")
    assert report["n_items"] == 300 and report["only_in_one"] == {"x": 0, "same": 5, "other": 0}
    s10 = report["S"]["10"]  # type: ignore[index]
    assert s10[0][1] == 1.0 and s10[0][0] == 1.0  # the same vectors, rows in another order: the same lists
    assert s10[0][2] < 0.2 and s10[0][2] == s10[2][0]  # unrelated spaces share little; symmetric
    with pytest.raises(ValueError, match="share"):
        compare([Space("x", ids[:5], x[:5]), Space("y", ids[:5], x[:5])], [10])


def test_the_command_compares_an_index_with_a_catalogue_modality(built: Built, tmp_path: Path) -> None:
    out = tmp_path / "report"
    vectors = np.load(built.index / "neighbour_scores.npy")[:, :4]  # any (N, 4) array with the index's ids
    from inference.index import load_index

    ids = load_index(built.index, verify=False).artist_ids
    np.save(tmp_path / "v.npy", vectors)
    (tmp_path / "ids.csv").write_text("artist_id\n" + "\n".join(ids) + "\n")
    spaces = [str(built.index), f"{built.catalog}#audio", str(tmp_path / "v.npy"), "--ids", str(tmp_path / "ids.csv")]
    command = [sys.executable, "-m", "cli.main", "-q", "compare", *spaces, "--n", "5", "10", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "compare.json").read_text())
    assert report["cutoffs"] == [5, 10] and len(report["S"]["10"]) == 3 and report["n_items"] > 100
    assert 0 < report["S"]["10"][0][1] < 1  # the served space keeps some of the raw audio neighbours
    assert "S_10" in (out / "compare.md").read_text()
    bad = subprocess.run([*command[:5], str(built.index), f"{built.catalog}#nope", "--out", str(tmp_path / "r2")],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert bad.returncode == 1 and "no modality 'nope'" in bad.stderr and bad.stderr.count("\n") == 1


def test_encoder_and_tag_spaces_hold_what_the_index_stores(built: Built) -> None:
    """MODEL#MODALITY@CATALOG is the encoder's own output: the index keeps the same embeddings for explanations."""
    from catalog.io import read_catalog
    from catalog.tables import SetTable
    from core.errors import CmarError
    from evaluation.nn_similarity import load_space
    from inference.index import load_index

    loaded = load_index(built.index, verify=False)
    assert loaded.details is not None
    for modality in ("cf", "tag"):
        space = load_space(f"{built.model}#{modality}@{built.catalog}")
        rows = [loaded.row_of[a] for a in space.ids]
        stored = loaded.details.embeddings[modality][rows].astype(np.float32)
        np.testing.assert_allclose(space.vectors, stored, atol=2e-3)  # float16 in the index
        np.testing.assert_allclose(np.linalg.norm(space.vectors, axis=1), 1, atol=1e-5)
    tags = load_space(f"{built.catalog}#tag")
    table = read_catalog(built.catalog).modalities["tag"]
    assert isinstance(table, SetTable) and len(tags.ids) == int(table.present.sum())
    with pytest.raises(CmarError, match="no 'audio2' encoder"):
        load_space(f"{built.model}#audio2@{built.catalog}")


@pytest.mark.parametrize(
    ("metric", "transform"),
    [
        ("cosine", lambda a: a * 1e20),  # norms that overflow float32 when squared
        ("cosine", lambda a: a * 1e-25),
        ("euclidean", lambda a: a * 1e20),
        ("euclidean", lambda a: a * 1e-25),
        ("euclidean", lambda a: a + 1e4),  # a common offset: distances do not change
    ],
)
def test_lists_do_not_depend_on_the_scale_or_the_offset_of_the_vectors(metric: str, transform: object) -> None:
    rng = np.random.default_rng(3)
    a = rng.standard_normal((600, 64))
    want = neighbour_lists(a, 10, metric)  # type: ignore[arg-type]
    got = neighbour_lists(transform(a), 10, metric)  # type: ignore[arg-type, operator]
    assert (got >= 0).all() and all(len(set(row)) == 10 for row in got.tolist())
    assert (got != np.arange(600)[:, None]).all()
    assert overlap(want, got, 10).mean() >= 0.99  # the same lists, up to float rounding at the cutoff
