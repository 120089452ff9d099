"""cmar map: map folders, their measured preservation, and maps as spaces of cmar compare."""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from cli.main import main
from evaluation.maps import preservation, read_map
from evaluation.nn_similarity import Space, compare


def _clusters(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 5, (6, 20))
    x = np.concatenate([c + rng.normal(0, 0.5, (40, 20)) for c in centres]).astype(np.float32)
    np.save(tmp_path / "space.npy", x)
    (tmp_path / "ids.txt").write_text("\n".join(f"i{k}" for k in range(len(x))) + "\n")
    return tmp_path / "space.npy", tmp_path / "ids.txt"


@pytest.mark.parametrize("method", ["pca", "random", "tsne", "umap"])
def test_map_folder_holds_coordinates_and_the_measured_preservation(tmp_path: Path, method: str) -> None:
    space, ids = _clusters(tmp_path)
    out = tmp_path / f"map_{method}"
    assert main(["-q", "map", str(space), "--ids", str(ids), "--method", method, "--seed", "1",
                 "--metric", "euclidean", "--out", str(out)]) == 0  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "map" and manifest["method"] == method and manifest["seed"] == 1
    assert set(manifest["preservation"]) == {"5", "10", "100", "200"}
    table = pq.read_table(out / "map.parquet")
    assert table.column_names == ["id", "x", "y"] and table.num_rows == 240
    # measured, not claimed: recompute from the folder
    mapped = read_map(out)
    x = np.load(space)
    assert preservation(x, mapped.vectors, (10,), "euclidean")["10"] == manifest["preservation"]["10"]
    if method in ("tsne", "umap"):  # six far clusters: a neighbour-keeping map keeps most 10-NN lists' cluster
        assert manifest["preservation"]["10"] > 0.3


def test_a_map_is_a_space_of_compare_by_euclidean_distance(tmp_path: Path) -> None:
    space, ids = _clusters(tmp_path)
    assert main(["-q", "map", str(space), "--ids", str(ids), "--method", "pca", "--out", str(tmp_path / "m")]) == 0
    out = tmp_path / "cmp"
    assert main(["-q", "compare", str(space), str(tmp_path / "m"), "--ids", str(ids), "--n", "10",
                 "--out", str(out)]) == 0  # fmt: skip
    report = json.loads((out / "compare.json").read_text())
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    x = np.load(space)
    expected = compare([Space("a", np.array([f"i{k}" for k in range(240)]), x),
                        Space("b", *_as(read_map(tmp_path / "m")), metric="euclidean")], [10])  # fmt: skip
    assert report["S"]["10"][0][1] == expected["S"]["10"][0][1]
    assert (out / "heatmap_S10.png").stat().st_size > 0
    assert manifest["source_metric"] == "cosine"


def _as(space: Space) -> tuple[np.ndarray, np.ndarray]:
    return space.ids, space.vectors


def test_map_of_a_missing_space_is_one_line_and_no_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["map", str(tmp_path / "nothing.npy"), "--ids", str(tmp_path / "x"), "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and not (tmp_path / "m").exists()


@pytest.mark.parametrize("n_items", [3, 12, 120])  # 3 items take the plain schedule, more the cool-down
def test_tsne_maps_of_few_items_keep_them_apart(n_items: int) -> None:
    from evaluation.maps import project

    x = np.random.default_rng(n_items).standard_normal((n_items, 16)).astype(np.float32)
    y = project(x, "tsne", seed=0)
    assert y.shape == (n_items, 2) and np.isfinite(y).all()
    gaps = np.linalg.norm(y[:, None, :] - y[None, :, :], axis=2)[np.triu_indices(n_items, 1)]
    assert gaps.min() > 1e-3 * gaps.max() > 0  # no two items on one point
