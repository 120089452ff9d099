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
from typing import Any

import numpy as np
from rapidfuzz import fuzz, process

from core.names import normalize_tag
from inference.encoder import Vocabulary

EXACT, WORD_END_PREFIX, PREFIX, WORD_PREFIX, FUZZY_MAX = 100.0, 97.0, 95.0, 90.0, 89.0
FUZZY_CUTOFF = 75.0
PREFIX_LENGTHS = (6, 10, 14, 20, 28)  # names' beginnings kept for fuzzy prefix matching; longer queries: whole names
_NON_WORD = re.compile(r"[\W_]+")
_APOSTROPHES = re.compile("['\u2019\u02bc]")  # "don't" is "dont"
# Latin letters that Unicode does not decompose into a base letter and a mark
_LETTERS = str.maketrans({"ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "æ": "ae", "œ": "oe", "\u0131": "i"})


def search_key(text: str) -> str:
    """The search form of a name or query: "Sigur Rós", "sigur-ros" and " SIGUR ROS " are "sigur ros";
    "Røyksopp" is "royksopp", "Don't" is "dont"."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().translate(_LETTERS)
    return " ".join(_NON_WORD.sub(" ", _APOSTROPHES.sub("", plain)).split())


class NameIndex:
    """The search forms of a list of names, with their word suffixes sorted for prefix look-ups.

    Matching is vectorised (numpy over the matching suffixes, rapidfuzz's `cdist` over the
    names' beginnings), so a one-letter query over 100,000 names costs milliseconds, not a
    Python loop per match.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.keys = [search_key(n) for n in names]
        self._beginnings = {n: [k[:n] for k in self.keys] for n in PREFIX_LENGTHS}
        suffixes: list[tuple[str, int, int]] = []
        for row, key in enumerate(self.keys):
            for start in _word_starts(key):
                suffixes.append((key[start:], row, start))
        suffixes.sort()
        self._suffixes = [s for s, _, _ in suffixes]
        self._rows = np.array([r for _, r, _ in suffixes], dtype=np.int64)
        self._starts = np.array([st for _, _, st in suffixes], dtype=np.int64)
        self._word_starts = np.unique(self._rows * _POSITIONS + self._starts)  # (row, position) of every word
        self._lengths = np.array([len(k) for k in self.keys], dtype=np.int64)
        self.alphabetical = np.empty(len(self.keys), dtype=np.int64)  # each row's place in key order
        self.alphabetical[np.argsort(np.array(self.keys, dtype=object), kind="stable")] = np.arange(len(self.keys))

    def __len__(self) -> int:
        return len(self.keys)

    def match(self, query: str, wanted: int, skip: frozenset[int] = frozenset()) -> tuple[np.ndarray, np.ndarray]:
        """Rows matching the search form `query` and their scores (see the module docstring), rows in `skip` out.

        Every prefix match is returned; fuzzy matches when prefixes give fewer than `wanted`:
        the best `wanted` of them and every match tied with the last (so ties rank by
        popularity, not by row).
        """
        begin = bisect.bisect_left(self._suffixes, query)
        end = bisect.bisect_left(self._suffixes, query + "\U0010ffff")
        rows, starts = self._rows[begin:end], self._starts[begin:end]
        order = np.lexsort((starts, rows))  # each row once, at its earliest matching word
        rows, starts = rows[order], starts[order]
        first = np.ones(rows.size, dtype=bool)
        first[1:] = rows[1:] != rows[:-1]
        rows, starts = rows[first], starts[first]
        at_start = starts == 0
        whole = self._lengths[rows] == len(query)
        codes = rows * _POSITIONS + len(query) + 1  # does a word begin right after the query's length?
        places = np.minimum(np.searchsorted(self._word_starts, codes), max(self._word_starts.size - 1, 0))
        word_end = self._word_starts[places] == codes if self._word_starts.size else np.zeros(rows.size, dtype=bool)
        scores = np.where(
            at_start, np.where(whole, EXACT, np.where(word_end, WORD_END_PREFIX, PREFIX)), WORD_PREFIX
        ).astype(np.float64)
        if skip:
            keep = ~np.isin(rows, np.fromiter(skip, dtype=np.int64))
            rows, scores = rows[keep], scores[keep]
        if rows.size >= wanted:
            return rows, scores
        length = next((n for n in PREFIX_LENGTHS if n >= len(query) + 1), None)
        choices = self.keys if length is None else self._beginnings[length]
        ratios = process.cdist(
            [query], choices, scorer=fuzz.QRatio, processor=None, score_cutoff=FUZZY_CUTOFF, dtype=np.float64
        )[0]
        ratios[rows] = 0  # already matched by a prefix
        if skip:
            ratios[np.fromiter(skip, dtype=np.int64)] = 0
        fuzzy = np.flatnonzero(ratios)
        need = wanted - rows.size
        if fuzzy.size > need:
            last = np.partition(ratios[fuzzy], fuzzy.size - need)[fuzzy.size - need]
            fuzzy = fuzzy[ratios[fuzzy] >= last]
        return np.concatenate([rows, fuzzy]), np.concatenate([scores, _fuzzy(ratios[fuzzy].astype(np.float64))])

    def scores(self, query: str, wanted: int, skip: frozenset[int] = frozenset()) -> dict[int, float]:
        """`match` as a dict: row -> score."""
        rows, scores = self.match(query, wanted, skip)
        return dict(zip(rows.tolist(), scores.tolist(), strict=True))


_POSITIONS = 1 << 24  # (row, position) pairs as one integer: row * _POSITIONS + position


def _word_starts(key: str) -> list[int]:
    """Where each word of a search form begins."""
    return [0, *(i + 1 for i, c in enumerate(key) if c == " ")]


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
    return float(_fuzzy(float(score))) if score else None


def _fuzzy(ratio: Any) -> Any:
    """A QRatio (or an array of them) from FUZZY_CUTOFF to 100 mapped onto FUZZY_CUTOFF to FUZZY_MAX, in order."""
    return FUZZY_CUTOFF + (ratio - FUZZY_CUTOFF) * (FUZZY_MAX - FUZZY_CUTOFF) / (100.0 - FUZZY_CUTOFF)


class LazyNameIndex:
    """A `NameIndex` made on first use (start-up does not pay for it), once, under a lock."""

    def __init__(self, names: Sequence[str]) -> None:
        self._names = names
        self._index: NameIndex | None = None
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        """Whether the index has been made."""
        return self._index is not None

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

    def __init__(self, vocabularies: dict[str, Vocabulary], counts: dict[str, dict[str, int]] | None) -> None:
        entries: list[tuple[str, str, str, int | None]] = []
        for modality, vocab in vocabularies.items():
            known = None if counts is None else {normalize_tag(t): c for t, c in counts.get(modality, {}).items()}
            for canonical, row in vocab.index.items():  # the canonical forms the model's look-ups use
                count = None if known is None else known.get(canonical, 0)
                entries.append((canonical, vocab.names[row], modality, count))
        self.entries = sorted(entries)
        self._keys = [e[0] for e in self.entries]

    def find(self, prefix: str, limit: int) -> list[dict[str, object]]:
        """Tags whose canonical name begins with `prefix` (canonical; "" for all), most carried first."""
        begin = bisect.bisect_left(self._keys, prefix)
        end = bisect.bisect_left(self._keys, prefix + "\U0010ffff") if prefix else len(self._keys)
        found = sorted(self.entries[begin:end], key=lambda e: (-(e[3] or 0), e[0], e[2]))[:limit]
        return [{"tag": name, "modality": modality, "artists": count} for _, name, modality, count in found]
