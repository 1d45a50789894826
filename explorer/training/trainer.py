"""One trainer for every modality and every combination of tasks.

Adam on mini-batches, early stopping on the validation loss (the best epoch's
weights are kept), a fixed seed giving the same numbers twice, and a progress
callback that the CLI and the app share; returning False from it cancels.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from explorer.data.dataset import Dataset, Split
from explorer.training.device import describe, resolve_device
from explorer.data.validation import MAX_HIDDEN, check_int_param, check_share, check_train_size
from explorer.training.averaging import EpochAverage
from explorer.training.hooks import Callback, EarlyStopping, Epoch, FiniteLoss, Step, TaskCheckpoint, fit
from explorer.training.threads import training_threads
from explorer.errors import ExplorerError
from explorer.methods import get_method
from explorer.training.metrics import majority_baseline, task_metrics
from explorer.training.progress import Progress, ProgressEvent
from explorer.data.preprocess import Preprocessor, fit_preprocessor
from explorer.data.tasks import Task, has_label
from models import ModelSpec, MultiTaskModel
from models.architectures import DEFAULT as DEFAULT_ARCH, get_architecture
from models.architectures.mmoe import EXPERTS, MAX_EXPERTS
from models.seeded import seed_model, unseed_dropout

# Adam step sizes per modality, chosen so the best validation epoch sits inside the 10-epoch run
# (python -m scripts.seed_spread DATASET --seeds 5 --lr X; numbers in README "How the numbers are
# made"). Text at 2e-2 overfit by epoch 1-2 (news seed std 0.048); at 3e-3 the best epochs are 2-9
# and the std 0.031 (2e-3: 0.032 with outlet still improving at epoch 10; 5e-3: 0.035). Tabular and
# image already peak inside or near the end of the run; image at 3e-2 had a larger spread (0.011 vs 0.007).
DEFAULT_LR = {"text": 3e-3, "tabular": 3e-3, "image": 1e-2}
# Settings a run stored before they existed was trained with: loading its config fills these in,
# so an old run keeps its reuse key and is never mistaken for one trained with the new defaults.
LEGACY = {"balance": 0.0, "ema": 0.0}


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    lr: float | None = None  # None: the modality's default (DEFAULT_LR)
    hidden: int = 64         # width of the shared layer: narrow layers make tasks compete
    embed_dim: int = 64
    dropout: float = 0.1
    patience: int = 3        # epochs without validation improvement before stopping
    seed: int = 0            # initialisation and batch order
    split_seed: int = 0      # which rows are train/val/test: keep fixed to compare models
    train_size: float = 1.0  # fraction of the training pool, or a row count
    max_len: int = 256       # tokens per document (text only)
    method: str = "ew"
    device: str = "auto"
    arch: str = DEFAULT_ARCH  # how the tasks share (models.architectures): hps, mmoe, towers
    experts: int = EXPERTS   # mmoe only: the number of shared experts
    # Most of the seed spread was rare classes flipping between seeds, and which epoch early stopping
    # picked; both settings steady it (news, 20 seeds: mean seed std -36 %, mean macro-F1 0.598 -> 0.621;
    # README "Default regime"). 0 turns either off.
    balance: float = 0.5     # classification losses weight class c by (n / (k n_c)) ** balance
    ema: float = 0.5         # validated and kept weights: a moving average of epoch ends, this decay per epoch

    def resolve(self, modality: str) -> "TrainConfig":
        """A validated copy with the modality's defaults filled in (what a run records)."""
        lr = DEFAULT_LR[modality] if self.lr is None else self.lr
        return replace(self, lr=lr).validate()

    def validate(self) -> "TrainConfig":
        for name in ("epochs", "batch_size", "hidden", "embed_dim", "max_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ExplorerError(f"{name} must be a whole number >= 1, got {value!r}.")
        for name in ("hidden", "embed_dim"):  # a huge layer allocates gigabytes, then fails
            check_int_param(name, getattr(self, name), 1, MAX_HIDDEN, f"Use a width up to {MAX_HIDDEN}.")
        check_train_size(self.train_size)
        if self.lr is not None and not 0 < self.lr < 1:
            raise ExplorerError(f"lr must be in (0, 1), got {self.lr!r}.")
        check_share("dropout", self.dropout, one_allowed=False)
        check_share("balance", self.balance, fix="0: classes unweighted, 1: fully balanced.")
        check_share("ema", self.ema, one_allowed=False, fix="0: no weight averaging.")
        get_architecture(self.arch)  # an unknown name is an error that lists the known ones
        check_int_param("experts", self.experts, 1, MAX_EXPERTS,
                        f"It is the number of MMoE experts (default {EXPERTS}).")
        if self.patience < 0:
            raise ExplorerError(f"patience must be >= 0 (0 turns early stopping off), got {self.patience!r}.")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_stored(cls, stored: dict) -> "TrainConfig":
        """The config a stored run was trained with (settings it predates read as ``LEGACY``)."""
        known = {k: v for k, v in stored.items() if k in cls.__dataclass_fields__}
        return cls(**{**LEGACY, **known})


@dataclass
class Prepared:
    """A dataset turned into tensors for one split: shared by every model trained on it."""
    tasks: list[Task]
    split: Split
    preprocessor: Preprocessor
    x: dict[str, torch.Tensor]                  # split name -> inputs
    y: dict[str, dict[str, torch.Tensor]]       # split name -> task -> targets (model units)
    y_raw: dict[str, dict[str, np.ndarray]]     # split name -> task -> labels as stored
    target_stats: dict[str, tuple[float, float]] = field(default_factory=dict)
    class_weights: dict[str, torch.Tensor] = field(default_factory=dict)  # task -> per-class loss weight (CPU)


@dataclass
class TrainResult:
    model: MultiTaskModel
    tasks: list[Task]
    preprocessor: Preprocessor
    config: TrainConfig
    metrics: dict[str, dict]                    # task -> test metrics
    baseline: dict[str, dict]                   # task -> majority-class / mean baseline
    history: list[dict]                         # per epoch: train/val losses, last batch's weights
    target_stats: dict[str, tuple[float, float]]
    split_sizes: dict[str, int]
    best_epoch: int
    seconds: float
    device: str
    dataset_source: dict = field(default_factory=dict)
    dataset_fingerprint: str = ""
    weight_trace: list[dict] = field(default_factory=list)  # per step: {step, epoch, weights {task: w}}
    # Per-task checkpointing (explorer.training.hooks.TaskCheckpoint): each task's test metrics, best
    # epoch and test predictions at its own best validation epoch. ``metrics`` describe the saved
    # weights (the best summed validation loss); gains against single-task models use these.
    task_metrics: dict[str, dict] = field(default_factory=dict)
    task_epoch: dict[str, int] = field(default_factory=dict)
    test_predictions: dict[str, np.ndarray] = field(default_factory=dict)


def prepare(dataset: Dataset, task_names: list[str], config: TrainConfig, *, checked: bool = False) -> Prepared:
    """Split, fit the preprocessing on the training rows, and build tensors.

    ``checked=True``: ``task_names`` come from the caller's own ``Dataset.check_tasks`` (a sweep or
    a plan that validated its input once, at its boundary), so they are not checked again.
    """
    task_names = list(task_names) if checked else dataset.check_tasks(task_names)
    split = dataset.split(config.split_seed, config.train_size)
    pre = fit_preprocessor(dataset, split.train, config.max_len)
    tasks = [dataset.tasks[n] for n in task_names]
    stats, weights = {}, {}
    for t in tasks:
        if t.is_classification and config.balance:
            weights[t.name] = class_weights(dataset.labels[t.name][split.train], len(t.classes), config.balance)
        if not t.is_classification:
            y = dataset.labels[t.name][split.train]
            y = y[~np.isnan(y)]
            stats[t.name] = (float(y.mean()), float(y.std()) or 1.0) if len(y) else (0.0, 1.0)
        if not has_label(dataset.labels[t.name][split.train]).any():
            raise ExplorerError(f"Task '{t.name}' has no labelled rows in the training split. "
                                "Use a larger training-set size.")
    x, y, y_raw = {}, {}, {}
    for part in ("train", "val", "test"):
        rows = getattr(split, part)
        inputs = dataset.subset_rows(rows)
        x[part] = pre.transform(inputs)
        y_raw[part] = {t.name: dataset.labels[t.name][rows] for t in tasks}
        y[part] = {t.name: _targets(t, y_raw[part][t.name], stats.get(t.name)) for t in tasks}
    return Prepared(tasks, split, pre, x, y, y_raw, stats, weights)


def class_weights(labels: np.ndarray, n_classes: int, power: float) -> torch.Tensor:
    """w_c = (n / (k n_c)) ** power over the k classes seen in training; a class never seen weighs 1.

    With the weighted mean of the loss (``F.cross_entropy(weight=...)``) a rare class counts more
    without the loss's scale depending on how many classes a task has.
    """
    y = np.asarray(labels)
    counts = np.bincount(y[has_label(y)].astype(np.int64), minlength=n_classes).astype(np.float64)
    seen = counts > 0
    w = np.ones(n_classes)
    w[seen] = (counts[seen].sum() / (seen.sum() * counts[seen])) ** power
    return torch.as_tensor(w, dtype=torch.float32)


def _targets(task: Task, labels: np.ndarray, stats) -> torch.Tensor:
    if task.is_classification:
        return torch.as_tensor(labels, dtype=torch.long)
    mean, std = stats  # regression is learned on standardised targets so losses are comparable
    return torch.as_tensor((labels - mean) / std, dtype=torch.float32)


def task_loss(task: Task, output: torch.Tensor, target: torch.Tensor,
              weight: torch.Tensor | None = None) -> torch.Tensor | None:
    """Mean loss over the rows that have this task's label (class-weighted mean with ``weight``);
    None when the batch has none."""
    if task.is_classification:
        keep = target >= 0
        return F.cross_entropy(output[keep], target[keep], weight=weight) if keep.any() else None
    keep = ~torch.isnan(target)
    return F.mse_loss(output[keep, 0], target[keep]) if keep.any() else None


def batch_losses(tasks: list[Task], outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
                 weights: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The loss of every task that has labels in the batch; the others are left out.
    ``weights``: task -> class weights (``Prepared.class_weights``, on the outputs' device)."""
    weights = weights or {}
    return {t.name: loss for t in tasks
            if (loss := task_loss(t, outputs[t.name], targets[t.name], weights.get(t.name))) is not None}


def model_spec(prepared: Prepared, config: TrainConfig) -> ModelSpec:
    return ModelSpec(modality=prepared.preprocessor.modality, input=prepared.preprocessor.input_spec,
                     heads={t.name: t.n_outputs for t in prepared.tasks}, hidden=config.hidden,
                     embed_dim=config.embed_dim, dropout=config.dropout, arch=config.arch,
                     extra=get_architecture(config.arch).settings(config))


class ModelSteps:
    """The ``explorer.training.hooks.Steps`` of one ``MultiTaskModel``: Adam on shuffled mini-batches."""

    def __init__(self, model: MultiTaskModel, method, optimiser, prepared: Prepared, config: TrainConfig, device):
        self.model, self.method, self.optimiser = model, method, optimiser
        self.prepared, self.config, self.device = prepared, config, device
        self.tasks = prepared.tasks
        self.x = prepared.x["train"].to(device)
        self.y = {k: v.to(device) for k, v in prepared.y["train"].items()}
        self.weights = {k: v.to(device) for k, v in prepared.class_weights.items()}
        self.average = EpochAverage(model.parameters(), config.ema)
        self.order = torch.Generator().manual_seed(config.seed)
        self.trace: list[dict] = []  # per step: {step, epoch, weights}
        self.history: list[dict] = []
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    @property
    def steps_per_epoch(self) -> int:
        return max(1, -(-len(self.x) // self.config.batch_size))

    def batches(self, epoch: int):
        self.average.restore()
        self._sums = {t.name: 0.0 for t in self.tasks}
        self._counts = dict.fromkeys(self._sums, 0)
        return torch.randperm(len(self.x), generator=self.order).split(self.config.batch_size)

    def forward(self, rows: torch.Tensor) -> Step | None:
        x, targets = self.x[rows], {name: y[rows] for name, y in self.y.items()}
        features = self.model.encode(x)
        losses = batch_losses(self.tasks, self.model.decode(features), targets, self.weights)
        if not losses:
            return None  # no labels of any chosen task in this batch
        return Step(self.model, self.optimiser, rows, x, targets, features, losses)

    def update(self, step: Step) -> None:
        self.optimiser.zero_grad(set_to_none=True)
        step.weights = self.method.backward(step.losses, step.features, self.model.shared_parameters())
        self.optimiser.step()
        self.method.after_step(lambda: batch_losses(self.tasks, self.model(step.x), step.targets, self.weights))
        self.trace.append({"step": step.index, "epoch": step.epoch, "weights": step.weights})
        for name, loss in step.losses.items():
            self._sums[name] += loss.item()
            self._counts[name] += 1

    def end_epoch(self, epoch: int, epochs: int) -> Epoch:
        train_losses = {k: self._sums[k] / self._counts[k] for k in self._sums if self._counts[k]}
        self.method.end_epoch(train_losses)
        self.average.swap_in()
        val_losses = evaluate_losses(self.model, self.prepared, "val", self.device)
        last = self.trace[-1]["weights"] if self.trace else {}
        self.history.append({"epoch": epoch, "train": train_losses, "val": val_losses, "weights": last})
        return Epoch(epoch, epochs, self.model, train_losses, val_losses)


class ProgressHook(Callback):
    """Forwards every step to a ``Progress`` callback; its False cancels."""

    def __init__(self, progress: Progress, epochs: int):
        self.progress, self.epochs = progress, epochs

    def on_step(self, step: Step) -> bool | None:
        return self.progress(ProgressEvent("train", step.index, step.total, f"epoch {step.epoch}/{self.epochs}",
                                           {k: v.item() for k, v in step.losses.items()}))


@training_threads()  # one thread per job: proportional slowdown under load, same numbers
def train(dataset: Dataset, task_names: list[str], config: TrainConfig | None = None,
          progress: Progress | None = None, prepared: Prepared | None = None,
          callbacks: Sequence[Callback] = ()) -> TrainResult:
    """Train one shared model on ``task_names`` and score it on the test split.

    Pass ``prepared`` (from ``prepare``) to reuse tensors across many models of
    one sweep; it must have been built from the same tasks and config.
    ``callbacks`` (``explorer.training.hooks.Callback``) see every step and epoch.
    """
    config = (config or TrainConfig()).resolve(dataset.modality)
    prepared = prepared or prepare(dataset, task_names, config)
    device = resolve_device(config.device)
    # init, batch order and dropout each from the seed's own generator (models.seeded): no global RNG
    model = seed_model(MultiTaskModel(model_spec(prepared, config)), config.seed).to(device)
    method = get_method(config.method, [t.name for t in prepared.tasks], device)
    optimiser = torch.optim.Adam(list(model.parameters()) + method.parameters(), lr=config.lr)
    steps = ModelSteps(model, method, optimiser, prepared, config, device)
    stopping = EarlyStopping(config.patience)
    per_task = TaskCheckpoint(stopping, lambda m: predict_test(m, prepared, device))
    hooks = [FiniteLoss(), stopping, per_task, *callbacks] + \
        ([ProgressHook(progress, config.epochs)] if progress else [])
    start = time.perf_counter()
    fit(steps, config.epochs, steps.steps_per_epoch * config.epochs, hooks)
    metrics = evaluate(model, prepared, "test", device)
    task_metrics_ = {t.name: task_metrics(t, prepared.y_raw["test"][t.name], per_task.predictions[t.name])
                     if t.name in per_task.predictions else metrics[t.name] for t in prepared.tasks}
    baseline = {t.name: majority_baseline(t, prepared.y_raw["train"][t.name], prepared.y_raw["test"][t.name])
                for t in prepared.tasks}
    unseed_dropout(model)  # the trained model carries no generator (it copies and pickles like any model)
    return TrainResult(model.cpu().eval(), prepared.tasks, prepared.preprocessor, config, metrics, baseline,
                       steps.history, prepared.target_stats, prepared.split.sizes(), stopping.best_epoch,
                       time.perf_counter() - start, describe(device), dict(dataset.source),
                       dataset.fingerprint(), steps.trace, task_metrics_, dict(per_task.epoch),
                       dict(per_task.predictions))


@torch.no_grad()
def predict_outputs(model: MultiTaskModel, x: torch.Tensor, device: torch.device | str = "cpu",
                    batch_size: int = 512) -> dict[str, torch.Tensor]:
    model.eval()
    parts = [model(x[i:i + batch_size].to(device)) for i in range(0, len(x), batch_size)]
    return {name: torch.cat([p[name] for p in parts]).cpu() for name in model.task_names}


def decode_predictions(task: Task, output: torch.Tensor, stats=None) -> np.ndarray:
    """Class codes, or regression values back in the label's own units."""
    if task.is_classification:
        return output.argmax(1).numpy()
    mean, std = stats or (0.0, 1.0)
    return output[:, 0].numpy() * std + mean


def predict_test(model: MultiTaskModel, prepared: Prepared, device, part: str = "test") -> dict[str, np.ndarray]:
    """Task -> decoded predictions on every row of ``part`` (class codes, or values in the label's units)."""
    outputs = predict_outputs(model, prepared.x[part], device)
    return {t.name: decode_predictions(t, outputs[t.name], prepared.target_stats.get(t.name)) for t in prepared.tasks}


def evaluate(model: MultiTaskModel, prepared: Prepared, part: str, device) -> dict[str, dict]:
    predicted = predict_test(model, prepared, device, part)
    return {t.name: task_metrics(t, prepared.y_raw[part][t.name], predicted[t.name]) for t in prepared.tasks}


@torch.no_grad()
def evaluate_losses(model: MultiTaskModel, prepared: Prepared, part: str, device) -> dict[str, float]:
    outputs = predict_outputs(model, prepared.x[part], device)
    out = {}
    for t in prepared.tasks:
        loss = task_loss(t, outputs[t.name], prepared.y[part][t.name], prepared.class_weights.get(t.name))
        if loss is not None:
            out[t.name] = float(loss)
    return out
