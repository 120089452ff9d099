"""Turn catalogue tables into encoder inputs and encode batches of artists."""

from __future__ import annotations

import numpy as np
import torch

from catalog.tables import Catalog, SetTable, VectorTable
from model_export.encoders import CrossModalModel


class ModalityInputs:
    """The encoder inputs of every artist, gathered by row on demand."""

    def __init__(self, catalog: Catalog, max_tags: int) -> None:
        self.present: dict[str, np.ndarray] = {}
        self._vectors: dict[str, torch.Tensor] = {}
        self._sets: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        everyone = np.arange(catalog.n_artists)
        for name, table in catalog.modalities.items():
            self.present[name] = table.present
            if isinstance(table, VectorTable):
                self._vectors[name] = torch.from_numpy(table.values)
            elif isinstance(table, SetTable):
                ids, _ = table.top_items(everyone, max_tags)
                _, weights = table.padded_inputs(everyone, max_tags)
                vocab = torch.from_numpy(table.vocab_vectors)
                self._sets[name] = (vocab, torch.from_numpy(ids), torch.from_numpy(weights))

    def names(self) -> list[str]:
        """Modalities in catalogue order."""
        return list(self.present)

    def set_names(self) -> list[str]:
        """The set modalities (tags), in catalogue order."""
        return list(self._sets)

    def gather(self, name: str, rows: np.ndarray, limit: np.ndarray | None = None) -> tuple[torch.Tensor, ...]:
        """Encoder inputs of `rows` for one modality: (x,) or (items, weights).

        `limit` (B,) keeps, for a set modality, only each row's `limit` heaviest items.
        """
        index = torch.from_numpy(np.asarray(rows, dtype=np.int64))
        if name in self._vectors:
            return (self._vectors[name][index],)
        vocab, ids, weights = self._sets[name]
        chosen = weights[index]
        if limit is not None:
            slots = torch.arange(chosen.shape[1])[None, :]
            chosen = chosen * (slots < torch.from_numpy(np.asarray(limit, dtype=np.int64))[:, None])
        return vocab[ids[index]] * (chosen > 0).unsqueeze(-1), chosen

    def fit_standardisation(self, model: CrossModalModel) -> None:
        """Set each encoder's input mean and std from the artists (or vocabulary items) that have it."""
        for name, encoder in model.items():
            if name in self._vectors:
                values = self._vectors[name][torch.from_numpy(self.present[name])]
            else:
                values = self._sets[name][0]
            if len(values) == 0:
                continue
            encoder.mean.copy_(values.mean(dim=0))
            encoder.std.copy_(values.std(dim=0).clamp_min(1e-6) if len(values) > 1 else torch.ones_like(values[0]))


def encode_rows(
    model: CrossModalModel, inputs: ModalityInputs, rows: np.ndarray, limits: dict[str, np.ndarray] | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Encode the modalities each artist in `rows` has.

    `limits` maps a set modality to (B,) item counts: each row's set is cut to its heaviest items.
    Returns name -> (B, D) embeddings (zero rows where absent) and name -> (B,) presence.
    """
    rows = np.asarray(rows, dtype=np.int64)
    embeddings: dict[str, torch.Tensor] = {}
    present: dict[str, torch.Tensor] = {}
    for name, encoder in model.items():
        has = inputs.present[name][rows]
        present[name] = torch.from_numpy(has)
        out = torch.zeros(len(rows), encoder.out_dim)
        where = np.flatnonzero(has)
        if where.size:
            limit = None if limits is None or name not in limits else limits[name][where]
            out = out.index_copy(0, torch.from_numpy(where), encoder(*inputs.gather(name, rows[where], limit)))
        embeddings[name] = out
    return embeddings, present
