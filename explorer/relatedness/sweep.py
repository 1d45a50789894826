"""A relatedness sweep: train singles and combinations with several seeds, then measure transfer.

``run_sweep`` is the one entry point for the CLI and the app. It trains every
single task and every combination (pairs, optionally larger groups) with the
combination-parallel trainer (``explorer.training.batched``), turns the test scores into
gains with seed noise (``explorer.relatedness.transfer``), runs one joint model for the
cheap affinity estimates (``explorer.relatedness.affinity``) and checks them against the
trained gains, and finds the best task groupings (``explorer.relatedness.grouping``).
Everything lands in a ``SweepReport``, saved as report.json.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from explorer.relatedness.affinity import compare_with_gains, one_run_affinity, score_estimate
from explorer.relatedness.surrogate import MIN_SIZE, fit_surrogate, held_out_error, subsets_for
from explorer.store.atomic import write_atomic
from explorer.training.backends import check_backend, get_backend
from explorer.training.batched import MODE_CHOICES, resolve_mode, train_combinations
from explorer.relatedness.adaptive import EFFECT, Budget, adapt, stop_matrix
from explorer.relatedness.combos import stored_singles
from explorer.relatedness.controls import parse_controls, with_controls
from explorer.data.dataset import Dataset, resolve_train_size
from explorer.training.device import describe, resolve_device
from explorer.errors import ExplorerError
from explorer.relatedness.grouping import groupings_for_budgets, stability
from explorer.relatedness.report_schema import check_report
from explorer.schema import parse_json
from explorer.methods import names as method_names
from explorer.training.metrics import chance_score
from explorer.training.threads import training_threads
from explorer.training.progress import Progress, within
from explorer.training.trainer import TrainConfig, prepare
from explorer.relatedness.transfer import Transfer, combo_key, combo_tasks, higher_order, transfer_from_runs

# Sweep defaults (CLI and page): start every cell with DEFAULT_SEEDS seeds, give undecided cells up to
# DEFAULT_MAX_SEEDS, and stop adding once the sweep has run DEFAULT_BUDGET_SECONDS.
DEFAULT_SEEDS = 4
DEFAULT_MAX_SEEDS = 16  # measured 2026-12-02: news at 10 left a +14.8 % cell at q 0.064, 16 resolved it (README)
DEFAULT_BUDGET_SECONDS = 600.0
# How often the best grouping into 2 models stays best over resampled gains: a search per draw.
STABILITY_DRAWS = 20
STABILITY_MAX_TASKS = 5
BASELINE_METHOD = "ew"
MAX_TASKS = 8
REPORT_VERSION = 1
# What each phase costs, in units of one model trained alone on the same rows (only used to spread
# the progress bar, so the time left covers every phase). A batched stack costs one model's passes
# plus BATCHED_SLOT_COST per slot: `python -m explorer bench --tasks 3 --epochs 2 --train-size 0.5`
# measured 6 slots at 2.3x (digits), 2.8x (hotels), 3.1x (diamonds) and 21 slots of news at 6.7-8.1x
# the sequential speed, i.e. 0.1-0.27 of a model per slot. The affinity run is one joint model
# (AFFINITY_COST, per modality) plus its measurements, and is not batched: one measurement costs
# about MEASURE_STEPS_PER_TASK x n_tasks + 1 training steps (a gradient, an optimiser step on copies
# and a forward pass per task). AFFINITY_COST is what the sweeps' own ``phase_seconds`` gave against
# their batched phase (2026-12-03: news 2.0 at 4 and at 10 epochs; hotels 0.36-0.37, diamonds 0.48,
# digits about 0.4): an unbatched text model pays its embedding work alone, a dense one is a few
# small matmuls. One constant of 1.0 showed news' affinity run as 22 % of the bar when it took 38 %.
BATCHED_SLOT_COST = 0.2
AFFINITY_COST = {"text": 2.0, "tabular": 0.4, "image": 0.4}
MEASURE_STEPS_PER_TASK = 3
# At most this many measurements per affinity run, spread evenly over training: on big data the
# run measures less often instead of taking longer (the phase is bounded at about 2-3 models).
MAX_AFFINITY_MEASUREMENTS = 60


def phase_cost(rows: int, models: int, mode: str) -> float:
    """Cost of training ``models`` models on ``rows`` rows in ``mode``, in single-model units."""
    return rows * (1.0 + BATCHED_SLOT_COST * models if mode == "batched" else models)


# Share of the worst case (every combination to max seeds) the adaptive rounds train on average:
# measured on the news default sweep (128 of 252 models), futile and resolved cells stop early.
ADAPTIVE_EXPECTED_SHARE = 0.5


def adaptive_cost(rows: int, n_combinations: int, extra_seeds: int, mode: str, step: int = Budget.step) -> float:
    """The adaptive rounds' expected cost: ``extra_seeds`` more for each combination, in rounds of ``step``."""
    rounds = math.ceil(extra_seeds / step)
    per_round = phase_cost(rows, n_combinations * step, mode)
    return ADAPTIVE_EXPECTED_SHARE * rounds * per_round


def affinity_cost(rows: int, n_tasks: int, steps: int | None = None, modality: str = "tabular") -> float:
    """The affinity run: a joint model, plus its measurements (``steps``: training steps planned)."""
    every = affinity_every(n_tasks)
    if steps is not None:
        every = max(every, math.ceil(steps / MAX_AFFINITY_MEASUREMENTS))
    return rows * AFFINITY_COST.get(modality, 1.0) * (1.0 + (MEASURE_STEPS_PER_TASK * n_tasks + 1) / every)


def affinity_every(n_tasks: int) -> int:
    """Steps between affinity measurements in a sweep (before the MAX_AFFINITY_MEASUREMENTS bound).

    One measurement costs about as much as 3 × n_tasks + 1 training steps, so
    measuring every 2.5 × n_tasks steps keeps the measurements near the cost of
    the training itself.
    """
    return max(5, math.ceil(2.5 * n_tasks))



def combinations_for(tasks: Sequence[str], order: int = 2) -> list[tuple[str, ...]]:
    """All single tasks, then every subset of 2 .. ``order`` tasks (in the tasks' order)."""
    tasks = list(dict.fromkeys(tasks))
    out: list[tuple[str, ...]] = [(t,) for t in tasks]
    for size in range(2, order + 1):
        out.extend(itertools.combinations(tasks, size))
    return out


@dataclass
class SweepReport:
    """The results of a sweep, field for field what report.json holds.

    Matrices are lists of rows over ``tasks``: row i = the task whose score is
    measured, column j = its partner; the diagonal is None. Gains are percent.
    """
    tasks: list[str]
    metric: dict[str, str]
    single: dict[str, dict]
    pair_gain: list[list]
    pair_gain_std: list[list]
    pair_verdict: list[list]
    pair_interval: list[list] = field(default_factory=list)
    pair_q: list[list] = field(default_factory=list)       # Benjamini–Hochberg q-value of each cell
    pair_seeds: list[list] = field(default_factory=list)   # seeds the cell's multi-task model got
    pair_mde: list[list] = field(default_factory=list)     # minimum detectable gain (80 % power), percent
    pairing: dict = field(default_factory=dict)            # seed-paired or Welch, with the measured variance ratio
    fdr: float = 0.05                                      # false discovery rate of the verdicts
    at_chance: list[str] = field(default_factory=list)     # tasks whose single-task model is at chance
    # True: at-chance tasks got a gain relative to their raw score and count in Δm and the groupings
    # (the user insisted); False (default): no relative gain, left out of both
    keep_at_chance: bool = False
    controls: list[str] = field(default_factory=list)      # control task names (also in tasks)
    pair_stop: list[list] = field(default_factory=list)    # adaptive seeds: why each cell stopped getting seeds
    adaptive: dict = field(default_factory=dict)           # adaptive seeds: effect, budget, rounds, models spent
    # every estimate (one-run and surrogate) -> {spearman, interval, p_value, n_pairs, description, ...}
    estimates: dict = field(default_factory=dict)
    # per phase (training sizes, surrogate subsets, affinity run): its share of the progress bar and its seconds,
    # so the weights behind the remaining-time estimate can be checked against the clock
    phase_seconds: list[dict] = field(default_factory=list)
    gains: dict[str, dict[str, dict]] = field(default_factory=dict)
    delta_m: dict[str, float] = field(default_factory=dict)
    scores: dict[str, dict[str, list]] = field(default_factory=dict)
    best_epoch: dict[str, list[int]] = field(default_factory=dict)
    higher_order: dict[str, dict] = field(default_factory=dict)
    affinity: dict | None = None
    proxy_spearman: dict[str, float | None] = field(default_factory=dict)
    proxy_spearman_detail: dict[str, dict] = field(default_factory=dict)
    groupings: dict[str, dict] = field(default_factory=dict)            # overlapping groups (Standley / TAG)
    groupings_partition: dict[str, dict] = field(default_factory=dict)  # every task in exactly one group
    by_fraction: dict[str, dict] | None = None
    # architecture -> its matrix, verdicts, mean Δm, resolved cells, seconds (explorer.relatedness.by_arch);
    # the report's main figures are the first architecture's
    by_arch: dict[str, dict] = field(default_factory=dict)
    arch_changes: list[dict] = field(default_factory=list)  # cells whose verdict differs between architectures
    combinations: list[list[str]] = field(default_factory=list)
    order: int = 2
    seeds: list[int] = field(default_factory=list)
    mode: str = "batched"                   # how the multi-task models were trained
    config: dict = field(default_factory=dict)
    baseline_method: str = BASELINE_METHOD  # single-task baselines always train with plain descent
    train_size: float | int = 1.0
    train_rows: int = 0
    split_sizes: dict[str, int] = field(default_factory=dict)
    dataset: str = ""
    dataset_source: dict = field(default_factory=dict)
    dataset_fingerprint: str = ""
    device: str = ""
    seconds: float = 0.0
    reused: dict[str, list[str]] = field(default_factory=dict)  # task -> ids of stored single-task runs used
    version: int = REPORT_VERSION
    # Not part of report.json (plain attributes, not fields): with keep_models=True, the trained runs of
    # the main training size carrying their weights, and the Prepared they were trained on
    # (``explorer.relatedness.combos.to_train_result`` turns one into a savable TrainResult).
    models = None
    prepared = None

    def to_dict(self) -> dict:
        return _clean(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> "SweepReport":
        known = {f.name for f in dataclasses.fields(cls)}
        missing = [k for k in ("tasks", "metric", "single", "pair_gain", "pair_gain_std", "pair_verdict")
                   if k not in d]
        if missing:
            raise ExplorerError(f"This is not a sweep report: it lacks {', '.join(missing)}. "
                                "Load a report.json written by `python -m explorer sweep`.")
        return cls(**{k: v for k, v in d.items() if k in known})

    def gain(self, combination: Sequence[str], task: str) -> dict | None:
        """The gain record of ``task`` in ``combination`` (any order of its tasks), or None."""
        wanted = set(combination)
        for key, per_task in self.gains.items():
            if set(combo_tasks(key)) == wanted:
                return per_task.get(task)
        return None

    def combination_keys(self, min_size: int = 2) -> list[str]:
        return [k for k in self.gains if len(combo_tasks(k)) >= min_size]


def _clean(value):
    """JSON-safe copy: NaN and infinities become None, tuples become lists."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        return _clean(value.item())
    return value


def save_report(report: SweepReport, path: str | Path) -> Path:
    """Write report.json atomically: a temporary file in the same folder, then a rename."""
    return write_atomic(path, json.dumps(report.to_dict(), indent=1, allow_nan=False))


def load_report(path: str | Path) -> SweepReport:
    try:
        text = Path(path).read_bytes()
    except FileNotFoundError:
        raise ExplorerError(f"No report at {path}. Write one with `python -m explorer sweep --out {path}`.")
    return parse_report(text, str(path))


def parse_report(text: bytes | str, source: str = "The file") -> SweepReport:
    """A report.json's contents (a file, an upload) as a SweepReport, or an error naming ``source``.

    The whole structure is checked first (``explorer.relatedness.report_schema``), so a
    malformed report is one sentence here, not an error in a chart later.
    """
    data = parse_json(text, source, "Was it written by `python -m explorer sweep`?")
    return SweepReport.from_dict(check_report(data, source, REPORT_VERSION))


# --- validation --------------------------------------------------------------------------------------------

def _check_tasks(dataset: Dataset, tasks: Sequence[str], combinations) -> list[str]:
    if isinstance(tasks, str):
        raise ExplorerError(f"tasks must be a list of task names, e.g. ['{tasks}'], not a string.")
    tasks = dataset.check_tasks(list(tasks))
    low = 1 if combinations is not None else 2
    if not low <= len(tasks) <= MAX_TASKS:
        what = "a sweep" if combinations is None else "a comparison"
        raise ExplorerError(f"{what.capitalize()} takes {low} to {MAX_TASKS} tasks; got {len(tasks)}. "
                            + ("Choose at least two tasks to compare." if len(tasks) < low
                               else "Choose fewer tasks, or run several sweeps."))
    return tasks


def _check_combinations(tasks: list[str], combinations) -> list[tuple[str, ...]]:
    if isinstance(combinations, (str, tuple)) and combinations and isinstance(combinations[0], str):
        raise ExplorerError("combinations must be a list of tuples of task names, e.g. [('a', 'b')].")
    out: list[tuple[str, ...]] = []
    for combo in combinations:
        if isinstance(combo, str):
            raise ExplorerError(f"Combination {combo!r} must be a tuple of task names, e.g. ('{combo}',).")
        combo = tuple(dict.fromkeys(combo))
        if not combo:
            raise ExplorerError("An empty combination was given: each needs at least one task.")
        outside = [t for t in combo if t not in tasks]
        if outside:
            raise ExplorerError(f"Combination {combo_key(combo)} uses {', '.join(outside)}, which is not among "
                                f"the sweep's tasks ({', '.join(tasks)}). Add it to the tasks.")
        if not any(set(combo) == set(c) for c in out):
            out.append(combo)
    if not out:
        raise ExplorerError("No combination given: pass at least one, e.g. combinations=[('a', 'b')].")
    return out


def _check_seeds(seeds) -> int:
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ExplorerError(f"seeds must be a whole number >= 1 (the number of seeds per model), got {seeds!r}. "
                            "Use 3 or more to tell gains from seed noise.")
    return seeds


def _check_order(order, n_tasks: int) -> int:
    if isinstance(order, bool) or not isinstance(order, int) or not 2 <= order <= n_tasks:
        raise ExplorerError(f"order must be a whole number from 2 (pairs) to the number of tasks ({n_tasks}), "
                            f"got {order!r}.")
    return order


def _resolve_mode(mode: str, config: TrainConfig) -> str:
    return resolve_mode(mode, config.method)


def _resolve_sizes(dataset: Dataset, config: TrainConfig, train_sizes) -> list[tuple[float | int, int]]:
    """(size as given, training rows) for every requested size, smallest first, duplicates dropped."""
    pool = len(dataset.split(config.split_seed, 1.0).train)
    sizes = [config.train_size] if train_sizes is None else list(train_sizes)
    if not sizes:
        raise ExplorerError("train_sizes is empty: give fractions such as [0.1, 1.0] or row counts, or None.")
    resolved: dict[int, float | int] = {}
    for s in sizes:
        s = int(s) if isinstance(s, float) and s > 1 and s.is_integer() else s
        resolved.setdefault(resolve_train_size(s, pool), s)
    return sorted(((s, rows) for rows, s in resolved.items()), key=lambda p: p[1])


def _jobs(combos: list[tuple[str, ...]], config: TrainConfig, mode: str) -> list[tuple[list, TrainConfig, str]]:
    """Calls of the trainer for one training size: (combinations, config, mode).

    Single-task baselines always use plain descent (``ew``): with one task every
    method reduces to it, and gradient aggregators refuse a single task. So with
    another method the singles train apart, batched when the mode allows it.
    """
    if config.method == BASELINE_METHOD:
        return [(combos, config, _resolve_mode(mode, config))]
    base = dataclasses.replace(config, method=BASELINE_METHOD)
    singles = [c for c in combos if len(c) == 1]
    multis = [c for c in combos if len(c) > 1]
    return ([(singles, base, _resolve_mode(mode, base))] if singles else []) + \
        ([(multis, config, _resolve_mode(mode, config))] if multis else [])


# --- progress ---------------------------------------------------------------------------------------------

class _Phases:
    """Spreads one progress bar over several phases (training sizes, the affinity run) by their cost."""

    def __init__(self, progress: Progress | None, costs: list[tuple[str, float]]):
        self.progress = progress
        self.costs = costs
        self.total = sum(c for _, c in costs) or 1.0

    def phase(self, index: int) -> Progress | None:
        name, cost = self.costs[index]
        return within(self.progress, sum(c for _, c in self.costs[:index]), cost, self.total, name, name)


# --- the sweep --------------------------------------------------------------------------------------------

@training_threads()  # the affinity run too: one thread per job (explorer.training.threads)
def run_sweep(dataset: Dataset, tasks: Sequence[str], *, order: int = 2,
              combinations: Sequence[Sequence[str]] | None = None, seeds: int = 3,
              config: TrainConfig | None = None, mode: str = "auto",
              train_sizes: Sequence[float | int] | None = None, affinity: bool = True,
              progress: Progress | None = None, keep_models: bool = False,
              reuse_store: bool = False, surrogate_subsets: int | None = None,
              controls: Sequence[str] | str | None = None, max_seeds: int | None = None,
              effect: float = EFFECT, budget_seconds: float | None = None,
              budget_models: int | None = None, backend: str = "local",
              address: str | None = None, keep_at_chance: bool = False) -> SweepReport:
    """Train singles and combinations with ``seeds`` seeds each and measure transfer between the tasks.

    Without ``combinations``: every single task and every subset of 2 ..
    ``order`` tasks. With ``combinations`` (e.g. ``[("a", "b", "c")]``): those,
    plus the single-task baselines they need. Seeds are ``config.seed + i``
    for i < ``seeds``. ``train_sizes`` (fractions of the training pool or row
    counts) repeats the pairwise sweep at each size on the same validation and
    test rows; the largest size gives the report's main figures, the others go
    to ``by_fraction``. ``progress`` receives ``ProgressEvent``s (phase: the sweep's part) over the
    whole sweep; returning False cancels (``Cancelled``).

    ``reuse_store`` takes a single-task baseline's test scores from the run
    store (``explorer.store.runs``) when a run with the same data, task, split,
    settings and seed is there, instead of training it again; ``reused`` in the
    report names those runs. ``keep_models`` keeps the trained models of the
    main size on ``report.models`` (with ``report.prepared``), to be saved.

    ``controls`` (e.g. ``["shuffled", "noisy:b"]``, see
    ``explorer.relatedness.controls``) adds control tasks that train and are
    reported like any task; they stay out of the groupings.

    ``max_seeds`` above ``seeds`` turns on adaptive seeds at the main size
    (``explorer.relatedness.adaptive``): undecided cells (interval across 0
    and ± ``effect`` percent) get more seeds until decided, ``max_seeds``, or
    the budget (``budget_seconds`` of the whole sweep, ``budget_models`` extra
    models); ``pair_seeds`` and ``pair_stop`` say per cell what it got and why.

    A task whose single-task model is not above chance (``at_chance``) gets no relative gain and stays
    out of Δm and the groupings; ``keep_at_chance`` gives it a gain relative to its raw score instead
    (marked in its gain's note; its verdicts stay unclear), so it counts in both.

    ``backend`` (``explorer.training.backends``: ``local``, ``ray``) is where the models train;
    ``address`` names a Ray cluster to join. The report is the same on every backend.
    """
    start = time.perf_counter()
    config = (config or TrainConfig()).resolve(dataset.modality)  # the modality's default lr, recorded
    tasks = _check_tasks(dataset, tasks, combinations)
    if controls and combinations is not None:
        raise ExplorerError("Controls are added to a full sweep: leave out combinations to use them.")
    dataset, control_names = with_controls(dataset, parse_controls(controls, tasks))
    if len(tasks) + len(control_names) > MAX_TASKS:
        raise ExplorerError(f"{len(tasks)} tasks and {len(control_names)} control(s) make more than {MAX_TASKS} "
                            "tasks: choose fewer tasks or fewer controls.")
    tasks = tasks + control_names
    n_seeds = _check_seeds(seeds)
    if config.method not in method_names():
        raise ExplorerError(f"Unknown method '{config.method}'. Available: {', '.join(method_names())}.")
    requested_mode, mode = mode, _resolve_mode(mode, config)
    device = describe(resolve_device(config.device))  # an unavailable device fails before any training
    trainer = train_combinations if check_backend(backend, address) == "local" else \
        get_backend(backend, address).train_combinations  # a cluster that is not there fails here too
    if combinations is None:
        order = _check_order(order, len(tasks))
        wanted = combinations_for(tasks, order)
    else:
        wanted = _check_combinations(tasks, combinations)
        used = {t for c in wanted for t in c}
        tasks = [t for t in tasks if t in used]
        order = max(len(c) for c in wanted)
        wanted = [(t,) for t in tasks] + [c for c in wanted if len(c) > 1]
    seed_list = [config.seed + i for i in range(n_seeds)]
    sizes = _resolve_sizes(dataset, config, train_sizes)
    main_size, main_rows = sizes[-1]
    do_affinity = bool(affinity) and len(tasks) >= 2
    # the surrogate is an estimate too: ``affinity=False`` (no estimates) turns it off with the one-run ones
    surrogate_plan = _surrogate_plan(tasks, wanted, surrogate_subsets if affinity else 0, config.seed)

    def plan(size_index: int) -> list[tuple[str, ...]]:
        if size_index == len(sizes) - 1 or combinations is not None:
            return wanted
        return [c for c in wanted if len(c) <= 2]  # smaller sizes repeat the pairwise sweep only

    jobs = [(k, combos, job_config, job_mode) for k in range(len(sizes))
            for combos, job_config, job_mode in _jobs(plan(k), config, requested_mode)]
    fingerprint = dataset.fingerprint() if reuse_store else ""
    stored: dict[int, list] = {}  # job index -> single-task runs found in the store
    calls = []                     # (job index, combinations, seeds): what is left to train
    for index, (k, combos, job_config, job_mode) in enumerate(jobs):
        sized = dataclasses.replace(job_config, train_size=sizes[k][0])
        found = stored_singles(fingerprint, combos, sized, seed_list) if reuse_store else {}
        stored[index] = list(found.values())
        if not found:
            calls.append((index, combos, seed_list))
            continue
        by_seeds: dict[tuple, list[int]] = {}  # seeds that still need the same combinations train together
        for seed in seed_list:
            left = tuple(c for c in combos if (c, seed) not in found)
            if left:
                by_seeds.setdefault(left, []).append(seed)
        calls += [(index, list(left), seeds_left) for left, seeds_left in by_seeds.items()]
    costs = [(f"train size {sizes[jobs[index][0]][0]}",
              phase_cost(sizes[jobs[index][0]][1], len(combos) * len(call_seeds), jobs[index][3]))
             for index, combos, call_seeds in calls]
    adaptive_on = max_seeds is not None and max_seeds > n_seeds
    if adaptive_on:  # the rounds run next: their expected share of the bar, so the time left covers them
        costs.append(("adaptive seeds", adaptive_cost(main_rows, len(wanted), max_seeds - n_seeds, mode)))
    after = len(costs)  # the phases below come after the adaptive rounds
    surrogate_calls = ([(c, job_config, job_mode) for c, job_config, job_mode
                        in _jobs(surrogate_plan[1], config, requested_mode)] if surrogate_plan[1] else [])
    costs += [("surrogate subsets", phase_cost(main_rows, len(c) * len(seed_list), job_mode))
              for c, _, job_mode in surrogate_calls]
    if do_affinity:
        steps = max(1, -(-main_rows // config.batch_size)) * config.epochs
        costs.append(("affinity", affinity_cost(main_rows, len(tasks), steps, dataset.modality)))
    phases = _Phases(progress, costs)
    timed: list[dict] = []  # per phase: its share of the progress bar and the seconds it took

    def clock(index: int, began: float) -> None:
        name, cost = costs[index]
        timed.append({"phase": name, "progress_share": cost / phases.total,
                      "seconds": time.perf_counter() - began})

    results: list[tuple[float | int, int, Transfer, list]] = []
    main_prepared = None
    extra = {"keep_models": True} if keep_models else {}
    for k, (size, rows) in enumerate(sizes):
        prepared = prepare(dataset, tasks, dataclasses.replace(config, train_size=size), checked=True)
        runs = [run for index, (job_size, *_rest) in enumerate(jobs) if job_size == k for run in stored[index]]
        for phase, (index, combos, call_seeds) in enumerate(calls):
            job_size, _, job_config, job_mode = jobs[index]
            if job_size == k:
                began = time.perf_counter()
                runs += trainer(dataset, combos, dataclasses.replace(job_config, train_size=size),
                                           call_seeds, mode=job_mode, progress=phases.phase(phase),
                                           prepared=prepared, **extra)
                clock(phase, began)
        results.append((size, rows, transfer_from_runs(runs, tasks, baselines=baseline_scores(prepared),
                                                         truth=test_truth(prepared),
                                                         keep_at_chance=keep_at_chance), runs))
        main_prepared = prepared
    _, _, main, main_runs = results[-1]
    main_config = dataclasses.replace(config, train_size=main_size)
    adaptive = {}
    if adaptive_on:
        # a round's cost in the trainer's own terms (batched: one stack plus a share per slot), with the
        # seconds per unit measured on the models just trained, so the first round is budgeted too
        cost = (lambda n: 1.0 + BATCHED_SLOT_COST * n) if mode == "batched" else float
        fresh = [run for run in main_runs if run.run_id is None]
        unit = sum(run.seconds for run in fresh) / cost(len(fresh)) if fresh else None
        began = time.perf_counter()
        main, main_runs, adaptive = _adapt(dataset, tasks, config, requested_mode, main_size, main_prepared,
                                           main, main_runs, Budget(effect, max_seeds, seconds=budget_seconds,
                                                                   models=budget_models, start=start,
                                                                   cost=cost, unit=unit),
                                           phases.phase(len(calls)), extra, trainer,
                                           keep_at_chance)
        clock(len(calls), began)
        results[-1] = (main_size, main_rows, main, main_runs)

    subset_runs = []
    for k, (combos, job_config, job_mode) in enumerate(surrogate_calls):
        began = time.perf_counter()
        subset_runs += trainer(dataset, combos, dataclasses.replace(job_config, train_size=main_size),
                                          seed_list, mode=job_mode, progress=phases.phase(after + k),
                                          prepared=main_prepared)
        clock(after + k, began)
    estimates = None
    if do_affinity:
        began = time.perf_counter()
        estimates = one_run_affinity(dataset, tasks, main_config, prepared=main_prepared,
                                     every=affinity_every(len(tasks)), max_measurements=MAX_AFFINITY_MEASUREMENTS,
                                     progress=phases.phase(after + len(surrogate_calls)))
        clock(after + len(surrogate_calls), began)
    proxy, proxy_detail = compare_with_gains(estimates, main.pair_gain)
    scored = {name: {k: v for k, v in d.items() if k != "value"} for name, d in proxy_detail.items()}
    scored["surrogate"] = _surrogate_estimate(tasks, surrogate_plan, main, main_runs + subset_runs,
                                              baseline_scores(main_prepared), keep_at_chance)

    trained = {key: {t: g.mean for t, g in per_task.items()} for key, per_task in main.gains.items()}
    # Tasks at chance have no relative gain to group by (unless the user insists), and controls are not
    # tasks anyone wants served: both stay out of the groupings.
    grouped = [t for t in tasks if (keep_at_chance or t not in main.at_chance) and t not in control_names]
    groupings, groupings_partition = {}, {}
    if len(grouped) >= 2:
        found = groupings_for_budgets(trained, grouped)  # overlapping groups (Standley / TAG), the default
        gain_dicts = {key: {t: g.to_dict() for t, g in per.items()} for key, per in main.gains.items()}
        if 2 in found and len(grouped) <= STABILITY_MAX_TASKS:  # resampling costs a search per draw
            found[2].stability = stability(gain_dicts, grouped, 2, draws=STABILITY_DRAWS, seed=config.seed)
        groupings = {str(k): g.to_dict() for k, g in found.items()}
        groupings_partition = {str(k): g.to_dict()
                               for k, g in groupings_for_budgets(trained, grouped, definition="partition").items()}

    best_epoch: dict[str, list[int]] = {}
    for run in sorted(main_runs, key=lambda r: r.seed):
        best_epoch.setdefault(combo_key(run.tasks), []).append(run.best_epoch)

    by_fraction = None
    if len(sizes) > 1:
        by_fraction = {str(size): _size_entry(size, rows, transfer) for size, rows, transfer, _ in results}

    reused: dict[str, list[str]] = {}
    for run in sorted(main_runs, key=lambda r: r.seed):
        if run.run_id is not None:
            reused.setdefault(run.tasks[0], []).append(run.run_id)

    report = SweepReport(
        tasks=tasks, metric=main.metric, single=main.single,
        pair_gain=main.pair_gain, pair_gain_std=main.pair_gain_std, pair_verdict=main.pair_verdict,
        pair_interval=main.pair_interval, pair_q=main.pair_q, pair_seeds=main.pair_seeds, pair_mde=main.pair_mde,
        pairing=main.pairing, at_chance=main.at_chance, keep_at_chance=bool(keep_at_chance),
        controls=control_names,
        pair_stop=stop_matrix(tasks, adaptive["stop"]) if adaptive else [], adaptive=adaptive,
        groupings_partition=groupings_partition,
        gains={key: {t: g.to_dict() for t, g in per_task.items()} for key, per_task in main.gains.items()},
        delta_m=main.delta_m, scores=main.scores, best_epoch=best_epoch, higher_order=higher_order(main),
        affinity=estimates, proxy_spearman=proxy, proxy_spearman_detail=proxy_detail, estimates=scored,
        phase_seconds=timed,
        groupings=groupings,
        by_fraction=by_fraction, combinations=[list(c) for c in wanted], order=order, seeds=seed_list,
        mode=mode, config=main_config.to_dict(), train_size=main_size, train_rows=main_rows,
        split_sizes=main_prepared.split.sizes(), dataset=dataset.name, dataset_source=dict(dataset.source),
        dataset_fingerprint=dataset.fingerprint(), device=device, reused=reused,
        seconds=time.perf_counter() - start)
    if keep_models:
        report.models = [run for run in main_runs if run.model is not None]
        report.prepared = main_prepared
    return report


def _adapt(dataset, tasks, config, requested_mode, size, prepared, main, runs, budget, progress, extra,
           trainer=None, keep_at_chance=False):
    """Adaptive seeds at the main size: train more seeds of the undecided combinations (and their baselines)."""
    baselines = baseline_scores(prepared)
    trainer = trainer or train_combinations  # the sweep's backend: each round is "train these slots"

    def train_more(combos, seeds, part=None):  # one adaptive round's slots
        out = []
        for combos_, job_config, job_mode in _jobs(combos, config, requested_mode):
            out += trainer(dataset, combos_, dataclasses.replace(job_config, train_size=size), seeds,
                           mode=job_mode, progress=part, prepared=prepared, **extra)
        return out

    def measure(new_runs):
        return transfer_from_runs(new_runs, tasks, baselines=baselines, truth=test_truth(prepared),
                                  keep_at_chance=keep_at_chance)

    runs, main, record = adapt(list(runs), main, train_more, measure, budget, progress=progress)
    return main, runs, record


def test_truth(prepared) -> dict:
    """Task -> (Task, test labels): what the paired test-row bootstrap resamples."""
    return {task.name: (task, prepared.y_raw["test"][task.name]) for task in prepared.tasks}


def baseline_scores(prepared) -> dict[str, float]:
    """Each task's chance-level score on the test rows (``explorer.training.metrics.chance_score``): what gains
    are read against, and below which a single-task model is "at chance"."""
    out = {}
    for task in prepared.tasks:
        score = chance_score(task, prepared.y_raw["train"][task.name], prepared.y_raw["test"][task.name])
        if score is not None:
            out[task.name] = score
    return out


def _surrogate_plan(tasks: list[str], wanted: list[tuple[str, ...]], count: int | None,
                    seed: int) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """(subsets the surrogate is fitted on, those of them still to train).

    Groups of MIN_SIZE or more tasks that the sweep trains anyway are reused;
    otherwise ``count`` random subsets (default: 2 x the tasks) are added.
    ``count=0`` turns the surrogate off.
    """
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise ExplorerError(f"surrogate_subsets (--surrogate-subsets) must be a whole number >= 0 (0 = no "
                            f"surrogate), got {count!r}.")
    if count == 0 or len(tasks) < MIN_SIZE:
        return [], []
    trained = [c for c in wanted if len(c) >= MIN_SIZE]
    if trained:
        return trained, []
    subsets = subsets_for(tasks, count, seed)
    return subsets, subsets


def _surrogate_estimate(tasks: list[str], plan, main: Transfer, runs: list, baselines: dict[str, float],
                        keep_at_chance: bool = False) -> dict:
    """The surrogate fitted on the planned subsets' trained gains, scored on the trained pairs like the others."""
    subsets, _ = plan
    if not subsets:
        why = "it needs at least 3 tasks" if len(tasks) < MIN_SIZE else "estimates turned off in this sweep"
        return score_estimate(None, main.pair_gain, "surrogate", missing=f"no surrogate: {why}")
    keys = {combo_key(c) for c in subsets}
    gains = {key: {t: g.mean for t, g in per_task.items()}
             for key, per_task in transfer_from_runs(runs, tasks, baselines=baselines,
                                                     keep_at_chance=keep_at_chance).gains.items() if key in keys}
    model = fit_surrogate(tasks, gains)
    info = score_estimate(model.pair_matrix(), main.pair_gain, "surrogate")
    return {**info, "matrix": model.pair_matrix(), "fitted_on": model.fitted_on, "trained": gains,
            "held_out": held_out_error(tasks, gains), "predicted": model.predictions(min_size=3)}


def _size_entry(size, rows: int, transfer: Transfer) -> dict:
    return {"train_size": size, "train_rows": rows, "single": transfer.single,
            "pair_gain": transfer.pair_gain, "pair_gain_std": transfer.pair_gain_std,
            "pair_verdict": transfer.pair_verdict, "pair_interval": transfer.pair_interval,
            "pair_q": transfer.pair_q, "pair_seeds": transfer.pair_seeds, "pair_mde": transfer.pair_mde,
            "pairing": transfer.pairing, "at_chance": transfer.at_chance,
            "gains": {key: {t: g.to_dict() for t, g in per_task.items()} for key, per_task in transfer.gains.items()},
            "delta_m": transfer.delta_m}
