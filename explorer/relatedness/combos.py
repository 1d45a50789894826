"""Many small models, one per combination of tasks: the shared types and the sequential trainer.

A sweep (singles, pairs, ...) trains every combination with several seeds. Both
modes of ``explorer.training.batched.train_combinations`` return one ``ComboRun`` per
(combination, seed); this module holds that type, the views of the prepared data, and
the reference mode that calls ``explorer.training.trainer.train`` once per model.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from explorer.data.dataset import Dataset
from explorer.errors import ExplorerError
from explorer.store.runs import stored_runs
from explorer.training.metrics import majority_baseline
from explorer.training.progress import Progress, emit, within
from explorer.training.trainer import Prepared, TrainConfig, TrainResult, prepare, train
from models import MultiTaskModel

@dataclass
class ComboRun:
    tasks: tuple[str, ...]   # the combination
    seed: int
    # task -> test metrics, each at the task's own best validation epoch (per-task checkpointing,
    # explorer.training.hooks.TaskCheckpoint): what gains are computed from
    metrics: dict[str, dict]
    best_epoch: int           # the epoch of the saved weights (lowest summed validation loss)
    history: list[dict]       # per epoch {"epoch", "train": {task: loss}, "val": {task: loss}}
    model: MultiTaskModel | None = None  # the trained weights, when asked for (keep_models=True)
    run_id: str | None = None            # set when the scores were taken from a stored run, not trained
    seconds: float = 0.0                 # training time (batched: the stack's time shared out per model)
    device: str = ""
    weight_trace: list[dict] = field(default_factory=list)  # sequential mode: per step {step, epoch, weights}
    model_metrics: dict[str, dict] | None = None  # test metrics of the saved weights (None: same as metrics)
    task_epoch: dict[str, int] | None = None      # task -> its own best validation epoch
    test_pred: dict | None = None                 # task -> test predictions at that epoch (for the row bootstrap)


def normalise_combinations(dataset: Dataset, combinations: list[tuple[str, ...]],
                           prepared: Prepared | None = None) -> list[tuple[str, ...]]:
    """The combinations as tuples, in order; each one's tasks checked once.

    Without ``prepared`` every combination's tasks are checked against the dataset
    (``Dataset.check_tasks``). With it they were checked when it was prepared (the sweep,
    ``plan_together``): a task it lacks fails in ``restrict`` with one sentence, so the
    dataset is not asked again; a task named twice in one combination is dropped.
    """
    if not combinations:
        raise ExplorerError("No combination of tasks to train: give at least one, e.g. [('a',), ('a', 'b')].")
    out = []
    for combo in combinations:
        if isinstance(combo, str):
            raise ExplorerError(f"Combination {combo!r} must be a tuple of task names, e.g. ('{combo}',).")
        if prepared is None:
            out.append(tuple(dataset.check_tasks(list(combo))))
        elif not combo:
            raise ExplorerError("An empty combination was given: each needs at least one task.")
        else:
            out.append(tuple(dict.fromkeys(combo)))
    return out


def task_union(combinations: list[tuple[str, ...]]) -> list[str]:
    return list(dict.fromkeys(t for combo in combinations for t in combo))


def restrict(prepared: Prepared, tasks: tuple[str, ...] | list[str]) -> Prepared:
    """The same split and tensors, seen through a subset of the tasks (in the subset's order).

    ``prepare`` fits its preprocessor on the training rows only, so it is the same
    for every combination of a sweep: one ``prepare`` on the union serves them all.
    """
    by_name = {t.name: t for t in prepared.tasks}
    missing = [t for t in tasks if t not in by_name]
    if missing:
        raise ExplorerError(f"Task(s) {', '.join(missing)} are not in the prepared data; "
                            "prepare the union of all the combinations' tasks.")
    return replace(prepared, tasks=[by_name[t] for t in tasks],
                   y={part: {t: ys[t] for t in tasks} for part, ys in prepared.y.items()},
                   y_raw={part: {t: ys[t] for t in tasks} for part, ys in prepared.y_raw.items()},
                   target_stats={t: s for t, s in prepared.target_stats.items() if t in tasks},
                   class_weights={t: w for t, w in prepared.class_weights.items() if t in tasks})


def label(combo: tuple[str, ...], seed: int) -> str:
    return f"{'+'.join(combo)} seed {seed}"


def prepare_union(dataset: Dataset, combinations: list[tuple[str, ...]], config: TrainConfig,
                  prepared: Prepared | None) -> Prepared:
    union = task_union(combinations)
    if prepared is None:
        return prepare(dataset, union, config)
    return restrict(prepared, union)


def to_train_result(run: ComboRun, prepared: Prepared, config: TrainConfig, dataset: Dataset) -> TrainResult:
    """A trained ``ComboRun`` (from ``keep_models=True``) as ``explorer.store.runs.save_run`` takes it.

    ``prepared`` is the one the run was trained on (any task superset) and
    ``config`` its training settings; the seed is the run's own.
    """
    if run.model is None:
        raise ExplorerError(f"The run {label(run.tasks, run.seed)} carries no model: train it with "
                            "keep_models=True to save it.")
    view = restrict(prepared, run.tasks)
    config = replace(config.resolve(dataset.modality), seed=run.seed)
    baseline = {t.name: majority_baseline(t, view.y_raw["train"][t.name], view.y_raw["test"][t.name])
                for t in view.tasks}
    metrics = run.model_metrics if run.model_metrics is not None else run.metrics  # what the saved weights score
    # each task at its own best epoch too: save_run keeps those test predictions for the row bootstrap
    return TrainResult(run.model, view.tasks, view.preprocessor, config, metrics, baseline, run.history,
                       view.target_stats, view.split.sizes(), run.best_epoch, run.seconds, run.device,
                       dict(dataset.source), dataset.fingerprint(), task_metrics=dict(run.metrics),
                       task_epoch=dict(run.task_epoch or {}), test_predictions=dict(run.test_pred or {}))


def train_sequential(dataset: Dataset, combinations: list[tuple[str, ...]], config: TrainConfig,
                     seeds: list[int], progress: Progress | None = None,
                     prepared: Prepared | None = None, keep_models: bool = False) -> list[ComboRun]:
    """One ``explorer.training.trainer.train`` per (seed, combination): the reference the batched mode must match."""
    prepared = prepare_union(dataset, combinations, config, prepared)
    total = len(seeds) * len(combinations)  # in models; each model's own events fill its share
    runs: list[ComboRun] = []
    for seed in seeds:
        seeded = replace(config, seed=seed)
        for combo in combinations:
            text = label(combo, seed)
            emit(progress, "train", len(runs), total, text)
            result = train(dataset, list(combo), seeded, progress=within(progress, len(runs), 1, total, prefix=text),
                           prepared=restrict(prepared, combo))
            history = [{"epoch": h["epoch"], "train": h["train"], "val": h["val"]} for h in result.history]
            runs.append(ComboRun(combo, seed, result.task_metrics, result.best_epoch, history,
                                 model=result.model if keep_models else None, seconds=result.seconds,
                                 device=result.device, weight_trace=result.weight_trace,
                                 model_metrics=result.metrics, task_epoch=result.task_epoch,
                                 test_pred=result.test_predictions))
    emit(progress, "train", total, total, "done")
    return runs


def stored_singles(fingerprint: str, combos: list[tuple[str, ...]], config: TrainConfig, seeds: list[int],
                   store: Path | None = None) -> dict[tuple[tuple[str, ...], int], ComboRun]:
    """(single-task combination, seed) -> its scores from a stored run with the same key, where one exists.

    The one lookup of reusable single-task baselines (the sweep's and ``train_together``'s):
    ``config`` is the baselines' own (method ``ew``); ``run_id`` names the stored run. With one task
    the saved weights are the task's own best epoch, so the stored test scores and test predictions
    (``Run.test_predictions``; none for runs saved before they were kept) are what a fresh run gives.
    """
    singles = [tuple(combo) for combo in combos if len(combo) == 1]
    out = {}
    for (combo, seed), run in stored_runs(fingerprint, singles, config, seeds, store).items():
        if combo[0] not in run.metrics.get("test", {}):
            continue
        pred = run.test_predictions().get(combo[0])
        epoch = int(run.config.get("best_epoch", 0))
        out[(combo, seed)] = ComboRun(combo, seed, run.metrics["test"], epoch, run.history(), run_id=run.id,
                                      task_epoch={combo[0]: epoch},
                                      test_pred=None if pred is None else {combo[0]: pred})
    return out
