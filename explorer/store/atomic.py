"""Atomic file writes: a result file appears whole or not at all, and a failed write says why."""
from __future__ import annotations

import glob
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from explorer.errors import ExplorerError

STALE_S = 3600


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
        _remove_stale(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise ExplorerError(f"Cannot write {path}: {e.strerror or e}. Pick another path.") from e
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            # mkstemp makes the file private (0600); give it the mode the user expects of a new file
            # (0666 less the umask, usually 0644), or the mode of the file it replaces.
            os.fchmod(f.fileno(), _mode_for(path))
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise ExplorerError(f"Cannot write {path}: {e.strerror or e}. Pick another path.") from e
        raise


def _mode_for(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _remove_stale(path: Path) -> None:
    """Temporary files of ``path`` that a killed write left, more than an hour old (a younger one may be live)."""
    now = time.time()
    for old in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if now - old.lstat().st_mtime > STALE_S and old.is_file() and not old.is_symlink():
                old.unlink()
        except OSError:
            continue


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` atomically."""
    with atomic_file(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return Path(path)
