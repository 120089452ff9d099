"""Index sizing facts shared by the build, the CLI and the service (no heavy imports)."""

from __future__ import annotations

EXACT_LIMIT = 100_000  # artists; up to this many the index is exact (IndexFlatIP), above an HNSW graph
PRECOMPUTE_LIMIT = 100_000  # artists; up to this many each artist's similar list is computed at build time
DEFAULT_NEIGHBOURS_K = 200  # length of a precomputed list: GET .../similar with k up to this is a lookup
RECALL_K = 200  # recall of an approximate index is measured on the top 200 (the evaluation's depth)
RECALL_TARGET = 0.95
RESCORE_MARGIN = 8  # candidates fetched beyond k, so that rescoring, not the search's rounding, decides the last places
