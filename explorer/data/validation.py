"""Named checks for data at the boundary (in the style of scikit-learn's utils/validation).

Every file, column and parameter a user gives goes through one of these once,
where it enters the explorer (the CSV loader, the CLI, the app), so training never
sees a value it cannot learn from. Each check raises ``ExplorerError`` with one
sentence that names the column or parameter, the first bad row, and the fix; the
README's "Data rules" section lists the same limits.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from explorer.errors import ExplorerError

# A file wider than this is refused before it is parsed: one-hot and the
# per-column checks are linear, but a model over 5,000 raw columns of a few
# hundred rows learns nothing a user can interpret.
MAX_COLUMNS = 5000
# Numbers beyond this are sentinels or overflow garbage (1e308 overflows the
# standard deviation); real measurements of any unit fit well inside it.
MAX_ABS_VALUE = 1e15
# A categorical feature becomes one input per distinct value.
MAX_CATEGORY_LEVELS = 100
# Names are shown in tables, plots and file names; longer ones are not names.
MAX_NAME_CHARS = 200
# The widest shared layer the explorer trains (64 is the default).
MAX_HIDDEN = 4096


def _row(i: int) -> str:
    # Row numbers as a spreadsheet shows them: the header is row 1.
    return f"row {i + 2} of the file"


def check_column_count(n_columns: int, limit: int = MAX_COLUMNS) -> None:
    """Refuse a file with more columns than ``limit`` before it is parsed."""
    if n_columns > limit:
        raise ExplorerError(f"The CSV file has {n_columns:,} columns; the limit is {limit:,}. Keep only the "
                            "feature and label columns you need (or sample the features), then load it again.")


def check_unique_names(names: list[str]) -> None:
    """Refuse duplicate header names (pandas would silently rename the second 'y' to 'y.1')."""
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise ExplorerError(f"The CSV header names column '{name}' twice (column {i + 1} repeats it). "
                                "Give every column its own name, then load the file again.")
        seen.add(name)


def check_name(name: str, role: str = "column") -> str:
    """A column or task name the explorer can show: not blank, at most ``MAX_NAME_CHARS`` characters."""
    if not isinstance(name, str) or not name.strip():
        raise ExplorerError(f"A {role} has a blank name. Give it a name in the CSV header.")
    if len(name) > MAX_NAME_CHARS:
        raise ExplorerError(f"The {role} name '{name[:40]}...' has {len(name):,} characters; the limit is "
                            f"{MAX_NAME_CHARS}. Rename it in the CSV header.")
    if any(ord(ch) < 32 for ch in name):
        raise ExplorerError(f"The {role} name {name!r} contains a control character (a line break or tab). "
                            "Rename it in the CSV header.")
    return name


def check_finite(name: str, values, role: str = "numeric feature") -> np.ndarray:
    """Floats of a numeric column; missing (NaN) is allowed, inf and |x| > ``MAX_ABS_VALUE`` are not."""
    x = np.asarray(values, dtype=float)
    bad = np.isinf(x) | (np.abs(np.nan_to_num(x, nan=0.0)) > MAX_ABS_VALUE)
    if bad.any():
        i = int(np.argmax(bad))
        raise ExplorerError(f"The {role} '{name}' holds {x[i]!r} in {_row(i)}: values must be finite numbers "
                            f"within ±{MAX_ABS_VALUE:.0e}. Fix or blank that cell (a blank is treated as "
                            "missing), then load the file again.")
    return x


EMPTY_FIXES = {
    "feature column": "Remove it from the feature columns.",
    "label column": "Choose a column that holds labels, or drop it from the label columns.",
    "text column": "Choose the column that holds the text.",
}


def check_not_empty(name: str, values, role: str = "feature column", fix: str | None = None) -> None:
    """Refuse a column with no value in any row (missing or blank): it would train silently on nothing.

    ``role`` names what the column is for ("feature column", "label column", "text column"); ``fix`` says
    what to do instead (by default the role's entry of ``EMPTY_FIXES``)."""
    values = values if isinstance(values, pd.Series) else pd.Series(values)
    present = values.dropna()
    if not pd.api.types.is_numeric_dtype(values):
        present = present[present.astype(str).str.strip() != ""]
    if len(present) == 0:
        fix = fix or EMPTY_FIXES.get(role, "Choose another column.")
        raise ExplorerError(f"The {role} '{name}' is empty in every row. {fix}")


def check_categorical(name: str, values: pd.Series, limit: int = MAX_CATEGORY_LEVELS) -> None:
    """A text feature becomes one input per distinct value: refuse identifiers and free text."""
    present = values.dropna().astype(str)
    levels = present.nunique()
    if levels > limit:
        raise ExplorerError(f"The categorical feature '{name}' has {levels:,} distinct values; the limit is "
                            f"{limit}. Is it an identifier or free text? Remove it from the feature columns "
                            "(or use it as the text column).")
    if len(present) >= 10 and levels == len(present):
        raise ExplorerError(f"The categorical feature '{name}' has a different value in every row, like an "
                            "identifier: it cannot help predict anything. Remove it from the feature columns.")


def check_int_param(name: str, value, low: int, high: int | None = None, fix: str = "") -> int:
    """A whole number in [low, high]; ``fix`` says what to use instead."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ExplorerError(f"{name} must be a whole number, got {value!r}.{' ' + fix if fix else ''}")
    if value < low or (high is not None and value > high):
        span = f">= {low}" if high is None else f"between {low} and {high}"
        raise ExplorerError(f"{name} must be {span}, got {value!r}.{' ' + fix if fix else ''}")
    return int(value)


def check_share(name: str, value, *, one_allowed: bool = True, fix: str = "") -> float:
    """A number in [0, 1] (or [0, 1) without ``one_allowed``); ``fix`` says what the ends mean."""
    high = "1]" if one_allowed else "1)"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not (0 <= value <= 1 if one_allowed else 0 <= value < 1):
        raise ExplorerError(f"{name} must be in [0, {high}, got {value!r}.{' ' + fix if fix else ''}")
    return float(value)


def check_train_size(value) -> float | int:
    """A fraction in (0, 1] or a whole row count >= 2 (2.9 is neither: it is not rounded down silently)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or value <= 0:
        raise ExplorerError(f"train_size must be a fraction in (0, 1] or a whole number of rows >= 2, "
                            f"got {value!r}.")
    if value > 1 and (float(value) != int(value) or value < 2):
        raise ExplorerError(f"train_size {value!r} is neither a fraction in (0, 1] nor a whole number of "
                            f"rows: use {int(value)} rows or a fraction such as 0.5.")
    return value


def normalise_label(v: str) -> str:
    """The class a raw label string names: surrounding spaces dropped, '1.0' and '1' the same number."""
    s = v.strip()
    try:
        f = float(s)
    except ValueError:
        return s
    if not np.isfinite(f):
        return s
    return str(int(f)) if f.is_integer() and abs(f) < 2 ** 53 else repr(f)
