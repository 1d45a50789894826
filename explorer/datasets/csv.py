"""A user's own CSV file as a dataset.

Either one text column (modality text) or feature columns (tabular) are the
input; each label column is one task. Everything that can be wrong with a file
or a column choice raises ``ExplorerError`` with a message that says what to
change, since the app shows these messages to the user as they are.
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.data.dataset import Dataset
from explorer.datasets import register
from explorer.errors import ExplorerError
from explorer.data.tasks import Task, encode_labels
from explorer.data.validation import (MAX_ABS_VALUE, check_categorical, check_column_count, check_finite, check_name,
                                      check_not_empty, check_unique_names)

MAX_MB_ENV = "EXPLORER_MAX_CSV_MB"
DEFAULT_MAX_MB = 50
# Fewer rows cannot be split into training, validation and test rows.
MIN_ROWS = 10
MISSING_LEVEL = "missing"


def default_max_bytes() -> int:
    """The size limit: ``EXPLORER_MAX_CSV_MB`` megabytes, 50 when unset."""
    raw = os.environ.get(MAX_MB_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_MB * 1024 * 1024
    try:
        mb = float(raw)
    except ValueError:
        mb = float("nan")
    if not np.isfinite(mb) or mb <= 0:
        raise ExplorerError(f"{MAX_MB_ENV}={raw!r} is not a positive number of megabytes. "
                            f"Set it to e.g. {DEFAULT_MAX_MB}, or unset it.")
    return int(mb * 1024 * 1024)


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def _too_big(size: int, limit: int) -> ExplorerError:
    return ExplorerError(f"The CSV file is {_mb(size)}; the limit is {_mb(limit)}. Use a smaller file "
                         f"(e.g. a sample of its rows), or raise the limit with the {MAX_MB_ENV} "
                         "environment variable (in megabytes).")


def _read_bytes(path: str | os.PathLike | None, data: bytes | None, max_bytes: int) -> bytes:
    if (path is None) == (data is None):
        raise ExplorerError("Give either a CSV file path or the file's contents, not both or neither.")
    if data is not None:
        data = bytes(data)
        if len(data) > max_bytes:
            raise _too_big(len(data), max_bytes)
        return data
    p = Path(path)
    if not p.is_file():
        raise ExplorerError(f"CSV file '{p}' does not exist or is not a file. Check the path.")
    size = p.stat().st_size
    if size > max_bytes:  # checked before reading, so a huge file is never loaded
        raise _too_big(size, max_bytes)
    return p.read_bytes()


def _decode(data: bytes) -> str:
    if not data.strip():
        raise ExplorerError("The CSV file is empty. Choose a file with a header row and at least one data row.")
    try:
        text = data.decode("utf-8-sig")  # -sig: Excel writes a byte-order mark
    except UnicodeDecodeError as e:
        raise ExplorerError(f"The CSV file is not UTF-8 text (undecodable byte at position {e.start}). "
                            "Save it as UTF-8 (in Excel: 'CSV UTF-8'), then load it again.") from None
    if "\x00" in text:
        raise ExplorerError("The CSV file contains NUL bytes, so it is not a text file. Export it again as "
                            "CSV UTF-8, then load it again.")
    return text


def read_header(data: bytes) -> list[str]:
    """The column names of a CSV file's contents, checked (count, duplicates) before the rows are parsed."""
    text = _decode(data)
    try:
        header = next((row for row in csv.reader(io.StringIO(text)) if any(c.strip() for c in row)), [])
    except csv.Error as e:
        raise ExplorerError(f"Could not parse the CSV header ({e}). Check that the first row holds the column "
                            "names, separated by commas.") from None
    if not header:
        raise ExplorerError("The CSV file is empty. Choose a file with a header row and at least one data row.")
    check_column_count(len(header))
    check_unique_names([h.strip() for h in header])
    return header


def _parse(data: bytes) -> pd.DataFrame:
    read_header(data)
    text = _decode(data)
    try:
        df = pd.read_csv(io.StringIO(text))
    except pd.errors.EmptyDataError:
        raise ExplorerError("The CSV file is empty. Choose a file with a header row and at least one "
                            "data row.") from None
    except (pd.errors.ParserError, ValueError) as e:
        detail = " ".join(str(e).split())
        raise ExplorerError(f"Could not parse the file as CSV ({detail}). Check that it is comma-separated, "
                            "has one header row, and that every row has the same number of fields "
                            "(quote fields that contain commas).") from None
    if len(df) == 0:
        raise ExplorerError("The CSV file has a header but no data rows. Add rows, or choose another file.")
    if len(df) < MIN_ROWS:
        raise ExplorerError(f"The CSV file has only {len(df)} data rows; at least {MIN_ROWS} are needed to "
                            "split it into training, validation and test rows.")
    return df


def _check_columns(df: pd.DataFrame, text_col: str | None, feature_cols: list[str] | None,
                   label_cols: list[str], kinds: dict[str, str]) -> None:
    available = ", ".join(map(str, df.columns))
    if not label_cols:
        raise ExplorerError(f"No label columns chosen: each label column is a task, so choose at least one. "
                            f"Available columns: {available}.")
    if text_col is not None and feature_cols:
        raise ExplorerError("Choose either a text column or feature columns as the input, not both.")
    if text_col is None and not feature_cols:
        raise ExplorerError("Choose the input: a text column (for text) or feature columns (for a table). "
                            f"Available columns: {available}.")
    inputs = [text_col] if text_col is not None else list(feature_cols)
    for col in label_cols:
        check_name(col, "label column")
    for col in inputs:  # the same limit as task names: feature names are shown in tables, plots and bundles
        check_name(col, "text column" if col == text_col else "feature column")
    for col in [*inputs, *label_cols]:
        if col not in df.columns:
            raise ExplorerError(f"Column '{col}' is not in the CSV file. Available columns: {available}.")
    for col, n in pd.Series(label_cols).value_counts().items():
        if n > 1:
            raise ExplorerError(f"Label column '{col}' is listed {n} times; each task needs its own column. "
                                "List it once.")
    for col, n in pd.Series(inputs).value_counts().items():
        if n > 1:
            raise ExplorerError(f"Feature column '{col}' is listed {n} times. List it once.")
    for col in label_cols:
        if col in inputs:
            role = "the text column" if col == text_col else "a feature column"
            raise ExplorerError(f"Column '{col}' is both a label column and {role}: the model would see the "
                                "answer in its input. Remove it from one of the two.")
    unknown = [k for k in kinds if k not in label_cols]
    if unknown:
        raise ExplorerError(f"Kinds are given for {', '.join(map(repr, unknown))}, which "
                            f"{'is not a label column' if len(unknown) == 1 else 'are not label columns'}. "
                            f"Label columns: {', '.join(label_cols)}.")


def _tabular_inputs(df: pd.DataFrame, feature_cols: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Numeric columns as float (NaN kept); any other column becomes categorical strings."""
    frame = df[feature_cols].reset_index(drop=True)
    numeric = [c for c, t in zip(feature_cols, frame.dtypes)
               if pd.api.types.is_bool_dtype(t) or pd.api.types.is_numeric_dtype(t)]
    # The numeric columns are checked and converted as one block; a pandas call
    # per column (and inserting columns one by one, which copies the frame each
    # time) made a 20,000-column file take most of an hour.
    block = frame[numeric].to_numpy(dtype=float, na_value=np.nan) if numeric else np.zeros((len(frame), 0))
    empty = np.isnan(block).all(axis=0)
    bad = np.isinf(block) | (np.abs(np.nan_to_num(block, nan=0.0)) > MAX_ABS_VALUE)
    for j in sorted(set(np.flatnonzero(empty)) | set(np.flatnonzero(bad.any(axis=0)))):
        check_not_empty(numeric[j], frame[numeric[j]])
        check_finite(numeric[j], block[:, j])
    is_numeric = set(numeric)
    categorical = [c for c in feature_cols if c not in is_numeric]
    text = {}
    for col in categorical:
        values = frame[col]
        check_not_empty(col, values)
        check_categorical(col, values)
        text[col] = values.astype(object).where(values.notna(), MISSING_LEVEL).astype(str).to_numpy()
    out = pd.DataFrame(block, columns=numeric)  # one float block, not one array per column
    if categorical:
        out = pd.concat([out, pd.DataFrame(text)], axis=1)[feature_cols]
    return out, categorical


@register("csv", "text or tabular", "Your own CSV file: a text column or feature columns, "
          "and one or more label columns.")
def load_csv(path: str | os.PathLike | None = None, data: bytes | None = None, *,
             text_col: str | None = None, feature_cols: list[str] | None = None,
             label_cols: list[str], kinds: dict[str, str] | None = None,
             max_bytes: int | None = None, name: str = "csv") -> Dataset:
    """Load a CSV file (``path``) or its contents (``data``) as a dataset.

    ``kinds`` overrides the detected kind of a label column ("binary",
    "multiclass" or "regression"). ``max_bytes`` defaults to the
    ``EXPLORER_MAX_CSV_MB`` environment variable (megabytes), else 50 MB.
    """
    kinds = dict(kinds or {})
    label_cols = list(label_cols or [])
    feature_cols = list(feature_cols) if feature_cols else None
    limit = default_max_bytes() if max_bytes is None else int(max_bytes)
    raw = _read_bytes(path, data, limit)
    df = _parse(raw)
    _check_columns(df, text_col, feature_cols, label_cols, kinds)

    categorical: list[str] = []
    if text_col is not None:
        column = df[text_col]
        check_not_empty(text_col, column, "text column")
        texts = column.astype(object).where(column.notna(), "").astype(str).tolist()
        modality, inputs = "text", texts
    else:
        modality = "tabular"
        inputs, categorical = _tabular_inputs(df, feature_cols)

    tasks: dict[str, Task] = {}
    labels: dict[str, np.ndarray] = {}
    for col in label_cols:
        tasks[col], labels[col] = encode_labels(col, df[col].reset_index(drop=True), kind=kinds.get(col),
                                                description=f"Column '{col}' of the CSV file.")
    source = {"name": "csv", "sha256": hashlib.sha256(raw).hexdigest(), "text_col": text_col,
              "feature_cols": feature_cols, "label_cols": label_cols, "kinds": kinds}
    return Dataset(name=name, modality=modality, inputs=inputs, tasks=tasks, labels=labels,
                   description=f"CSV file with {len(df)} rows.", categorical=categorical, source=source)
