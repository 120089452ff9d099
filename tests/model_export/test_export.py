"""ONNX Runtime against PyTorch, on random inputs and on catalogue inputs."""

import numpy as np
import onnxruntime as ort
import torch

from catalog.io import read_catalog
from core.artifacts import onnx_file
from core.manifest import ModelManifest, read_manifest
from model_export.export import PARITY_TOLERANCE
from model_export.inputs import ModalityInputs
from model_export.train import load_checkpoint
from tests.conftest import Built


def test_manifest_records_parity_and_every_encoder(built: Built) -> None:
    manifest = read_manifest(built.model, ModelManifest)
    assert set(manifest.modalities) == {"audio", "cf", "tag"}
    assert manifest.embedding_dim == 200
    assert max(manifest.metrics["parity_max_abs_diff"].values()) <= PARITY_TOLERANCE
    assert manifest.training["temperature"] == 0.1


def test_onnx_runtime_matches_pytorch_on_catalogue_inputs(built: Built) -> None:
    model, info = load_checkpoint(built.checkpoint)
    catalog = read_catalog(built.catalog)
    inputs = ModalityInputs(catalog, info["config"]["max_tags"])
    for name, encoder in model.items():
        rows = np.flatnonzero(inputs.present[name])[:300]
        tensors = inputs.gather(name, rows)
        with torch.no_grad():
            expected = encoder(*tensors).numpy()
        session = ort.InferenceSession(str(built.model / onnx_file(name)))
        feeds = {i.name: t.numpy() for i, t in zip(session.get_inputs(), tensors, strict=True)}
        got = session.run(None, feeds)[0]
        assert got.shape == (rows.size, 200)
        np.testing.assert_allclose(got, expected, atol=PARITY_TOLERANCE)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_tag_encoder_set_length_is_dynamic_padding_ignored_weights_used(built: Built) -> None:
    session = ort.InferenceSession(str(built.model / onnx_file("tag")))
    assert [i.name for i in session.get_inputs()] == ["items", "weights"]
    rng = np.random.default_rng(0)
    items = rng.normal(size=(3, 5, session.get_inputs()[0].shape[2])).astype(np.float32)
    weights = np.array([[1, 1, 0, 0, 0], [1, 2, 1, 3, 1], [0.7, 0, 0, 0, 0]], dtype=np.float32)
    full = session.run(None, {"items": items, "weights": weights})[0]
    short = session.run(None, {"items": items[:, :2], "weights": weights[:, :2]})[0]  # another set length
    np.testing.assert_allclose(full[[0, 2]], short[[0, 2]], atol=1e-5)
    garbage = items.copy()
    garbage[0, 2:] = 1e3  # values behind zero weights must not matter
    np.testing.assert_allclose(session.run(None, {"items": garbage, "weights": weights})[0][0], full[0], atol=1e-5)
    heavier = weights.copy()
    heavier[1, 3] = 30.0  # one tag weighing more moves the embedding
    assert not np.allclose(session.run(None, {"items": items, "weights": heavier})[0][1], full[1], atol=1e-3)
    scaled = session.run(None, {"items": items, "weights": weights * 4})[0]  # only relative weights matter
    np.testing.assert_allclose(scaled, full, atol=1e-5)
