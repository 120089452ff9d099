"""Export each trained encoder to ONNX, check ONNX Runtime against PyTorch, write the model manifest."""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from core.artifacts import (
    ENCODER_OUTPUT,
    SET_INPUT,
    SET_WEIGHTS,
    VECTOR_INPUT,
    onnx_file,
    vocab_names_file,
    vocab_vectors_file,
)
from core.errors import CmarError
from core.files import atomic_folder
from core.fusion import Fusion
from core.manifest import ModalityEntry, ModelManifest, write_manifest
from core.modalities import ModalityKind, get_modality
from model_export.encoders import CrossModalModel, Encoder
from model_export.train import load_checkpoint

log = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-5  # max |ONNX Runtime - PyTorch| allowed on unit-length outputs


def example_inputs(
    encoder: Encoder, kind: ModalityKind, batch: int, max_tags: int, seed: int
) -> tuple[torch.Tensor, ...]:
    """Plausible random inputs for an encoder: around its training mean and spread."""
    gen = torch.Generator().manual_seed(seed)
    mean, std = encoder.mean, encoder.std
    if kind is ModalityKind.VECTOR:
        return (mean + std * torch.randn(batch, mean.shape[0], generator=gen),)
    items = mean + std * torch.randn(batch, max_tags, mean.shape[0], generator=gen)
    lengths = torch.randint(1, max_tags + 1, (batch,), generator=gen)
    mask = torch.arange(max_tags)[None, :] < lengths[:, None]
    weights = mask * (0.5 + 3 * torch.rand(batch, max_tags, generator=gen))
    return items * mask[..., None], weights


def _export_one(encoder: Encoder, kind: ModalityKind, path: Path, max_tags: int) -> None:
    """Export one encoder with a dynamic batch axis (and a dynamic set length for set modalities)."""
    example = example_inputs(encoder, kind, batch=4, max_tags=max_tags, seed=0)
    batch = torch.export.Dim("batch")
    if kind is ModalityKind.VECTOR:
        names = [VECTOR_INPUT]
        shapes: dict[str, Any] = {"x": {0: batch}}
    else:
        names = [SET_INPUT, SET_WEIGHTS]
        length = torch.export.Dim("length")
        shapes = {"tags": {0: batch, 1: length}, "weights": {0: batch, 1: length}}
    onnx_export(encoder, example, names, shapes, path)


def onnx_export(
    module: torch.nn.Module, example: tuple[torch.Tensor, ...], names: list[str], shapes: dict[str, Any], path: Path
) -> None:
    """Export `module` to one ONNX file with the given input names and dynamic shapes, output ENCODER_OUTPUT."""
    # The exporter prints its progress and warns about its own internals; keep the CLI's output clean.
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # it warns that torchvision's operators are not installed
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            example,
            str(path),
            input_names=names,
            output_names=[ENCODER_OUTPUT],
            dynamic_shapes=shapes,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    exporter_log.setLevel(level)


def parity_check(encoder: Encoder, kind: ModalityKind, path: Path, max_tags: int) -> float:
    """Largest absolute difference between ONNX Runtime and PyTorch on random batches of several sizes."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for seed, (batch, tags) in enumerate([(1, 1), (7, max_tags), (64, max(1, max_tags // 2))]):
        inputs = example_inputs(encoder, kind, batch, tags, seed=seed + 1)
        with torch.no_grad():
            expected = encoder(*inputs).numpy()
        feeds = dict(zip([i.name for i in session.get_inputs()], [t.numpy() for t in inputs], strict=True))
        got = session.run([ENCODER_OUTPUT], feeds)[0]
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst


def export_model(
    model: CrossModalModel, info: dict[str, Any], checkpoint_dir: Path, out_dir: Path, overwrite: bool = False
) -> ModelManifest:
    """Write one ONNX file per encoder, the set vocabularies and the manifest into `out_dir`.

    `out_dir` may replace only an earlier model folder unless `overwrite` (`core.outputs`).
    """
    config = info["config"]
    max_tags = int(config["max_tags"])
    entries: dict[str, ModalityEntry] = {}
    parity: dict[str, float] = {}
    with atomic_folder(Path(out_dir), "model", overwrite) as tmp:
        for name, encoder in model.items():
            kind = get_modality(name).kind
            path = tmp / onnx_file(name)
            log.info("exporting the %s encoder to %s", name, path.name)
            _export_one(encoder, kind, path, max_tags)
            parity[name] = parity_check(encoder, kind, path, max_tags)
            if parity[name] > PARITY_TOLERANCE:
                raise CmarError(
                    f"{name} encoder: ONNX Runtime differs from PyTorch by {parity[name]:.2e} (> {PARITY_TOLERANCE})"
                )
            entries[name] = ModalityEntry(kind=kind, input_dim=int(model.input_dims[name]), file=path.name)
            if kind is ModalityKind.SET:
                for file in (vocab_names_file(name), vocab_vectors_file(name)):
                    shutil.copyfile(Path(checkpoint_dir) / file, tmp / file)
        fusion = Fusion.load(
            checkpoint_dir,
            config.get("modality_weights", {}),
            config.get("completion", {}),
            int(config["embedding_dim"]),
            require=False,
        )
        fusion.save(tmp)
        metrics = {
            "parity_max_abs_diff": parity,
            "best_epoch": info.get("best_epoch"),
            "history": info.get("history", []),
            "n_train": info.get("n_train"),
            "n_val": info.get("n_val"),
            "train_seconds": info.get("seconds"),
        }
        manifest = write_manifest(
            tmp,
            ModelManifest(
                embedding_dim=int(config["embedding_dim"]),
                modalities=entries,
                max_tags=max_tags,
                modality_weights=fusion.weights,
                completion={s: w for s, w in fusion.completion.items() if any(m[0] == s for m in fusion.maps)},
                training=config,
                metrics=metrics,
            ),
        )
    log.info(
        "model %s written to %s (parity %s)",
        manifest.model_version,
        out_dir,
        ", ".join(f"{k} {v:.1e}" for k, v in parity.items()),
    )
    return manifest


def export(checkpoint_dir: Path, out_dir: Path, overwrite: bool = False) -> ModelManifest:
    """Load a checkpoint folder and export it (see `export_model`)."""
    model, info = load_checkpoint(checkpoint_dir)
    return export_model(model, info, checkpoint_dir, out_dir, overwrite)
