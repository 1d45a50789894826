"""Where a sweep's models train: a registry of backends, one module each (``local``, ``ray``).

A backend trains a list of (combination, seed) slots and returns one
``explorer.relatedness.combos.ComboRun`` per slot, exactly as
``explorer.training.batched.train_combinations`` would. The sweep (and adaptive
rounds that add seeds) only ever asks "train these slots", so any backend
serves them. A backend module defines ``NAME``, ``HELP`` and ``make(address)``;
adding one is adding one file here. Modules are imported only when chosen, so
``ray`` is never imported by a local sweep.
"""
from __future__ import annotations

import importlib
import pkgutil
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from explorer.errors import ExplorerError

DEFAULT = "local"
Slot = tuple[tuple[str, ...], int]  # (combination, seed)
CONNECT_TIMEOUT_S = 5.0  # a cluster head that does not accept a connection by then is not there


def names() -> list[str]:
    """Backend names, from the module files (nothing is imported)."""
    found = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    return sorted(found, key=lambda n: (n != DEFAULT, n))


def check_backend(name: str, address: str | None = None) -> str:
    """The backend name, validated; ``address`` only makes sense for a cluster backend."""
    if name not in names():
        raise ExplorerError(f"Unknown backend '{name}'. Use one of: {', '.join(names())}.")
    if address and name == "local":
        raise ExplorerError(f"--address {address} names a cluster, but the backend is 'local': "
                            "add --backend ray or drop --address.")
    if address:
        check_address(address)
    return name


def check_address(address: str) -> None:
    """Fail in seconds, with one sentence, when nothing listens at ``address`` (``ray.init`` waits long,
    and the check runs before Ray, the data or anything else is loaded)."""
    if address == "auto":
        return
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        host, port = parts.hostname, parts.port or (10001 if address.startswith("ray://") else 6379)
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            return
    except (OSError, ValueError, TypeError):
        pass
    raise ExplorerError(f"no Ray cluster at {address}: start one with `ray start --head` or drop --address")


def get_backend(name: str = DEFAULT, address: str | None = None):
    """A ready backend: an object with ``train_combinations`` (same signature as the batched trainer's)
    and ``train_slots``. A cluster backend connects here, so a bad address fails before any training."""
    module = importlib.import_module(f"{__name__}.{check_backend(name, address)}")
    return module.make(address)


def rectangles(slots: Sequence[Slot]) -> list[tuple[list[tuple[str, ...]], list[int]]]:
    """Slots as (combinations, seeds) blocks the batched trainer takes, seeds needing the same combinations
    together, in first-seen order."""
    by_seed: dict[int, list[tuple[str, ...]]] = {}
    for combo, seed in slots:
        combos = by_seed.setdefault(int(seed), [])
        if tuple(combo) not in combos:
            combos.append(tuple(combo))
    blocks: dict[tuple, list[int]] = {}
    for seed, combos in by_seed.items():
        blocks.setdefault(tuple(combos), []).append(seed)
    return [(list(combos), seeds) for combos, seeds in blocks.items()]


def chunks(combinations: list, seeds: list[int], workers: int) -> list[tuple[list, list[int]]]:
    """The slots (every combination with every seed) as at most ``workers`` blocks, the largest as small as
    this allows: a sweep waits for its largest chunk.

    A block is what the batched trainer takes, each of its combinations with each of its seeds (the slots
    of one seed share its batch order). Tried: the seeds in g near-equal groups with each group's
    combinations split, and the combinations in g groups with each group's seeds split, the workers dealt
    evenly to the groups (larger groups first); kept: the smallest largest block, then the smallest spread.
    Blocks differ by at most one slot when the seeds divide the workers or the workers the seeds; in any
    case the largest is less than min(seeds, combinations) slots above the even share ⌈slots / blocks⌉.
    """
    if not combinations or not seeds:
        return []
    k = max(1, min(workers, len(combinations) * len(seeds)))
    # Seed groups first, the most groups first: of equally even chunkings, the one this backend made before
    # wins (seed groups with all their combinations, or each seed's combinations split in parts).
    tried = [[(c, s) for s, c in _dealt(seeds, combinations, g, k)] for g in range(min(len(seeds), k), 0, -1)]
    tried += [_dealt(combinations, seeds, g, k) for g in range(1, min(len(combinations), k) + 1)]
    return min(tried, key=_imbalance)  # the first of equals


def _dealt(outer: list, inner: list, groups: int, k: int) -> list[tuple[list, list]]:
    """``outer`` in ``groups`` near-equal groups, ``k`` parts dealt to them (larger groups first), and each
    group's ``inner`` split in its parts: (outer part, inner part) blocks."""
    parts, extra = divmod(k, groups)
    return [(group, piece) for i, group in enumerate(_split(outer, groups))
            for piece in _split(inner, parts + (i < extra))]


def _imbalance(blocks: list[tuple[list, list]]) -> tuple[int, int]:
    sizes = [len(a) * len(b) for a, b in blocks]
    return max(sizes), max(sizes) - min(sizes)


def _split(items: list, n: int) -> list[list]:
    """``items`` in ``n`` consecutive near-equal parts (fewer when there are fewer items)."""
    q, r = divmod(len(items), n)
    out, start = [], 0
    for i in range(n):
        end = start + q + (i < r)
        if end > start:
            out.append(list(items[start:end]))
        start = end
    return out


class Backend:
    """What every backend shares: ``train_slots`` on top of its ``train_combinations``."""

    name = DEFAULT

    def train_combinations(self, dataset, combinations, config, seeds, mode="batched", progress=None,
                           prepared=None, keep_models=False):
        raise NotImplementedError

    def train_slots(self, dataset, slots: Sequence[Slot], config, mode="batched", progress=None,
                    prepared=None, keep_models=False):
        """One run per slot, in the order of ``slots``."""
        runs = {}
        for combos, seeds in rectangles(slots):
            for run in self.train_combinations(dataset, combos, config, seeds, mode=mode, progress=progress,
                                               prepared=prepared, keep_models=keep_models):
                runs[(tuple(run.tasks), run.seed)] = run
        return [runs[(tuple(c), int(s))] for c, s in slots]

    def describe(self) -> str:
        return "this process"
