import json

import pytest
import torch

from explorer.errors import ExplorerError
from explorer.store.runs import delete_run, find_runs, list_runs, load_run, reuse_key, save_run
from explorer.training.trainer import TrainConfig, predict_outputs, prepare, train
from tests.helpers import tiny_digits


@pytest.fixture(scope="module")
def result():
    return train(tiny_digits(), ["digit", "ink"], TrainConfig(epochs=1, hidden=16))


def test_save_load_round_trip(result, run_store):
    run = save_run(result)
    assert sorted(p.name for p in run.path.iterdir()) == ["config.json", "history.json", "metrics.json",
                                                          "model.safetensors"]
    assert not list(run_store.glob(".tmp-*"))
    loaded = load_run(run.id)
    assert loaded.metrics["test"] == json.loads(json.dumps(result.metrics))
    x = prepare(tiny_digits(), ["digit", "ink"], TrainConfig(epochs=1, hidden=16)).x["test"]
    before, after = predict_outputs(result.model, x), predict_outputs(loaded.model(), x)
    for task in before:
        assert torch.equal(before[task], after[task])
    assert [r.id for r in list_runs()] == [run.id]
    assert find_runs(loaded.config["key"])[0].id == run.id


def test_predictor_gives_labels_and_probabilities(result):
    run = save_run(result)
    out = run.predictor().predict(tiny_digits().inputs[:5])
    assert len(out["digit"]["labels"]) == 5 and out["digit"]["probabilities"].shape == (5, 10)
    assert out["digit"]["probabilities"].sum(1) == pytest.approx([1.0] * 5, abs=1e-5)
    assert all(isinstance(v, float) for v in out["ink"]["labels"])


def test_interrupted_save_leaves_no_half_run(result, run_store, monkeypatch):
    import explorer.store.runs as runs

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(runs, "_write_json", boom)
    with pytest.raises(OSError):
        save_run(result)
    assert list(run_store.iterdir()) == []


def test_delete_and_bad_ids(result):
    run = save_run(result)
    delete_run(run.id)
    assert list_runs() == []
    with pytest.raises(ExplorerError, match="No run"):
        load_run(run.id)
    with pytest.raises(ExplorerError, match="not a valid run id"):
        load_run("../etc")


def test_reuse_key_ignores_device_and_task_order():
    a = reuse_key("f", ["a", "b"], TrainConfig(device="cpu"))
    assert a == reuse_key("f", ["b", "a"], TrainConfig(device="auto"))
    assert a != reuse_key("f", ["a", "b"], TrainConfig(seed=1))
    assert a != reuse_key("g", ["a", "b"], TrainConfig())


def test_long_names_keep_run_ids_unique(result, monkeypatch):
    monkeypatch.setitem(result.dataset_source, "name", "a-very-long-csv-name-" * 20)
    first, second = save_run(result), save_run(result)
    assert first.id != second.id and len(first.id) <= 150
    assert first.id.split("-")[-1] != "" and load_run(second.id).id == second.id


def test_stored_runs_finds_runs_by_combination_and_seed(result):
    from explorer.store.runs import stored_runs
    first, second = save_run(result), save_run(result)
    found = stored_runs(result.dataset_fingerprint, [("digit", "ink"), ("digit",)], result.config,
                        [result.config.seed, result.config.seed + 1])
    assert list(found) == [(("digit", "ink"), result.config.seed)]
    assert found[(("digit", "ink"), result.config.seed)].id in {first.id, second.id}
