"""Control tasks: tasks whose relation to the others is known, added to a sweep to check its verdicts.

- ``shuffled:<task>``: the task's labels permuted over the rows. It carries no
  information about the inputs, so as a partner it can only hurt or be neutral,
  and nothing can help it. A "positive" cell with it means the verdicts of
  that sweep are not to be trusted.
- ``noisy:<task>``: a copy of the task with 20 % of its labels replaced by a
  wrong one (another class; for regression another row's value). It shares
  the task's signal, so it should help that task where data is scarce.

Controls are plain tasks of a copied ``Dataset``: they train, appear in the
matrices and the report like any task, and their names say what they are.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from explorer.data.dataset import Dataset
from explorer.data.tasks import Task, has_label
from explorer.errors import ExplorerError

KINDS = ("shuffled", "noisy")
NOISE_SHARE = 0.2
SEED = 12345  # fixed, so a control is the same task in every sweep of the same data


def is_control(name: str) -> bool:
    return name.split(":", 1)[0] in KINDS and ":" in name


def control_kind(name: str) -> str | None:
    return name.split(":", 1)[0] if is_control(name) else None


def parse_controls(specs: Sequence[str] | str | None, tasks: Sequence[str]) -> list[tuple[str, str]]:
    """``["shuffled", "noisy:b"]`` -> ``[("shuffled", first task), ("noisy", "b")]``, validated."""
    if specs is None:
        return []
    if isinstance(specs, str):
        specs = [s for s in specs.split(",") if s.strip()]
    out: list[tuple[str, str]] = []
    for spec in specs:
        kind, _, target = str(spec).strip().partition(":")
        if kind not in KINDS:
            raise ExplorerError(f"Unknown control '{spec}'. Use {', '.join(KINDS)}, optionally with a task "
                                f"(e.g. shuffled:{tasks[0] if tasks else 'TASK'}).")
        target = target or (tasks[0] if tasks else "")
        if target not in tasks:
            raise ExplorerError(f"Control '{spec}' names task '{target}', which is not among the sweep's tasks "
                                f"({', '.join(tasks)}).")
        if (kind, target) not in out:
            out.append((kind, target))
    return out


def _shuffled(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = y.copy()
    keep = np.flatnonzero(has_label(y))
    out[keep] = y[rng.permutation(keep)]
    return out


def _noisy(task: Task, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = y.copy()
    keep = np.flatnonzero(has_label(y))
    flip = rng.choice(keep, size=int(round(NOISE_SHARE * len(keep))), replace=False)
    if task.is_classification:
        k = len(task.classes)
        # a shift of 1 .. k-1 classes is always a different class
        out[flip] = (y[flip] + rng.integers(1, k, size=len(flip))) % k
    else:
        out[flip] = y[rng.choice(keep, size=len(flip))]
    return out


def with_controls(dataset: Dataset, controls: Sequence[tuple[str, str]]) -> tuple[Dataset, list[str]]:
    """A copy of ``dataset`` with the control tasks added, and their names."""
    if not controls:
        return dataset, []
    tasks, labels, names = dict(dataset.tasks), dict(dataset.labels), []
    for kind, target in controls:
        name = f"{kind}:{target}"
        rng = np.random.default_rng([SEED, KINDS.index(kind), *target.encode()])
        task = dataset.tasks[target]
        y = dataset.labels[target]
        labels[name] = _shuffled(y, rng) if kind == "shuffled" else _noisy(task, y, rng)
        what = "labels permuted" if kind == "shuffled" else f"{NOISE_SHARE:.0%} of labels wrong"
        tasks[name] = replace(task, name=name, description=f"control: {target} with {what}")
        names.append(name)
    source = {**dataset.source, "controls": [f"{k}:{t}" for k, t in controls]}
    return replace(dataset, tasks=tasks, labels=labels, source=source), names


def untrustworthy(report) -> list[str]:
    """The cells where a shuffled control came out positive (helped, or helped its partner): each one says
    the verdicts of this setting are not to be trusted."""
    get = report.get if isinstance(report, dict) else lambda k, d=None: getattr(report, k, d)
    tasks, verdict = get("tasks", []), get("pair_verdict", [])
    out = []
    for i, a in enumerate(tasks):
        for j, b in enumerate(tasks):
            involved = "shuffled" in (control_kind(a), control_kind(b))
            if i != j and involved and verdict and verdict[i][j] == "positive":
                out.append(f"{a} with {b}")
    return out
