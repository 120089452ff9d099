"""Modality balance: score offsets so that which signals an artist has does not decide how often it is found.

An artist's fused vector depends on which modalities the catalogue holds for it: artists
known by tags and listening data sit nearer the centre of the space than artists known by
one signal, and artists known by the same signals attract each other (two audio-only
artists share the completion maps' smoothness). So a query ranks the candidates of some
modality subsets above others for reasons that have nothing to do with music, which is what
the paper's modality-group experiment (Ferraro et al. 2023, Section 4.3, Figure 2) measures.

The index adds B[s(q), s(c)] to the score of candidate c for query q, where s() is the
modality subset of an artist or query and B an (S, S) matrix of offsets fitted at build
time without ground truth (`index_build.balance`). Stored candidate vectors carry one
coordinate per query subset, -(penalty(c) - B[s, s(c)]), and a query carries the one-hot
of its subset, so an inner product gives cos(q, c) - penalty(c) + B[s(q), s(c)] exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import numpy.typing as npt

from core.fusion import subset_name
from core.manifest import ModalityBalance
from core.modalities import MODALITY_NAMES
from core.vectors import FloatArray

DEFAULT_BALANCE_STRENGTH = 0.5  # share of the fitted offsets an index applies (chosen on OLGA; README, Results)


def modality_mask(names: Sequence[str]) -> int:
    """The bits of modalities (bit m = `MODALITY_NAMES[m]`); unknown names set no bit."""
    return sum(1 << MODALITY_NAMES.index(n) for n in set(names) if n in MODALITY_NAMES)


def modality_bits(modalities: Sequence[Sequence[str]]) -> np.ndarray:
    """(N,) int64 `modality_mask` of N artists' modality lists, each distinct list computed once."""
    known: dict[tuple[str, ...], int] = {}
    return np.array([known.setdefault(tuple(m), modality_mask(m)) for m in modalities], dtype=np.int64)


def presence_bits(present: Mapping[str, np.ndarray]) -> np.ndarray:
    """(N,) int64 modality bits of N artists from each modality's (N,) presence mask."""
    bits = np.zeros(len(next(iter(present.values()))), dtype=np.int64)
    for name, has in present.items():
        bits |= np.asarray(has, dtype=bool).astype(np.int64) * modality_mask([name])
    return bits


def all_subsets(names: list[str] | tuple[str, ...]) -> list[str]:
    """Every non-empty subset of `names` by name, singles first, then pairs, ... ("audio", "cf", "audio+cf", ...)."""
    ordered = [n for n in MODALITY_NAMES if n in names]
    return [subset_name(c) for r in range(1, len(ordered) + 1) for c in combinations(ordered, r)]


@dataclass(frozen=True)
class Balance:
    """The offsets B (S, S) of a built index, with the modality subset of each of its S slots.

    Without offsets (an index built without balance, or before it existed) there is one slot
    and B is [[0]]: every query and candidate is in slot 0 and ranking is cosine minus penalty.
    """

    subsets: tuple[str, ...] = ()  # slot -> subset name; empty: no balance, one slot
    offsets: FloatArray = field(
        default_factory=lambda: np.zeros((1, 1), dtype=np.float32)
    )  # (S, S) B[query, candidate]

    def __post_init__(self) -> None:
        width = max(len(self.subsets), 1)
        if np.shape(self.offsets) != (width, width):
            raise ValueError(f"balance offsets must be ({width}, {width}) for {width} subsets")
        object.__setattr__(self, "offsets", np.asarray(self.offsets, dtype=np.float32))
        bits = [modality_mask(s.split("+")) for s in self.subsets]
        object.__setattr__(self, "_slot_of_bits", {b: i for i, b in enumerate(bits)})
        object.__setattr__(self, "_known", int(np.bitwise_or.reduce(bits)) if bits else 0)

    @classmethod
    def of(cls, record: ModalityBalance) -> Balance:
        """The balance an index manifest records (none when it records no subsets)."""
        if not record.subsets:
            return cls()
        return cls(tuple(record.subsets), np.asarray(record.offsets, dtype=np.float32))

    @property
    def neutral(self) -> int:
        """The slot of a query whose modalities are not given: that of every modality the balance knows."""
        return self.slot(0)

    @property
    def width(self) -> int:
        """S: the number of slots (query coordinates appended to a vector; 1 without balance)."""
        return max(len(self.subsets), 1)

    def slot(self, bits: int) -> int:
        """The slot of a modality subset given by its bits; modalities the balance does not know are
        ignored, and a subset with none it knows takes the slot of all of them (the neutral choice
        for a vector of unknown origin)."""
        if not self.subsets:
            return 0
        known = int(bits) & self._known  # type: ignore[attr-defined]
        return int(self._slot_of_bits.get(known or self._known, 0))  # type: ignore[attr-defined]

    def slots(self, bits: npt.ArrayLike) -> np.ndarray:
        """(N,) int64 slots of (N,) modality bits."""
        table = np.array([self.slot(b) for b in range(1 << len(MODALITY_NAMES))], dtype=np.int64)
        return table[np.asarray(bits, dtype=np.int64).reshape(-1) & ((1 << len(MODALITY_NAMES)) - 1)]

    def penalties(self, penalty: npt.ArrayLike, slots: np.ndarray, slot: int | None = None) -> FloatArray:
        """(S, N): row s is what a query of slot s subtracts from the cosines of candidates with hub
        `penalty` (N,) in `slots` (N,), penalty - B[s, slot]; only row `slot` (N,) when it is given."""
        p = np.asarray(penalty, dtype=np.float32).reshape(1, -1)
        offsets = self.offsets if slot is None else self.offsets[slot : slot + 1]
        out = (p - offsets[:, np.asarray(slots, dtype=np.int64)]).astype(np.float32)
        return out if slot is None else out[0]
