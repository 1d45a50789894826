"""The use case "these tasks together vs each alone, k seeds, one method": ``train_together``.

For each seed, every task is trained alone with plain descent (``ew``: with one
task every method reduces to it, and gradient aggregators refuse a single task)
and the tasks are trained together once with the chosen method. The gains come
from ``explorer.relatedness.transfer.transfer_from_runs`` (seed-paired where that
lowers the variance, with the paired test-row bootstrap, against each task's chance level, verdicts at a
false discovery rate): the same statistics as the sweep's matrix.

Single-task baselines are reused, in this order: runs handed in by the caller
(``singles``, e.g. an earlier method of ``compare_methods``), then stored runs with
the same data, task, split, settings and seed (``reuse_store``). With ``save`` the
first seed's models (together, and each task alone) are kept in the run store, a
stored run with the same key standing in for a duplicate. The Train page and
``python -m explorer gains`` are both one call of this function.

A task whose single-task model is not above chance gets no relative gain and stays out of Δm;
``keep_at_chance`` (the sweep's switch) gives it a gain relative to its raw score instead, still
marked ``at_chance``, its verdict unclear.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from explorer.data.dataset import Dataset
from explorer.errors import ExplorerError
from explorer.methods import get_method
from explorer.relatedness.combos import ComboRun, label, stored_singles, to_train_result
from explorer.relatedness.gains import CHANCE_LEVEL, Gain
from explorer.relatedness.sweep import BASELINE_METHOD, baseline_scores, test_truth
from explorer.relatedness.transfer import combo_key, transfer_from_runs
from explorer.store.runs import check_store_writable, home, save_run, stored_runs
from explorer.training.batched import resolve_mode, train_combinations
from explorer.training.device import describe, resolve_device
from explorer.training.progress import Progress, emit, within
from explorer.training.trainer import Prepared, TrainConfig, prepare

PHASE = "together"


@dataclass
class TogetherResult:
    """Tasks trained together with one method against each alone, over seeds."""
    dataset: str
    tasks: list[str]
    method: str
    seeds: list[int]
    metric: dict[str, str]                  # task -> name of its primary metric
    config: dict                            # resolved training settings (method and seed vary per run)
    single: dict[str, list[float]]          # task -> primary test score alone, per seed
    together: dict[str, list[float]]        # task -> primary test score in the combination, per seed
    gains: dict[str, Gain]                  # task -> gain together vs alone, with its interval and verdict
    delta_m: float                          # mean gain over the tasks, percent (NaN when none has one)
    delta_m_std: float                      # spread of the per-seed Δm (NaN with one seed)
    saved: dict[str, str] = field(default_factory=dict)          # combo key -> run id of its first-seed model
    reused: dict[str, list[str]] = field(default_factory=dict)   # task -> stored runs that served as baselines
    trained: list[str] = field(default_factory=list)             # the models this call trained ("a+b seed 0")
    weight_trace: list[list[dict]] = field(default_factory=list)  # per seed, per step (sequential mode only)
    best_epochs: list[int] = field(default_factory=list)         # of the combination, per seed
    history: dict[str, list[dict]] = field(default_factory=dict)  # combo key -> first seed's losses per epoch
    device: str = ""
    seconds: float = 0.0
    keep_at_chance: bool = False  # tasks at chance got a gain relative to their raw score, and count in Δm

    def __post_init__(self) -> None:
        # Not in to_dict (plain attributes): the single-task runs, which a later call takes as ``singles``.
        self.single_runs: list[ComboRun] = []

    @property
    def key(self) -> str:
        return combo_key(self.tasks)

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "tasks": self.tasks, "method": self.method, "seeds": self.seeds,
                "metric": self.metric, "config": self.config, "baseline_method": BASELINE_METHOD,
                "single": self.single, "together": self.together,
                "gains": {t: g.to_dict() for t, g in self.gains.items()},
                "delta_m": finite(self.delta_m), "delta_m_std": finite(self.delta_m_std),
                "saved": self.saved, "reused": self.reused, "trained": self.trained,
                "best_epochs": self.best_epochs, "history": self.history, "device": self.device,
                "seconds": round(self.seconds, 2), "keep_at_chance": self.keep_at_chance}

    def table(self) -> str:
        """Per-task scores alone and together, the gain with its interval and the verdict, as plain text."""
        n = len(self.seeds)
        rows = [("task", "metric", "single", "together", "gain %", "95 % interval", "verdict")]
        for t in self.tasks:
            g = self.gains.get(t)
            if g is None:  # no test labels for this task: nothing to compare
                rows.append((t, self.metric.get(t, ""), "n/a", "n/a", "n/a", "", "no test scores"))
                continue
            if g.at_chance:  # kept in (keep_at_chance): a gain relative to the raw score, marked
                gain = "at chance" if math.isnan(g.mean) else f"{g.mean:+.1f} (at chance)"
            else:
                gain = f"{g.mean:+.1f}"
            interval = "" if math.isnan(g.low) else f"[{g.low:+.1f}, {g.high:+.1f}]"
            rows.append((t, self.metric[t], mean_std(self.single[t]), mean_std(self.together[t]), gain,
                         interval, g.verdict))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [f"{self.dataset}: {' + '.join(self.tasks)} together ({self.method}) vs each alone (ew), "
                 f"{n} seed{'s' * (n > 1)}"]
        lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
        chance = [t for t in self.tasks if self.gains.get(t) is not None and self.gains[t].at_chance]
        if chance:
            lines.append(f"At chance (single-task model not above {CHANCE_LEVEL}): {', '.join(chance)}; "
                         + ("kept in Δm as asked, with a gain relative to the raw score and an unclear verdict."
                            if self.keep_at_chance else "no relative gain and left out of Δm "
                            "(--keep-at-chance keeps them in)."))
        spread = "" if math.isnan(self.delta_m_std) else f" ± {self.delta_m_std:.1f}"
        lines.append("Δm (mean gain over the tasks): " +
                     ("n/a" if math.isnan(self.delta_m) else f"{self.delta_m:+.1f} %{spread}"))
        if n < 2:
            lines.append("With one seed the seed noise is unknown: every verdict is unclear. Use --seeds 3.")
        trained, reused = len(self.trained), sum(len(v) for v in self.reused.values())
        lines.append(f"{trained} model{'s' * (trained != 1)} trained, {reused} stored baseline"
                     f"{'s' * (reused != 1)} reused, {self.seconds:.1f} s on {self.device}")
        if self.saved:
            lines.append("kept in the run store: " + ", ".join(self.saved.values()))
        return "\n".join(lines)


def finite(value: float) -> float | None:
    """NaN as None, for JSON."""
    return None if math.isnan(value) else value


def mean_std(values: list[float | None]) -> str:
    """Scores as "mean ± seed std" (the mean alone for one score, n/a for none)."""
    vals = [v for v in values if v is not None and np.isfinite(v)]
    if not vals:
        return "n/a"
    return f"{np.mean(vals):.3f}" + (f" ± {np.std(vals, ddof=1):.3f}" if len(vals) > 1 else "")


@dataclass
class TogetherPlan:
    """A validated request of ``train_together``: nothing is trained until ``run``."""
    dataset: Dataset
    tasks: list[str]
    seeds: list[int]
    method: str
    config: TrainConfig        # resolved, with the method
    store: Path
    save: bool
    reuse_store: bool
    combo_mode: str            # the trainer's mode for the combination, and for the single-task baselines
    single_mode: str
    device: str
    keep_at_chance: bool = False

    def run(self, progress: Progress | None = None, *, singles: list[ComboRun] | None = None,
            prepared: Prepared | None = None) -> TogetherResult:
        return _run(self, progress, singles, prepared)


def plan_together(dataset: Dataset, tasks: list[str], seeds: int = 3, method: str = "ew",
                  config: TrainConfig | None = None, *, store: Path | str | None = None, save: bool = True,
                  reuse_store: bool = True, mode: str = "auto", keep_at_chance: bool = False) -> TogetherPlan:
    """Check everything ``train_together`` needs, train nothing: the one validation of this use case.

    Bad tasks, seeds, method, settings or device, or (with ``save``) a run store that cannot take the
    models, are one ExplorerError sentence here, before any training.
    """
    if isinstance(tasks, str):
        raise ExplorerError(f"tasks must be a list of task names, e.g. ['{tasks}'], not a string.")
    tasks = dataset.check_tasks(list(tasks))
    if len(tasks) < 2:
        raise ExplorerError(f"Choose at least two tasks: the gains compare training them together with "
                            f"training each alone (got {', '.join(tasks)}).")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ExplorerError(f"seeds must be a whole number >= 1, got {seeds!r}. Use 3 or more to see seed noise.")
    get_method(method, tasks)  # an unknown method fails now, with the method's own message
    config = replace((config or TrainConfig()).validate(), method=method).resolve(dataset.modality)
    combo_mode, single_mode = resolve_mode(mode, method), resolve_mode(mode, BASELINE_METHOD)
    device = describe(resolve_device(config.device))  # an unavailable device fails before any training
    store = Path(store or home())  # the store at the time of the request, whatever changes later
    if save:
        check_store_writable(store)  # the models are saved when training ends: refuse now, not then
    return TogetherPlan(dataset, tasks, [config.seed + i for i in range(seeds)], method, config, store, save,
                        reuse_store, combo_mode, single_mode, device, bool(keep_at_chance))


def train_together(dataset: Dataset, tasks: list[str], seeds: int = 3, method: str = "ew",
                   config: TrainConfig | None = None, *, progress: Progress | None = None,
                   store: Path | str | None = None, save: bool = True, reuse_store: bool = True,
                   mode: str = "auto", keep_at_chance: bool = False) -> TogetherResult:
    """Train ``tasks`` together with ``method`` and each alone, with seeds ``config.seed + i`` (i < ``seeds``).

    ``store`` (default: ``$EXPLORER_HOME``) is where baselines are looked up (``reuse_store``) and, with
    ``save``, where the first seed's models are kept; it is checked writable before any training. ``mode``
    is the trainer's (``explorer.training.batched.MODE_CHOICES``; auto batches the equal-weight models,
    sequential records the task weights per step). ``progress`` gets ``ProgressEvent``s (phase "together");
    returning False cancels. ``keep_at_chance`` gives a task at chance a gain relative to its raw score
    (``explorer.relatedness.gains.gain_stats``), so it counts in Δm. ``plan_together(...).run(progress)`` is
    the same in two steps (check, then train).
    """
    return plan_together(dataset, tasks, seeds, method, config, store=store, save=save, reuse_store=reuse_store,
                         mode=mode, keep_at_chance=keep_at_chance).run(progress)


def _run(plan: TogetherPlan, progress: Progress | None, singles: list[ComboRun] | None,
         prepared: Prepared | None) -> TogetherResult:
    """Train what the plan needs: the baselines not at hand (``singles``, then the store), and the combination."""
    start = time.perf_counter()
    dataset, tasks, config, method, store, save = (plan.dataset, plan.tasks, plan.config, plan.method,
                                                   plan.store, plan.save)
    combo_mode, single_mode, device, reuse_store = plan.combo_mode, plan.single_mode, plan.device, plan.reuse_store
    seed_list = plan.seeds
    base = replace(config, method=BASELINE_METHOD)
    together = tuple(tasks)

    have: dict[tuple, ComboRun] = {(run.tasks, run.seed): run for run in singles or []
                                   if len(run.tasks) == 1 and run.tasks[0] in tasks and run.seed in seed_list}
    if reuse_store:
        found = stored_singles(dataset.fingerprint(), [(t,) for t in tasks], base, seed_list, store)
        have.update({k: v for k, v in found.items() if k not in have})
    missing = {s: [(t,) for t in tasks if ((t,), s) not in have] for s in seed_list}

    # What to train: the combination every seed, and the baselines not at hand, grouped by the seeds needing them.
    calls: list[tuple[list[tuple[str, ...]], TrainConfig, list[int], str]] = []
    by_combos: dict[tuple, list[int]] = {}
    for s in seed_list:
        left = missing[s] + [together] if combo_mode == single_mode and method == BASELINE_METHOD else missing[s]
        if left:
            by_combos.setdefault(tuple(left), []).append(s)
    for combos, call_seeds in by_combos.items():
        calls.append((list(combos), base, call_seeds, single_mode))
    if not (combo_mode == single_mode and method == BASELINE_METHOD):
        calls.append(([together], config, seed_list, combo_mode))
    sizes = [len(c) * len(s) for c, _, s, _ in calls]
    total = sum(sizes) or 1
    prepared = prepared or prepare(dataset, list(tasks), config, checked=True)  # plan_together checked them
    runs: list[ComboRun] = list(have.values())
    trained: list[str] = []
    done = 0
    for (combos, call_config, call_seeds, call_mode), size in zip(calls, sizes):
        new = train_combinations(dataset, combos, call_config, call_seeds, mode=call_mode,
                                 progress=within(progress, done, size, total, PHASE), prepared=prepared,
                                 keep_models=save)
        runs += new
        trained += [label(r.tasks, r.seed) for r in new]
        done += size
    emit(progress, PHASE, total, total, "done")

    baselines = baseline_scores(prepared)
    key = combo_key(together)
    keep = plan.keep_at_chance
    transfer = transfer_from_runs(runs, tasks, baselines=baselines, truth=test_truth(prepared), keep_at_chance=keep)
    gains = transfer.gains.get(key, {})
    single = {t: transfer.scores.get(combo_key((t,)), {}).get(t, []) for t in tasks}
    multi = transfer.scores.get(key, {})
    mine = sorted((r for r in runs if r.tasks == together), key=lambda r: r.seed)
    alone = [r for r in runs if len(r.tasks) == 1]
    # Δm of each seed's model against all the single-task seeds: the same gains, one multi-task seed at a time
    per_seed = [transfer_from_runs([r] + alone, tasks, baselines=baselines, keep_at_chance=keep).delta_m.get(
                key, float("nan")) for r in mine]
    per_seed = [v for v in per_seed if np.isfinite(v)]
    result = TogetherResult(
        dataset.name, list(tasks), method, seed_list, transfer.metric,
        {k: v for k, v in config.to_dict().items() if k not in ("method", "seed")},
        single, {t: multi.get(t, []) for t in tasks}, gains, transfer.delta_m.get(key, float("nan")),
        float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else float("nan"),
        reused={t: [have[((t,), s)].run_id for s in seed_list
                    if ((t,), s) in have and have[((t,), s)].run_id is not None] for t in tasks},
        trained=trained, weight_trace=[r.weight_trace for r in mine], best_epochs=[r.best_epoch for r in mine],
        device=device, keep_at_chance=keep)
    result.reused = {t: ids for t, ids in result.reused.items() if ids}
    result.history = {combo_key(r.tasks): r.history for r in runs if r.seed == seed_list[0]}
    result.single_runs = sorted((r for r in runs if len(r.tasks) == 1), key=lambda r: (r.seed, r.tasks))
    if save:
        result.saved = keep_first_seed(dataset, runs, together, config, seed_list[0], prepared, store)
    result.seconds = time.perf_counter() - start
    return result


def keep_first_seed(dataset: Dataset, runs: list[ComboRun], together: tuple[str, ...], config: TrainConfig,
                    seed: int, prepared: Prepared, store: Path) -> dict[str, str]:
    """Save the first seed's models (together, and each task alone) in the run store: the one way they are kept.

    A stored run with the same data, tasks, split, settings and seed (a reused baseline, an earlier call)
    is named instead of saving a duplicate.
    """
    saved = {}
    for combo in [together] + [(t,) for t in together]:
        run_config = replace(config, method=config.method if len(combo) > 1 else BASELINE_METHOD, seed=seed)
        run = next(r for r in runs if r.tasks == combo and r.seed == seed)
        if run.run_id is not None:
            saved[combo_key(combo)] = run.run_id
            continue
        found = stored_runs(dataset.fingerprint(), [combo], run_config, [seed], store).get((combo, seed))
        if found is not None:
            saved[combo_key(combo)] = found.id
        else:
            saved[combo_key(combo)] = save_run(to_train_result(run, prepared, run_config, dataset), store).id
    return saved
