"""The sweep: what gets trained, the report's keys and round trip, validation, and the CLI end to end."""
import json
from dataclasses import replace

import pytest

import explorer.relatedness.sweep as sweep
from explorer.cli import main
from explorer.errors import Cancelled, ExplorerError
from explorer.relatedness.sweep import (SweepReport, combinations_for, load_report, parse_report, run_sweep,
                                        save_report)
from explorer.training.progress import emit
from explorer.training.trainer import TrainConfig
from explorer.relatedness import adaptive

ADAPTIVE_REASONS = [adaptive.RESOLVED, adaptive.NEGLIGIBLE, adaptive.AT_CHANCE, adaptive.FUTILE, adaptive.MAX_SEEDS,
                    adaptive.BUDGET_SECONDS, adaptive.BUDGET_MODELS]

REQUIRED = ["tasks", "metric", "single", "pair_gain", "pair_gain_std", "pair_verdict", "gains", "delta_m",
            "scores", "higher_order", "affinity", "proxy_spearman", "groupings", "seconds", "device", "config",
            "by_fraction", "mode", "seeds", "estimates"]
TINY = TrainConfig(epochs=3, hidden=16, train_size=300, batch_size=64)  # every task above chance


@pytest.fixture(scope="module")
def report(digits):
    """One real (tiny) sweep: 3 tasks up to the triple, 2 seeds, two training sizes, with affinity."""
    return run_sweep(digits, ["digit", "even", "ge5"], order=3, seeds=2, config=TINY, train_sizes=[150, 300])


class FakeTrainer:
    """Stands in for explorer.training.batched.train_combinations: records calls, returns fixed scores."""

    def __init__(self):
        self.calls = []

    def __call__(self, dataset, combinations, config, seeds, mode="batched", progress=None, prepared=None):
        from explorer.relatedness.combos import ComboRun
        self.calls.append({"combinations": list(combinations), "seeds": list(seeds), "mode": mode,
                           "train_size": config.train_size, "method": config.method})
        emit(progress, "train", 1, 1, "fake")
        return [ComboRun(tuple(c), s, {t: {"primary": "macro_f1", "macro_f1": 0.5 + 0.01 * len(c) + 0.001 * s,
                                           "n": 10} for t in c}, 1, [])
                for s in seeds for c in combinations]


@pytest.fixture
def fake(monkeypatch):
    trainer = FakeTrainer()
    monkeypatch.setattr(sweep, "train_combinations", trainer)
    return trainer


def test_combinations_for():
    assert combinations_for(["a", "b", "c"]) == [("a",), ("b",), ("c",), ("a", "b"), ("a", "c"), ("b", "c")]
    assert len(combinations_for(list("abcd"), 3)) == 4 + 6 + 4
    assert combinations_for(["a", "b"], 2)[-1] == ("a", "b")


def test_report_has_every_key(report):
    d = report.to_dict()
    assert set(REQUIRED) <= set(d)
    assert d["tasks"] == ["digit", "even", "ge5"] and d["seeds"] == [0, 1] and d["mode"] == "batched"
    assert d["metric"] == {"digit": "macro_f1", "even": "macro_f1", "ge5": "macro_f1"}
    assert set(d["single"]["digit"]) >= {"mean", "std", "scores"} and len(d["single"]["digit"]["scores"]) == 2
    assert set(d["gains"]) == {"digit+even", "digit+ge5", "even+ge5", "digit+even+ge5"}
    assert set(d["gains"]["digit+even"]["even"]) >= {"mean", "std", "low", "high", "verdict"}
    assert len(d["scores"]["digit+even"]["digit"]) == 2
    assert set(d["affinity"]) >= {"lookahead", "grad_cosine", "conflict_share"}
    assert set(d["proxy_spearman"]) == {"lookahead", "grad_dot", "grad_cosine", "conflict_share"}
    assert set(d["estimates"]) == {"lookahead", "grad_dot", "grad_cosine", "conflict_share", "surrogate"}
    for name, e in d["estimates"].items():
        assert set(e) >= {"spearman", "interval", "n_pairs", "description"}
        assert e["n_pairs"] == 6 and (e["spearman"] is None) == (e["interval"] is None) == (e["reason"] is not None)
    # the surrogate is fitted on the trained triple (no extra training) and predicts every pair from it
    surrogate = d["estimates"]["surrogate"]
    assert surrogate["fitted_on"] == ["digit+even+ge5"] and set(surrogate["trained"]) == {"digit+even+ge5"}
    assert surrogate["matrix"][0][0] is None and surrogate["matrix"][0][1] is not None
    assert set(d["groupings"]) == {"1", "2", "3"} and d["groupings"]["1"]["groups"] == [["digit", "even", "ge5"]]
    assert list(d["higher_order"]) == ["digit+even+ge5"]
    assert set(d["higher_order"]["digit+even+ge5"]["digit"]) >= {"trained", "estimate"}
    assert d["config"]["lr"] is not None and d["train_rows"] == 300 and d["seconds"] > 0
    json.dumps(d, allow_nan=False)  # strict JSON: no NaN anywhere


def test_matrices(report):
    n = len(report.tasks)
    for m in (report.pair_gain, report.pair_gain_std, report.pair_verdict):
        assert len(m) == n and all(len(row) == n for row in m)
        assert all(m[i][i] is None for i in range(n))
    for i in range(n):
        for j in range(n):
            if i != j:
                g = report.gain([report.tasks[i], report.tasks[j]], report.tasks[i])
                assert report.pair_gain[i][j] == pytest.approx(g["mean"])
                low, high = report.pair_interval[i][j]
                assert report.pair_verdict[i][j] == ("positive" if low > 0 else "negative" if high < 0
                                                     else "unclear")


def test_by_fraction(report):
    assert list(report.by_fraction) == ["150", "300"]
    small = report.by_fraction["150"]
    assert small["train_rows"] == 150 and small["pair_gain"][0][0] is None
    assert "digit+even+ge5" not in small["gains"]  # smaller sizes repeat the pairwise sweep only
    assert report.by_fraction["300"]["pair_gain"] == report.pair_gain


def test_round_trip(report, tmp_path):
    path = save_report(report, tmp_path / "out" / "report.json")
    assert not [p for p in path.parent.iterdir() if p.name != "report.json"]  # no temporary file left
    again = load_report(path)
    assert again.to_dict() == report.to_dict()
    assert SweepReport.from_dict(json.loads(path.read_text())).tasks == report.tasks
    with pytest.raises(ExplorerError, match="not a sweep report"):
        SweepReport.from_dict({"tasks": []})
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ExplorerError, match="not valid JSON"):
        load_report(tmp_path / "bad.json")


def test_plan_and_seeds(fake, digits):
    r = run_sweep(digits, ["digit", "even", "ge5"], seeds=3, config=TrainConfig(seed=5), affinity=False)
    (call,) = fake.calls
    assert call["seeds"] == [5, 6, 7] and call["mode"] == "batched"
    assert call["combinations"] == combinations_for(["digit", "even", "ge5"])
    assert r.affinity is None and r.proxy_spearman == {"lookahead": None, "grad_dot": None, "grad_cosine": None,
                                                       "conflict_share": None}
    assert r.estimates["surrogate"]["spearman"] is None and "turned off" in r.estimates["surrogate"]["reason"]
    assert r.by_fraction is None


def test_given_combination_trains_its_singles(fake, digits):
    r = run_sweep(digits, ["digit", "even", "ge5"], combinations=[("even", "ge5")], seeds=2, affinity=False)
    assert fake.calls[0]["combinations"] == [("even",), ("ge5",), ("even", "ge5")]
    assert r.tasks == ["even", "ge5"] and list(r.gains) == ["even+ge5"]
    one = run_sweep(digits, ["digit"], combinations=[("digit",)], seeds=1, affinity=False)
    assert one.gains == {} and one.tasks == ["digit"] and one.groupings == {}


def test_auto_mode_and_sizes(fake, digits):
    r = run_sweep(digits, ["digit", "even"], seeds=1, config=TrainConfig(method="pcgrad"), affinity=False)
    # singles are plain single-task models (batched, ew); the pair trains with the method, one by one
    assert [(c["combinations"], c["method"], c["mode"]) for c in fake.calls] == [
        ([("digit",), ("even",)], "ew", "batched"), ([("digit", "even")], "pcgrad", "sequential")]
    assert r.mode == "sequential" and r.config["method"] == "pcgrad" and r.baseline_method == "ew"
    with pytest.raises(ExplorerError, match="Unknown method"):
        run_sweep(digits, ["digit", "even"], seeds=1, config=TrainConfig(method="magic"))
    r = run_sweep(digits, ["digit", "even", "ge5"], order=3, seeds=1, affinity=False,
                  train_sizes=[1.0, 0.1, 100])
    sizes = [c["train_size"] for c in fake.calls[-3:]]
    assert sizes == [100, 0.1, 1.0]  # smallest first; the largest is the main result
    assert [len(c["combinations"]) for c in fake.calls[-3:]] == [6, 6, 7]
    assert list(r.by_fraction) == ["100", "0.1", "1.0"]


def test_progress_is_monotone_and_can_cancel(fake, digits):
    events = []
    run_sweep(digits, ["digit", "even"], seeds=1, affinity=False, train_sizes=[0.1, 1.0],
              progress=lambda e: events.append(e))
    dones = [e.done for e in events]
    assert dones == sorted(dones) and dones[-1] == pytest.approx(events[-1].total)
    with pytest.raises(Cancelled):
        run_sweep(digits, ["digit", "even"], seeds=1, affinity=False, progress=lambda e: False)


@pytest.mark.parametrize("kwargs, message", [
    (dict(tasks=["digit"]), "2 to 8 tasks"),
    (dict(tasks=["digit", "nope"]), "Unknown task"),
    (dict(tasks="digit"), "list of task names"),
    (dict(tasks=["digit", "even"], seeds=0), "seeds must be"),
    (dict(tasks=["digit", "even"], order=3), "order must be"),
    (dict(tasks=["digit", "even"], order=1), "order must be"),
    (dict(tasks=["digit", "even"], mode="fast"), "Unknown mode"),
    (dict(tasks=["digit", "even"], combinations=[("digit", "ge5")]), "not among"),
    (dict(tasks=["digit", "even"], combinations=[]), "No combination"),
    (dict(tasks=["digit", "even"], train_sizes=[0.0]), "Training fraction"),
    (dict(tasks=["digit", "even"], train_sizes=[]), "train_sizes is empty"),
])
def test_bad_requests_are_explained(fake, digits, kwargs, message):
    with pytest.raises(ExplorerError, match=message):
        run_sweep(digits, **kwargs)
    assert not fake.calls  # rejected before any training


def test_tasks_are_checked_once_per_sweep(digits, monkeypatch):
    """run_sweep checks its tasks at its boundary; prepare, the trainer (per call and per combination),
    the adaptive rounds and the affinity run take them from it and do not ask the dataset again."""
    from explorer.data.dataset import Dataset
    calls = []
    check = Dataset.check_tasks
    monkeypatch.setattr(Dataset, "check_tasks", lambda self, names: calls.append(list(names)) or check(self, names))
    run_sweep(digits, ["digit", "even", "ge5"], order=3, seeds=1, max_seeds=2, controls=["shuffled"],
              config=replace(TINY, epochs=1, train_size=150), train_sizes=[100, 150])
    assert calls == [["digit", "even", "ge5"]]


def test_cli_end_to_end(tmp_path, capsys):
    out, page = tmp_path / "report.json", tmp_path / "report.html"
    code = main(["sweep", "--dataset", "digits", "--tasks", "even,ge5,prime", "--seeds", "2", "--epochs", "1",
                 "--max-seeds", "3", "--hidden", "16", "--train-size", "200", "--out", str(out), "--html", str(page)])
    assert code == 0
    data = json.loads(out.read_text())
    assert set(REQUIRED) <= set(data) and data["tasks"] == ["even", "ge5", "prime"]
    assert "plotly-graph-div" in page.read_text()
    text = capsys.readouterr()
    assert "gain of task with partner" in text.out and "wrote" in text.out
    assert "adaptive seeds (effect that matters ±2 %, up to 3 seeds)" in text.out
    assert all(n in (2, 3) for row in data["pair_seeds"] for n in row if n is not None)
    assert {r for row in data["pair_stop"] for r in row if r} <= set(ADAPTIVE_REASONS)
    assert "sweep: 100%|" in text.err  # the progress bar


def test_cli_errors_are_one_line(tmp_path, capsys):
    code = main(["sweep", "--dataset", "digits", "--tasks", "even", "--out", str(tmp_path / "r.json")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err
    code = main(["sweep", "--dataset", "digits", "--tasks", "even,ge5", "--train-fraction", "0.1,x",
                 "--out", str(tmp_path / "r.json")])
    assert code == 2 and "is not a number" in capsys.readouterr().err


def test_reuse_store_takes_stored_baselines_instead_of_training_them(digits, monkeypatch):
    from explorer.relatedness.combos import to_train_result
    from explorer.store.runs import save_run

    trained = []
    real = sweep.train_combinations

    def counting(dataset, combinations, config, seeds, **kwargs):
        trained.extend((tuple(c), s) for s in seeds for c in combinations)
        return real(dataset, combinations, config, seeds, **kwargs)

    monkeypatch.setattr(sweep, "train_combinations", counting)
    config = TrainConfig(epochs=2, hidden=8, train_size=120, dropout=0.0)
    kwargs = dict(combinations=[("digit", "even")], seeds=2, config=config, affinity=False)
    first = run_sweep(digits, ["digit", "even"], keep_models=True, **kwargs)
    assert len(trained) == 6 and first.reused == {} and "models" not in first.to_dict()
    assert {(r.tasks, r.seed) for r in first.models} == set(trained)
    run = next(r for r in first.models if r.tasks == ("digit",) and r.seed == 0)
    stored = save_run(to_train_result(run, first.prepared, TrainConfig(**first.config), digits))

    trained.clear()
    totals = []
    second = run_sweep(digits, ["digit", "even"], reuse_store=True, progress=lambda e: totals.append(e.total),
                       **kwargs)
    assert sorted(trained) == sorted([(("digit",), 1), (("even",), 0), (("even",), 1),
                                      (("digit", "even"), 0), (("digit", "even"), 1)])  # digit seed 0 is stored
    assert second.reused == {"digit": [stored.id]} and second.to_dict()["reused"] == {"digit": [stored.id]}
    assert second.models is None
    assert second.single["digit"]["scores"][0] == first.single["digit"]["scores"][0]  # the stored score itself
    assert second.single["digit"]["scores"][1] == pytest.approx(first.single["digit"]["scores"][1], abs=1e-6)
    assert second.single["even"]["scores"] == pytest.approx(first.single["even"]["scores"], abs=1e-6)
    # the progress bar counts the 5 models left, in two batched calls (seed 0: 2 models, seed 1: 3)
    assert totals and set(totals) == {sweep.phase_cost(120, 2, "batched") + sweep.phase_cost(120, 3, "batched")}
    # the stored run keeps its test predictions, so the cells get the same test-row noise as when trained
    # (the bootstrap is seeded): the same intervals, not narrower ones
    def interval(report, task):
        g = report.gain(["digit", "even"], task)
        return g["diff_low"], g["diff_high"]

    assert first.pairing["row_bootstrap_cells"] == second.pairing["row_bootstrap_cells"] == 2
    for task in ("digit", "even"):
        assert interval(second, task) == pytest.approx(interval(first, task), abs=1e-9)
    assert second.pair_interval == first.pair_interval and second.pair_gain_std == first.pair_gain_std
    # another seed or setting is another run: nothing reused
    other = run_sweep(digits, ["digit", "even"], reuse_store=True, **{**kwargs, "config": replace(config, epochs=1)})
    assert other.reused == {}


def test_reused_baselines_keep_their_test_predictions_so_the_intervals_stay_the_same(digits, run_store):
    """A cell built on stored single-task runs gets the same paired test-row noise as one trained afresh."""
    from explorer.relatedness.combos import to_train_result
    from explorer.store.runs import save_run

    kwargs = dict(combinations=[("digit", "even")], seeds=2, config=TINY, affinity=False)
    first = run_sweep(digits, ["digit", "even"], keep_models=True, **kwargs)
    assert first.at_chance == [] and first.pairing["row_bootstrap_cells"] == 2
    stored = {(r.tasks[0], r.seed): save_run(to_train_result(r, first.prepared, TrainConfig(**first.config), digits))
              for r in first.models if len(r.tasks) == 1}
    assert all((run.path / "test_predictions.npz").is_file() for run in stored.values())
    second = run_sweep(digits, ["digit", "even"], reuse_store=True, **kwargs)
    assert sorted(second.reused) == ["digit", "even"] and sum(map(len, second.reused.values())) == 4
    assert second.pairing["row_bootstrap_cells"] == 2
    assert second.pair_interval == first.pair_interval and second.pair_gain_std == first.pair_gain_std
    assert second.pair_q == first.pair_q and second.pair_mde == first.pair_mde
    # runs saved before predictions were kept (no file) or with a damaged one: reused, no crash, and the
    # cells lose their test-row noise (what this fixes)
    (stored[("digit", 0)].path / "test_predictions.npz").unlink()
    (stored[("digit", 1)].path / "test_predictions.npz").write_bytes(b"damaged")
    old = run_sweep(digits, ["digit", "even"], reuse_store=True, **kwargs)
    assert old.pairing["row_bootstrap_cells"] == 1 and sum(map(len, old.reused.values())) == 4
    d, e = old.tasks.index("digit"), old.tasks.index("even")
    assert old.gains["digit+even"]["digit"]["row_var"] == 0 < first.gains["digit+even"]["digit"]["row_var"]
    assert old.pair_interval[d][e] != first.pair_interval[d][e]
    assert old.pair_interval[e][d] == first.pair_interval[e][d]


@pytest.fixture(scope="module")
def chance_pair(digits):
    """The same tiny sweep twice, where digit's single-task model is at chance: without and with keep_at_chance.
    (Three epochs of plain training, whose class weights and weight average are off: ge5 learns, digit not.)"""
    kwargs = dict(seeds=2, config=TrainConfig(epochs=3, hidden=16, train_size=150, balance=0.0, ema=0.0), affinity=False)
    return (run_sweep(digits, ["digit", "even", "ge5"], **kwargs),
            run_sweep(digits, ["digit", "even", "ge5"], keep_at_chance=True, **kwargs))


def test_tasks_at_chance_stay_out_of_delta_m_and_the_groupings_by_default(chance_pair):
    from explorer.relatedness.gains import NOTE_AT_CHANCE
    off, _ = chance_pair
    assert off.at_chance == ["digit"] and off.keep_at_chance is False
    d, g = off.tasks.index("digit"), off.tasks.index("ge5")
    assert off.pair_gain[d][g] is None and off.pair_verdict[d][g] == "unclear"
    cell = off.gain(["digit", "ge5"], "digit")
    assert cell["mean"] is None and cell["at_chance"] and cell["note"] == NOTE_AT_CHANCE
    assert off.to_dict()["delta_m"]["digit+ge5"] == pytest.approx(off.gain(["digit", "ge5"], "ge5")["mean"])
    assert all("digit" not in group for g_ in off.groupings.values() for group in g_["groups"])


def test_keep_at_chance_gives_them_a_raw_relative_gain_in_delta_m_and_groupings(chance_pair):
    from explorer.relatedness.gains import NOTE_KEPT
    off, on = chance_pair
    assert on.at_chance == ["digit"] and on.keep_at_chance is True
    for combo in (["digit", "even"], ["digit", "ge5"]):
        cell = on.gain(combo, "digit")
        assert cell["at_chance"] and cell["note"] == NOTE_KEPT
        assert cell["verdict"] == "unclear" and cell["q_value"] is None  # never a finding
        assert cell["mean"] == pytest.approx((cell["multi_mean"] - cell["single_mean"])
                                             / abs(cell["single_mean"]) * 100)
        assert cell["low"] < cell["mean"] < cell["high"]
        other = [t for t in combo if t != "digit"][0]
        assert on.gain(combo, other) == off.gain(combo, other)  # tasks above chance are untouched
        assert on.delta_m["+".join(combo)] == pytest.approx((cell["mean"] + on.gain(combo, other)["mean"]) / 2)
    d, g = on.tasks.index("digit"), on.tasks.index("ge5")
    assert on.pair_gain[d][g] == pytest.approx(on.gain(["digit", "ge5"], "digit")["mean"])
    assert on.pair_verdict == off.pair_verdict
    assert any("digit" in group for g_ in on.groupings.values() for group in g_["groups"])
    back = parse_report(json.dumps(on.to_dict()))  # the setting travels with the report, schema-checked
    assert back.keep_at_chance is True and parse_report(json.dumps(off.to_dict())).keep_at_chance is False


def test_cli_keep_at_chance_reaches_the_sweep(tmp_path, capsys, monkeypatch, chance_pair):
    import explorer.commands.sweep as command
    seen = []
    monkeypatch.setattr(command, "run_arch_sweep", lambda *a, **k: seen.append(k["keep_at_chance"])
                        or chance_pair[int(k["keep_at_chance"])])
    for flag in ([], ["--keep-at-chance"]):
        out = tmp_path / "r.json"
        assert main(["sweep", "--dataset", "digits", "--tasks", "digit,even,ge5", "--out", str(out), *flag]) == 0
        assert json.loads(out.read_text())["keep_at_chance"] is bool(flag)
    assert seen == [False, True]
    assert "(at chance: relative to the raw score)" in capsys.readouterr().out


def test_surrogate_trains_random_subsets_and_counts_them_in_the_progress(fake, digits, monkeypatch):
    monkeypatch.setattr(sweep, "one_run_affinity", lambda *a, **k: None)
    tasks = ["digit", "even", "ge5", "prime"]
    events = []
    r = run_sweep(digits, tasks, seeds=2, surrogate_subsets=3, progress=events.append)
    pairs, subsets = fake.calls
    assert pairs["combinations"] == combinations_for(tasks)
    assert len(subsets["combinations"]) == 3 and all(len(c) >= 3 for c in subsets["combinations"])
    assert subsets["seeds"] == [0, 1]  # the sweep's seeds: gains against the same single-task models
    surrogate = r.estimates["surrogate"]
    assert sorted(surrogate["fitted_on"]) == sorted("+".join(c) for c in subsets["combinations"])
    assert surrogate["held_out"]["n_cells"] > 0 and "digit+even+ge5+prime" in surrogate["predicted"]
    assert "surrogate subsets" in {e.phase for e in events}
    # every phase is timed beside its share of the progress bar, so the weights can be checked
    assert [p["phase"] for p in r.phase_seconds][-2:] == ["surrogate subsets", "affinity"]
    assert sum(p["progress_share"] for p in r.phase_seconds) == pytest.approx(1.0)
    assert "+".join(subsets["combinations"][0]) not in r.gains  # the subsets feed the estimate, not the matrix
    fake.calls.clear()
    run_sweep(digits, tasks, seeds=2, surrogate_subsets=0)
    assert len(fake.calls) == 1
    fake.calls.clear()
    for bad in (-1, 2.5, True):
        with pytest.raises(ExplorerError, match="surrogate_subsets"):
            run_sweep(digits, tasks, seeds=2, surrogate_subsets=bad)
    assert fake.calls == []  # refused before any training


def test_adaptive_rounds_have_their_share_of_the_progress_bar(digits):
    """The rounds run between the first seeds and the estimates: the bar moves forward through them and
    never back (it had jumped to full for the rounds, then back for the estimate phases)."""
    events = []
    r = run_sweep(digits, ["digit", "even", "ge5"], seeds=2, max_seeds=6, config=TINY, progress=events.append)
    dones = [e.done for e in events]
    assert dones == sorted(dones) and dones[-1] == pytest.approx(events[-1].total)
    phases = [p["phase"] for p in r.phase_seconds]
    assert phases[-3:] == ["adaptive seeds", "surrogate subsets", "affinity"] or \
        phases[-2:] == ["adaptive seeds", "affinity"]
    assert sum(p["progress_share"] for p in r.phase_seconds) == pytest.approx(1.0)
    assert r.adaptive["rounds"] >= 1 and any(e.phase == "adaptive seeds" and "round 1" in e.message for e in events)


def test_the_affinity_phase_is_weighed_by_what_it_cost_per_modality():
    """The bar's share of the affinity run against the batched phase, as the sweeps measured it
    (phase_seconds, 2026-12-03): the default news sweep took 25 s for affinity beside 97 s for its
    84 models; the hotels demo 1 s beside 21 s. One constant for both gave news 22 % of the bar for
    38 % of the time."""
    steps = 42 * 10
    news = sweep.affinity_cost(2675, 6, steps, "text") / sweep.phase_cost(2675, 84, "batched")
    hotels = sweep.affinity_cost(1078, 6, 170, "tabular") / sweep.phase_cost(1078, 84, "batched")
    assert news == pytest.approx(25 / 97, rel=0.25)
    assert hotels == pytest.approx(1 / 21, rel=0.5)
