"""Control tasks: what their labels are, how a sweep carries them, and the trust warning."""
import re

import numpy as np
import pytest

import explorer.relatedness.sweep as sweep
from explorer.cli import main
from explorer.data.tasks import has_label
from explorer.errors import ExplorerError
from explorer.relatedness.controls import (NOISE_SHARE, is_control, parse_controls, untrustworthy,
                                           with_controls)
from explorer.relatedness.sweep import run_sweep
from explorer.training.trainer import TrainConfig


def test_control_labels(digits):
    ds, names = with_controls(digits, parse_controls("shuffled,noisy:even", ["digit", "even"]))
    assert names == ["shuffled:digit", "noisy:even"] and all(is_control(n) for n in names)
    assert not is_control("digit") and ds.tasks["shuffled:digit"].classes == digits.tasks["digit"].classes
    y, s = digits.labels["digit"], ds.labels["shuffled:digit"]
    assert np.array_equal(np.bincount(y), np.bincount(s))  # a permutation: same class counts
    assert (y == s).mean() < 0.2                           # ... that breaks the link to the inputs
    wrong = (ds.labels["noisy:even"] != digits.labels["even"]).mean()
    assert wrong == pytest.approx(NOISE_SHARE, abs=0.01)
    # the original tasks and the split are untouched
    assert np.array_equal(ds.labels["digit"], y)
    assert np.array_equal(ds.split(0).test, digits.split(0).test)
    again, _ = with_controls(digits, parse_controls("shuffled", ["digit"]))
    assert np.array_equal(again.labels["shuffled:digit"], s)  # the same control in every sweep


def test_control_labels_keep_missing_labels_missing():
    from tests.helpers import tiny_digits
    ds = tiny_digits(missing_even=0.3)
    out, _ = with_controls(ds, [("shuffled", "even"), ("noisy", "even")])
    for name in ("shuffled:even", "noisy:even"):
        assert np.array_equal(has_label(out.labels[name]), has_label(ds.labels["even"]))


def test_bad_controls_get_one_clear_sentence():
    with pytest.raises(ExplorerError, match="Unknown control 'permuted'"):
        parse_controls("permuted", ["a"])
    with pytest.raises(ExplorerError, match="names task 'zzz'"):
        parse_controls("noisy:zzz", ["a", "b"])


def test_untrustworthy_flags_a_positive_shuffled_cell():
    rep = {"tasks": ["a", "shuffled:a"], "pair_verdict": [[None, "unclear"], ["negative", None]]}
    assert untrustworthy(rep) == []
    rep["pair_verdict"][0][1] = "positive"
    assert untrustworthy(rep) == ["a with shuffled:a"]


def test_sweep_with_controls_reports_them_like_tasks(digits, tmp_path, capsys):
    out = tmp_path / "r.json"
    code = main(["sweep", "--dataset", "digits", "--tasks", "even,ge5", "--controls", "shuffled,noisy",
                 "--seeds", "2", "--max-seeds", "2", "--epochs", "1", "--hidden", "16", "--train-size", "200", "--no-affinity",
                 "--out", str(out)])
    assert code == 0
    rep = sweep.load_report(out)
    assert rep.controls == ["shuffled:even", "noisy:even"]
    assert rep.tasks == ["even", "ge5", "shuffled:even", "noisy:even"]
    assert len(rep.pair_gain) == 4 and len(rep.pair_q) == 4 and rep.pair_seeds[0][2] == 2
    # controls never enter a grouping
    assert all(not is_control(t) for g in rep.groupings.values() for grp in g["groups"] for t in grp)
    assert "controls: shuffled:even, noisy:even" in capsys.readouterr().out


def test_too_many_tasks_with_controls(digits):
    five = ["digit", "even", "ge5", "closed_loop", "prime"]
    with pytest.raises(ExplorerError, match="5 tasks and 4 control"):
        run_sweep(digits, five, seeds=1, controls=["shuffled:digit", "noisy:digit", "shuffled:even", "noisy:even"],
                  config=TrainConfig(epochs=1))


def test_csv_sweep_with_a_shuffled_control_on_real_tabular_data(tmp_path, capsys):
    """The CSV path with the sweep's defaults on data the built-ins do not ship: sklearn's wine
    measurements, four label columns."""
    from sklearn.datasets import load_wine
    frame = load_wine(as_frame=True).frame.rename(columns={"target": "cultivar"})
    csv = tmp_path / "wine.csv"
    frame.to_csv(csv, index=False)
    labels = ["cultivar", "alcohol", "proline", "hue"]
    features = [c for c in frame.columns if c not in labels]
    out = tmp_path / "r.json"
    code = main(["sweep", "--csv", str(csv), "--feature-cols", ",".join(features), "--tasks", ",".join(labels),
                 "--controls", "shuffled", "--out", str(out)])  # the defaults: seeds, adaptive seeds, estimates
    assert code == 0
    rep = sweep.load_report(out)
    assert rep.controls == ["shuffled:cultivar"] and rep.tasks[-1] == "shuffled:cultivar"
    assert untrustworthy(rep) == []  # the shuffled control is never positive
    assert "shuffled:cultivar" in rep.at_chance
    printed = capsys.readouterr().out
    assert "controls: shuffled:cultivar (no shuffled control positive)" in printed
    # an estimate that predicts less gain from a higher value says so beside its Spearman
    assert re.search(r"conflict_share .*should be negative\)", printed)
    assert not re.search(r"lookahead .*should be negative", printed)
