import pytest
import torch

from explorer.errors import Cancelled
from explorer.training.hooks import Callback
from explorer.training.trainer import TrainConfig, train
from tests.helpers import tiny_digits

FAST = dict(epochs=3, hidden=8, batch_size=128, train_size=300)


class Recorder(Callback):
    """Sees what the hook API promises: the model, batch, losses, features and optimiser of every step."""

    def __init__(self):
        self.steps, self.epochs, self.ended = [], [], False

    def before_update(self, step):
        assert step.model.training and step.features.requires_grad
        assert set(step.losses) <= set(step.targets) and len(step.x) == len(step.rows)
        first = next(step.model.parameters())
        self.steps.append((step.index, step.epoch, first.detach().clone(), step.optimiser))

    def on_step(self, step):
        # after the update: the parameters moved and the method's weights are known
        assert not torch.equal(next(step.model.parameters()), self.steps[-1][2])
        assert set(step.weights) == set(step.losses)

    def on_epoch(self, epoch):
        self.epochs.append((epoch.epoch, dict(epoch.val)))

    def on_end(self, steps):
        self.ended = True


def test_callbacks_see_every_step_and_epoch():
    rec = Recorder()
    result = train(tiny_digits(), ["digit", "even"], TrainConfig(**FAST, patience=0), callbacks=[rec])
    assert [s[0] for s in rec.steps] == list(range(1, len(rec.steps) + 1))
    per_epoch = -(-result.split_sizes["train"] // 128)
    assert len(rec.steps) == len(result.weight_trace) == 3 * per_epoch
    assert [e for e, _ in rec.epochs] == [1, 2, 3] and rec.ended
    assert [v for _, v in rec.epochs] == [h["val"] for h in result.history]


def test_a_callback_can_stop_and_cancel():
    class StopAfterOne(Callback):
        def should_stop(self, epoch):
            return True

    result = train(tiny_digits(), ["even"], TrainConfig(**FAST), callbacks=[StopAfterOne()])
    assert len(result.history) == 1

    class Cancel(Callback):
        def on_step(self, step):
            return step.index < 2

    with pytest.raises(Cancelled):
        train(tiny_digits(), ["even"], TrainConfig(**FAST), callbacks=[Cancel()])


def test_early_stopping_restores_the_best_epochs_weights():
    """The returned weights are the best epoch's, not the last epoch's (deleting the restore fails this)."""
    class Snapshots(Callback):
        def __init__(self):
            self.states = {}

        def on_epoch(self, epoch):
            self.states[epoch.epoch] = {k: v.clone() for k, v in epoch.model.state_dict().items()}

    snaps = Snapshots()
    result = train(tiny_digits(), ["digit"], TrainConfig(epochs=12, patience=2, hidden=16, lr=0.05, train_size=300),
                   callbacks=[snaps])
    last = max(snaps.states)
    assert result.best_epoch < last, "the test needs a run whose last epoch is not its best"
    state = result.model.state_dict()
    for key, value in snaps.states[result.best_epoch].items():
        assert torch.equal(state[key], value), key
    assert not all(torch.equal(state[k], v) for k, v in snaps.states[last].items())


def test_each_task_is_scored_at_its_own_best_validation_epoch():
    """Per-task checkpointing: a task's test score comes from the epoch of its lowest validation loss,
    even where the saved weights (lowest summed loss) come from another epoch; training goes on while
    any task still improves."""
    from explorer.training.metrics import primary
    from explorer.training.trainer import evaluate

    class EveryEpoch(Callback):
        def __init__(self, prepared):
            self.prepared, self.test = prepared, {}

        def on_epoch(self, epoch):
            self.test[epoch.epoch] = evaluate(epoch.model, self.prepared, "test", "cpu")

    from explorer.training.trainer import prepare
    data = tiny_digits()
    config = TrainConfig(epochs=10, patience=2, hidden=8, lr=0.05, train_size=300).resolve(data.modality)
    prepared = prepare(data, ["digit", "even", "ink"], config)
    record = EveryEpoch(prepared)
    result = train(data, ["digit", "even", "ink"], config, prepared=prepared, callbacks=[record])
    val = {h["epoch"]: h["val"] for h in result.history}
    own = {t: min(val, key=lambda e: (val[e][t], e)) for t in ("digit", "even", "ink")}
    assert result.task_epoch == own
    assert len(set(own.values()) | {result.best_epoch}) > 1, "the test needs tasks whose best epochs differ"
    for t, e in own.items():
        assert primary(result.task_metrics[t]) == pytest.approx(primary(record.test[e][t]), abs=1e-12)
    assert primary(result.metrics["digit"]) == pytest.approx(primary(record.test[result.best_epoch]["digit"]))
    # it stopped only when no task had improved for `patience` epochs
    last = max(val)
    assert last == config.epochs or last - max(own.values()) >= config.patience
