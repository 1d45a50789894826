"""Compare multi-task optimisation methods on one combination of tasks: a loop over ``train_together``.

Each method is one call of ``explorer.relatedness.together.train_together``. The
first call trains each task alone once per seed with method 'ew' (with a single
task every method reduces to plain descent on that one loss, and the gradient
aggregators refuse to run); every later call takes those runs as its baselines.
All models share the split, the preprocessing and the training settings; only
the method and the seed change. So every method's gain on a task is measured
against the same single-task scores, with the same statistics as the Train page,
``python -m explorer gains`` and the sweep.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from explorer.data.dataset import Dataset
from explorer.errors import ExplorerError
from explorer.methods import REGISTRY, get_method, names
from explorer.relatedness.gains import Gain
from explorer.relatedness.sweep import BASELINE_METHOD
from explorer.relatedness.together import TogetherPlan, TogetherResult, finite, plan_together
from explorer.training.batched import resolve_mode
from explorer.training.progress import Progress, within
from explorer.training.trainer import TrainConfig, prepare


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
                "delta_m": finite(self.delta_m), "delta_m_std": finite(self.delta_m_std),
                "best_epochs": self.best_epochs, "seconds": round(self.seconds, 2),
                "weight_trace": [[{"step": s["step"], "epoch": s["epoch"],
                                   "weights": {t: round(w, 5) for t, w in s["weights"].items()}}
                                  for s in seed] for seed in self.weight_trace]}


@dataclass
class MethodComparison:
    dataset: str
    tasks: list[str]
    metric: dict[str, str]                # task -> name of its primary metric
    seeds: list[int]
    config: dict
    single: dict[str, list[float]]        # task -> single-task primary score per seed (shared by all methods)
    methods: dict[str, MethodResult] = field(default_factory=dict)
    seconds: float = 0.0
    saved: dict[str, dict[str, str]] = field(default_factory=dict)   # method -> its TogetherResult.saved
    reused: dict[str, list[str]] = field(default_factory=dict)       # task -> stored runs used as baselines
    keep_at_chance: bool = False  # tasks at chance got a gain relative to their raw score, and count in Δm

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "tasks": self.tasks, "metric": self.metric, "seeds": self.seeds,
                "config": self.config, "baseline_method": BASELINE_METHOD, "single": self.single,
                "methods": {m: r.to_dict() for m, r in self.methods.items()},
                "saved": self.saved, "reused": self.reused, "seconds": round(self.seconds, 2),
                "keep_at_chance": self.keep_at_chance}

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
                if math.isnan(g.mean):  # at chance: no relative gain (explorer.relatedness.gains.headroom)
                    cells.append(f"{t} at chance, {g.diff:+.4f} {self.metric[t]} {g.verdict}")
                    continue
                interval = "" if math.isnan(g.low) else f" [{g.low:+.1f}, {g.high:+.1f}]"
                marked = " (at chance)" if g.at_chance else ""
                cells.append(f"{t} {g.mean:+.1f}±{g.std:.1f}{interval}{marked} {g.verdict}")
            spread = "" if math.isnan(r.delta_m_std) else f"±{r.delta_m_std:.1f}"
            dm = "n/a" if math.isnan(r.delta_m) else f"{r.delta_m:+.1f}{spread}"
            lines.append(f"  {name:<7} Δm {dm}  |  " + "  |  ".join(cells))
        chance = sorted({t for r in self.methods.values() for t, g in r.gains.items() if g.at_chance})
        if chance:
            lines.append(f"At chance: {', '.join(chance)}: " + (
                "kept in as asked, their gains are relative to the raw score and count in Δm; verdicts stay unclear."
                if self.keep_at_chance else "no relative gain and left out of Δm (--keep-at-chance keeps them in)."))
        return "\n".join(lines)


@dataclass
class ComparisonPlan:
    """A validated method comparison: one ``TogetherPlan`` per method; nothing is trained until ``run``."""
    plans: list[TogetherPlan]

    def run(self, progress: Progress | None = None) -> MethodComparison:
        start = time.perf_counter()
        first = self.plans[0]
        # one split and preprocessing for all; plan_together checked the tasks
        prepared = prepare(first.dataset, first.tasks, first.config, checked=True)
        n_seeds, n_tasks = len(first.seeds), len(first.tasks)
        sizes = [n_seeds * (n_tasks + 1)] + [n_seeds] * (len(self.plans) - 1)  # the first trains the baselines too
        results: dict[str, TogetherResult] = {}
        singles = None
        for i, plan in enumerate(self.plans):
            part = within(progress, sum(sizes[:i]), sizes[i], sum(sizes), "compare", plan.method)
            r = plan.run(part, singles=singles, prepared=prepared)
            results[plan.method], singles = r, r.single_runs
        one = results[first.method]
        settings = {k: v for k, v in first.config.to_dict().items() if k not in ("method", "seed")}  # vary per run
        comparison = MethodComparison(one.dataset, one.tasks, one.metric, one.seeds, settings, one.single,
                                      reused=one.reused, keep_at_chance=first.keep_at_chance)
        for name, r in results.items():
            comparison.methods[name] = MethodResult(name, r.together, r.gains, r.delta_m, r.delta_m_std,
                                                    r.weight_trace, r.best_epochs, r.seconds)
            if r.saved:
                comparison.saved[name] = r.saved
        comparison.seconds = time.perf_counter() - start
        return comparison


def plan_comparison(dataset: Dataset, tasks: list[str], methods: list[str], seeds: int = 3,
                    config: TrainConfig | None = None, *, store: Path | str | None = None, save: bool = False,
                    reuse_store: bool = False, mode: str = "sequential",
                    keep_at_chance: bool = False) -> ComparisonPlan:
    """Check a comparison (every method, the tasks, seeds and settings) before anything trains.

    ``keep_at_chance`` as in ``plan_together``: tasks at chance get a gain relative to their raw score
    and count in every method's Δm (still marked, verdicts unclear)."""
    if isinstance(methods, str):
        raise ExplorerError(f"methods must be a list of method names, e.g. ['{methods}'], not a string.")
    methods = list(dict.fromkeys(methods))
    if not methods:
        raise ExplorerError("Choose at least one method to compare, some of: " + ", ".join(names()) + ".")
    first = plan_together(dataset, tasks, seeds, methods[0], config, store=store, save=save,
                          reuse_store=reuse_store, mode=mode, keep_at_chance=keep_at_chance)
    plans = [first]
    for name in methods[1:]:  # the first's validated tasks and settings; each method checks itself on them
        get_method(name, first.tasks)
        plans.append(dataclasses.replace(first, method=name, config=dataclasses.replace(first.config, method=name),
                                         combo_mode=resolve_mode(mode, name)))
    return ComparisonPlan(plans)


def compare_methods(dataset: Dataset, tasks: list[str], methods: list[str], seeds: int = 3,
                    config: TrainConfig | None = None, progress: Progress | None = None, *,
                    store: Path | str | None = None, save: bool = False, reuse_store: bool = False,
                    mode: str = "sequential", keep_at_chance: bool = False) -> MethodComparison:
    """``train_together`` once per method, the single-task baselines trained once and shared.

    Seeds are ``config.seed + i`` (i < ``seeds``); the split stays ``config.split_seed``.
    ``progress`` gets ``ProgressEvent``s (phase "compare") over all the runs; returning
    False cancels. ``save`` keeps each method's first-seed models in the run store
    (``saved`` names them, per method); ``reuse_store`` takes single-task baselines
    from stored runs with the same key (``reused`` names them). ``mode`` "sequential"
    (the default) records every method's task weights per step; "auto" batches the
    equal-weight models but records no weights for them. ``keep_at_chance``: see ``plan_comparison``.
    """
    return plan_comparison(dataset, tasks, methods, seeds, config, store=store, save=save,
                           reuse_store=reuse_store, mode=mode, keep_at_chance=keep_at_chance).run(progress)
