"""The modality registry: every modality's name and kind, declared once."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ModalityKind(StrEnum):
    """How a modality's input is shaped."""

    VECTOR = "vector"  # one fixed-length float vector per artist
    SET = "set"  # a weighted set of items (tags), each item with its own vector


@dataclass(frozen=True)
class Modality:
    """One input signal about an artist."""

    name: str
    kind: ModalityKind
    description: str
    hidden: tuple[int, ...] = ()  # the paper's hidden layers for a vector encoder


MODALITIES: tuple[Modality, ...] = (
    Modality("audio", ModalityKind.VECTOR, "an audio embedding or audio descriptors", (512, 256)),
    Modality("cf", ModalityKind.VECTOR, "a collaborative-filtering (listening data) embedding", (256,)),
    Modality("tag", ModalityKind.SET, "tags with weights; each tag has a vector in a vocabulary"),
)
MODALITY_NAMES: tuple[str, ...] = tuple(m.name for m in MODALITIES)
BY_NAME: dict[str, Modality] = {m.name: m for m in MODALITIES}

EMBEDDING_DIM = 200  # the shared space of the paper


def get_modality(name: str) -> Modality:
    """Return the modality called `name`, or raise a KeyError that lists the known ones."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown modality {name!r}; expected one of {', '.join(MODALITY_NAMES)}") from None


def modality_pairs(names: tuple[str, ...] = MODALITY_NAMES) -> list[tuple[str, str]]:
    """Every unordered pair of modalities, in registry order (audio-cf, audio-tag, cf-tag)."""
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
