import threading

import numpy as np
import pandas as pd
import pytest

from explorer.data.dataset import Dataset
from explorer.errors import ExplorerError
from explorer.jobs import Job, format_seconds
from explorer.training.progress import ProgressEvent
from explorer.data.tasks import encode_labels
from explorer.training.trainer import TrainConfig, train


def tiny_tabular(n: int = 400) -> Dataset:
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    tasks, labels = {}, {}
    for name, values in {"pos": (x.a > 0).map({True: "y", False: "n"}),
                         "big": (x.b > 0).map({True: "y", False: "n"})}.items():
        tasks[name], labels[name] = encode_labels(name, values)
    return Dataset("toy", "tabular", x, tasks, labels, source={"name": "toy"})


def test_job_returns_result_and_tracks_progress():
    def work(progress):
        for i in range(1, 5):
            assert progress(ProgressEvent("test", i, 4)) is True
        return "ok"

    job = Job(work, label="t").start()
    assert job.wait(10)
    assert job.status == "done" and job.result == "ok"
    assert job.fraction == 1.0 and job.eta == 0.0
    assert [e.done for e in job.events()] == [1, 2, 3, 4]


def test_cancel_really_stops_training():
    ds = tiny_tabular()
    first_step = threading.Event()
    steps = []

    def work(progress):
        def cb(event):
            steps.append(event.done)
            first_step.set()
            return progress(event)
        return train(ds, ["pos", "big"], TrainConfig(epochs=500, patience=0, batch_size=8, hidden=8), progress=cb)

    job = Job(work).start()
    assert first_step.wait(30)
    job.cancel()
    assert job.wait(30)
    assert job.status == "cancelled" and job.result is None
    total = 500 * (len(ds.split().train) // 8 + 1)
    assert len(steps) < total / 10  # stopped long before the end
    assert job.cancel_requested


def test_user_error_and_bug_are_reported_not_raised():
    def bad_input(progress):
        raise ExplorerError("No task selected.")

    def bug(progress):
        raise KeyError("oops")

    a, b = Job(bad_input).start(), Job(bug).start()
    assert a.wait(5) and b.wait(5)
    assert (a.status, a.error) == ("failed", "No task selected.")
    assert b.status == "failed" and "KeyError" in b.error


def test_fraction_and_eta():
    assert Job(lambda progress: None).eta is None  # nothing done yet: no estimate
    assert ProgressEvent("train", 5, 20).fraction == 0.25
    assert ProgressEvent("train", 0, 0).fraction == 1.0  # nothing to do is done
    gate = threading.Event()

    def work(progress):
        progress(ProgressEvent("test", 1, 4))
        gate.wait(5)

    job = Job(work).start()
    while not job.events():
        pass
    assert job.running and job.fraction == 0.25
    assert job.eta is not None and job.eta >= 0
    gate.set()
    assert job.wait(5)
    with pytest.raises(RuntimeError):
        job.start()


def test_format_seconds():
    assert format_seconds(None) == "…"
    assert format_seconds(12.4) == "12 s"
    assert format_seconds(185) == "3 min 05 s"
    assert format_seconds(3 * 3600 + 60) == "3 h 01 min"
