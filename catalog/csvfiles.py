"""Reading the raw CSV files adapters featurize: required columns checked, errors name the file."""

from __future__ import annotations

import codecs
import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from core.errors import CmarError


def read_csv(
    path: Path,
    required: Sequence[str],
    missing_hint: str = "no such file",
    encoding: str = "utf-8",
    delimiter: str = ",",
    as_strings: bool = False,
) -> pa.Table:
    """A CSV file as an Arrow table; CmarError if it is absent, unreadable or lacks a required column.

    With `as_strings` every column is read as text exactly as written: no value (not even
    "NA", "NULL" or "nan") becomes missing; the caller parses numbers. Raises CmarError naming
    the file for an unknown encoding, bytes that are not text in `encoding`, a malformed row,
    or a header whose one column suggests another delimiter.
    """
    path = Path(path)
    if not path.is_file():
        raise CmarError(f"{path}: {missing_hint}")
    try:
        text_encoding = codecs.lookup(encoding)._is_text_encoding  # rot13, base64: codecs, not text encodings
    except LookupError:
        text_encoding = False
    if not text_encoding:
        raise CmarError(f"--encoding {encoding!r}: not a known text encoding (e.g. utf-8, latin-1)")
    if len(delimiter) != 1:
        raise CmarError(f"--delimiter {delimiter!r}: expected one character (e.g. ',' or a tab)")
    convert = pacsv.ConvertOptions(strings_can_be_null=True)
    if as_strings:
        header = _header(path, encoding, delimiter)
        if len(header) == 1 and len(required) > 1:
            raise CmarError(
                f"{path}: the header has one column ({header[0][:60]!r}), so the delimiter is probably not "
                f"{delimiter!r}; expected columns {', '.join(required)} (see --delimiter)"
            )
        convert = pacsv.ConvertOptions(
            column_types=dict.fromkeys(header, pa.string()),
            null_values=[],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        )
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(encoding=encoding),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=convert,
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        message = str(exc).splitlines()[0]
        hint = " (not valid text in this encoding: try --encoding latin-1)" if "UTF8" in message.upper() else ""
        raise CmarError(f"{path}: not a readable CSV file ({message}){hint}") from None
    except OSError as exc:
        raise CmarError(f"{path}: cannot read ({exc})") from None
    missing = [c for c in required if c not in table.column_names]
    if missing:
        hint = ""
        if table.num_columns == 1 and required:
            hint = f"; the header has one column, so the delimiter is probably not {delimiter!r} (see --delimiter)"
        raise CmarError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(required)}{hint}")
    return table


def _header(path: Path, encoding: str, delimiter: str) -> list[str]:
    """The column names of a CSV file's first line."""
    try:
        with path.open("rb") as fh:
            first = fh.readline().decode(encoding).rstrip("\r\n")
    except UnicodeDecodeError:
        raise CmarError(
            f"{path}: the header is not valid {encoding} text (try --encoding latin-1 for ISO-8859-1 files)"
        ) from None
    except OSError as exc:
        raise CmarError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        row = next(csv.reader([first.lstrip("\ufeff")], delimiter=delimiter), [])
    except csv.Error as exc:
        raise CmarError(f"{path}: cannot read the header ({exc}); lines must end with \\n or \\r\\n") from None
    if not row:
        raise CmarError(f"{path}: empty file; expected a header line")
    repeated = sorted({c for c in row if row.count(c) > 1})
    if repeated:
        raise CmarError(f"{path}: column {repeated[0]!r} appears more than once in the header")
    return row


def strings(table: pa.Table, column: str) -> np.ndarray:
    """A column as an object array of strings (None where empty)."""
    return np.asarray(table.column(column).cast(pa.string()).to_pylist(), dtype=object)


def lookup(keys: np.ndarray, index: dict[Any, int]) -> np.ndarray:
    """Row of each key in `index`, -1 where absent."""
    return np.fromiter((index.get(k, -1) for k in keys), dtype=np.int64, count=len(keys))
