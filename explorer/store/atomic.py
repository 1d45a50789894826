"""Atomic file writes: a result file appears whole or not at all, and a failed write says why."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from explorer.errors import ExplorerError


def check_writable(path: str | Path) -> Path:
    """Fail early, before any long work, when ``path`` cannot be written as a file."""
    path = Path(path)
    if path.is_dir():
        raise ExplorerError(f"Cannot write {path}: it is a folder. Give a file name, e.g. {path / 'report.json'}.")
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is not None and (not parent.is_dir() or not os.access(parent, os.W_OK)):
        raise ExplorerError(f"Cannot write {path}: {parent} is not a writable folder. Pick another path.")
    return path


@contextmanager
def atomic_file(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file next to ``path`` (creating its folder); rename it over ``path`` on success.

    The temporary file is in the same folder so that the rename is atomic; on any
    error it is removed and an OSError becomes an ExplorerError naming the path.
    """
    path = check_writable(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise ExplorerError(f"Cannot write {path}: {e.strerror or e}. Pick another path.") from e
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise ExplorerError(f"Cannot write {path}: {e.strerror or e}. Pick another path.") from e
        raise


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` atomically."""
    with atomic_file(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return Path(path)
