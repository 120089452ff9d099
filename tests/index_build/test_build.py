"""The index job: fused vectors, FAISS against brute force, self-check, refusals."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from catalog.io import read_catalog
from core.errors import CmarError
from core.fusion import Fusion
from core.manifest import IndexManifest, ModelManifest, SelfCheck, read_manifest
from core.vectors import fuse
from index_build.build import UNINDEXED_FILE, build_index
from inference.index import load_index, vectors_of
from model_export.inputs import ModalityInputs, encode_rows
from model_export.train import load_checkpoint
from tests.conftest import Built


def test_every_artist_with_a_modality_is_indexed_with_the_fused_vector(built: Built) -> None:
    catalog = read_catalog(built.catalog)
    loaded = load_index(built.index)
    present = catalog.present()
    has_any = present.any(axis=0)
    assert loaded.artist_ids == catalog.artist_ids[has_any].tolist()
    unindexed = json.loads((built.index / UNINDEXED_FILE).read_text())
    assert unindexed == catalog.artist_ids[~has_any].tolist() and len(unindexed) > 0
    assert loaded.manifest.n_unindexed == len(unindexed)

    # The same fuse over the PyTorch encoders' outputs gives the stored vectors, with the
    # checkpoint's completion of audio-only artists (the default) and only theirs.
    model, info = load_checkpoint(built.checkpoint)
    rows = np.flatnonzero(has_any)
    with torch.no_grad():
        emb, pres = encode_rows(model, ModalityInputs(catalog, info["config"]["max_tags"]), rows)
    stack, mask, names = np.stack([emb[n].numpy() for n in emb]), np.stack([pres[n].numpy() for n in pres]), list(emb)
    config = info["config"]
    fusion = Fusion.load(
        built.checkpoint, config["modality_weights"], config["completion"], loaded.manifest.embedding_dim
    )
    model_manifest = loaded.manifest.model
    assert model_manifest.completion == {"audio": 1.0} and len(fusion.maps) == 2
    assert model_manifest.modality_weights == {"audio": 0.5, "cf": 1.0, "tag": 2.0}
    stored = vectors_of(loaded, np.arange(len(loaded)))
    np.testing.assert_allclose(stored, fusion.fuse(stack, mask, names), atol=1e-5)
    # Against the paper's plain mean: single-modality artists keep their direction, except
    # audio-only ones (completed); artists with several modalities move (weighted).
    single = mask.sum(axis=0) == 1
    audio_only = single & mask[names.index("audio")]
    assert audio_only.sum() > 0 and (~single).sum() > 0
    plain = fuse(stack, mask)
    agreement = np.einsum("ij,ij->i", stored, plain)
    np.testing.assert_allclose(agreement[single & ~audio_only], 1.0, atol=1e-5)
    assert np.all(agreement[audio_only] < 0.999) and np.mean(agreement[~single] < 0.999) > 0.9
    assert loaded.modalities[0] == [
        n for n in ("audio", "cf", "tag") if present[("audio", "cf", "tag").index(n), rows[0]]
    ]


def test_faiss_results_equal_brute_force(built: Built) -> None:
    loaded = load_index(built.index)
    vectors = vectors_of(loaded, np.arange(len(loaded)))
    balance = loaded.balance
    assert loaded.hub_beta > 0 and len(balance.subsets) == 7 and loaded.index.d == vectors.shape[1] + 7
    queries, slots = vectors[:50], loaded.slots[:50]
    assert len(set(loaded.slots.tolist())) > 3  # the demo's artists fill several modality subsets
    cosines, ids = loaded.search(queries, 20, slots)
    # (50, N): cosine minus the hub penalty plus the balance's offset for the query's and the candidate's subsets
    brute = queries @ vectors.T - loaded.penalty[None, :] + balance.offsets[slots][:, loaded.slots]
    expected = -np.sort(-brute, axis=1)[:, :20]
    np.testing.assert_allclose(np.take_along_axis(brute, ids, axis=1), expected, atol=1e-5)  # same ranking
    np.testing.assert_allclose(cosines, np.take_along_axis(queries @ vectors.T, ids, axis=1), atol=1e-5)


def test_hub_penalty_is_half_beta_times_mean_neighbour_cosine(built: Built) -> None:
    loaded = load_index(built.index)
    vectors = vectors_of(loaded, np.arange(len(loaded)))
    k, beta = loaded.manifest.hub.k, loaded.hub_beta
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    top = -np.sort(-sims, axis=1)[:, :k]
    np.testing.assert_allclose(loaded.penalty, beta / 2 * top.mean(axis=1), atol=1e-5)


def test_without_balance_the_index_ranks_by_cosine_minus_the_hub_penalty(built: Built, tmp_path: Path) -> None:
    build_index(built.catalog, built.model, tmp_path / "hub", progress=False, balance_strength=0.0)
    loaded = load_index(tmp_path / "hub")
    vectors = vectors_of(loaded, np.arange(len(loaded)))
    assert not loaded.manifest.balance.subsets and loaded.index.d == vectors.shape[1] + 1
    assert loaded.penalties.shape == (1, len(loaded)) and not loaded.slots.any()
    _, ids = loaded.search(vectors[:30], 10)
    brute = vectors[:30] @ vectors.T - loaded.penalty[None, :]
    np.testing.assert_allclose(np.take_along_axis(brute, ids, axis=1), -np.sort(-brute, axis=1)[:, :10], atol=1e-5)


def test_without_hub_penalty_the_index_ranks_by_cosine(built: Built, tmp_path: Path) -> None:
    build_index(built.catalog, built.model, tmp_path / "plain", progress=False, hub_beta=0.0, balance_strength=0.0)
    loaded = load_index(tmp_path / "plain")
    vectors = vectors_of(loaded, np.arange(len(loaded)))
    assert loaded.index.d == vectors.shape[1] and not loaded.penalty.any()
    scores, ids = loaded.search(vectors[:30], 10)
    brute = vectors[:30] @ vectors.T
    np.testing.assert_allclose(scores, -np.sort(-brute, axis=1)[:, :10], atol=1e-5)
    np.testing.assert_allclose(np.take_along_axis(brute, ids, axis=1), scores, atol=1e-5)


def test_manifest_records_the_self_check_and_the_model(built: Built) -> None:
    manifest = read_manifest(built.index, IndexManifest)
    assert manifest.self_check == SelfCheck(checked=manifest.n_artists, first_is_self=manifest.n_artists, ok=True)
    model = read_manifest(built.model, ModelManifest)
    assert manifest.model.model_version == model.model_version


def test_index_from_another_model_version_is_refused(built: Built, tmp_path: Path) -> None:
    other = read_manifest(built.model, ModelManifest)
    other = other.model_copy(update={"model_version": "m-0000000000000000"})
    expected = r"index was built with model m-.*but the model folder holds m-0000000000000000"
    with pytest.raises(CmarError, match=expected):
        load_index(built.index, model=other)


def test_truncated_index_file_is_refused(built: Built, tmp_path: Path) -> None:
    copy = tmp_path / "index"
    shutil.copytree(built.index, copy)
    data = (copy / "index.faiss").read_bytes()
    (copy / "index.faiss").write_bytes(data[: len(data) // 2])
    with pytest.raises(CmarError, match=r"index.faiss: not the \d+ bytes the manifest records"):
        load_index(copy)
    with pytest.raises(CmarError, match=r"index.faiss: not the \d+ bytes the manifest records"):
        load_index(copy, verify=False)  # sizes are checked even without hashes
    (copy / "index.faiss").write_bytes(b"\0" * len(data))
    with pytest.raises(CmarError, match="FAISS cannot read it"):
        load_index(copy, verify=False)


def test_catalogue_with_other_input_dimension_is_refused(built: Built, tmp_path: Path) -> None:
    copy = tmp_path / "catalog"
    shutil.copytree(built.catalog, copy)
    table = pq.read_table(copy / "audio.parquet")
    short = [v[:-1] for v in table.column("vector").to_pylist()]
    pq.write_table(pa.table({"artist_id": table.column("artist_id"), "vector": short}), copy / "audio.parquet")
    with pytest.raises(CmarError, match=r"audio: the catalogue's vectors have 63 values, model m-\w+ expects 64"):
        build_index(copy, built.model, tmp_path / "index", progress=False)
    assert not (tmp_path / "index").exists()


def test_precomputed_lists_equal_a_live_search_without_the_artist(built: Built) -> None:
    loaded = load_index(built.index)
    assert loaded.neighbours is not None and loaded.neighbour_scores is not None
    k = loaded.manifest.neighbours_k
    assert k == min(200, len(loaded) - 1) and loaded.neighbours.shape == (len(loaded), k)
    rows = np.arange(0, len(loaded), 37)
    vectors = vectors_of(loaded, rows)
    cosines, hits = loaded.search(vectors, k + 1, loaded.slots[rows])  # each artist's list is for its own subset
    for i, row in enumerate(rows):
        assert row not in loaded.neighbours[row]
        # the same artists up to ties (penalised scores within ~1e-6 may swap between the build's
        # batched search and a single live search): every listed artist scores what the live search gave it
        live = dict(zip(hits[i].tolist(), cosines[i].tolist(), strict=True))
        listed = zip(loaded.neighbours[row].tolist(), loaded.neighbour_scores[row].tolist(), strict=True)
        shared = [(r, s) for r, s in listed if r in live]
        assert len(shared) >= k - 2
        np.testing.assert_allclose([s for _, s in shared], [live[r] for r, _ in shared], atol=1e-5)


def test_a_large_catalogue_gets_a_graph_whose_recall_is_measured_and_kept(built: Built, tmp_path: Path) -> None:
    manifest = build_index(built.catalog, built.model, tmp_path / "graph", progress=False, exact_limit=100)
    assert manifest.index_type.startswith("IndexHNSWFlat")
    assert manifest.search.recall >= 0.95 and manifest.search.recall_k == 200
    assert manifest.neighbours_k == 200  # still small enough for precomputed lists
    assert manifest.self_check.ok and manifest.self_check.checked == manifest.n_artists
    loaded = load_index(tmp_path / "graph")
    assert loaded.index.hnsw.efSearch == manifest.search.ef_search >= 200
    assert loaded.matrix is None  # graph indexes are searched by FAISS


def test_no_precomputed_lists_when_asked(built: Built, tmp_path: Path) -> None:
    manifest = build_index(built.catalog, built.model, tmp_path / "plain", progress=False, neighbours_k=0)
    assert manifest.neighbours_k == 0 and "neighbours.npy" not in manifest.files
    assert load_index(tmp_path / "plain").neighbours is None


def test_precomputed_lists_of_the_wrong_shape_are_refused(built: Built, tmp_path: Path) -> None:
    copy = tmp_path / "index"
    shutil.copytree(built.index, copy)
    lists = np.load(copy / "neighbours.npy")
    np.save(copy / "neighbours.npy", lists[:, :5])
    manifest = json.loads((copy / "manifest.json").read_text())  # a manifest that agrees with the bad file
    data = (copy / "neighbours.npy").read_bytes()
    manifest["files"]["neighbours.npy"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CmarError, match="expected shape"):
        load_index(copy, verify=False)
