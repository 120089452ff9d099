"""Train the cross-modal encoders with the summed pairwise InfoNCE and save a checkpoint."""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from catalog.io import read_catalog
from catalog.tables import Catalog, SetTable
from core.artifacts import CHECKPOINT_FILE, TRAIN_FILE, vocab_names_file, vocab_vectors_file
from core.errors import CmarError
from core.files import atomic_folder
from core.fusion import Fusion
from core.outputs import claim_output, mark_folder
from core.vectors import fuse, l2_normalize
from model_export.config import TrainConfig
from model_export.encoders import CrossModalModel
from model_export.inputs import ModalityInputs, encode_rows
from model_export.loss import multimodal_loss, subset_loss

log = logging.getLogger(__name__)

RECALL_SAMPLE = 2000  # validation artists (a fixed random sample) used for the label-free recall@10


@dataclass
class TrainResult:
    """What a training run produced."""

    model: CrossModalModel
    config: TrainConfig
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    n_train: int = 0
    n_val: int = 0
    seconds: float = 0.0
    fusion: Fusion = field(default_factory=Fusion)  # weights and completion maps, fitted after training (cmar)


def split_rows(catalog: Catalog, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation artists: those with at least `min_modalities` modalities, split at random."""
    counts = np.stack([t.present for t in catalog.modalities.values()]).sum(axis=0)
    eligible = np.flatnonzero(counts >= config.min_modalities)
    if eligible.size < 4:
        raise CmarError(
            f"only {eligible.size} artist(s) have at least {config.min_modalities} modalities; "
            "contrastive training needs pairs of modalities of the same artist"
        )
    rng = np.random.default_rng(config.seed)
    eligible = rng.permutation(eligible)
    n_val = round(config.val_fraction * eligible.size)
    return np.sort(eligible[n_val:]), np.sort(eligible[:n_val])


THIN_TAGS = 3  # a thinned tag set keeps its 1 to THIN_TAGS heaviest tags


def thin_tag_limits(
    inputs: ModalityInputs, rows: np.ndarray, config: TrainConfig, rng: np.random.Generator
) -> dict[str, np.ndarray] | None:
    """Per set modality, (B,) item counts that cut a `config.thin_tags` share of `rows` to 1-3 items, else None.

    A cold start often arrives with a handful of tags; training some artists on their heaviest
    few teaches the tag encoder to place such a set where the artist's other modalities are
    (cmar, not in the paper; README, Cold start). No draw is made when the share is 0, so the
    batches are those of a run without it.
    """
    if config.thin_tags <= 0:
        return None
    limits = {}
    for name in inputs.set_names():
        thin = rng.random(len(rows)) < config.thin_tags
        limits[name] = np.where(thin, rng.integers(1, THIN_TAGS + 1, len(rows)), config.max_tags)
    return limits


def train_model(catalog: Catalog, config: TrainConfig, progress: bool = True) -> TrainResult:
    """Train one encoder per catalogue modality; keep the weights of the best validation epoch."""
    if len(catalog.modalities) < 2:
        raise CmarError(f"training needs at least two modalities; the catalogue has {', '.join(catalog.modalities)}")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    train_rows, val_rows = split_rows(catalog, config)
    model = CrossModalModel(catalog.input_dims(), config)
    inputs = ModalityInputs(catalog, config.max_tags)
    inputs.fit_standardisation(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    log.info(
        "training on %d artists (%d held out for validation), modalities %s",
        train_rows.size,
        val_rows.size,
        ", ".join(inputs.names()),
    )

    result = TrainResult(model=model, config=config, n_train=int(train_rows.size), n_val=int(val_rows.size))
    best_loss, best_state, stale = float("inf"), copy.deepcopy(model.state_dict()), 0
    start = time.perf_counter()
    epochs = tqdm(range(1, config.epochs + 1), desc="train", unit="epoch", disable=not progress)
    for epoch in epochs:
        model.train()
        order = rng.permutation(train_rows)
        losses = []
        for begin in range(0, order.size, config.batch_size):
            rows = order[begin : begin + config.batch_size]
            if rows.size < 2:
                continue
            embeddings, present = encode_rows(model, inputs, rows, thin_tag_limits(inputs, rows, config, rng))
            loss, _ = multimodal_loss(embeddings, present, config.temperature)
            if config.subset_weight > 0:
                loss = loss + config.subset_weight * subset_loss(embeddings, present, config.temperature, generator)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        record: dict[str, Any] = {"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else float("nan")}
        record.update(validate(model, inputs, val_rows, config))
        result.history.append(record)
        log.info("epoch %d: %s", epoch, ", ".join(f"{k}={v:.4f}" for k, v in record.items() if k != "epoch"))
        epochs.set_postfix(loss=f"{record['train_loss']:.3f}", val=f"{record.get('val_loss', float('nan')):.3f}")
        # Without validation artists, the training loss is the only signal.
        signal = record.get("val_loss", record["train_loss"])
        if signal < best_loss - 1e-4:
            best_loss, best_state, stale, result.best_epoch = signal, copy.deepcopy(model.state_dict()), 0, epoch
        else:
            stale += 1
            if config.patience and stale >= config.patience:
                log.info("early stop at epoch %d: no better validation loss for %d epochs", epoch, stale)
                break
    model.load_state_dict(best_state)
    model.eval()
    if config.centre:
        centre_modalities(model, inputs, config.batch_size * 16)
    result.fusion = fit_fusion(model, inputs, config)
    result.seconds = time.perf_counter() - start
    log.info("best epoch %d of %d, %.1f s", result.best_epoch, len(result.history), result.seconds)
    return result


@torch.no_grad()
def modality_outputs(model: CrossModalModel, inputs: ModalityInputs, name: str, batch_size: int) -> np.ndarray:
    """(N, D) outputs of one encoder for every artist, in batches; zero rows where the artist lacks it."""
    encoder = model.encoder(name)
    out = np.zeros((len(inputs.present[name]), encoder.out_dim), dtype=np.float32)
    rows = np.flatnonzero(inputs.present[name])
    for begin in range(0, rows.size, batch_size):
        batch = rows[begin : begin + batch_size]
        out[batch] = encoder(*inputs.gather(name, batch)).numpy()
    return out


@torch.no_grad()
def centre_modalities(model: CrossModalModel, inputs: ModalityInputs, batch_size: int) -> None:
    """Set each encoder's centre to its mean output over every artist that has the modality.

    Each modality's outputs sit in a cone of their own (the modality gap); removing the cone's
    axis before fusion lets an artist's modalities and other artists' modalities mix on equal
    terms. Uses no ground truth.
    """
    for name, encoder in model.items():
        present = inputs.present[name]
        if not present.any():
            continue
        encoder.centre.copy_(torch.from_numpy(modality_outputs(model, inputs, name, batch_size)[present].mean(axis=0)))
        log.info("%s: centre of norm %.3f removed", name, float(encoder.centre.norm()))


def fit_fusion(model: CrossModalModel, inputs: ModalityInputs, config: TrainConfig) -> Fusion:
    """The configured fusion, its completion maps fitted on the final (centred) encoder outputs."""
    if not any(config.completion.values()):
        return Fusion(dict(config.modality_weights))
    batch_size = config.batch_size * 16
    encodings = {name: modality_outputs(model, inputs, name, batch_size) for name in inputs.names()}
    fusion = Fusion.fit(encodings, inputs.present, config.modality_weights, config.completion)
    for subset, target in fusion.maps:
        log.info("completion: %s artists get a predicted %s embedding", subset, target)
    return fusion


@torch.no_grad()
def validate(model: CrossModalModel, inputs: ModalityInputs, rows: np.ndarray, config: TrainConfig) -> dict[str, float]:
    """Label-free validation: the loss, and how often an artist's other modalities find its held-out one.

    For each modality m, each validation artist with m and another modality queries with the
    fuse of its other modalities; a hit is its own m-embedding among the top 10 of the
    validation artists' m-embeddings (recall@10 over at most RECALL_SAMPLE artists, averaged
    over modalities).
    """
    if rows.size < 2:
        return {}
    model.eval()
    losses, recalls = [], []
    for begin in range(0, rows.size, config.batch_size):
        batch = rows[begin : begin + config.batch_size]
        if batch.size >= 2:
            embeddings, present = encode_rows(model, inputs, batch)
            losses.append(float(multimodal_loss(embeddings, present, config.temperature)[0]))
    # Recall compares every query with every candidate: a fixed sample keeps it cheap on large catalogues.
    if rows.size > RECALL_SAMPLE:
        rows = np.sort(np.random.default_rng(0).choice(rows, RECALL_SAMPLE, replace=False))
    embeddings, present = encode_rows(model, inputs, rows)
    names = list(embeddings)
    stack = np.stack([embeddings[n].numpy() for n in names])  # (M, N, D)
    mask = np.stack([present[n].numpy() for n in names])  # (M, N)
    for i in range(len(names)):
        others = mask.copy()
        others[i] = False
        queries = np.flatnonzero(mask[i] & others.any(axis=0))
        if queries.size < 2:
            continue
        fused = fuse(stack[:, queries], others[:, queries])  # (Q, D)
        candidates = np.flatnonzero(mask[i])
        scores = fused @ l2_normalize(stack[i, candidates]).T  # (Q, C)
        own = np.searchsorted(candidates, queries)
        rank = (scores > scores[np.arange(queries.size), own][:, None]).sum(axis=1)
        recalls.append(float((rank < 10).mean()))
    out = {"val_loss": float(np.mean(losses))} if losses else {}
    if recalls:
        out["val_recall_at_10"] = float(np.mean(recalls))
    return out


def save_checkpoint(folder: Path, result: TrainResult, catalog: Catalog, overwrite: bool = False) -> None:
    """Write the weights, the config and input dimensions, the history and the set vocabularies.

    `folder` may replace only an earlier checkpoint folder unless `overwrite` (`core.outputs`).
    """
    with atomic_folder(Path(folder), "checkpoint", overwrite) as tmp:
        mark_folder(tmp, "checkpoint")
        torch.save(result.model.state_dict(), tmp / CHECKPOINT_FILE)
        info = {
            "config": result.config.to_dict(),
            "input_dims": result.model.input_dims,
            "history": result.history,
            "best_epoch": result.best_epoch,
            "n_train": result.n_train,
            "n_val": result.n_val,
            "seconds": result.seconds,
        }
        (tmp / TRAIN_FILE).write_text(json.dumps(info, indent=2))
        result.fusion.save(tmp)
        for name, table in catalog.modalities.items():
            if isinstance(table, SetTable):
                (tmp / vocab_names_file(name)).write_text(json.dumps(table.vocab))
                np.save(tmp / vocab_vectors_file(name), table.vocab_vectors, allow_pickle=False)


def load_checkpoint(folder: Path) -> tuple[CrossModalModel, dict[str, Any]]:
    """Rebuild a trained model from a checkpoint folder written by `save_checkpoint`."""
    folder = Path(folder)
    info_path = folder / TRAIN_FILE
    if not info_path.is_file() or not (folder / CHECKPOINT_FILE).is_file():
        raise CmarError(f"{folder}: not a checkpoint folder; expected {CHECKPOINT_FILE} and {TRAIN_FILE} (cmar train)")
    try:
        info = json.loads(info_path.read_text())
        config = TrainConfig.from_dict(info["config"])
        model = CrossModalModel(info["input_dims"], config)
        model.load_state_dict(torch.load(folder / CHECKPOINT_FILE, weights_only=True))
    except Exception as exc:  # torch.load raises many kinds for a damaged file (EOFError, IndexError, ...)
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise CmarError(f"{folder}: checkpoint does not load ({type(exc).__name__}: {first})") from None
    model.eval()
    return model, info


def train(
    catalog_dir: Path, out_dir: Path, config: TrainConfig, progress: bool = True, overwrite: bool = False
) -> TrainResult:
    """Read a catalogue, train, and write the checkpoint folder (refused before training if `out_dir` is taken)."""
    claim_output(out_dir, "checkpoint", overwrite)
    catalog = read_catalog(catalog_dir)
    result = train_model(catalog, config, progress=progress)
    save_checkpoint(out_dir, result, catalog, overwrite)
    log.info("checkpoint written to %s", out_dir)
    return result
