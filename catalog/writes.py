"""Take the artists written through the API into a catalogue, for the next offline build.

Each artist's latest write in the service's database replaces (or adds) its catalogue row;
a deletion removes the row. Vector modalities are taken as given; tags given by name (a list,
or an object of names and weights) become the catalogue's tag items, names not in its
vocabulary dropped; tags given as raw vectors have no vocabulary entry and are dropped, with
a warning. The service's database is only read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from catalog.tables import Catalog, SetTable, VectorTable
from core.names import artist_id_problem, has_surrogates, normalize_tag, tag_weight_problem
from core.store import WriteStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Merged:
    """What merging the writes did."""

    catalog: Catalog
    added: int
    replaced: int
    removed: int


def read_writes(db: Path) -> list[tuple[str, dict[str, Any] | None]]:
    """Every artist's latest write (id, PUT body or None for a delete), oldest first."""
    return [(w.artist_id, w.body) for w in WriteStore.read(db)]


def merge_writes(catalog: Catalog, writes: list[tuple[str, dict[str, Any] | None]]) -> Merged:
    """The catalogue with the writes applied (see the module docstring).

    Tag names go through `core.names.normalize_tag`; a write whose artist id the catalogue
    cannot hold (`core.names.artist_id_problem`) is left out with a warning.
    """
    latest = {}
    for artist_id, body in writes:
        problem = artist_id_problem(artist_id) or (None if body is None else _body_problem(body))
        if problem is not None:
            log.warning("stored write of %r left out: %s", artist_id, problem)
            continue
        latest[artist_id] = body
    index = {a: i for i, a in enumerate(catalog.artist_ids.tolist())}
    keep = [i for i, a in enumerate(catalog.artist_ids.tolist()) if a not in latest]
    new_ids = [a for a, body in latest.items() if body is not None]
    bodies = {a: body for a, body in latest.items() if body is not None}
    ids = np.array([*catalog.artist_ids[keep].tolist(), *new_ids], dtype=object)
    names = np.array([*catalog.names[keep].tolist(), *(str(bodies[a]["name"]) for a in new_ids)], dtype=object)
    n_old, n = len(keep), len(ids)
    popularity = None
    if catalog.popularity is not None:
        popularity = np.concatenate([catalog.popularity[keep], np.zeros(len(new_ids), dtype=np.float32)])
    tables: dict[str, VectorTable | SetTable] = {}
    for name, table in catalog.modalities.items():
        if isinstance(table, VectorTable):
            values = np.zeros((n, table.dim), dtype=np.float32)
            present = np.zeros(n, dtype=bool)
            values[:n_old], present[:n_old] = table.values[keep], table.present[keep]
            for j, artist in enumerate(new_ids, start=n_old):
                given = latest[artist].get(name)  # type: ignore[union-attr]
                vector = _finite_vector(given, table.dim)
                if vector is not None:
                    values[j], present[j] = vector, True
                elif given is not None:
                    log.warning("%s: %s is not %d finite numbers; left out", artist, name, table.dim)
            tables[name] = VectorTable(present=present, values=values)
        else:
            tables[name] = _merged_set(table, keep, new_ids, latest, name)
    replaced = sum(1 for a in new_ids if a in index)
    removed = sum(1 for a, body in latest.items() if body is None and a in index)
    merged = Catalog(artist_ids=ids, names=names, popularity=popularity, modalities=tables)  # type: ignore[arg-type]
    if catalog.tracks is not None:  # tracks stay with their artist (replaced ones too); a deleted artist's go
        new_row = np.full(catalog.n_artists, -1, dtype=np.int64)
        new_row[keep] = np.arange(n_old)
        for j, artist in enumerate(new_ids, start=n_old):
            if artist in index:
                new_row[index[artist]] = j
        merged.tracks = catalog.tracks.moved(new_row)
    return Merged(merged, added=len(new_ids) - replaced, replaced=replaced, removed=removed)


def _finite_vector(given: Any, dim: int) -> np.ndarray | None:
    """`given` as a float32 vector of length `dim` with finite values, or None."""
    try:
        vector = np.asarray(given, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if vector.shape != (dim,) or not np.isfinite(vector).all() or np.abs(vector).max(initial=0) > 3.4e38:
        return None
    return vector.astype(np.float32)


def _body_problem(body: dict[str, Any]) -> str | None:
    """Why a stored PUT body cannot become a catalogue row (the service checked it; a damaged row may not pass)."""
    name = body.get("name")
    if not isinstance(name, str) or not name or has_surrogates(name):
        return "its name is missing or not valid text"
    for modality, value in body.items():
        if modality != "name" and not isinstance(value, list | dict):
            return f"its {modality} is not a list or an object"
    return None


def _merged_set(
    table: SetTable, keep: list[int], new_ids: list[str], latest: dict[str, dict[str, Any] | None], name: str
) -> SetTable:
    vocab = {t: i for i, t in enumerate(table.vocab)}
    rows, items, weights = [], [], []
    for new_row, old in enumerate(keep):
        span = slice(table.indptr[old], table.indptr[old + 1])
        rows += [new_row] * (span.stop - span.start)
        items += table.items[span].tolist()
        weights += table.weights[span].tolist()
    for j, artist in enumerate(new_ids, start=len(keep)):
        given = latest[artist].get(name)  # type: ignore[union-attr]
        if not given:
            continue
        if isinstance(given, list) and not isinstance(given[0], str):
            log.warning(
                "%s: %s given as raw vectors, which the catalogue's vocabulary cannot hold; left out", artist, name
            )
            continue
        weighted = given if isinstance(given, dict) else dict.fromkeys(given, 1.0)
        seen: set[int] = set()
        for tag, weight in weighted.items():
            if not isinstance(tag, str) or has_surrogates(tag) or tag_weight_problem(float(weight)) is not None:
                log.warning("%s: tag %r with weight %r left out", artist, tag, weight)
                continue
            item = vocab.get(normalize_tag(tag))  # the catalogue's vocabulary is in canonical form
            if item is not None and item not in seen:  # a repeat of a tag after normalising counts once
                seen.add(item)
                rows.append(j)
                items.append(item)
                weights.append(float(weight))
    n = len(keep) + len(new_ids)
    return SetTable.from_rows(table.vocab, table.vocab_vectors, n, np.array(rows), np.array(items), np.array(weights))
