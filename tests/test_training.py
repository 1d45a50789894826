import numpy as np
import pytest

from explorer.errors import Cancelled, ExplorerError
from explorer.training.trainer import TrainConfig, prepare, train
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
