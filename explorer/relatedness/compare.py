"""Compare multi-task optimisation methods on one combination of tasks.

For each seed, every task is trained alone once with method 'ew' (with a single
task every method reduces to plain descent on that one loss, and the gradient
aggregators refuse to run), and the combination is trained once per method. All
models share the split, the preprocessing and the training settings; only the
method and the seed change. So every method's gain on a task is measured against
the same single-task scores, with the seed spread on both sides.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np

from explorer.data.dataset import Dataset
from explorer.errors import ExplorerError
from explorer.relatedness.gains import Gain, delta_m, gain_stats, relative_gain
from explorer.methods import REGISTRY, get_method, names
from explorer.training.metrics import primary
from explorer.relatedness.sweep import BASELINE_METHOD
from explorer.store.runs import stored_runs
from explorer.training.progress import Progress, within
from explorer.training.trainer import TrainConfig, TrainResult, prepare, train



@dataclass
class MethodResult:
    """One method trained on the combination, once per seed."""
    method: str
    scores: dict[str, list[float]]        # task -> primary test score per seed
    gains: dict[str, Gain]                # task -> gain over the shared single-task scores
    delta_m: float                        # mean gain over the tasks, percent
    delta_m_std: float                    # spread of the per-seed Δm (NaN with one seed)
    weight_trace: list[list[dict]]        # per seed: per step {step, epoch, weights {task: w}}
    best_epochs: list[int]
    seconds: float

    def to_dict(self) -> dict:
        return {"method": self.method, "description": REGISTRY[self.method].description,
                "scores": self.scores, "gains": {t: g.to_dict() for t, g in self.gains.items()},
                "delta_m": _finite(self.delta_m), "delta_m_std": _finite(self.delta_m_std),
                "best_epochs": self.best_epochs, "seconds": round(self.seconds, 2),
                "weight_trace": [[{"step": s["step"], "epoch": s["epoch"],
                                   "weights": {t: round(w, 5) for t, w in s["weights"].items()}}
                                  for s in seed] for seed in self.weight_trace]}


@dataclass
class Comparison:
    dataset: str
    tasks: list[str]
    metric: dict[str, str]                # task -> name of its primary metric
    seeds: list[int]
    config: dict
    single: dict[str, list[float]]        # task -> single-task primary score per seed (shared by all methods)
    methods: dict[str, MethodResult] = field(default_factory=dict)
    seconds: float = 0.0

    def __post_init__(self) -> None:
        # Not in to_dict (plain attributes, not fields). models: with keep_models=True, the first seed's
        # TrainResults, ready for explorer.store.runs.save_run: models[method]["+".join(tasks)], the single-task
        # baselines under BASELINE_METHOD. reused: task -> ids of stored runs that served as baselines.
        self.models: dict[str, dict[str, TrainResult]] = {}
        self.reused: dict[str, list[str]] = {}

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "tasks": self.tasks, "metric": self.metric, "seeds": self.seeds,
                "config": self.config, "baseline_method": BASELINE_METHOD, "single": self.single,
                "methods": {m: r.to_dict() for m, r in self.methods.items()},
                "seconds": round(self.seconds, 2)}

    def table(self) -> str:
        """Per-task gain of each method as plain text, for the CLI."""
        seeds = len(self.seeds)
        lines = [f"{self.dataset}: {' + '.join(self.tasks)}, {seeds} seed{'s' * (seeds > 1)}; gain in % of the "
                 "single-task score, ± seed std, [95% interval]"]
        lines.append("single-task baseline (ew): " + ", ".join(
            f"{t} {self.metric[t]}={np.mean(s):.3f}" for t, s in self.single.items()))
        for name, r in self.methods.items():
            cells = []
            for t, g in r.gains.items():
                interval = "" if math.isnan(g.low) else f" [{g.low:+.1f}, {g.high:+.1f}]"
                cells.append(f"{t} {g.mean:+.1f}±{g.std:.1f}{interval} {g.verdict}")
            spread = "" if math.isnan(r.delta_m_std) else f"±{r.delta_m_std:.1f}"
            lines.append(f"  {name:<7} Δm {r.delta_m:+.1f}{spread}  |  " + "  |  ".join(cells))
        return "\n".join(lines)


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value


def _check(dataset: Dataset, tasks: list[str], methods: list[str], seeds: int) -> tuple[list[str], list[str]]:
    tasks = dataset.check_tasks(tasks)
    if len(tasks) < 2:
        raise ExplorerError("Comparing multi-task methods needs at least two tasks; "
                            f"got {', '.join(tasks)}. Add a task to --tasks.")
    methods = list(dict.fromkeys(methods))
    if not methods:
        raise ExplorerError("No method to compare. Choose some of: " + ", ".join(names()) + ".")
    for name in methods:
        get_method(name, tasks)  # fails now, with the method's own message, not after the baselines have trained
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ExplorerError(f"seeds must be a whole number >= 1, got {seeds!r}. Use 3 or more to see seed noise.")
    return tasks, methods


def compare_methods(dataset: Dataset, tasks: list[str], methods: list[str], seeds: int = 3,
                    config: TrainConfig | None = None, progress: Progress | None = None,
                    keep_models: bool = False, reuse_store: bool = False) -> Comparison:
    """Train the single-task baselines and the combination under each method; gains per method.

    Seeds 0..seeds-1 change initialisation and batch order; the split stays
    ``config.split_seed``. ``progress`` gets ``ProgressEvent``s (phase "compare") over
    all the runs; returning False cancels.

    ``keep_models`` keeps the first seed's TrainResults in ``comparison.models``
    (single-task baselines under ``BASELINE_METHOD``, the combination under each
    method), so a caller can save them without training them again.
    ``reuse_store`` takes a single-task baseline's test score from a stored run
    with the same data, task, split, settings and seed instead of training it;
    ``comparison.reused`` names those runs (they are in the store already, so
    ``models`` leaves them out).
    """
    config = (config or TrainConfig()).resolve(dataset.modality)  # the JSON records the lr actually used
    tasks, methods = _check(dataset, tasks, methods, seeds)
    seed_list = list(range(seeds))
    stored = _stored_singles(dataset, tasks, config, seed_list) if reuse_store else {}
    runs = len(seed_list) * (len(tasks) + len(methods)) - len(stored)
    done = 0
    start = time.perf_counter()

    def fit(task_names: list[str], method: str, seed: int, prepared) -> TrainResult:
        nonlocal done
        done += 1
        label = f"{method} {'+'.join(task_names)} seed {seed} ({done}/{runs})"
        return train(dataset, task_names, replace(config, method=method, seed=seed),
                     progress=within(progress, done - 1, 1, runs, "compare", label), prepared=prepared)

    single: dict[str, list[float]] = {}
    metric: dict[str, str] = {}
    kept: dict[str, dict[str, TrainResult]] = {}
    reused: dict[str, list[str]] = {}
    first = seed_list[0]
    for t in tasks:
        prepared = None
        metrics = []
        for s in seed_list:
            if (t, s) in stored:
                run = stored[(t, s)]
                reused.setdefault(t, []).append(run.id)
                metrics.append(run.metrics["test"][t])
                continue
            prepared = prepared or prepare(dataset, [t], config)
            result = fit([t], BASELINE_METHOD, s, prepared)
            if keep_models and s == first:
                kept.setdefault(BASELINE_METHOD, {})[t] = result
            metrics.append(result.metrics[t])
        single[t] = [primary(m) for m in metrics]
        metric[t] = metrics[0]["primary"]

    settings = {k: v for k, v in config.to_dict().items() if k not in ("method", "seed")}  # these vary per run
    comparison = Comparison(dataset.name, tasks, metric, seed_list, settings, single)
    prepared = prepare(dataset, tasks, config)
    for name in methods:
        began = time.perf_counter()
        results = [fit(tasks, name, s, prepared) for s in seed_list]
        if keep_models:
            kept.setdefault(name, {})["+".join(tasks)] = results[0]
        scores = {t: [primary(r.metrics[t]) for r in results] for t in tasks}
        gains = {t: gain_stats(scores[t], single[t]) for t in tasks}
        per_seed = [delta_m([relative_gain(scores[t][i], float(np.mean(single[t]))) for t in tasks])
                    for i in range(len(seed_list))]
        comparison.methods[name] = MethodResult(
            name, scores, gains, delta_m([g.mean for g in gains.values()]),
            float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else float("nan"),
            [r.weight_trace for r in results], [r.best_epoch for r in results], time.perf_counter() - began)
    comparison.seconds = time.perf_counter() - start
    comparison.models, comparison.reused = kept, reused
    return comparison


def _stored_singles(dataset: Dataset, tasks: list[str], config: TrainConfig, seeds: list[int]) -> dict:
    """(task, seed) -> a stored single-task run trained exactly as its baseline would be, where one exists."""
    found = stored_runs(dataset.fingerprint(), [(t,) for t in tasks], replace(config, method=BASELINE_METHOD), seeds)
    return {(combo[0], seed): run for (combo, seed), run in found.items() if combo[0] in run.metrics.get("test", {})}
