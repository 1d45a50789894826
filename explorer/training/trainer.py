"""One trainer for every modality and every combination of tasks.

Adam on mini-batches, early stopping on the validation loss (the best epoch's
weights are kept), a fixed seed giving the same numbers twice, and a progress
callback that the CLI and the app share; returning False from it cancels.
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from explorer.data.dataset import Dataset, Split
from explorer.training.device import describe, resolve_device
from explorer.errors import Cancelled, ExplorerError
from explorer.methods import get_method
from explorer.training.metrics import majority_baseline, task_metrics
from explorer.data.preprocess import Preprocessor, fit_preprocessor
from explorer.data.tasks import Task, has_label
from models import ModelSpec, MultiTaskModel

Progress = Callable[[dict], "bool | None"]
# Adam step sizes per modality, picked from 3e-3 / 1e-2 / 3e-2 on the built-in data:
# a bag-of-embeddings text model learns its 20k-word embedding too slowly at 3e-3.
DEFAULT_LR = {"text": 2e-2, "tabular": 3e-3, "image": 1e-2}


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

    def resolve(self, modality: str) -> "TrainConfig":
        """A validated copy with the modality's defaults filled in (what a run records)."""
        lr = DEFAULT_LR[modality] if self.lr is None else self.lr
        return replace(self, lr=lr).validate()

    def validate(self) -> "TrainConfig":
        for name in ("epochs", "batch_size", "hidden", "embed_dim", "max_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ExplorerError(f"{name} must be a whole number >= 1, got {value!r}.")
        if self.lr is not None and not 0 < self.lr < 1:
            raise ExplorerError(f"lr must be in (0, 1), got {self.lr!r}.")
        if not 0 <= self.dropout < 1:
            raise ExplorerError(f"dropout must be in [0, 1), got {self.dropout!r}.")
        if self.patience < 0:
            raise ExplorerError(f"patience must be >= 0 (0 turns early stopping off), got {self.patience!r}.")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


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


def prepare(dataset: Dataset, task_names: list[str], config: TrainConfig) -> Prepared:
    """Split, fit the preprocessing on the training rows, and build tensors."""
    task_names = dataset.check_tasks(task_names)
    split = dataset.split(config.split_seed, config.train_size)
    pre = fit_preprocessor(dataset, split.train, config.max_len)
    tasks = [dataset.tasks[n] for n in task_names]
    stats = {}
    for t in tasks:
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
    return Prepared(tasks, split, pre, x, y, y_raw, stats)


def _targets(task: Task, labels: np.ndarray, stats) -> torch.Tensor:
    if task.is_classification:
        return torch.as_tensor(labels, dtype=torch.long)
    mean, std = stats  # regression is learned on standardised targets so losses are comparable
    return torch.as_tensor((labels - mean) / std, dtype=torch.float32)


def task_loss(task: Task, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
    """Mean loss over the rows that have this task's label; None when the batch has none."""
    if task.is_classification:
        keep = target >= 0
        return F.cross_entropy(output[keep], target[keep]) if keep.any() else None
    keep = ~torch.isnan(target)
    return F.mse_loss(output[keep, 0], target[keep]) if keep.any() else None


def batch_losses(tasks: list[Task], outputs: dict[str, torch.Tensor],
                 targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The loss of every task that has labels in the batch; the others are left out."""
    return {t.name: loss for t in tasks
            if (loss := task_loss(t, outputs[t.name], targets[t.name])) is not None}


def model_spec(prepared: Prepared, config: TrainConfig) -> ModelSpec:
    return ModelSpec(modality=prepared.preprocessor.modality, input=prepared.preprocessor.input_spec,
                     heads={t.name: t.n_outputs for t in prepared.tasks}, hidden=config.hidden,
                     embed_dim=config.embed_dim, dropout=config.dropout)


def train(dataset: Dataset, task_names: list[str], config: TrainConfig | None = None,
          progress: Progress | None = None, prepared: Prepared | None = None) -> TrainResult:
    """Train one shared model on ``task_names`` and score it on the test split.

    Pass ``prepared`` (from ``prepare``) to reuse tensors across many models of
    one sweep; it must have been built from the same tasks and config.
    """
    config = (config or TrainConfig()).resolve(dataset.modality)
    prepared = prepared or prepare(dataset, task_names, config)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = MultiTaskModel(model_spec(prepared, config)).to(device)
    method = get_method(config.method, [t.name for t in prepared.tasks], device)
    optimiser = torch.optim.Adam(list(model.parameters()) + method.parameters(), lr=config.lr)
    x_train = prepared.x["train"].to(device)
    y_train = {k: v.to(device) for k, v in prepared.y["train"].items()}
    n = len(x_train)
    steps_per_epoch = max(1, -(-n // config.batch_size))
    order = torch.Generator().manual_seed(config.seed)
    best, best_state, best_epoch, history, stale, step = float("inf"), None, 0, [], 0, 0
    trace = []
    start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        sums = {t.name: 0.0 for t in prepared.tasks}
        counts = dict.fromkeys(sums, 0)
        for batch in torch.randperm(n, generator=order).split(config.batch_size):
            targets = {name: y[batch] for name, y in y_train.items()}
            features = model.encode(x_train[batch])
            losses = batch_losses(prepared.tasks, model.decode(features), targets)
            if not losses:
                continue  # no labels of any chosen task in this batch
            optimiser.zero_grad(set_to_none=True)
            weights = method.backward(losses, features, model.shared_parameters())
            optimiser.step()
            method.after_step(lambda: batch_losses(prepared.tasks, model(x_train[batch]), targets))
            step += 1
            trace.append({"step": step, "epoch": epoch, "weights": weights})
            for name, loss in losses.items():
                sums[name] += loss.item()
                counts[name] += 1
            if progress is not None and progress({
                "step": step, "total_steps": steps_per_epoch * config.epochs, "epoch": epoch,
                "epochs": config.epochs, "losses": {k: v.item() for k, v in losses.items()},
                "weights": weights}) is False:
                raise Cancelled("training cancelled")
        train_losses = {k: sums[k] / counts[k] for k in sums if counts[k]}
        method.end_epoch(train_losses)
        val_losses = evaluate_losses(model, prepared, "val", device)
        val_total = sum(val_losses.values())  # early stopping on the unweighted sum
        history.append({"epoch": epoch, "train": train_losses, "val": val_losses, "weights": weights})
        if val_total < best - 1e-6:
            best, best_epoch, stale = val_total, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if config.patience and stale >= config.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    metrics = evaluate(model, prepared, "test", device)
    baseline = {t.name: majority_baseline(t, prepared.y_raw["train"][t.name], prepared.y_raw["test"][t.name])
                for t in prepared.tasks}
    return TrainResult(model.cpu().eval(), prepared.tasks, prepared.preprocessor, config, metrics, baseline,
                       history, prepared.target_stats, prepared.split.sizes(), best_epoch,
                       time.perf_counter() - start, describe(device), dict(dataset.source),
                       dataset.fingerprint(), trace)


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


def evaluate(model: MultiTaskModel, prepared: Prepared, part: str, device) -> dict[str, dict]:
    outputs = predict_outputs(model, prepared.x[part], device)
    return {t.name: task_metrics(t, prepared.y_raw[part][t.name],
                                 decode_predictions(t, outputs[t.name], prepared.target_stats.get(t.name)))
            for t in prepared.tasks}


@torch.no_grad()
def evaluate_losses(model: MultiTaskModel, prepared: Prepared, part: str, device) -> dict[str, float]:
    outputs = predict_outputs(model, prepared.x[part], device)
    out = {}
    for t in prepared.tasks:
        loss = task_loss(t, outputs[t.name], prepared.y[part][t.name])
        if loss is not None:
            out[t.name] = float(loss)
    return out
