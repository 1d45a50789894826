"""Train every combination of a sweep at once: the combination-parallel trainer.

``train_combinations`` is the sweep's one entry point. In batched mode every
(combination, seed) pair becomes one slot of a ``models.stacked.StackedModel``:
its own initialisation (the very weights ``explorer.training.trainer.train`` would draw
with that seed), its own batch order (the seed's), its own Adam state (Adam is
elementwise and nothing couples slots: no clipping, and the summed loss gives
each slot exactly its own gradient), its own loss (masked to its tasks) and its
own early stopping (a per-slot copy of its best validation epoch).

With dropout off the two modes compute the same numbers up to float rounding
(a test checks it); with dropout they differ only in the random masks. One
corner differs: ``train`` skips the optimiser step of a batch holding no label
of any of the model's tasks, while a slot here still takes that step (with a
zero gradient, so only Adam's momentum moves it). That needs a sparse task and
a tiny last batch, and does not bias anything.
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from explorer.relatedness.combos import (ComboRun, normalise_combinations, prepare_union, restrict,
                                         train_sequential)
from explorer.data.dataset import Dataset
from explorer.training.averaging import EpochAverage
from explorer.training.device import describe, resolve_device
from explorer.training.hooks import IMPROVEMENT, Callback, Epoch, FiniteLoss, Step, fit
from explorer.training.threads import training_threads
from explorer.errors import ExplorerError
from explorer.training.metrics import task_metrics
from explorer.training.progress import Progress, emit
from explorer.training.sparse_adam import EmbeddingAdam
from explorer.training.trainer import Prepared, TrainConfig, decode_predictions, model_spec
from models import MultiTaskModel
from models.seeded import generator, seed_model
from models.stacked import BagOfWords, StackedModel

MODES = ("batched", "sequential")   # how train_combinations trains
MODE_CHOICES = ("auto", *MODES)     # what a caller may ask for: auto = batched for ew, sequential otherwise
EVAL_BATCH = 512

__all__ = ["MODES", "MODE_CHOICES", "ComboRun", "resolve_mode", "train_combinations"]


def resolve_mode(mode: str, method: str) -> str:
    """A requested mode (one of MODE_CHOICES) as the mode ``train_combinations`` runs for ``method``."""
    if mode not in MODE_CHOICES:
        raise ExplorerError(f"Unknown mode '{mode}'. Use one of: {', '.join(MODE_CHOICES)}.")
    if mode == "auto":
        # The batched trainer stacks plain equal-weight models; other methods need the one-by-one trainer.
        return "batched" if method == "ew" else "sequential"
    return mode


@training_threads()  # one thread per job: proportional slowdown under load, same numbers
def train_combinations(dataset: Dataset, combinations: list[tuple[str, ...]], config: TrainConfig,
                       seeds: list[int], mode: str = "batched", progress: Progress | None = None,
                       prepared: Prepared | None = None, keep_models: bool = False) -> list[ComboRun]:
    """Train one model per (combination, seed) and score each on the test split.

    Returns the runs seed-major: for each seed in ``seeds``, the combinations in order.
    ``prepared`` (from ``explorer.training.trainer.prepare``) must cover the union of the tasks.
    ``keep_models`` puts each run's weights on it as a ``MultiTaskModel`` (CPU, eval mode), ready
    for ``explorer.relatedness.combos.to_train_result`` and ``explorer.store.runs.save_run``.
    """
    config = config.resolve(dataset.modality)
    if mode not in MODES:
        raise ExplorerError(f"Unknown mode '{mode}'. Use one of: {', '.join(MODES)}.")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ExplorerError("No seed given: pass at least one, e.g. seeds=[0].")
    if len(set(seeds)) != len(seeds):
        raise ExplorerError(f"Seeds {seeds} repeat a value: give distinct seeds.")
    combinations = normalise_combinations(dataset, combinations, prepared)
    if mode == "sequential":
        return train_sequential(dataset, combinations, config, seeds, progress, prepared, keep_models)
    if config.method != "ew":
        raise ExplorerError(f"Method '{config.method}' is not supported in batched mode, which trains "
                            "with equal weights (ew) only. Use mode 'sequential' for other methods.")
    return train_batched(dataset, combinations, config, seeds, progress, prepared, keep_models)


def build_stack(prepared: Prepared, combinations: list[tuple[str, ...]], config: TrainConfig,
                seeds: list[int]) -> StackedModel:
    """Slot (seed s, combination i) initialised exactly as ``train`` initialises that model."""
    stack = None
    for s, seed in enumerate(seeds):
        for i, combo in enumerate(combinations):
            model = seed_model(MultiTaskModel(model_spec(restrict(prepared, combo), config)), seed)
            if stack is None:
                stack = StackedModel(model, len(seeds) * len(combinations), len(seeds),
                                     heads={t.name: t.n_outputs for t in prepared.tasks})
            stack.set_slot(s * len(combinations) + i, model)
    # each slot draws its dropout masks from its own generator, as its model would alone
    stack.dropout_generators = [generator(seed, "dropout") for seed in seeds for _ in combinations]
    return stack


class _Losses:
    """Per-slot, per-task mean losses of one batch, each over the rows that have the label."""

    def __init__(self, prepared: Prepared, stack: StackedModel, combinations, device):
        self.tasks = prepared.tasks
        self.slices = [stack.head_slices[t.name] for t in self.tasks]
        self.groups, self.per_group = stack.groups, stack.per_group
        member = torch.tensor([[t.name in combo for t in self.tasks] for combo in combinations],
                              dtype=torch.float32)
        self.member = member.repeat(stack.groups, 1).to(device)  # [C, T]: is task t in slot c's combination
        # class weights as ``explorer.training.trainer.task_loss`` applies them: a weighted mean
        self.weights = [prepared.class_weights[t.name].to(device) if t.name in prepared.class_weights else None
                        for t in self.tasks]

    def __call__(self, outputs: torch.Tensor, targets: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``outputs`` [C, B, n_out], ``targets`` per task [groups, B] -> (sum of losses [C, T], counts [C, T])."""
        sums, counts = [], []
        c, b = outputs.shape[:2]
        for task, sl, target, weight in zip(self.tasks, self.slices, targets, self.weights):
            out = outputs[:, :, sl].view(self.groups, self.per_group, b, -1)
            tgt = target.unsqueeze(1)                      # [groups, 1, B] broadcast over the group's slots
            if task.is_classification:
                keep = tgt >= 0
                if weight is not None:
                    keep = keep * weight[tgt.clamp(min=0)]  # each row counts its class's weight
                logp = F.log_softmax(out, -1)
                picked = logp.gather(-1, tgt.clamp(min=0).expand(-1, self.per_group, -1).unsqueeze(-1))
                loss = -(picked.squeeze(-1) * keep).sum(-1)
            else:
                keep = ~torch.isnan(tgt)
                diff = out[..., 0] - torch.where(keep, tgt, torch.zeros_like(tgt))
                loss = (diff.square() * keep).sum(-1)
            sums.append(loss.reshape(c))
            counts.append(keep.sum(-1).expand(-1, self.per_group).reshape(c).to(outputs.dtype))
        return torch.stack(sums, 1), torch.stack(counts, 1)

    def means(self, sums: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean loss per (slot, task), and whether it counts (task in the combination and labelled)."""
        valid = (counts > 0) & (self.member > 0)
        return sums / counts.clamp(min=1.0), valid


def _optimiser(params, lr: float) -> torch.optim.Optimizer:
    try:  # the fused kernel makes one pass over each tensor per step: the step is memory-bound
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(params, lr=lr)


@torch.no_grad()
def _outputs(stack: StackedModel, x: torch.Tensor) -> torch.Tensor:
    """Eval-mode outputs [C, n, n_out] on rows shared by every group."""
    stack.eval()
    return torch.cat([stack(x[i:i + EVAL_BATCH]) for i in range(0, len(x), EVAL_BATCH)], 1)


class StackSteps:
    """The ``explorer.training.hooks.Steps`` of a ``StackedModel``: every slot steps on its own seed's batch."""

    def __init__(self, stack: StackedModel, prepared: Prepared, combinations, config: TrainConfig,
                 seeds: list[int], device):
        self.model, self.config, self.device = stack, config, device
        self.losses = _Losses(prepared, stack, combinations, device)
        self.names = [t.name for t in prepared.tasks]
        self.x = prepared.x["train"].to(device)
        self.y = [prepared.y["train"][t].to(device) for t in self.names]
        self.x_val = prepared.x["val"].to(device)
        self.y_val = [prepared.y["val"][t].to(device) for t in self.names]
        self.step_fn = _TextStep(stack, self.x, config) if stack.modality == "text" else _DenseStep(stack)
        self.optimiser = _optimiser(self.step_fn.parameters(), config.lr)
        self.average = EpochAverage(stack.parameters(), config.ema)
        self.generators = [torch.Generator().manual_seed(s) for s in seeds]
        self.steps_per_epoch = max(1, -(-len(self.x) // config.batch_size))
        shape = (stack.slots, len(self.names))
        self.sums, self.counts = torch.zeros(shape, device=device), torch.zeros(shape, device=device)

    def batches(self, epoch: int):
        self.average.restore()
        self.sums.zero_()
        self.counts.zero_()
        orders = [torch.randperm(len(self.x), generator=g).split(self.config.batch_size) for g in self.generators]
        return (torch.stack(batches).to(self.device) for batches in zip(*orders))  # [groups, B]

    def forward(self, rows: torch.Tensor) -> Step:
        outputs = self.step_fn.forward(self.x, rows)
        targets = [y[rows] for y in self.y]
        mean, valid = self.losses.means(*self.losses(outputs, targets))
        return Step(self.model, self.optimiser, rows, None, targets, None, mean, extra={"valid": valid})

    def update(self, step: Step) -> None:
        valid = step.extra["valid"]
        # summed over slots: d(total)/d(slot c's weights) is slot c's own loss gradient
        (step.losses * valid).sum().backward()
        self.step_fn.finish_backward()
        self.optimiser.step()
        with torch.no_grad():
            self.sums += step.losses.detach() * valid
            self.counts += valid

    def end_epoch(self, epoch: int, epochs: int) -> Epoch:
        self.step_fn.flush()  # every embedding row brought up to date before the average takes it
        self.average.swap_in()
        val_mean, val_valid = _val_losses(self.model, self.losses, self.x_val, self.y_val)
        return Epoch(epoch, epochs, self.model, self.sums / self.counts.clamp(min=1), val_mean,
                     extra={"train_valid": self.counts > 0, "val_valid": val_valid})


class SlotStopping(Callback):
    """``explorer.training.hooks.EarlyStopping`` for every slot at once, and each slot's history.

    A slot that stops keeps training with the others (its weights move on) but
    its best epoch's weights are put back at the end and its history ends there.
    """

    def __init__(self, stack: StackedModel, names: list[str], patience: int):
        self.stack, self.names, self.patience = stack, names, patience
        device = stack.head_weight.device
        self.best = torch.full((stack.slots,), float("inf"), device=device)
        self.task_best = torch.full((stack.slots, len(names)), float("inf"), device=device)
        self.task_improved = torch.zeros((stack.slots, len(names)), dtype=torch.bool)  # this epoch's, on CPU
        self.best_epoch = [0] * stack.slots
        self.stale = torch.zeros(stack.slots, dtype=torch.long, device=device)
        self.stopped = torch.zeros(stack.slots, dtype=torch.bool, device=device)
        self.saved: dict[str, torch.Tensor] = {}  # each slot's weights at its best validation epoch
        self.histories: list[list[dict]] = [[] for _ in range(stack.slots)]

    def on_epoch(self, epoch: Epoch) -> None:
        val_valid = epoch.extra["val_valid"]
        val_total = torch.where(val_valid, epoch.val, torch.zeros_like(epoch.val)).sum(1)
        improved = (val_total < self.best - IMPROVEMENT) & ~self.stopped
        self.best = torch.where(improved, val_total, self.best)
        # as EarlyStopping: a slot goes stale only while neither its sum nor any of its tasks improves
        task_improved = (epoch.val < self.task_best - IMPROVEMENT) & val_valid & ~self.stopped[:, None]
        self.task_best = torch.where(task_improved, epoch.val, self.task_best)
        self.task_improved = task_improved.cpu()
        fresh = improved | task_improved.any(1)
        self.stale = torch.where(fresh, torch.zeros_like(self.stale), self.stale + 1)
        _checkpoint(self.stack, self.saved, improved.cpu())
        train, train_has = epoch.train.cpu(), epoch.extra["train_valid"].cpu()
        val, val_has = epoch.val.cpu(), val_valid.cpu()
        improved, stopped = improved.cpu(), self.stopped.cpu()
        for c in range(self.stack.slots):
            if stopped[c]:
                continue
            self.histories[c].append({
                "epoch": epoch.epoch,
                "train": {t: float(train[c, j]) for j, t in enumerate(self.names) if train_has[c, j]},
                "val": {t: float(val[c, j]) for j, t in enumerate(self.names) if val_has[c, j]}})
            if improved[c]:
                self.best_epoch[c] = epoch.epoch
        if self.patience:
            self.stopped |= self.stale >= self.patience

    def should_stop(self, epoch: Epoch) -> bool:
        return bool(self.patience) and bool(self.stopped.all())

    def on_end(self, steps) -> None:
        _restore(self.stack, self.saved, torch.tensor([e > 0 for e in self.best_epoch]))


class SlotTaskCheckpoint(Callback):
    """``explorer.training.hooks.TaskCheckpoint`` for every slot: each (slot, task)'s test predictions
    from the epoch where that task's validation loss in that slot was lowest (``SlotStopping`` says which)."""

    def __init__(self, stack: StackedModel, stopping: SlotStopping, x_test: torch.Tensor,
                 head_slices: dict[str, slice], regression: set[str]):
        self.stack, self.stopping, self.x_test = stack, stopping, x_test
        self.head_slices, self.regression = head_slices, regression
        self.epoch = torch.zeros((stack.slots, len(stopping.names)), dtype=torch.long)
        self.predictions: dict[str, torch.Tensor] = {}  # task -> [slots, test rows] (class code or model value)

    def on_epoch(self, epoch: Epoch) -> None:
        improved = self.stopping.task_improved
        if not improved.any():
            return
        outputs = _outputs(self.stack, self.x_test).cpu()
        for j, name in enumerate(self.stopping.names):
            rows = improved[:, j]
            if not rows.any():
                continue
            out = outputs[:, :, self.head_slices[name]]
            pred = out[:, :, 0] if name in self.regression else out.argmax(2)
            if name not in self.predictions:
                self.predictions[name] = pred.clone()
            else:
                self.predictions[name][rows] = pred[rows]
            self.epoch[rows, j] = epoch.epoch


class _SweepProgress(Callback):
    def __init__(self, progress: Progress, text: str, epochs: int):
        self.progress, self.text, self.epochs = progress, text, epochs

    def on_step(self, step: Step) -> None:
        emit(self.progress, "train", step.index, step.total, f"{self.text} · epoch {step.epoch}/{self.epochs}")


def train_batched(dataset: Dataset, combinations: list[tuple[str, ...]], config: TrainConfig, seeds: list[int],
                  progress: Progress | None = None, prepared: Prepared | None = None,
                  keep_models: bool = False) -> list[ComboRun]:
    start = time.perf_counter()
    prepared = prepare_union(dataset, combinations, config, prepared)
    device = resolve_device(config.device)
    stack = build_stack(prepared, combinations, config, seeds).to(device)
    steps = StackSteps(stack, prepared, combinations, config, seeds, device)
    stopping = SlotStopping(stack, steps.names, config.patience)
    x_test = prepared.x["test"].to(device)
    per_task = SlotTaskCheckpoint(stack, stopping, x_test, stack.head_slices,
                                  {t.name for t in prepared.tasks if not t.is_classification})
    total = steps.steps_per_epoch * config.epochs
    text = f"{len(combinations)} combinations x {len(seeds)} seeds, batched"
    finite = FiniteLoss([f"{'+'.join(combo)} seed {seed}" for seed in seeds for combo in combinations], steps.names)
    hooks = [finite, stopping, per_task] + ([_SweepProgress(progress, text, config.epochs)] if progress else [])
    fit(steps, config.epochs, total, hooks)
    outputs = _outputs(stack, x_test).cpu()
    seconds = (time.perf_counter() - start) / stack.slots  # the stack's time, shared out per model
    runs = []
    for s, seed in enumerate(seeds):
        for i, combo in enumerate(combinations):
            c = s * len(combinations) + i
            saved, own, own_pred, own_epoch = {}, {}, {}, {}
            for t in restrict(prepared, combo).tasks:
                y_true = prepared.y_raw["test"][t.name]
                pred = decode_predictions(t, outputs[c][:, stack.head_slices[t.name]],
                                          prepared.target_stats.get(t.name))
                saved[t.name] = task_metrics(t, y_true, pred)
                j = steps.names.index(t.name)
                if t.name in per_task.predictions and per_task.epoch[c, j] > 0:
                    own_pred[t.name] = _decode_code(t, per_task.predictions[t.name][c],
                                                    prepared.target_stats.get(t.name))
                    own_epoch[t.name] = int(per_task.epoch[c, j])
                    own[t.name] = task_metrics(t, y_true, own_pred[t.name])
                else:  # never improved (e.g. no validation label): the saved weights' score
                    own[t.name], own_pred[t.name] = saved[t.name], pred
            model = slot_model(stack, c, restrict(prepared, combo), config) if keep_models else None
            runs.append(ComboRun(combo, seed, own, stopping.best_epoch[c], stopping.histories[c], model=model,
                                 seconds=seconds, device=describe(device), model_metrics=saved,
                                 task_epoch=own_epoch, test_pred=own_pred))
    emit(progress, "train", total, total, "done")
    return runs


def _decode_code(task, pred: torch.Tensor, stats) -> np.ndarray:
    """A stored prediction (class code, or the regression head's output) as ``decode_predictions`` gives it."""
    return pred.numpy() if task.is_classification else decode_predictions(task, pred[:, None], stats)


def slot_model(stack: StackedModel, slot: int, prepared: Prepared, config: TrainConfig) -> MultiTaskModel:
    """Slot ``slot`` of ``stack`` as the ``MultiTaskModel`` of ``prepared``'s tasks (CPU, eval mode)."""
    model = MultiTaskModel(model_spec(prepared, config))
    state = {k: v.cpu() for k, v in stack.slot_state_dict(slot, [t.name for t in prepared.tasks]).items()}
    model.load_state_dict(state)  # strict: the same keys and shapes as a model trained alone
    return model.eval()


@torch.no_grad()
def _checkpoint(stack: StackedModel, saved: dict[str, torch.Tensor], improved: torch.Tensor) -> None:
    """Copy the improved slots' weights into ``saved`` (all at once the first time)."""
    if not improved.any():
        return
    for name, p in stack.named_parameters():
        if name not in saved:
            saved[name] = p.detach().clone()
        elif improved.all():
            saved[name].copy_(p.detach())
        else:
            _copy_slots(stack, name, p.detach(), saved[name], improved)


@torch.no_grad()
def _restore(stack: StackedModel, saved: dict[str, torch.Tensor], slots: torch.Tensor) -> None:
    """Put the saved weights back into ``slots``; the others keep their last weights."""
    if slots.any():
        for name, p in stack.named_parameters():
            _copy_slots(stack, name, saved[name], p.detach(), slots)


def _copy_slots(stack: StackedModel, name: str, src: torch.Tensor, dst: torch.Tensor, slots: torch.Tensor) -> None:
    src, dst = stack.slot_view(name, src), stack.slot_view(name, dst)
    for c in torch.nonzero(slots).flatten().tolist():
        if name == "embedding":
            g, i = divmod(c, stack.per_group)
            dst[g, :, i] = src[g, :, i]
        else:
            dst[c] = src[c]


class _DenseStep:
    """Tabular and image models: plain autograd on the stacked weights."""

    def __init__(self, stack: StackedModel):
        self.stack = stack

    def parameters(self) -> list[torch.nn.Parameter]:
        return list(self.stack.parameters())

    def forward(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        for p in self.stack.parameters():
            p.grad = None
        return self.stack.decode(self.stack.encode_groups(x[rows]))

    def finish_backward(self) -> None:
        pass

    def flush(self) -> None:
        pass


class _TextStep:
    """Text models: the embedding tables are pooled and differentiated as sparse bags of words.

    A batch touches a few thousand of the vocabulary's rows. Autograd through
    ``embedding_bag`` would build a dense [V, C*D] gradient each step, and
    ``torch.optim.Adam`` would then sweep the whole table; here the pooled
    features are the autograd leaf, the touched rows' gradient is computed
    directly, and ``EmbeddingAdam`` updates the table as dense Adam would.
    """

    def __init__(self, stack: StackedModel, x_train: torch.Tensor, config: TrainConfig):
        self.stack = stack
        self.table = stack.embedding
        self.table.requires_grad_(False)  # updated by self.adam, never by autograd
        self.adam = EmbeddingAdam(self.table.data, config.lr)
        self.documents = BagOfWords(x_train, self.table.shape[1])  # every training document, built once
        self.bags: list[BagOfWords] = []
        self.leaf: torch.Tensor | None = None

    def parameters(self) -> list[torch.nn.Parameter]:
        """What the ordinary optimiser updates: everything but the embedding tables."""
        return [p for name, p in self.stack.named_parameters() if name != "embedding"]

    def forward(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        for p in self.parameters():
            p.grad = None
        self.bags = [self.documents.select(r) for r in rows]
        with torch.no_grad():
            for g, bag in enumerate(self.bags):
                self.adam.refresh(g, bag.rows)  # the steps these rows missed, before the batch reads them
            self.leaf = torch.stack([bag.pool(self.table[g]) for g, bag in enumerate(self.bags)])
        self.leaf.requires_grad_()
        return self.stack.decode(self.stack.features(self.stack.unstack_groups(self.leaf)))

    @torch.no_grad()
    def finish_backward(self) -> None:
        self.adam.step([(bag.rows, bag.table_grad(self.leaf.grad[g])) for g, bag in enumerate(self.bags)])

    def flush(self) -> None:
        self.adam.flush()


@torch.no_grad()
def _val_losses(stack: StackedModel, losses: _Losses, x: torch.Tensor, ys: list[torch.Tensor]):
    outputs = _outputs(stack, x)
    sums, counts = losses(outputs, [y.unsqueeze(0).expand(stack.groups, -1) for y in ys])
    return losses.means(sums, counts)
