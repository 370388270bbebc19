"""Labelled files read as rows (CSV, TSV, JSON Lines), checked where they enter: the encoding, the layout (a
text holding an unquoted delimiter, a tab-separated file named .csv, a gzip file), one JSON object per line."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

MAX_FIELD_CHARS = 2**24
"""The longest field a CSV or TSV cell may hold (16 MiB of text; csv's own default is 131,072)."""


def rows_from_bytes(blob: bytes, path: str, fmt: str) -> list[dict[str, str]]:
    """The rows of a file's bytes (``fmt``: csv, tsv or jsonl), each a dict of column -> value.

    Raises:
        ValueError: gzip, not UTF-8, a line that is not one JSON object, a row with more fields than the header, a
            file whose one column name holds the other delimiter (named with the wrong suffix), or what csv refuses.
    """
    if blob[:2] == b"\x1f\x8b":
        raise ValueError(f"'{path}' is gzip-compressed; decompress it (gunzip) and give the .{fmt} file")
    try:
        text = blob.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"'{path}' is not UTF-8 text (byte {e.start}); re-save it as UTF-8") from e
    if fmt == "jsonl":
        rows = []
        for n, line in enumerate(text.split("\n"), 1):  # only a newline ends a line (U+2028 may be in a text)
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"'{path}' line {n} is not JSON ({e}); expected one JSON object per line") from e
            except RecursionError as e:
                raise ValueError(f"'{path}' line {n} is nested too deeply to be a row of text and label") from e
            if not isinstance(row, dict):
                raise ValueError(
                    f"'{path}' line {n} is a {type(row).__name__}; expected a JSON object per line (a .json file is "
                    "read as JSON Lines: one object per line, no enclosing array)"
                )
            rows.append({str(k): v for k, v in row.items()})
        return rows
    if csv.field_size_limit() < MAX_FIELD_CHARS:  # csv's default (131,072) is shorter than a long document
        csv.field_size_limit(MAX_FIELD_CHARS)
    delimiter, other = ("\t", ",") if fmt == "tsv" else (",", "\t")
    # newline="": csv itself ends a line at \n, \r\n or a lone \r (old Mac files), and keeps those in quoted texts
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = []
    try:
        names = list(reader.fieldnames or [])
        if len(names) == 1 and other in names[0]:
            right = ".csv" if fmt == "tsv" else ".tsv"
            raise ValueError(f"'{path}' looks {'comma' if other == ',' else 'tab'}-separated; name it {right}")
        for row in reader:
            # more fields than the header: a text holding an unquoted delimiter, cut where it stood (a trailing empty
            # field, as some exporters write on every row, is none)
            if any(str(v or "").strip() for v in row.get(None) or []):
                header = len(reader.fieldnames or [])
                raise ValueError(
                    f"'{path}' line {reader.line_num} has {header + len(row[None])} fields; its header has {header}:"
                    f' quote a field that holds a {"tab" if fmt == "tsv" else "comma"} ("like, this")'
                )
            row.pop(None, None)
            rows.append(row)
    except csv.Error as e:
        raise ValueError(f"'{path}' is not a readable {fmt.upper()} file (line {reader.line_num}: {e})") from e
    return rows


def file_format(path: Path) -> str:
    """The format a file's suffix names: csv, tsv or jsonl (.json is read as JSON Lines).

    Raises:
        ValueError: another suffix.
    """
    suffix = path.suffix.lower()
    if suffix in (".csv",):
        return "csv"
    if suffix in (".tsv", ".tab"):
        return "tsv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise ValueError(f"'{path}' has suffix '{suffix}'; expected .csv, .tsv or .jsonl")
