import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from explorer.errors import ExplorerError
from explorer.store.runs import (check_store_writable, delete_run, find_runs, list_runs, load_run, reuse_key,
                                 save_run, scan_store, trash_size)
from explorer.training.trainer import TrainConfig, predict_outputs, prepare, train
from tests.helpers import tiny_digits


@pytest.fixture(scope="module")
def result():
    return train(tiny_digits(), ["digit", "ink"], TrainConfig(epochs=1, hidden=16))


def test_save_load_round_trip(result, run_store):
    run = save_run(result)
    assert sorted(p.name for p in run.path.iterdir()) == ["config.json", "history.json", "metrics.json",
                                                          "model.safetensors", "test_predictions.npz"]
    assert not list(run_store.glob(".tmp-*"))
    loaded = load_run(run.id)
    assert loaded.metrics["test"] == json.loads(json.dumps(result.metrics))
    x = prepare(tiny_digits(), ["digit", "ink"], TrainConfig(epochs=1, hidden=16)).x["test"]
    before, after = predict_outputs(result.model, x), predict_outputs(loaded.model(), x)
    for task in before:
        assert torch.equal(before[task], after[task])
    assert [r.id for r in list_runs()] == [run.id]
    assert find_runs(loaded.config["key"])[0].id == run.id


def test_test_predictions_round_trip_without_pickle(result, run_store):
    run = save_run(result)
    kept = load_run(run.id).test_predictions()
    assert set(kept) == {"digit", "ink"} == set(result.test_predictions)
    for task, pred in result.test_predictions.items():
        assert kept[task].dtype == pred.dtype and np.array_equal(kept[task], pred)
    assert len(kept["digit"]) == result.split_sizes["test"]
    with np.load(run.path / "test_predictions.npz", allow_pickle=False) as data:  # plain arrays only
        assert sorted(data.files) == ["task_0", "task_1"]


@pytest.mark.parametrize("damage", ["missing", "garbage", "pickle", "short", "class_out_of_range",
                                    "float_codes", "nan", "two_dimensional"])
def test_a_missing_or_damaged_predictions_file_means_no_predictions(result, run_store, damage):
    run = save_run(result)
    path = run.path / "test_predictions.npz"
    good = dict(np.load(path, allow_pickle=False))
    n = result.split_sizes["test"]
    if damage == "missing":
        path.unlink()
    elif damage == "garbage":
        path.write_bytes(b"PK\x03\x04 not really a zip")
    elif damage == "pickle":
        np.savez(path, task_0=np.array([{"a": 1}] * n, dtype=object), task_1=good["task_1"])
    else:
        bad = {"short": good["task_0"][:-1], "class_out_of_range": np.full(n, 10),
               "float_codes": good["task_0"].astype(float), "nan": good["task_0"],
               "two_dimensional": good["task_0"].reshape(-1, 1)}[damage]
        ink = np.full(n, np.nan) if damage == "nan" else good["task_1"]
        np.savez(path, task_0=bad, task_1=ink)
    loaded = load_run(run.id)  # the run itself stays usable
    assert loaded.test_predictions() == {}
    assert loaded.metrics["test"] == json.loads(json.dumps(result.metrics))


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
    with pytest.raises(ExplorerError, match="disk full"):
        save_run(result)
    assert list(run_store.iterdir()) == []


def test_a_non_finite_run_is_refused_before_anything_is_written(result, run_store):
    """Item 2's last line of defence at the store: no NaN weights, no 'Infinity' in config.json."""
    import copy
    from dataclasses import replace as dc_replace
    bad_stats = dc_replace(result, target_stats={**result.target_stats, "ink": (float("inf"), 1.0)})
    with pytest.raises(ExplorerError, match=r"^The run's settings hold a non-finite number at target_stats.ink\[0\]"):
        save_run(bad_stats)
    model = copy.deepcopy(result.model)
    with torch.no_grad():
        model.heads["digit"].bias[3] = float("nan")
    with pytest.raises(ExplorerError, match="weights 'heads.digit.bias' hold NaN or infinite values"):
        save_run(dc_replace(result, model=model))
    assert not run_store.exists() or list(run_store.iterdir()) == []


def test_failed_save_keeps_the_model_in_a_temporary_folder_and_says_where(result, run_store, monkeypatch):
    import explorer.store.runs as runs
    original = runs._write_run

    def store_full(tmp, final, *rest):
        if final.parent == run_store:
            raise OSError(28, "No space left on device")
        return original(tmp, final, *rest)
    monkeypatch.setattr(runs, "_write_run", store_full)
    with pytest.raises(ExplorerError, match="No space left") as e:
        save_run(result)
    kept = Path(str(e.value).split("kept in ")[1].split(":")[0])
    assert (kept / "model.safetensors").is_file()
    again = load_run(kept.name, kept.parent)
    assert again.metrics["test"] == json.loads(json.dumps(result.metrics))
    shutil.rmtree(kept.parent)


@pytest.mark.parametrize("make", ["file", "readonly", "full"])
def test_check_store_writable_refuses_before_training(tmp_path, monkeypatch, make):
    import explorer.store.runs as runs
    store = tmp_path / "store"
    if make == "file":
        store.write_text("x")
    elif make == "readonly":  # as a read-only mount answers (chmod would not stop root, who runs CI)
        def refuse(*a, **k):
            raise PermissionError(13, "Permission denied")
        monkeypatch.setattr(runs.tempfile, "mkstemp", refuse)
    else:
        monkeypatch.setattr(runs.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10 << 30, 10 << 30, 1 << 20))
    with pytest.raises(ExplorerError, match="run store") as e:
        check_store_writable(store)
    assert "\n" not in str(e.value)


def test_check_store_writable_creates_a_missing_store(tmp_path):
    assert check_store_writable(tmp_path / "a" / "b").is_dir()


def test_cli_train_refuses_an_unwritable_store_before_training(tmp_path, monkeypatch, capsys):
    from explorer.cli import main
    (tmp_path / "store").write_text("not a folder")
    monkeypatch.setenv("EXPLORER_HOME", str(tmp_path / "store"))
    import explorer.commands.train as cmd
    monkeypatch.setattr(cmd, "train", lambda *a, **k: pytest.fail("trained before checking the store"))
    assert main(["train", "--dataset", "digits", "--tasks", "digit", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "run store" in err and len(err.splitlines()) == 1


def test_damaged_runs_are_listed_not_fatal_and_can_be_deleted(result, run_store):
    good = save_run(result)
    bad = run_store / "no-dataset"
    bad.mkdir()
    config = json.loads((good.path / "config.json").read_text())
    del config["dataset"]
    (bad / "config.json").write_text(json.dumps(config))
    (bad / "metrics.json").write_text((good.path / "metrics.json").read_text())
    (run_store / "half").mkdir()
    outside = run_store.parent / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("precious")
    (run_store / "link").symlink_to(outside)
    runs, damaged = scan_store()
    assert [r.id for r in runs] == [good.id]
    reasons = {d.id: d.reason for d in damaged}
    assert reasons == {"no-dataset": "config.json lacks dataset", "half": "config.json is missing",
                       "link": "a symbolic link, not a run folder"}
    with pytest.raises(ExplorerError, match="damaged .config.json lacks dataset"):
        load_run("no-dataset")
    for name in reasons:
        delete_run(name)
    assert (outside / "keep.txt").read_text() == "precious"  # the link went, not what it points to
    assert scan_store()[1] == []
    assert [r.id for r in list_runs()] == [good.id]


def test_cli_runs_lists_damaged_and_deletes_a_symlink(result, run_store, capsys):
    from explorer.cli import main
    good = save_run(result)
    (run_store / "link").symlink_to(run_store.parent)
    assert main(["runs"]) == 0
    out = capsys.readouterr().out
    assert good.id in out and "link  damaged: a symbolic link" in out
    assert main(["runs", "--delete", "link"]) == 0
    assert main(["runs", "--delete", "link"]) == 2
    assert "No run 'link'" in capsys.readouterr().err


def test_delete_moves_to_trash_and_empty_trash_clears_it(result, run_store, capsys):
    from explorer.cli import main
    run = save_run(result)
    where = delete_run(run.id)
    assert where.parent == run_store / ".trash" and (where / "model.safetensors").is_file()
    assert list_runs() == [] and trash_size() == 1
    assert main(["runs", "--empty-trash"]) == 0
    assert "removed 1" in capsys.readouterr().out
    assert trash_size() == 0 and not where.exists()


def test_leftovers_of_killed_saves_are_cleaned_when_the_store_opens(result, run_store):
    run = save_run(result)
    old, young = run_store / ".tmp-killed-run", run_store / ".tmp-saving-now"
    for d in (old, young):
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"half")
    stale_file = run_store / ".bundle.zip.abc123.tmp"
    stale_file.write_bytes(b"half a zip")
    hours_ago = time.time() - 2 * 3600
    for path in (old / "model.safetensors", old, stale_file):
        os.utime(path, (hours_ago, hours_ago))
    assert [r.id for r in list_runs()] == [run.id]
    assert not old.exists() and not stale_file.exists()
    assert young.exists()  # may be a save in progress in another process


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


def test_a_run_stored_before_a_setting_existed_keeps_its_key():
    """Class weights and weight averaging came later: a stored config without them was trained without."""
    old = {k: v for k, v in TrainConfig().to_dict().items() if k not in ("balance", "ema")}
    legacy = TrainConfig.from_stored({**old, "unknown_setting": 1})
    assert (legacy.balance, legacy.ema) == (0.0, 0.0)
    assert reuse_key("f", ["a"], legacy) == reuse_key("f", ["a"], TrainConfig(balance=0.0, ema=0.0))
    assert reuse_key("f", ["a"], legacy) != reuse_key("f", ["a"], TrainConfig())


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
