import json

import numpy as np
import pytest

import explorer.relatedness.combos as combos_module
from explorer.cli import main
from explorer.relatedness.compare import compare_methods
from explorer.errors import ExplorerError
from explorer.plots.methods import comparison_html, method_gains, task_weights
from explorer.training.trainer import TrainConfig

TASKS = ["digit", "even"]
METHODS = ["ew", "uw", "pcgrad"]
TINY = TrainConfig(epochs=3, hidden=16, lr=3e-2, patience=0, train_size=300)  # every task above chance


@pytest.fixture(scope="module")
def recorded(digits):
    """A tiny comparison, with every call to train() recorded."""
    calls = []
    real = combos_module.train

    def spy(dataset, tasks, config, progress=None, prepared=None):
        calls.append((tuple(tasks), config.method, config.seed))
        return real(dataset, tasks, config, progress=progress, prepared=prepared)

    combos_module.train = spy
    events = []
    try:
        result = compare_methods(digits, TASKS, METHODS, seeds=2, config=TINY, progress=events.append)
    finally:
        combos_module.train = real
    return result, calls, events


def test_single_task_baselines_are_trained_once_and_shared_by_every_method(recorded):
    result, calls, _ = recorded
    singles = [c for c in calls if len(c[0]) == 1]
    assert sorted(singles) == sorted(((t,), "ew", s) for t in TASKS for s in (0, 1))
    multi = [c for c in calls if len(c[0]) == 2]
    assert sorted(multi) == sorted((tuple(TASKS), m, s) for m in METHODS for s in (0, 1))
    assert set(result.methods) == set(METHODS)
    for task in TASKS:
        assert len(result.single[task]) == 2
        for r in result.methods.values():
            g = r.gains[task]
            assert g.single_mean == pytest.approx(np.mean(result.single[task]))
            assert g.n_single == 2 and g.n_multi == 2
            assert g.multi_mean == pytest.approx(np.mean(r.scores[task]))
            # the verdict is the false-discovery-rate call on the task's own q-value (at chance: none)
            if g.at_chance or not np.isfinite(g.q_value):
                expected = "unclear"
            else:
                assert g.q_value >= g.p_value
                expected = ("positive" if g.diff > 0 else "negative") if g.q_value <= 0.05 else "unclear"
            assert g.verdict == expected


def test_delta_m_is_the_mean_gain_and_weights_are_recorded_per_step(recorded):
    result, _, _ = recorded
    for r in result.methods.values():
        assert r.delta_m == pytest.approx(np.mean([g.mean for g in r.gains.values()]))
        assert r.delta_m_std >= 0
        assert len(r.weight_trace) == 2 and all(len(seed) > 0 for seed in r.weight_trace)
        assert set(r.weight_trace[0][0]["weights"]) == set(TASKS)
    assert all(s["weights"] == {"digit": 1.0, "even": 1.0} for s in result.methods["ew"].weight_trace[0])


def test_progress_covers_every_run_and_the_result_is_json(recorded):
    result, calls, events = recorded
    assert {e.phase for e in events} == {"compare"}
    assert {int(e.done) for e in events} == set(range(len(calls) + 1))  # every run reports, counted in runs
    assert all(e.total == len(calls) for e in events)
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["baseline_method"] == "ew"
    assert set(data["methods"]["pcgrad"]["gains"]) == set(TASKS)
    assert "method" not in data["config"] and "seed" not in data["config"]
    table = result.table()
    for m in METHODS:
        assert m in table


def test_charts_show_every_method_and_task(recorded):
    data = recorded[0].to_dict()
    fig = method_gains(data)
    assert [t.name for t in fig.data] == METHODS
    assert list(fig.data[0].x) == TASKS + ["Δm (mean over tasks)"]
    weights = task_weights(data)
    assert len(weights.data) == len(METHODS) * len(TASKS)
    assert "<html>" in comparison_html(data)


def test_compare_checks_its_input_before_training(digits, monkeypatch):
    monkeypatch.setattr(combos_module, "train", lambda *a, **k: pytest.fail("trained before checking"))
    with pytest.raises(ExplorerError, match="at least two tasks"):
        compare_methods(digits, ["digit"], ["ew"], config=TINY)
    with pytest.raises(ExplorerError, match="Unknown method 'nope'"):
        compare_methods(digits, TASKS, ["ew", "nope"], config=TINY)
    with pytest.raises(ExplorerError, match="seeds"):
        compare_methods(digits, TASKS, ["ew"], seeds=0, config=TINY)


def test_compare_command_writes_json_and_html(tmp_path, capsys):
    out, html = tmp_path / "c.json", tmp_path / "c.html"
    code = main(["compare", "--dataset", "digits", "--tasks", "digit,even", "--methods", "ew,upgrad",
                 "--seeds", "1", "--epochs", "1", "--hidden", "8", "--train-size", "200",
                 "--out", str(out), "--html", str(html)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "upgrad" in printed and "digit" in printed
    data = json.loads(out.read_text())
    assert set(data["methods"]) == {"ew", "upgrad"}
    assert data["methods"]["upgrad"]["gains"]["digit"]["verdict"] == "unclear"  # one seed cannot clear the noise
    assert html.read_text().startswith("<!DOCTYPE html>")
    assert main(["compare", "--dataset", "digits", "--tasks", "digit", "--methods", "pcgrad"]) == 2


def test_save_keeps_each_methods_first_seed_and_the_shared_baselines_once(digits):
    from explorer.store.runs import list_runs, load_run

    result = compare_methods(digits, TASKS, ["ew", "uw"], seeds=2, config=TINY, save=True)
    assert set(result.saved) == {"ew", "uw"}
    together = {m: load_run(result.saved[m]["+".join(TASKS)]) for m in ("ew", "uw")}
    assert {m: r.config["train"]["method"] for m, r in together.items()} == {"ew": "ew", "uw": "uw"}
    for t in TASKS:
        assert result.saved["ew"][t] == result.saved["uw"][t]  # one baseline run, shared, saved once
        alone = load_run(result.saved["ew"][t])
        assert alone.config["train"]["method"] == "ew" and alone.config["train"]["seed"] == 0
        assert alone.metrics["test"][t][result.metric[t]] == pytest.approx(result.single[t][0])
        stored = together["uw"].metrics["test"][t][result.metric[t]]
        assert stored == pytest.approx(result.methods["uw"].scores[t][0])
    assert len(list_runs()) == 4  # ew together, uw together, each task alone
    assert "models" not in result.to_dict()


def test_reuse_store_takes_stored_baselines_instead_of_training(digits, monkeypatch):
    first = compare_methods(digits, TASKS, ["ew"], seeds=1, config=TINY, save=True)
    ids = {t: first.saved["ew"][t] for t in TASKS}
    calls = []
    real = combos_module.train

    def spy(dataset, tasks, config, progress=None, prepared=None):
        calls.append((tuple(tasks), config.method, config.seed))
        return real(dataset, tasks, config, progress=progress, prepared=prepared)

    monkeypatch.setattr(combos_module, "train", spy)
    again = compare_methods(digits, TASKS, ["uw"], seeds=2, config=TINY, reuse_store=True)
    assert sorted(c for c in calls if len(c[0]) == 1) == [(("digit",), "ew", 1), (("even",), "ew", 1)]
    assert again.reused == {t: [ids[t]] for t in TASKS}
    for t in TASKS:
        assert again.single[t][0] == pytest.approx(first.single[t][0])


AT_CHANCE = TrainConfig(epochs=3, hidden=16, train_size=150)  # digit's single-task model stays at chance here


def test_a_task_at_chance_is_shown_as_such_and_kept_in_delta_m_only_when_asked(digits):
    off = compare_methods(digits, TASKS, ["ew", "uw"], seeds=2, config=AT_CHANCE)
    on = compare_methods(digits, TASKS, ["ew", "uw"], seeds=2, config=AT_CHANCE, keep_at_chance=True)
    for name in ("ew", "uw"):
        gone, kept, even = off.methods[name].gains["digit"], on.methods[name].gains["digit"], \
            off.methods[name].gains["even"]
        assert gone.at_chance and np.isnan(gone.mean) and kept.at_chance and np.isfinite(kept.mean)
        assert off.methods[name].delta_m == pytest.approx(even.mean)           # left out by default
        assert on.methods[name].delta_m == pytest.approx((kept.mean + even.mean) / 2)
    assert "nan" not in off.table() and "digit at chance" in off.table()
    assert "--keep-at-chance keeps them in" in off.table() and "kept in as asked" in on.table()
    assert off.to_dict()["keep_at_chance"] is False and on.to_dict()["keep_at_chance"] is True
    labels = [t for trace in method_gains(off.to_dict()).data for t in trace.text]
    assert "at chance" in labels and not any("nan" in t for t in labels)
    assert any(t.endswith("(at chance)") for trace in method_gains(on.to_dict()).data for t in trace.text)
