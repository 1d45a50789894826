import numpy as np
import pytest

from explorer.errors import Cancelled, ExplorerError
import torch

from explorer.training.averaging import EpochAverage
from explorer.training.trainer import TrainConfig, class_weights, prepare, task_loss, train
from tests.helpers import tiny_digits

FAST = dict(epochs=3, hidden=32, batch_size=64)


def test_beats_majority_baseline_on_every_task():
    result = train(tiny_digits(), ["digit", "even", "ink"], TrainConfig(**{**FAST, "epochs": 10}))
    for task, m in result.metrics.items():
        key = m["primary"]
        assert m[key] > result.baseline[task][key] + 0.2, (task, m, result.baseline[task])
    assert set(result.metrics) == {"digit", "even", "ink"}
    assert result.metrics["ink"]["primary"] == "r2" and "mae" in result.metrics["ink"]


def test_same_seed_same_numbers_and_other_seed_differs():
    ds = tiny_digits()
    a = train(ds, ["digit", "even"], TrainConfig(**FAST, seed=1))
    b = train(ds, ["digit", "even"], TrainConfig(**FAST, seed=1))
    c = train(ds, ["digit", "even"], TrainConfig(**FAST, seed=2))
    assert a.metrics == b.metrics
    assert a.history == b.history
    assert a.history != c.history


def test_missing_labels_are_masked_not_guessed():
    ds = tiny_digits(missing_even=0.6)
    prepared = prepare(ds, ["even"], TrainConfig())
    assert (prepared.y["train"]["even"] == -1).any()
    result = train(ds, ["digit", "even"], TrainConfig(**FAST), prepared=prepare(ds, ["digit", "even"], TrainConfig(**FAST)))
    # The test metric only counts labelled rows.
    assert result.metrics["even"]["n"] == int((prepared.y_raw["test"]["even"] >= 0).sum())
    assert result.metrics["even"]["macro_f1"] > 0.7


def test_early_stopping_keeps_best_epoch():
    result = train(tiny_digits(), ["digit"], TrainConfig(epochs=30, patience=1, hidden=16, lr=0.05))
    assert len(result.history) < 30
    vals = [sum(h["val"].values()) for h in result.history]
    assert result.best_epoch == int(np.argmin(vals)) + 1


def test_progress_callback_reports_and_cancels():
    events = []
    train(tiny_digits(), ["even"], TrainConfig(epochs=1, hidden=8), progress=events.append)
    assert events and events[-1].done == len(events) == events[-1].total  # one event per step, in steps
    assert events[0].phase == "train" and set(events[0].losses) == {"even"} and "epoch 1/1" in events[0].message
    with pytest.raises(Cancelled):
        train(tiny_digits(), ["even"], TrainConfig(epochs=2, hidden=8), progress=lambda e: e.done < 3)


@pytest.mark.parametrize("bad, message", [
    (dict(epochs=0), "epochs must be a whole number"),
    (dict(lr=5.0), "lr must be in"),
    (dict(dropout=1.0), "dropout must be in"),
    (dict(device="tpu"), "Unknown device"),
    (dict(method="nope"), "Unknown method"),
    (dict(balance=-0.5), "balance must be in"),
    (dict(balance=True), "balance must be in"),
    (dict(ema=1.0), "ema must be in"),
])
def test_bad_settings_have_clear_messages(bad, message):
    with pytest.raises(ExplorerError, match=message):
        train(tiny_digits(), ["even"], TrainConfig(**{**FAST, **bad}))


def test_unknown_and_empty_task_selection():
    with pytest.raises(ExplorerError, match="Unknown task"):
        train(tiny_digits(), ["colour"], TrainConfig(**FAST))
    with pytest.raises(ExplorerError, match="No task selected"):
        train(tiny_digits(), [], TrainConfig(**FAST))


def test_same_seed_same_numbers_while_other_jobs_train():
    """Jobs are threads of one process: training must not draw from torch's global RNG (issue 11 item 9)."""
    import threading

    import torch

    from explorer.jobs import Job
    from explorer.training.batched import train_combinations

    ds = tiny_digits()
    config = TrainConfig(epochs=2, hidden=16, train_size=300)  # dropout on: the default

    def single(progress):
        r = train(ds, ["digit", "even"], config, progress=progress)
        return r.history, r.metrics, {k: v.clone() for k, v in r.model.state_dict().items()}

    def batched(progress):
        runs = train_combinations(ds, [("digit",), ("digit", "even")], config, [4, 5], progress=progress)
        return [(r.history, r.metrics) for r in runs]

    solo_single, solo_batched = single(None), batched(None)
    stop = threading.Event()

    def noise():  # another session drawing from the global RNG all along
        while not stop.is_set():
            torch.manual_seed(123)
            torch.rand(1000)

    noisy = threading.Thread(target=noise, daemon=True)
    noisy.start()
    try:
        jobs = [Job(single).start(), Job(single).start(), Job(batched).start(), Job(batched).start()]
        assert all(job.wait(120) for job in jobs)
    finally:
        stop.set()
        noisy.join()
    assert all(job.status == "done" for job in jobs), [job.error for job in jobs]
    for job in jobs[:2]:
        history, metrics, state = job.result
        assert history == solo_single[0] and metrics == solo_single[1]
        assert all(torch.equal(state[k], v) for k, v in solo_single[2].items())
    assert jobs[2].result == solo_batched and jobs[3].result == solo_batched


def test_training_runs_on_the_job_thread_count_and_restores_the_callers():
    import torch

    from explorer.training import threads
    from explorer.training.hooks import Callback

    class Threads(Callback):
        seen = set()

        def on_step(self, step):
            self.seen.add(torch.get_num_threads())

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        train(tiny_digits(), ["even"], TrainConfig(epochs=1, hidden=8, train_size=200), callbacks=[Threads()])
        assert Threads.seen == {threads.TRAIN_THREADS} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_class_weights_lift_rare_classes_and_leave_unseen_ones_at_one():
    labels = np.array([0, 0, 0, 1, -1])          # -1: no label; class 2 never seen in training
    w = class_weights(labels, 3, 1.0)
    assert w.tolist() == pytest.approx([4 / (2 * 3), 4 / (2 * 1), 1.0])
    assert class_weights(labels, 3, 0.5).tolist() == pytest.approx([(4 / 6) ** 0.5, 2 ** 0.5, 1.0])
    assert class_weights(labels, 3, 0.0).tolist() == [1.0, 1.0, 1.0]


def test_weighted_task_loss_is_the_class_weighted_mean():
    task = tiny_digits().tasks["even"]
    out = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    target = torch.tensor([0, 1, 1, -1])
    w = torch.tensor([1.0, 3.0])
    nll = -torch.log_softmax(out[:3], 1)[torch.arange(3), target[:3]]
    expected = (nll * w[target[:3]]).sum() / w[target[:3]].sum()
    assert float(task_loss(task, out, target, w)) == pytest.approx(float(expected))
    assert float(task_loss(task, out, target)) == pytest.approx(float(nll.mean()))


def test_prepare_weights_classification_tasks_only_when_asked():
    ds = tiny_digits()
    weighted = prepare(ds, ["digit", "ink"], TrainConfig(**FAST).resolve(ds.modality))
    assert set(weighted.class_weights) == {"digit"} and len(weighted.class_weights["digit"]) == 10
    plain = prepare(ds, ["digit", "ink"], TrainConfig(**FAST, balance=0.0).resolve(ds.modality))
    assert plain.class_weights == {}


def test_epoch_average_validates_the_average_and_trains_on_the_live_weights():
    p = torch.nn.Parameter(torch.zeros(3))
    avg = EpochAverage([p], decay=0.5)
    avg.swap_in()                                    # epoch 1: the average is epoch 1's weights
    assert p.tolist() == [0.0, 0.0, 0.0]
    avg.restore()
    live = p.data_ptr()                              # the optimiser's tensor: it must come back
    with torch.no_grad():
        p.add_(4.0)                                  # epoch 2 trains the live weights
    avg.swap_in()
    assert p.tolist() == [2.0, 2.0, 2.0]             # 0.5 * 0 + 0.5 * 4
    avg.restore()
    assert p.data_ptr() == live and p.tolist() == [4.0, 4.0, 4.0]
    off = EpochAverage([p], decay=0.0)
    off.swap_in()
    assert p.data_ptr() == live


def test_weight_averaging_and_class_weights_change_what_training_validates():
    ds = tiny_digits()
    plain = train(ds, ["digit"], TrainConfig(**FAST, balance=0.0, ema=0.0))
    averaged = train(ds, ["digit"], TrainConfig(**FAST, balance=0.0))
    weighted = train(ds, ["digit"], TrainConfig(**FAST, ema=0.0))
    # epoch 1 validates the same weights; from epoch 2 the average is not the live model
    assert averaged.history[0]["val"] == plain.history[0]["val"]
    assert averaged.history[1]["val"]["digit"] != pytest.approx(plain.history[1]["val"]["digit"])
    assert weighted.history[0]["train"]["digit"] != pytest.approx(plain.history[0]["train"]["digit"])
