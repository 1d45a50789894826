"""report.json is checked whole before use: a real report loads, malformed ones are one ExplorerError line."""
import copy
import json

import pytest

from explorer.errors import ExplorerError
from explorer.relatedness.sweep import parse_report, run_sweep
from explorer.training.trainer import TrainConfig
from tests.helpers import tiny_digits


@pytest.fixture(scope="module")
def report() -> dict:
    rep = run_sweep(tiny_digits(), ["digit", "even"], seeds=2,
                    config=TrainConfig(epochs=1, hidden=8, train_size=200))
    return json.loads(json.dumps(rep.to_dict()))


def _parse(data) -> object:
    return parse_report(json.dumps(data) if not isinstance(data, bytes) else data, "'r.json'")


def test_a_real_report_and_an_older_one_without_the_newer_keys_load(report):
    assert _parse(report).tasks == ["digit", "even"]
    old = {k: v for k, v in report.items() if k not in ("pair_q", "pair_seeds", "pair_mde", "controls", "estimates",
                                                         "pairing", "at_chance", "fdr", "version",
                                                         "keep_at_chance")}
    assert _parse(old).pair_gain == report["pair_gain"]


def _edit(report, fn):
    data = copy.deepcopy(report)
    fn(data)
    return data


CASES = {
    "short row": (lambda r: r["pair_gain"][1].pop(), "'pair_gain' must be 2 x 2"),
    "missing row": (lambda r: r["pair_verdict"].pop(), "'pair_verdict' must be 2 x 2"),
    "new matrix wrong size": (lambda r: r.update(pair_q=[[None]]), "'pair_q' must be 2 x 2"),
    "keep_at_chance not a bool": (lambda r: r.update(keep_at_chance="yes"), "'keep_at_chance' must be true or false"),
    "text as a number": (lambda r: r["single"]["digit"].update(mean="high"), "at 'single.digit.mean'"),
    "text in a gain": (lambda r: next(iter(r["gains"].values()))["digit"].update(low="x"),
                       r"at 'gains.digit\+even.digit.low'"),
    "no metric for a task": (lambda r: r["metric"].pop("even"), "'metric' lacks even"),
    "unknown task in gains": (lambda r: r["gains"].update({"digit+ghost": {}}), "names ghost"),
    "duplicate tasks": (lambda r: r.update(tasks=["digit", "digit"]), "'tasks' must be a list of distinct"),
    "tasks missing": (lambda r: r.pop("tasks"), "it needs all of tasks"),
    "matrix of strings": (lambda r: r.update(pair_gain=[["a", "b"], ["c", "d"]]), "at 'pair_gain.0.0'"),
    "newer version": (lambda r: r.update(version=99), "report version 99"),
    "version true": (lambda r: r.update(version=True), "'version' must be a whole number, not True"),
    "fdr out of range": (lambda r: r.update(fdr=5), "'fdr' must be a number between 0 and 1"),
    "controls not names": (lambda r: r.update(controls=[1]), "controls"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_reports_are_refused_in_one_line(report, case):
    edit, message = CASES[case]
    with pytest.raises(ExplorerError, match=message) as e:
        _parse(_edit(report, edit))
    assert e.type is ExplorerError and "\n" not in str(e.value) and "'r.json'" in str(e.value)


@pytest.mark.parametrize("blob, message", [
    (b"[" * 100_000 + b"]" * 100_000, "nested more than 64"),
    (b'{"tasks": ' * 5000 + b"1" + b"}" * 5000, "nested more than 64"),
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[1, 2]", "does not hold a sweep report"),
    (b'{"tasks": ["a"], "metric": {"a": "r2"}, "single": {"a": {"mean": NaN}}, "pair_gain": [[null]], '
     b'"pair_gain_std": [[null]], "pair_verdict": [[null]]}', "not a finite number"),
])
def test_hostile_json_is_refused(blob, message):
    with pytest.raises(ExplorerError, match=message) as e:
        _parse(blob)
    assert e.type is ExplorerError and "\n" not in str(e.value)
