import numpy as np
import pandas as pd
import pytest

from explorer.data.dataset import TEST_SHARE, VAL_SHARE, Dataset, resolve_train_size
from explorer.errors import ExplorerError
from explorer.data.tasks import encode_labels

N = 500


def make_dataset(n: int = N) -> Dataset:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=n), "colour": rng.choice(["red", "blue"], size=n)})
    group = pd.Series(rng.choice(["a", "b", "c"], size=n, p=[0.6, 0.3, 0.1]))
    partial = pd.Series(np.where(rng.random(n) < 0.5, rng.choice(["u", "v"], size=n), None))
    value = pd.Series(rng.normal(size=n))
    tasks, labels = {}, {}
    for name, values in [("group", group), ("partial", partial), ("value", value)]:
        tasks[name], labels[name] = encode_labels(name, values)
    return Dataset("synthetic", "tabular", frame, tasks, labels, categorical=["colour"])


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return make_dataset()


def test_split_is_deterministic(ds):
    a, b = ds.split(seed=3), ds.split(seed=3)
    for part in ("train", "val", "test"):
        assert np.array_equal(getattr(a, part), getattr(b, part))
    assert not np.array_equal(ds.split(seed=4).test, a.test)


def test_split_is_disjoint_and_covers_all_rows(ds):
    s = ds.split(seed=0, train_size=1.0)
    assert not set(s.train) & set(s.val) and not set(s.train) & set(s.test) and not set(s.val) & set(s.test)
    assert sorted([*s.train, *s.val, *s.test]) == list(range(N))
    assert s.sizes() == {"train": N - round(N * TEST_SHARE) - round(N * VAL_SHARE),
                         "val": round(N * VAL_SHARE), "test": round(N * TEST_SHARE)}


def test_split_is_stratified_on_a_fully_labelled_task(ds):
    y = ds.labels["group"]
    s = ds.split(seed=0)
    overall = np.bincount(y) / len(y)
    assert np.allclose(np.bincount(y[s.test]) / len(s.test), overall, atol=0.02)


def test_val_and_test_do_not_move_with_train_size(ds):
    full = ds.split(seed=1, train_size=1.0)
    for size in (0.1, 0.5, 0.9, 40, 200):
        s = ds.split(seed=1, train_size=size)
        assert np.array_equal(s.val, full.val) and np.array_equal(s.test, full.test)


def test_smaller_training_sets_are_nested(ds):
    sizes = [0.1, 0.25, 0.5, 0.75, 1.0]
    trains = [set(ds.split(seed=2, train_size=f).train) for f in sizes]
    for small, large in zip(trains, trains[1:]):
        assert small < large


def test_train_size_as_row_count(ds):
    pool = len(ds.split(seed=0).train)
    assert len(ds.split(seed=0, train_size=50).train) == 50
    assert len(ds.split(seed=0, train_size=np.int64(50)).train) == 50
    assert len(ds.split(seed=0, train_size=pool).train) == pool
    assert len(ds.split(seed=0, train_size=0.5).train) == round(0.5 * pool)
    # A row count given as a whole float (e.g. from a form field) is a count, too.
    assert len(ds.split(seed=0, train_size=50.0).train) == 50


@pytest.mark.parametrize("size, message", [
    (0.0, r"fraction must be in \(0, 1\]"),
    (-0.5, r"fraction must be in \(0, 1\]"),
    (1, "neither a fraction"),
    (2.5, "neither a fraction"),
    (float("nan"), "finite number"),
    (float("inf"), "finite number"),
    ("half", "must be a number"),
    (True, "must be a number"),
    (None, "must be a number"),
    (10_000, "larger than the training pool"),
])
def test_bad_train_size(ds, size, message):
    with pytest.raises(ExplorerError, match=message):
        ds.split(seed=0, train_size=size)


def test_resolve_train_size_names_the_pool():
    with pytest.raises(ExplorerError, match=r"pool \(100 rows\)\. Use at most 100"):
        resolve_train_size(101, 100)
    assert resolve_train_size(0.001, 100) == 2  # never fewer than two rows


def test_split_without_a_stratifiable_task():
    # Every classification task is partial here, so the split is plain random.
    ds = make_dataset(60)
    ds.tasks.pop("group"), ds.labels.pop("group")
    s = ds.split(seed=0)
    assert sorted([*s.train, *s.val, *s.test]) == list(range(60))


def test_check_tasks(ds):
    assert ds.check_tasks(["value", "group"]) == ["value", "group"]
    with pytest.raises(ExplorerError, match="'group' listed more than once"):
        ds.check_tasks(["group", "value", "group"])
    with pytest.raises(ExplorerError, match="No task selected"):
        ds.check_tasks([])
    with pytest.raises(ExplorerError, match=r"Unknown task\(s\) 'nope'.*Available tasks: group, partial, value"):
        ds.check_tasks(["nope"])


def test_summary_and_subset_rows(ds):
    rows = {r["task"]: r for r in ds.summary()}
    assert rows["value"]["kind"] == "regression" and rows["value"]["n_classes"] is None
    assert 0.4 < rows["partial"]["coverage"] < 0.6
    assert sum(rows["group"]["class_counts"].values()) == N
    sub = ds.subset_rows(np.array([3, 1]))
    assert list(sub.index) == [0, 1] and sub["x"].tolist() == ds.inputs["x"].iloc[[3, 1]].tolist()


def test_fingerprint_tracks_data(ds):
    assert make_dataset().fingerprint() == ds.fingerprint()
    other = make_dataset()
    other.labels["group"] = other.labels["group"].copy()
    other.labels["group"][0] = (other.labels["group"][0] + 1) % 3
    assert other.fingerprint() != ds.fingerprint()

