"""train_together: tasks together vs each alone over seeds, one result type, baselines reused and saved once."""
import json

import numpy as np
import pytest

import explorer.relatedness.combos as combos_module
import explorer.training.batched as batched_module
from explorer.cli import main
from explorer.errors import ExplorerError
from explorer.relatedness.gains import Gain
from explorer.relatedness.sweep import run_sweep
from explorer.relatedness.together import TogetherResult, plan_together, train_together
from explorer.store.runs import list_runs, load_run
from explorer.training.trainer import TrainConfig

TASKS = ["digit", "even"]
TINY = TrainConfig(epochs=1, hidden=16, lr=1e-2, patience=0, train_size=300)


def test_one_result_with_gains_scores_delta_m_and_the_kept_first_seed(digits):
    result = train_together(digits, TASKS, seeds=2, config=TINY)
    assert isinstance(result, TogetherResult) and result.method == "ew" and result.seeds == [0, 1]
    assert set(result.gains) == set(TASKS) and all(isinstance(g, Gain) for g in result.gains.values())
    for t in TASKS:
        assert len(result.single[t]) == len(result.together[t]) == 2
        g = result.gains[t]
        assert g.n_multi == g.n_single == 2
        assert g.multi_mean == pytest.approx(np.mean(result.together[t]))
        assert g.single_mean == pytest.approx(np.mean(result.single[t]))
    finite = [g.mean for g in result.gains.values() if np.isfinite(g.mean)]
    assert result.delta_m == pytest.approx(np.mean(finite))
    assert sorted(result.trained) == sorted(f"{c} seed {s}" for c in ["digit", "even", "digit+even"] for s in (0, 1))
    # the first seed's three models are in the store, with the scores the gains were computed from
    assert set(result.saved) == {"digit+even", "digit", "even"}
    assert {r.id for r in list_runs()} == set(result.saved.values())
    for t in TASKS:
        metric = result.metric[t]
        assert load_run(result.saved[t]).metrics["test"][t][metric] == pytest.approx(result.single[t][0])
        together = load_run(result.saved["digit+even"]).metrics["test"][t][metric]
        assert together == pytest.approx(result.together[t][0])
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert set(data["history"]) == {"digit+even", "digit", "even"} and data["saved"] == result.saved


def test_gains_are_the_sweeps_gains(digits):
    """One way to compute gains: the same runs through run_sweep give the same numbers."""
    mine = train_together(digits, TASKS, seeds=2, config=TINY, save=False, reuse_store=False)
    sweep = run_sweep(digits, TASKS, combinations=[tuple(TASKS)], seeds=2, config=TINY, affinity=False)
    for t in TASKS:
        theirs = sweep.gain(TASKS, t)
        ours = mine.gains[t].to_dict()
        for k in ("mean", "low", "high", "p_value", "q_value"):
            assert ours[k] == pytest.approx(theirs[k]), k
        assert (ours["verdict"], ours["paired"]) == (theirs["verdict"], theirs["paired"])
    assert mine.delta_m == pytest.approx(sweep.delta_m["digit+even"])


def test_a_second_call_reuses_the_stored_baselines(digits):
    first = train_together(digits, TASKS, seeds=1, config=TINY, method="uw")
    assert len(list_runs()) == 3
    second = train_together(digits, TASKS, seeds=2, config=TINY, method="uw")
    # seed 0 alone comes from the store: only seed 1's baselines and the two combinations train
    assert sorted(second.trained) == ["digit seed 1", "digit+even seed 0", "digit+even seed 1", "even seed 1"]
    assert second.reused == {t: [first.saved[t]] for t in TASKS}
    assert second.saved["digit"] == first.saved["digit"] and second.saved["even"] == first.saved["even"]
    for t in TASKS:
        assert second.single[t][0] == pytest.approx(first.single[t][0])
    assert len(list_runs()) == 3  # the first seed's models were stored already: nothing saved twice
    third = train_together(digits, TASKS, seeds=1, config=TINY, method="uw", reuse_store=False, save=False)
    assert sorted(third.trained) == ["digit seed 0", "digit+even seed 0", "even seed 0"] and third.reused == {}


def test_an_unwritable_store_fails_before_any_training(digits, tmp_path, monkeypatch):
    store = tmp_path / "store"
    store.write_text("a file where the run store should be")
    monkeypatch.setattr(combos_module, "train", lambda *a, **k: pytest.fail("trained before checking the store"))
    monkeypatch.setattr(batched_module, "train_batched", lambda *a, **k: pytest.fail("trained before checking"))
    with pytest.raises(ExplorerError) as err:
        train_together(digits, TASKS, seeds=2, config=TINY, store=store)
    message = str(err.value)
    assert "run store" in message and "not a folder" in message and "\n" not in message
    with pytest.raises(ExplorerError, match="at least two tasks"):
        plan_together(digits, ["digit"], seeds=2, config=TINY)
    with pytest.raises(ExplorerError, match="seeds"):
        plan_together(digits, TASKS, seeds=0, config=TINY)
    with pytest.raises(ExplorerError, match="Unknown method 'nope'"):
        plan_together(digits, TASKS, method="nope", config=TINY)



AT_CHANCE = TrainConfig(epochs=3, hidden=16, train_size=150)  # digit's single-task model stays at chance here


def test_keep_at_chance_gives_a_task_at_chance_a_raw_gain_in_delta_m(digits):
    from explorer.relatedness.gains import NOTE_AT_CHANCE, NOTE_KEPT
    off = train_together(digits, TASKS, seeds=2, config=AT_CHANCE, save=False, reuse_store=False)
    on = plan_together(digits, TASKS, seeds=2, config=AT_CHANCE, save=False, reuse_store=False,
                       keep_at_chance=True).run()
    digit, even = off.gains["digit"], off.gains["even"]
    assert digit.at_chance and not even.at_chance and digit.note == NOTE_AT_CHANCE
    assert np.isnan(digit.mean) and off.delta_m == pytest.approx(even.mean)  # left out of Δm by default
    kept = on.gains["digit"]
    assert kept.at_chance and kept.note == NOTE_KEPT and kept.verdict == "unclear"
    assert kept.mean == pytest.approx((kept.multi_mean - kept.single_mean) / abs(kept.single_mean) * 100)
    assert on.gains["even"].mean == pytest.approx(even.mean)  # a task above chance is untouched
    assert on.delta_m == pytest.approx((kept.mean + even.mean) / 2)
    assert off.to_dict()["keep_at_chance"] is False and on.to_dict()["keep_at_chance"] is True
    digit_row = next(line for line in on.table().splitlines() if line.split()[0] == "digit")
    assert f"{kept.mean:+.1f} (at chance)" in digit_row
    assert "kept in Δm as asked" in on.table() and "--keep-at-chance keeps them in" in off.table()

def test_gains_command_prints_a_table_and_json(capsys, monkeypatch, tmp_path):
    args = ["gains", "--dataset", "digits", "--tasks", "digit,even", "--seeds", "2", "--epochs", "1",
            "--hidden", "8", "--train-size", "300", "--lr", "0.01"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("task"))
    assert header.split() == ["task", "metric", "single", "together", "gain", "%", "95", "%", "interval", "verdict"]
    rows = [line.split()[0] for line in printed.splitlines() if line.split()[:1] in (["digit"], ["even"])]
    assert rows == ["digit", "even"] and "Δm (mean gain over the tasks)" in printed
    assert "6 models trained, 0 stored baselines reused" in printed
    assert main(args + ["--method", "upgrad", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["method"] == "upgrad" and set(data["gains"]) == {"digit", "even"}
    assert data["reused"] == {t: [data["saved"][t]] for t in ("digit", "even")}  # the ew call's seed-0 baselines
    assert len(data["trained"]) == 4
    # bad input: one error line, no traceback; an unwritable store is refused before training
    assert main(["gains", "--dataset", "digits", "--tasks", "digit", "--seeds", "2"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: Choose at least two tasks")
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("EXPLORER_HOME", str(tmp_path / "file"))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "run store" in err and "%" not in err
