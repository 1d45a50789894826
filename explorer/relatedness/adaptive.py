"""Adaptive seeds: spend further seed slots only on the cells that can still be decided.

A cell (a task's gain with a partner) needs no more seeds when

- it is resolved with room to spare: a verdict at the sweep's false discovery
  rate and a p-value at most ``EARLY_P`` (Haybittle–Peto: stopping early on a
  strict boundary leaves the final test's error rate as it was);
- its interval lies inside ± the effect that matters (default 2 %) and holds 0:
  "smaller than the effect";
- even ``max_seeds`` would very likely not resolve it: if its gain were what it
  is now, the test at ``max_seeds`` (seed variance shrinking as one over the
  seeds, test-row variance as it is) would find it with under ``FUTILITY_POWER``
  probability: "cannot be resolved within max seeds";
- its single-task model is at chance (no relative gain to resolve): "at chance".

Otherwise its combination (with the single-task baselines of its tasks, so the
seeds stay paired) gets ``step`` more seeds, round after round, until every
cell is decided, a cell reaches ``max_seeds``, or the budget (seconds of the
whole sweep, or models trained) would be overrun by the next round. Each cell
records how many seeds it got and why it stopped.

Why the error rate holds: a cell resolved at the ordinary rate keeps getting
seeds (stopping the moment a noisy cell first crosses the line is the optional
stopping that inflates false findings). Of the early stops only the strict
boundary ends a cell on a finding; futile and negligible cells were unclear
when they stopped, and enter the final correction over the matrix with the data
they had. ``tests/test_adaptive.py`` checks the rate on simulated matrices where
every true gain is 0 (and that stopping at the first verdict fails that check).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from scipy import special

from explorer.errors import ExplorerError
from explorer.relatedness.gains import Gain
from explorer.relatedness.transfer import Transfer, combo_tasks
from explorer.training.progress import Progress, emit, within

EFFECT = 2.0  # percent: the gain that matters unless the user says otherwise
EARLY_P = 0.001        # a resolved cell stops early only at this p-value (Haybittle–Peto boundary)
FUTILITY_POWER = 0.2   # below this chance of resolving at max seeds, a cell gets no more seeds
RESOLVED, NEGLIGIBLE, AT_CHANCE = "resolved", "smaller than the effect that matters", "at chance"
FUTILE = "cannot be resolved within max seeds"
MAX_SEEDS, BUDGET_SECONDS, BUDGET_MODELS = "max seeds reached", "time budget spent", "model budget spent"


@dataclass
class Budget:
    effect: float = EFFECT                  # percent
    max_seeds: int = 10                     # per cell
    step: int = 2                           # seeds added to an undecided cell per round
    seconds: float | None = None            # the whole sweep's wall time, measured from ``start``
    models: int | None = None               # extra models trained by the adaptive rounds
    start: float = field(default_factory=time.perf_counter)
    # What a round of n models costs, in units whose seconds are measured as the rounds run
    # (batched: one stack plus a share per slot); ``unit``: seconds per unit before the first round,
    # measured on the sweep's first phase, so the first round too is checked against the time budget.
    cost: Callable[[int], float] = float
    unit: float | None = None

    def check(self) -> "Budget":
        if isinstance(self.effect, bool) or not isinstance(self.effect, (int, float)) or not self.effect > 0:
            raise ExplorerError(f"effect must be a positive number of percent (the gain that matters), "
                                f"got {self.effect!r}.")
        for name in ("max_seeds", "step"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ExplorerError(f"{name} must be a whole number >= 1, got {value!r}.")
        if self.seconds is not None and not self.seconds > 0:
            raise ExplorerError(f"The time budget must be a positive number of seconds, got {self.seconds!r}.")
        if self.models is not None and (isinstance(self.models, bool) or not isinstance(self.models, int)
                                        or self.models < 0):
            raise ExplorerError(f"The model budget must be a whole number >= 0, got {self.models!r}.")
        return self


def power_at(g: Gain, seeds: int, alpha: float = 0.05) -> float:
    """The chance that ``g``'s cell resolves at ``seeds`` seeds if its true difference were today's."""
    if not (math.isfinite(g.seed_var) and g.n_multi >= 1 and math.isfinite(g.diff)):
        return 1.0  # nothing to project from: keep the cell open
    se = math.sqrt(g.seed_var * g.n_multi / seeds + g.row_var)
    if se == 0:
        return 1.0
    # scipy.special's normal cdf and quantile: this runs for every open cell on every round
    return float(special.ndtr(abs(g.diff) / se - special.ndtri(1 - alpha / 2)))


def cell_state(g: Gain | None, effect: float, max_seeds: int | None = None) -> str | None:
    """Why a cell needs no more seeds, or None while more seeds could still decide it."""
    if g is None:
        return None
    if g.verdict in ("positive", "negative") and g.p_value <= EARLY_P:
        return RESOLVED
    if g.at_chance:
        return AT_CHANCE
    if g.verdict == "unclear" and math.isfinite(g.low) and math.isfinite(g.high) \
            and -effect < g.low and g.high < effect:
        return NEGLIGIBLE
    if g.verdict == "unclear" and max_seeds is not None and g.n_multi < max_seeds \
            and power_at(g, max_seeds) < FUTILITY_POWER:
        return FUTILE
    return None


def final_state(g: Gain, effect: float, max_seeds: int, otherwise: str) -> str:
    """Why a cell ended where it did: a verdict is "resolved" whenever it came; else its stop reason."""
    if g.verdict in ("positive", "negative"):
        return RESOLVED
    return cell_state(g, effect, max_seeds) or otherwise


def undecided(transfer: Transfer, effect: float, max_seeds: int | None = None) -> list[str]:
    """The multi-task combinations (keys) with at least one undecided cell."""
    return [key for key, per_task in transfer.gains.items()
            if any(cell_state(g, effect, max_seeds) is None for g in per_task.values())]


Train = Callable[[list[tuple[str, ...]], list[int], Progress | None], list]  # (combos, seeds, progress) -> runs
Measure = Callable[[list], Transfer]                            # runs -> Transfer


def adapt(runs: list, transfer: Transfer, train: Train, measure: Measure, budget: Budget,
          progress: Progress | None = None) -> tuple[list, Transfer, dict]:
    """More seeds for undecided cells until decided or out of budget.

    ``progress`` spreads over the most rounds there can be (each round's training
    events inside its share), so a sweep's time left counts them; rounds that are
    not needed are skipped over when the cells are decided.

    Returns the runs (old and new), their Transfer and a record: ``stop``
    (combo key -> task -> reason), ``rounds``, ``models`` (extra models
    trained), ``seconds`` (time in the adaptive rounds).
    """
    budget.check()
    seeds: dict[tuple[str, ...], set[int]] = {}
    for run in runs:
        seeds.setdefault(tuple(run.tasks), set()).add(run.seed)
    began, spent, rounds, reason_all = time.perf_counter(), 0, 0, {}
    unit = budget.unit  # seconds per cost unit: from the sweep's first phase, then from the last round
    start_seeds = min((len(v) for c, v in seeds.items() if len(c) > 1), default=budget.max_seeds)
    most_rounds = max(1, math.ceil((budget.max_seeds - start_seeds) / budget.step))
    while True:
        open_keys = undecided(transfer, budget.effect, budget.max_seeds)
        capped = {k for k in open_keys if len(seeds.get(combo_tasks(k), ())) >= budget.max_seeds}
        grow = [k for k in open_keys if k not in capped]
        for k in capped:
            reason_all[k] = MAX_SEEDS
        if not grow:
            break
        # the most promising combinations first: when the whole round would overrun the time budget,
        # the round shrinks to the ones most likely to resolve instead of not running at all
        grow.sort(key=lambda k: -max(power_at(g, budget.max_seeds) for g in transfer.gains[k].values()
                                     if cell_state(g, budget.effect, budget.max_seeds) is None))
        while True:
            plan = _plan(grow, seeds, budget)
            n_models = sum(len(s) * len(c) for s, c in plan.items())
            over_models = budget.models is not None and spent + n_models > budget.models
            over_time = (budget.seconds is not None and unit is not None
                         and time.perf_counter() + unit * budget.cost(n_models) > budget.start + budget.seconds) \
                or (budget.seconds is not None and time.perf_counter() >= budget.start + budget.seconds)
            if not (over_models or over_time) or len(grow) == 1:
                break
            grow = grow[:-1]
        if over_models or over_time:
            for k in open_keys:
                if k not in capped:
                    reason_all[k] = BUDGET_MODELS if over_models else BUDGET_SECONDS
            break
        t0 = time.perf_counter()
        for k, (new_seeds, combos) in enumerate(plan.items()):
            part = within(progress, min(rounds, most_rounds - 1) + k / len(plan), 1 / len(plan), most_rounds,
                          None, f"round {rounds + 1}")
            runs = runs + list(train(combos, list(new_seeds), part))
            for combo in combos:
                seeds.setdefault(combo, set()).update(new_seeds)
        unit = (time.perf_counter() - t0) / max(budget.cost(n_models), 1e-9)
        spent += n_models
        rounds += 1
        transfer = measure(runs)
    emit(progress, "train", 1, 1, "done")  # rounds not needed: the bar moves on past their share
    stop: dict[str, dict[str, str]] = {}
    for key, per_task in transfer.gains.items():
        stop[key] = {t: final_state(g, budget.effect, budget.max_seeds, reason_all.get(key, MAX_SEEDS))
                     for t, g in per_task.items()}
    return runs, transfer, {"stop": stop, "rounds": rounds, "models": spent,
                            "seconds": time.perf_counter() - began, "effect": budget.effect,
                            "max_seeds": budget.max_seeds, "step": budget.step,
                            "budget_seconds": budget.seconds, "budget_models": budget.models}


def _plan(grow: list[str], seeds: dict[tuple[str, ...], set[int]], budget: Budget
          ) -> dict[tuple[int, ...], list[tuple[str, ...]]]:
    """One round: new seeds -> the combinations that get them (the grown ones and their baselines)."""
    plan: dict[tuple[int, ...], list[tuple[str, ...]]] = {}
    need: dict[str, set[int]] = {}
    for key in grow:
        combo = combo_tasks(key)
        have = seeds[combo]
        new = tuple(range(max(have) + 1, max(have) + 1 + min(budget.step, budget.max_seeds - len(have))))
        plan.setdefault(new, []).append(combo)
        for t in combo:
            need.setdefault(t, set()).update(new)
    for t, wanted in need.items():  # the baselines of the same seeds, so the pairs stay paired
        missing = tuple(sorted(wanted - seeds.get((t,), set())))
        if missing:
            plan.setdefault(missing, []).append((t,))
    return plan


def describe(record: dict) -> str:
    """One line on what the adaptive rounds did: extra models, rounds, and how many cells stopped why."""
    reasons: dict[str, int] = {}
    for per in record.get("stop", {}).values():
        for reason in per.values():
            reasons[reason] = reasons.get(reason, 0) + 1
    return (f"adaptive seeds (effect that matters ±{record['effect']:g} %, up to {record['max_seeds']} seeds): "
            f"{record['models']} extra models in {record['rounds']} round(s); cells: "
            + ", ".join(f"{n} {r}" for r, n in sorted(reasons.items())))


def stop_matrix(tasks: Sequence[str], stop: dict[str, dict[str, str]]) -> list[list[str | None]]:
    """The stop reasons as a matrix in the report's orientation (row = task, column = partner)."""
    n = len(tasks)
    out: list[list[str | None]] = [[None] * n for _ in range(n)]
    index = {t: i for i, t in enumerate(tasks)}
    for key, per_task in stop.items():
        members = combo_tasks(key)
        if len(members) != 2:
            continue
        for t, reason in per_task.items():
            other = members[1] if t == members[0] else members[0]
            if t in index and other in index:
                out[index[t]][index[other]] = reason
    return out

