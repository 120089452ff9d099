"""Finding served artists by name: case, accents and punctuation ignored, prefixes and typos matched.

Names are compared in a search form (`search_key`: accents stripped, case-folded, every run of
punctuation and white space one space). A name matches a query when
- its search form equals the query's (score 100), begins with it at a word's end (97: "artist
  12" for "Artist 12 (live)") or anywhere (95), or one of its words begins a run that begins
  with it ("radio" finds "The Radio Dept.", 90): sorted word suffixes and a binary search,
  whatever the catalogue's size;
- or, when those give fewer than the wanted results, when rapidfuzz's `fuzz.QRatio` of the
  query and the name's beginning of about the query's length reaches `FUZZY_CUTOFF` (a typo or
  two: "radiohaed" finds "Radiohead", "artst 12" finds "Artist 12 (live)"); fuzzy scores are
  mapped onto 75 to 89, below every exact prefix, in their order.
Results are ranked by score, then popularity (where the catalogue gave one), then name.
"""

from __future__ import annotations

import bisect
import re
import threading
import unicodedata
from collections.abc import Sequence

import numpy as np
from rapidfuzz import fuzz, process

from core.names import normalize_tag

EXACT, WORD_END_PREFIX, PREFIX, WORD_PREFIX, FUZZY_MAX = 100.0, 97.0, 95.0, 90.0, 89.0
FUZZY_CUTOFF = 75.0
PREFIX_LENGTHS = (6, 10, 14, 20, 28)  # names' beginnings kept for fuzzy prefix matching; longer queries: whole names
_NON_WORD = re.compile(r"[\W_]+")


def search_key(text: str) -> str:
    """The search form of a name or query: "Sigur Rós", "sigur-ros" and " SIGUR ROS " are "sigur ros"."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return " ".join(_NON_WORD.sub(" ", plain).split())


class NameIndex:
    """The search forms of a list of names, with their word suffixes sorted for prefix look-ups."""

    def __init__(self, names: Sequence[str]) -> None:
        self.keys = [search_key(n) for n in names]
        self._beginnings = {n: [k[:n] for k in self.keys] for n in PREFIX_LENGTHS}
        suffixes: list[tuple[str, int]] = []
        for row, key in enumerate(self.keys):
            start = 0
            while True:
                suffixes.append((key[start:], row))
                start = key.find(" ", start) + 1
                if start == 0:
                    break
        suffixes.sort()
        self._suffixes = [s for s, _ in suffixes]
        self._rows = np.array([r for _, r in suffixes], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.keys)

    def scores(self, query: str, wanted: int, skip: frozenset[int] = frozenset()) -> dict[int, float]:
        """Rows matching the search form `query` and their scores (see the module docstring), rows in `skip` left out.

        Every prefix match is returned; fuzzy matches only when prefixes give fewer than `wanted`.
        """
        found: dict[int, float] = {}
        begin = bisect.bisect_left(self._suffixes, query)
        end = bisect.bisect_left(self._suffixes, query + "\U0010ffff")
        for row in self._rows[begin:end].tolist():
            if row in skip:
                continue
            score = _prefix_score(query, self.keys[row])
            if score > found.get(row, 0.0):
                found[row] = score
        if len(found) < wanted:
            length = next((n for n in PREFIX_LENGTHS if n >= len(query) + 1), None)
            choices = self.keys if length is None else self._beginnings[length]
            limit = wanted + len(found) + len(skip)
            for _, score, row in process.extract(
                query, choices, scorer=fuzz.QRatio, processor=None, limit=limit, score_cutoff=FUZZY_CUTOFF
            ):
                if row not in skip and row not in found:
                    found[row] = _fuzzy(score)
        return found


def _prefix_score(query: str, key: str) -> float:
    """The score of a name whose search form, or one of its words' runs, begins with the query's."""
    if key == query:
        return EXACT
    if key.startswith(query):
        return WORD_END_PREFIX if key[len(query)] == " " else PREFIX
    return WORD_PREFIX


def score_key(query: str, key: str) -> float | None:
    """The score of one name's search form for a query's, as `NameIndex.scores` gives it, or None."""
    if key.startswith(query) or f" {query}" in f" {key}":
        return _prefix_score(query, key)
    length = next((n for n in PREFIX_LENGTHS if n >= len(query) + 1), None)
    score = fuzz.QRatio(query, key if length is None else key[:length], processor=None, score_cutoff=FUZZY_CUTOFF)
    return _fuzzy(score) if score else None


def _fuzzy(ratio: float) -> float:
    """A QRatio from FUZZY_CUTOFF to 100 mapped onto FUZZY_CUTOFF to FUZZY_MAX, keeping its order."""
    return FUZZY_CUTOFF + (float(ratio) - FUZZY_CUTOFF) * (FUZZY_MAX - FUZZY_CUTOFF) / (100.0 - FUZZY_CUTOFF)


class LazyNameIndex:
    """A `NameIndex` made on first use (start-up does not pay for it), once, under a lock."""

    def __init__(self, names: Sequence[str]) -> None:
        self._names = names
        self._index: NameIndex | None = None
        self._lock = threading.Lock()

    def get(self) -> NameIndex:
        """The index, made now if this is the first call."""
        if self._index is None:
            with self._lock:
                if self._index is None:
                    self._index = NameIndex(self._names)
        return self._index


class TagIndex:
    """The model's tag vocabularies in canonical form (`core.names.normalize_tag`), for prefix look-ups.

    Each entry: (canonical name, the vocabulary's spelling, modality, indexed artists carrying it,
    or None when the index predates the counts).
    """

    def __init__(self, vocabularies: dict[str, list[str]], counts: dict[str, dict[str, int]] | None) -> None:
        entries: dict[tuple[str, str], tuple[str, str, str, int | None]] = {}
        for modality, names in vocabularies.items():
            known = None if counts is None else {normalize_tag(t): c for t, c in counts.get(modality, {}).items()}
            for name in names:
                canonical = normalize_tag(name)
                count = None if known is None else known.get(canonical, 0)
                entries.setdefault((canonical, modality), (canonical, name, modality, count))
        self.entries = sorted(entries.values())
        self._keys = [e[0] for e in self.entries]

    def find(self, prefix: str, limit: int) -> list[dict[str, object]]:
        """Tags whose canonical name begins with `prefix` (canonical; "" for all), most carried first."""
        begin = bisect.bisect_left(self._keys, prefix)
        end = bisect.bisect_left(self._keys, prefix + "\U0010ffff") if prefix else len(self._keys)
        found = sorted(self.entries[begin:end], key=lambda e: (-(e[3] or 0), e[0], e[2]))[:limit]
        return [{"tag": name, "modality": modality, "artists": count} for _, name, modality, count in found]
