"""The modality balance: offsets that even out the modality subsets a query retrieves, used by every path."""

from pathlib import Path

import numpy as np
import pytest

from catalog.io import read_catalog
from core.balance import Balance, all_subsets, modality_mask
from core.vectors import as_candidates, as_queries, l2_normalize
from index_build.balance import MIN_PER_SUBSET, fit_balance
from index_build.build import build_index
from inference.index import vectors_of
from service.artifacts import Artifacts
from service.batching import answer_batch
from service.live import put
from service.queries import query_inputs
from service.schemas import SimilarQuery
from service.settings import Settings
from tests.conftest import Built

NAMES = ["audio", "cf", "tag"]


def _mean_fuse(parts: np.ndarray, present: np.ndarray, names: list[str]) -> np.ndarray:
    return l2_normalize(np.einsum("mnd,mn->nd", parts, present.astype(np.float32)))


def _biased_parts(n: int = 700, dim: int = 16, bias: float = 0.6, seed: int = 0) -> np.ndarray:
    """Three modality embeddings of n artists: the artist's own direction plus a direction of the
    modality's own, so artists known by the same modalities attract each other (the bias to undo)."""
    rng = np.random.default_rng(seed)
    music = rng.normal(size=(n, dim))
    own = rng.normal(size=(len(NAMES), 1, dim)) * bias * np.sqrt(dim) / np.sqrt(dim)
    return l2_normalize(music[None] + own * np.linalg.norm(music, axis=1, keepdims=True)[None])


def _shares(parts: np.ndarray, offsets: np.ndarray, k: int = 5, seed: int = 1) -> np.ndarray:
    """(7, 7) shares of each subset in each query subset's top k, one random split of the artists."""
    n = parts.shape[1]
    rng = np.random.default_rng(seed)
    size = n // 7
    order = rng.permutation(n)[: size * 7]
    group = np.repeat(np.arange(7), size)
    keeps = np.array([[m in s.split("+") for m in NAMES] for s in all_subsets(NAMES)])
    v = _mean_fuse(parts[:, order], keeps[group].T, NAMES)
    scores = v @ v.T + offsets[group][:, group]
    np.fill_diagonal(scores, -np.inf)
    top = np.argsort(-scores, axis=1)[:, :k]
    return np.array([np.bincount(group[top[group == s]].ravel(), minlength=7) / (size * k) for s in range(7)])


def test_the_fitted_offsets_even_out_the_subsets_each_query_subset_retrieves() -> None:
    parts = _biased_parts()
    present = np.ones((3, parts.shape[1]), dtype=bool)
    record = fit_balance(parts, present, NAMES, _mean_fuse, hub_k=0, hub_beta=0.0, strength=1.0, seed=0)
    assert record.subsets == ["audio", "cf", "tag", "audio+cf", "audio+tag", "cf+tag", "audio+cf+tag"]
    offsets = np.array(record.offsets)
    before, after = _shares(parts, np.zeros((7, 7))), _shares(parts, offsets)  # a split the fit did not see
    uniform = np.full((7, 7), 1 / 7)
    assert np.abs(before - uniform).max() > 0.15  # the bias: single-modality queries find their own subset
    assert np.abs(after - uniform).mean() < 0.5 * np.abs(before - uniform).mean()
    assert all(offsets[s, s] < 0 for s in range(3))  # each single subset's attraction to itself is taken back
    np.testing.assert_allclose(offsets.mean(axis=1), 0, atol=1e-6)  # a query's offsets are centred
    half = np.array(fit_balance(parts, present, NAMES, _mean_fuse, 0, 0.0, strength=0.5, seed=0).offsets)
    np.testing.assert_allclose(half, offsets / 2, atol=1e-6)  # strength scales the same fit


def test_no_balance_without_strength_or_enough_full_coverage_artists() -> None:
    parts = _biased_parts(n=200)
    present = np.ones((3, 200), dtype=bool)
    assert not fit_balance(parts, present, NAMES, _mean_fuse, 0, 0.0, strength=0.0).subsets
    present[0, MIN_PER_SUBSET * 7 - 1 :] = False  # one too few artists have every modality
    assert not fit_balance(parts, present, NAMES, _mean_fuse, 0, 0.0, strength=1.0).subsets
    assert not fit_balance(parts[:1], present[:1], ["audio"], _mean_fuse, 0, 0.0, strength=1.0).subsets


def test_stored_and_query_forms_give_cosine_minus_penalty_plus_offset() -> None:
    rng = np.random.default_rng(0)
    balance = Balance(tuple(all_subsets(NAMES)), rng.normal(scale=0.05, size=(7, 7)).astype(np.float32))
    vectors = l2_normalize(rng.normal(size=(30, 8)))
    penalty = rng.uniform(0, 0.3, size=30).astype(np.float32)
    slots = rng.integers(0, 7, size=30)
    q_slots = rng.integers(0, 7, size=5)
    got = as_queries(vectors[:5], q_slots, balance.width) @ as_candidates(vectors, balance.penalties(penalty, slots)).T
    expected = vectors[:5] @ vectors.T - penalty[None, :] + balance.offsets[q_slots][:, slots]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # two stored vectors (an HNSW graph links them by this) differ from their cosine by the mean, not the
    # sum, of their S coordinates' products: no more than the single hub coordinate before the balance
    stored = as_candidates(vectors, balance.penalties(penalty, slots))
    per_slot = balance.penalties(penalty, slots)
    np.testing.assert_allclose(stored @ stored.T - vectors @ vectors.T, per_slot.T @ per_slot / 7, atol=1e-6)
    # without a balance there is one slot: [v, -penalty] and [q, 1], as before the balance existed
    plain = Balance()
    np.testing.assert_allclose(as_candidates(vectors, plain.penalties(penalty, np.zeros(30, int))),
                               as_candidates(vectors, penalty))  # fmt: skip
    assert plain.slot(modality_mask(["audio"])) == 0


def test_slots_follow_the_modalities_and_unknown_ones_take_the_neutral_slot() -> None:
    balance = Balance(("audio", "tag", "audio+tag"), np.zeros((3, 3), dtype=np.float32))
    assert balance.slot(modality_mask(["tag", "audio"])) == 2 and balance.slot(modality_mask(["tag"])) == 1
    assert balance.slot(modality_mask(["tag", "cf"])) == 1  # cf is not in the balance: ignored
    assert balance.slot(modality_mask(["cf"])) == balance.slot(0) == 2  # nothing it knows: all of them
    np.testing.assert_array_equal(balance.slots([1, 4, 5, 2]), [0, 1, 2, 2])
    with pytest.raises(ValueError, match="3, 3"):
        Balance(("audio", "tag", "audio+tag"), np.zeros((2, 2), dtype=np.float32))


def test_a_cold_start_query_ranks_with_the_offsets_of_its_own_modalities(built: Built) -> None:
    artifacts = Artifacts.load(Settings(model_dir=built.model, index_dir=built.index))
    index = artifacts.index
    catalog = read_catalog(built.catalog)
    tags = catalog.modalities["tag"]
    differ = 0
    for i in range(0, len(tags.vocab), max(1, len(tags.vocab) // 10)):
        inputs = query_inputs(artifacts, SimilarQuery.model_validate({"tag": [tags.vocab[i]]}))
        hits = answer_batch(artifacts, [inputs], [20], prior=False)[0]
        assert not isinstance(hits, Exception)
        q = np.array([h.score for h in hits])  # cosines
        rows = np.array([index.row_of[h.artist_id] for h in hits])
        own = index.penalties[index.slot_of(["tag"])]
        neutral = index.penalties[index.balance.slot(0)]
        # the hits' cosines minus the tag slot's penalties are in descending order, and nothing unlisted ranks above
        ranked = q - own[rows]
        assert np.all(np.diff(ranked) <= 1e-6)
        differ += int(not np.all(np.diff(q - neutral[rows]) <= 1e-6))
    assert differ > 0  # the neutral slot would rank some of these lists otherwise


def test_self_query_and_written_artists_hub_penalties_go_by_cosine(built: Built, tmp_path: Path) -> None:
    # at full strength an offset can put another artist above an artist's own vector in its balanced
    # ranking; the self-query (start-up, swap) and a written artist's hub penalty are defined by cosine
    build_index(built.catalog, built.model, tmp_path / "index", progress=False, balance_strength=1.0)
    artifacts = Artifacts.load(Settings(model_dir=built.model, index_dir=tmp_path / "index"))
    index = artifacts.index
    vectors = vectors_of(index, np.arange(len(index)))
    balanced = vectors @ vectors.T - index.penalties[index.slots][:, np.arange(len(index))]
    assert (balanced.argmax(axis=1) != np.arange(len(index))).any()  # some artist is not its own balanced first
    artifacts.self_query(count=len(index))  # every artist: no CmarError
    rows = np.arange(0, len(index), 50)
    for r in rows:
        put(artifacts, f"copy{r}", "Copy", index.modalities[r], vectors[r])
    k, beta = index.manifest.hub.k, index.hub_beta
    cosines = -np.sort(-(vectors[rows] @ vectors.T), axis=1)[:, :k]  # the copies' nearest built artists by cosine
    np.testing.assert_allclose(artifacts.overlay.penalty, beta / 2 * cosines.mean(axis=1), atol=1e-5)


def test_rewriting_an_artist_with_its_own_inputs_keeps_its_hub_penalty(built: Built) -> None:
    # its own replaced row is no longer served: it must not count among its nearest artists
    artifacts = Artifacts.load(Settings(model_dir=built.model, index_dir=built.index))
    index = artifacts.index
    rows = np.arange(3, len(index), 97)
    vectors = vectors_of(index, rows)
    for r, v in zip(rows, vectors, strict=True):
        put(artifacts, index.artist_ids[r], index.names[r], index.modalities[r], v)
    np.testing.assert_allclose(artifacts.overlay.penalty, index.penalty[rows], atol=1e-5)


def test_an_edited_balance_in_the_manifest_is_refused(built: Built, tmp_path: Path) -> None:
    import json
    import shutil

    from core.errors import CmarError
    from inference.index import load_index

    for value, message in ((0.5, "stored vectors do not match"), (float("nan"), "finite numbers")):
        folder = tmp_path / f"edited{value}"
        shutil.copytree(built.index, folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["balance"]["offsets"][0][0] = value
        (folder / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(CmarError, match=message):
            load_index(folder)
    load_index(built.index)  # the unedited index loads
