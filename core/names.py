"""Names that cross every door: tag names, artist ids, tag weights. One rule each, defined here.

The featurizers, catalogue validation, the API (`POST /similar`, `PUT /artists/{id}`) and
`cmar catalog add-writes` all call these functions, so a name means the same thing wherever
it enters.
"""

from __future__ import annotations

import math
import re
import unicodedata

MAX_ID_LENGTH = 256  # characters in an artist id
MIN_TAG_WEIGHT = 1e-6  # below it a tag's pooling weight, log(1 + w), vanishes next to the encoder's bias
_SPACES = re.compile(r"\s+")


def has_surrogates(text: str) -> bool:
    """True if `text` holds a lone UTF-16 surrogate (not encodable as UTF-8; JSON lets "\\ud800" through)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def normalize_tag(name: str) -> str:
    """The canonical form of a tag name: Unicode NFKC, case-folded, runs of white space made one space, trimmed.

    "  Post-Rock ", "post-rock" and "POST-ROCK" (also in full-width letters) are one tag; "post rock" (a space, not a
    hyphen) is another. Raises ValueError for a name with a lone surrogate.
    """
    if has_surrogates(name):
        raise ValueError("tag names must be valid Unicode text (found a lone surrogate)")
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", name).casefold()).strip()


def artist_id_problem(artist_id: str) -> str | None:
    """Why `artist_id` cannot be an artist id, or None if it can.

    An id is 1 to 256 characters of valid Unicode without "/" (ids are one URL path segment:
    `/artists/{id}`, percent-encoded), without control characters or line breaks, without
    white space at either end, and not "." or "..". Every
    door refuses other ids with this message: catalogue validation, `cmar catalog from-raw`,
    `PUT /artists/{id}` and `cmar catalog add-writes`.
    """
    if not artist_id:
        return "an artist id must not be empty"
    if len(artist_id) > MAX_ID_LENGTH:
        return f"an artist id has at most {MAX_ID_LENGTH} characters, got {len(artist_id)}"
    if has_surrogates(artist_id):
        return "an artist id must be valid Unicode text (found a lone surrogate)"
    if "/" in artist_id:
        return f"artist id {artist_id!r} contains '/'; ids are one URL path segment, so '/' is not allowed"
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in artist_id):
        return f"artist id {artist_id!r} contains a control character or line break (tab, newline, U+2028, ...)"
    if artist_id != artist_id.strip():
        return f"artist id {artist_id!r} starts or ends with white space"
    if artist_id in (".", ".."):
        return f"artist id {artist_id!r} is a relative path segment, which URLs cannot address"
    return None


def tag_weight_problem(weight: float) -> str | None:
    """Why `weight` cannot weigh a tag, or None if it can: weights are finite numbers >= 1e-6.

    A tag's pooling weight is log(1 + weight) (`core.vectors.item_weights`); below 1e-6 the
    weights of a whole tag set vanish and the tag encoder answers its bias for any tags.
    """
    if not math.isfinite(weight):
        return "a tag weight must be a finite number"
    if weight < MIN_TAG_WEIGHT:
        return (
            f"a tag weight must be >= {MIN_TAG_WEIGHT:g} (a count, e.g. of listeners who used the tag), got {weight:g}"
        )
    return None
