"""Hostile CSV files: every one is refused with one sentence or trains a correct, finite model.

The cases come from one generator (``cases()``): a clean base table, then one
thing wrong (or merely unusual) at a time. Each runs through the library loader;
accepted ones are trained for one epoch and checked (finite metrics, the right
classes, the user's task names); a sample also goes through the CLI. The summary
line (tests/hostile.py) is printed at the end of the test run.
"""
from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd
import pytest

from explorer.cli import main
from explorer.datasets.csv import load_csv
from explorer.data.validation import MAX_CATEGORY_LEVELS, MAX_COLUMNS, MAX_NAME_CHARS
from explorer.training.trainer import TrainConfig, train
from tests.hostile import case

SUITE = "CSV"
N = 40


def base(n: int = N, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    return pd.DataFrame({"x1": x1.round(4), "x2": x2.round(4),
                         "colour": rng.choice(["red", "green", "blue"], n),
                         "y": np.where(x1 > 0, "yes", "no"), "z": (2 * x1 + x2).round(4)})


def to_bytes(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False).encode()


def with_cell(col: str, value, row: int = 7) -> bytes:
    df = base().astype({col: object})
    df.loc[row, col] = value
    return to_bytes(df)


def renamed(old: str, new: str) -> pd.DataFrame:
    return base().rename(columns={old: new})


FEATURES = ["x1", "x2", "colour"]
LABELS = ["y", "z"]


def cases():
    """(name, file contents, load_csv keywords, expected: a substring of the refusal, or a dict of
    task -> classes (tuple) / "regression" for an accepted file)."""
    kw = dict(feature_cols=FEATURES, label_cols=LABELS)
    ok = {"y": ("no", "yes"), "z": "regression"}
    # non-finite and overflowing numbers (item 2)
    for v, label in [("inf", "inf"), ("-inf", "-inf"), ("1e308", "1e308"), ("-1.7e308", "-1.7e308"),
                     ("Infinity", "Infinity"), ("1e16", "1e16")]:
        yield f"feature {label}", with_cell("x1", v), kw, "'x1'"
        yield f"target {label}", with_cell("z", v), kw, "'z'"
    yield "non-finite message names the row", with_cell("x2", "inf", row=3), kw, "row 5"
    # width and cardinality (item 3)
    wide = pd.DataFrame(np.zeros((12, MAX_COLUMNS + 1)), columns=[f"c{i}" for i in range(MAX_COLUMNS + 1)])
    wide["y"] = ["a", "b"] * 6
    yield "more columns than the limit", to_bytes(wide), dict(feature_cols=["c0"], label_cols=["y"]), "limit"
    df = base()
    df["id"] = [f"user-{i}" for i in range(N)]
    yield "identifier as a categorical feature", to_bytes(df), dict(feature_cols=["x1", "id"], label_cols=["y"]), "'id'"
    df = base(n=300)
    df["city"] = [f"c{i % (MAX_CATEGORY_LEVELS + 20)}" for i in range(300)]
    yield "too many categories", to_bytes(df), dict(feature_cols=["x1", "city"], label_cols=["y"]), "'city'"
    # names (item 4)
    for name in ["price.usd", "a+b", "dir/name", "..\\up", "keys", "type", "Größe 📈", "x" * MAX_NAME_CHARS,
                 "1st", "a b", "", " y "]:
        if name in ("", " y "):
            continue
        yield f"task named {name[:20]!r}", to_bytes(renamed("y", name)), dict(feature_cols=FEATURES,
                                                                              label_cols=[name, "z"]), \
            {name: ("no", "yes"), "z": "regression"}
    yield "task name too long", to_bytes(renamed("y", "y" * (MAX_NAME_CHARS + 1))), \
        dict(feature_cols=FEATURES, label_cols=["y" * (MAX_NAME_CHARS + 1)]), "limit"
    yield "task name with a line break", to_bytes(renamed("y", "a\nb")), \
        dict(feature_cols=FEATURES, label_cols=["a\nb"]), "control character"
    # silent coercions (item 10)
    raw = to_bytes(base()).replace(b"x1,x2,colour,y,z", b"x1,y,colour,y,z")
    yield "duplicate header", raw, dict(feature_cols=["x1"], label_cols=["y"]), "twice"
    raw = to_bytes(base()).replace(b"x1,x2,colour,y,z", b"x1,x2,colour, y,y")
    yield "duplicate header after spaces", raw, dict(feature_cols=["x1"], label_cols=["y"]), "twice"
    df = base()
    df["y"] = [(" yes" if i % 3 else "yes ") if v == "yes" else "no" for i, v in enumerate(df["y"])]
    yield "labels with surrounding spaces", to_bytes(df), kw, ok
    df = base()
    df["y"] = [("1.0" if i % 2 else "1") if v == "yes" else ("0" if i % 2 else "0.0") for i, v in enumerate(df["y"])]
    df["y"] = df["y"].astype(object) + np.where(np.arange(N) == 0, "", "")
    yield "labels 1 and 1.0", to_bytes(df).replace(b",1,", b",1 ,"), kw, {"y": ("0", "1"), "z": "regression"}
    df = base()
    df["x2"] = np.nan
    yield "all-empty feature", to_bytes(df), kw, "'x2'"
    # the file itself
    yield "empty file", b"", kw, "empty"
    yield "whitespace only", b"  \n\n ", kw, "empty"
    yield "header only", b"x1,x2,colour,y,z\n", kw, "no data rows"
    yield "five rows", to_bytes(base().head(5)), kw, "at least"
    yield "not UTF-8", to_bytes(base()).replace(b"red", "r\xe9d".encode("latin-1")), kw, "UTF-8"
    yield "NUL bytes", to_bytes(base()).replace(b"green", b"gr\x00en"), kw, "NUL"
    yield "ragged rows", to_bytes(base()) + b"1,2,red,yes,3,4,5\n", kw, "parse"
    yield "over the size limit", to_bytes(base()), dict(kw, max_bytes=100), "limit"
    df = base()
    df["y"] = "yes"
    yield "label with one class", to_bytes(df), kw, "one class"
    df = base()
    df["y"] = np.nan
    long = "f" * 201
    yield "feature name of 201 characters", to_bytes(renamed("x1", long)), \
        dict(feature_cols=[long, "x2"], label_cols=["y"]), "feature column name 'ffff"
    yield "feature name of 200 characters", to_bytes(renamed("x1", "f" * 200)), \
        dict(feature_cols=["f" * 200, "x2"], label_cols=["y"]), {"y": ("no", "yes")}
    yield "label all missing", to_bytes(df), kw, "label column 'y' is empty in every row"
    text = pd.DataFrame({"note": [f"note number {i}" for i in range(30)], "y": ["a", "b"] * 15})
    yield "text: label all blank", to_bytes(text.assign(y="  ")), dict(text_col="note", label_cols=["y"]), \
        "label column 'y' is empty in every row"
    yield "text: label all missing", to_bytes(text.assign(y=np.nan)), dict(text_col="note", label_cols=["y"]), \
        "label column 'y' is empty in every row"
    yield "text: text all blank", to_bytes(text.assign(note=" ")), dict(text_col="note", label_cols=["y"]), \
        "text column 'note' is empty in every row"
    df = base(n=300)
    df["y"] = [f"k{i}" for i in range(300)]
    yield "label with 300 classes", to_bytes(df), dict(feature_cols=["x1"], label_cols=["y"]), "classes"
    yield "missing label column", to_bytes(base()), dict(feature_cols=FEATURES, label_cols=["nope"]), "'nope'"
    yield "label is also a feature", to_bytes(base()), dict(feature_cols=["x1", "y"], label_cols=["y"]), "both"
    yield "regression kind on words", to_bytes(base()), dict(kw, kinds={"y": "regression"}), "not numeric"
    # unusual but fine
    yield "byte-order mark", b"\xef\xbb\xbf" + to_bytes(base()), kw, ok
    yield "CRLF line ends", to_bytes(base()).replace(b"\n", b"\r\n"), kw, ok
    yield "blank line before the header", b"\n" + to_bytes(base()), kw, ok
    df = base()
    df["colour"] = [f"{c}, dark" for c in df["colour"]]
    yield "quoted commas in a category", to_bytes(df), kw, ok
    df = base().astype({"x1": object, "colour": object, "y": object})
    df.loc[[2, 5], "x1"] = np.nan
    df.loc[[3], "colour"] = np.nan
    df.loc[[4, 9], "y"] = np.nan
    yield "missing cells", to_bytes(df), kw, ok
    df = base()
    df["flag"] = df["x1"] > 0.5
    yield "boolean feature", to_bytes(df), dict(feature_cols=["x1", "flag"], label_cols=LABELS), ok
    df = base()
    df["x2"] = df["x2"] * 1e12
    yield "large finite numbers", to_bytes(df), kw, ok
    df = base()
    df["x2"] = [f"{v:.3e}" for v in df["x2"]]
    yield "scientific notation", to_bytes(df), kw, ok
    df = base()
    df["text"] = [f"the colour is {c} and the value {'high' if y == 'yes' else 'low'}" for c, y in
                  zip(df["colour"], df["y"])]
    yield "text input, task a+b", to_bytes(df.rename(columns={"y": "a+b"})), dict(text_col="text", label_cols=["a+b"]), \
        {"a+b": ("no", "yes")}


CASES = list(cases())


def test_the_generator_makes_forty_cases():
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


def _check_accepted(ds, expected: dict) -> None:
    assert ds.task_names == list(expected)
    for name, want in expected.items():
        t = ds.tasks[name]
        if want == "regression":
            assert t.kind == "regression"
        else:
            assert t.classes == want, (name, t.classes)
    result = train(ds, ds.task_names, TrainConfig(epochs=1, hidden=8, batch_size=16))
    assert result.model.task_names == ds.task_names  # the user's names, whatever the model's keys
    for name, m in result.metrics.items():
        assert all(math.isfinite(v) for v in m.values() if isinstance(v, float)), (name, m)


@pytest.mark.parametrize("name,data,kwargs,expected", CASES, ids=[c[0] for c in CASES])
def test_hostile_csv(name, data, kwargs, expected):
    refuse = isinstance(expected, str)
    with case(SUITE, name, expect_refusal=refuse) as state:
        ds = load_csv(data=data, **kwargs)
        _check_accepted(ds, expected)
        state["accepted"] = True
    if refuse:
        assert expected in state["error"], state["error"]
        assert "\n" not in state["error"]


def _cli(capsys, argv):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("name", ["feature inf", "target 1e308", "duplicate header", "all-empty feature"])
def test_cli_train_refuses_cleanly_and_stores_nothing(name, tmp_path, capsys, run_store):
    data = next(c for c in CASES if c[0] == name)
    path = tmp_path / "bad.csv"
    path.write_bytes(data[1])
    kw = data[2]
    with case(SUITE, f"CLI train: {name}", expect_refusal=True) as state:
        code, out, err = _cli(capsys, ["train", "--csv", str(path), "--feature-cols", ",".join(kw["feature_cols"]),
                                       "--tasks", ",".join(kw["label_cols"]), "--epochs", "1", "--hidden", "8"])
        if code == 2:
            from explorer.errors import ExplorerError
            raise ExplorerError(err)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not run_store.exists() or not any(p for p in run_store.iterdir() if not p.name.startswith("."))


def test_cli_sweep_with_task_names_holding_plus_dot_and_slash(tmp_path, capsys):
    df = base()
    df["price.usd"] = df.pop("z")
    df["a+b"] = df.pop("y")
    df["dir/c"] = np.where(df["x2"] > 0, "up", "down")
    path = tmp_path / "names.csv"
    path.write_bytes(to_bytes(df))
    out_file = tmp_path / "report.json"
    with case(SUITE, "CLI sweep: task names with + . /", expect_refusal=False) as state:
        code, out, err = _cli(capsys, ["sweep", "--csv", str(path), "--feature-cols", "x1,x2,colour",
                                       "--tasks", "price.usd,a+b,dir/c", "--epochs", "1", "--hidden", "8",
                                       "--seeds", "2", "--order", "3", "--no-affinity", "--out", str(out_file)])
        assert code == 0, err
        report = json.loads(out_file.read_text())
        from explorer.relatedness.transfer import combo_tasks
        combos = {frozenset(combo_tasks(k)) for k in report["gains"]}
        assert frozenset({"a+b", "price.usd"}) in combos and frozenset({"a+b", "dir/c"}) in combos
        assert {frozenset(combo_tasks(k)) for k in report["higher_order"]} == {frozenset({"price.usd", "a+b", "dir/c"})}
        for k, per_task in report["gains"].items():
            assert set(per_task) <= {"price.usd", "a+b", "dir/c"}
        state["accepted"] = True


@pytest.mark.parametrize("argv,needle", [(["--train-size", "2.9"], "2.9"), (["--hidden", "100000000"], "hidden")])
def test_cli_refuses_silent_parameter_coercions(argv, needle, capsys, run_store):
    code, out, err = _cli(capsys, ["train", "--dataset", "digits", "--tasks", "digit,even", "--epochs", "1", *argv])
    assert code == 2 and needle in err and err.count("\n") == 1
    assert not run_store.exists() or not any(run_store.iterdir())
