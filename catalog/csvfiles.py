"""Reading the raw CSV files adapters featurize: required columns checked, errors name the file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from core.errors import CmarError


def read_csv(path: Path, required: Sequence[str], missing_hint: str = "no such file") -> pa.Table:
    """A CSV file as an Arrow table; CmarError if it is absent, unreadable or lacks a required column."""
    if not path.is_file():
        raise CmarError(f"{path}: {missing_hint}")
    try:
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    except pa.ArrowInvalid as exc:
        raise CmarError(f"{path}: not a readable CSV file ({exc})") from None
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise CmarError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(required)}")
    return table


def strings(table: pa.Table, column: str) -> np.ndarray:
    """A column as an object array of strings (None where empty)."""
    return np.asarray(table.column(column).cast(pa.string()).to_pylist(), dtype=object)


def lookup(keys: np.ndarray, index: dict[Any, int]) -> np.ndarray:
    """Row of each key in `index`, -1 where absent."""
    return np.fromiter((index.get(k, -1) for k in keys), dtype=np.int64, count=len(keys))
