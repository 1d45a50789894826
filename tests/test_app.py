"""Every page of the Streamlit app, driven with AppTest (no browser): defaults, main action, bad input."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from explorer.jobs import Job
from explorer.store.runs import delete_run, list_runs, save_run, trash_size
from explorer.training.trainer import TrainConfig, train
from tests.helpers import tiny_digits

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 120


@pytest.fixture(autouse=True)
def no_leftover_jobs(monkeypatch):
    """Jobs a test leaves running (e.g. keeping models after the gains are in) end with the test."""
    started = []
    original = Job.start

    def start(self):
        started.append(self)
        return original(self)

    monkeypatch.setattr(Job, "start", start)
    yield
    for job in started:
        job.cancel()
    for job in started:
        job.wait(60)


@pytest.fixture(autouse=True)
def navigation_mode(monkeypatch):
    """Run every AppTest run through app.py's st.navigation, as a warm server does.

    AppTest re-derives Streamlit's legacy ``pages/`` flag before each run, so each run
    would start as a server's cold first request; that path (pages/_state.py hands it
    back to app.py) is covered by the real-browser test's deep link.
    """
    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


DIGITS = {"source": {"kind": "builtin", "name": "digits"}}


def open_page(page: str | None = None, **session) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in session.items():
        at.session_state[k] = v
    at.run()
    if page:
        at.switch_page(f"pages/{page}.py").run()
    assert_clean(at)
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def charts(at: AppTest) -> int:
    return len(at.get("plotly_chart"))


def wait_for_job(at: AppTest, name: str, timeout: float = 120) -> None:
    """Jobs run in a thread; the live page polls it every second, the test polls here.

    A job that ended during the last run has already been collected by the page (its
    progress fragment reruns the page once the job is done).
    """
    if f"job_{name}" not in at.session_state:
        return
    job = at.session_state[f"job_{name}"]
    assert job.wait(timeout), "job did not finish in time"
    assert job.status == "done", (job.status, job.error)
    at.run()
    assert_clean(at)


# -- Data --------------------------------------------------------------------------------------
def test_data_page_defaults_to_news_with_its_default_tasks():
    at = open_page()
    assert at.title[0].value == "Data"
    assert {m.label: m.value for m in at.metric}["Input"] == "text"
    picker = at.multiselect[0]
    assert picker.value == ["outlet", "funding", "section", "length"]
    assert charts(at) >= 3  # coverage and one class-balance chart per chosen task
    assert not errors(at)


def test_data_page_switches_builtin_dataset_and_keeps_the_choice():
    at = open_page()
    at.selectbox(key="data_builtin").set_value("digits").run()
    assert_clean(at)
    assert {m.label: m.value for m in at.metric}["Input"] == "image"
    assert at.multiselect[0].value == ["digit", "even"]
    at.multiselect[0].set_value(["even", "prime"]).run()
    at.switch_page("pages/train.py").run()
    assert_clean(at)
    assert at.session_state["tasks"] == ["even", "prime"]


def test_csv_upload_loads_tasks_and_broken_csv_shows_error():
    at = open_page()
    at.radio(key="data_source_kind").set_value("Upload a CSV").run()
    at.file_uploader(key="data_upload").set_value(("broken.csv", b"\xff\xfe\x00\x81garbage", "text/csv")).run()
    assert_clean(at)
    assert any("UTF-8" in e for e in errors(at))

    rows = ["text,topic,mood"] + [f"a note about {'cats' if i % 2 else 'dogs'} number {i},"
                                  f"{'cats' if i % 2 else 'dogs'},{'happy' if i % 3 else 'sad'}" for i in range(60)]
    at.file_uploader(key="data_upload").set_value(("notes.csv", "\n".join(rows).encode(), "text/csv")).run()
    at.button(key="csv_load").click().run()  # no label column yet: the loader's message is shown
    assert_clean(at)
    assert any("label" in e.lower() for e in errors(at))
    at.multiselect(key="csv_label_cols").set_value(["topic", "mood"]).run()
    at.button(key="csv_load").click().run()
    assert_clean(at)
    assert not errors(at)
    assert at.session_state["source"]["kind"] == "csv"
    assert {m.label: m.value for m in at.metric}["Rows"] == "60"


def key_of(at: AppTest, prefix: str) -> str:
    """Task pickers carry the dataset in their key; find the one of a page."""
    return next(m.key for m in at.multiselect if m.key and m.key.startswith(prefix))


def tiny_settings(at: AppTest, prefix: str) -> None:
    at.slider(key=f"{prefix}_epochs").set_value(1)
    at.slider(key=f"{prefix}_seeds").set_value(2)
    at.select_slider(key=f"{prefix}_hidden").set_value(8)


# -- Train -------------------------------------------------------------------------------------
def test_train_page_defaults_on_a_directly_opened_page():
    at = open_page("train")  # no visit to the Data page first: the default dataset and pair
    assert at.title[0].value == "Train"
    assert at.multiselect(key=key_of(at, "train_tasks")).value == ["outlet", "funding", "section", "length"]
    assert at.slider(key="train_seeds").value == 3
    assert not at.button(key="train_go").disabled
    assert not errors(at)


def test_train_page_trains_shows_gains_and_keeps_models():
    at = open_page("train", **DIGITS)
    tiny_settings(at, "train")
    at.select_slider(key="train_size").set_value(0.1)
    at.button(key="train_go").click().run()
    assert_clean(at)
    assert len(at.get("progress")) == 1 and at.button(key="train_cancel")  # live progress with a Cancel button
    wait_for_job(at, "train")
    metrics = {m.label: m.value for m in at.metric}
    assert "Δm (mean gain over tasks)" in metrics and {"digit", "even"} <= set(metrics)
    assert charts(at) >= 2  # gain bars, scores
    table = at.dataframe[0].value
    assert list(table["task"]) == ["digit", "even"] and set(table["verdict"]) <= {"helped", "hurt", "unclear"}
    assert sorted(len(r.config["tasks"]) for r in list_runs()) == [1, 1, 2]
    assert charts(at) >= 3  # and the loss curves of the kept models
    kept = dict(at.session_state["save_result"])
    at.button(key="train_go").click().run()  # the same settings again: the stored runs serve, none is added
    wait_for_job(at, "train")
    assert at.session_state["save_result"] == kept
    assert sorted(len(r.config["tasks"]) for r in list_runs()) == [1, 1, 2]


def test_train_page_refuses_an_unwritable_store_before_training(tmp_path, monkeypatch):
    (tmp_path / "store").write_text("a file where the run store should be")
    monkeypatch.setenv("EXPLORER_HOME", str(tmp_path / "store"))
    at = open_page("train", **DIGITS)
    tiny_settings(at, "train")
    at.button(key="train_go").click().run()
    assert_clean(at)
    assert any("run store" in e and "EXPLORER_HOME" in e for e in errors(at))
    assert not any(str(tmp_path) in e for e in errors(at))  # the server's folders stay on the server
    assert not at.get("progress")  # no job was started


def test_train_page_with_another_method_keeps_the_comparisons_own_models():
    at = open_page("train", **DIGITS)
    tiny_settings(at, "train")
    at.select_slider(key="train_size").set_value(0.1)
    at.selectbox(key="train_method").set_value("uw")
    at.button(key="train_go").click().run()
    wait_for_job(at, "train")
    assert "job_save" not in at.session_state  # nothing is trained again just to keep it
    assert {"digit", "even"} <= {m.label for m in at.metric}
    shown = at.session_state["train_shown"]
    kept = dict(at.session_state["save_result"])
    assert set(kept) == {"digit+even", "digit", "even"}
    runs = {r.id: r for r in list_runs()}
    assert set(runs) == set(kept.values())
    assert runs[kept["digit+even"]].config["train"]["method"] == "uw"
    for task in ("digit", "even"):
        stored = runs[kept[task]]
        assert stored.config["train"]["method"] == "ew" and stored.config["train"]["seed"] == 0
        metric = shown["metric"][task]
        assert stored.metrics["test"][task][metric] == pytest.approx(shown["single"][task][0])
        together = runs[kept["digit+even"]].metrics["test"][task][metric]
        assert together == pytest.approx(shown["together"][task][0])
    assert any("Kept in the run store" in c.value for c in at.caption)
    at.button(key="train_go").click().run()  # again: the stored runs serve, none is added
    wait_for_job(at, "train")
    assert at.session_state["save_result"] == kept and len(list_runs()) == 3


def test_train_page_zero_tasks_and_one_task_show_errors():
    at = open_page("train", **DIGITS)
    picker = key_of(at, "train_tasks")
    at.multiselect(key=picker).set_value([]).run()
    at.button(key="train_go").click().run()
    assert_clean(at)
    assert any("No task selected" in e for e in errors(at))
    at.multiselect(key=picker).set_value(["digit"]).run()
    at.button(key="train_go").click().run()
    assert any("at least two tasks" in e for e in errors(at))
    assert "job_train" not in at.session_state


def test_train_page_keep_at_chance_checkbox_reaches_the_plan_and_marks_the_result(monkeypatch):
    import explorer.relatedness.together as together
    real, seen = together.plan_together, []

    def plan(data, tasks, seeds, method, config, **kwargs):  # the page's request, on a setting where digit is at chance
        seen.append(kwargs["keep_at_chance"])
        return real(data, ["digit", "even"], 2, method, TrainConfig(epochs=3, hidden=16, train_size=150),
                    save=False, keep_at_chance=kwargs["keep_at_chance"])

    monkeypatch.setattr(together, "plan_together", plan)
    at = open_page("train", **DIGITS)
    assert at.checkbox(key="train_keep_at_chance").value is False  # off unless the user insists
    at.checkbox(key="train_keep_at_chance").check()
    at.button(key="train_go").click().run()
    wait_for_job(at, "train")
    assert seen == [True]
    res = at.session_state["train_shown"]
    assert res["keep_at_chance"] is True and res["gains"]["digit"]["at_chance"]
    assert any("Kept in as asked" in w.value and "digit" in w.value for w in at.warning)
    table = at.dataframe[0].value
    assert table.loc[table["task"] == "digit", "gain"].item().endswith(" (at chance)")
    assert not table.loc[table["task"] == "even", "gain"].item().endswith(" (at chance)")


def test_two_sessions_training_at_once_keep_their_own_results():
    sessions = {}
    for tasks in (["digit", "even"], ["even", "prime"]):
        at = open_page("train", **DIGITS)
        at.multiselect(key=key_of(at, "train_tasks")).set_value(tasks)
        tiny_settings(at, "train")
        at.select_slider(key="train_size").set_value(0.1)
        at.button(key="train_go").click().run()
        sessions[tuple(tasks)] = at
    for tasks, at in sessions.items():  # both jobs ran side by side in their own threads
        wait_for_job(at, "train")
        shown = at.session_state["train_shown"]
        assert tuple(shown["tasks"]) == tasks and set(shown["gains"]) == set(tasks)
        assert set(at.session_state["save_result"]) == {"+".join(tasks), *tasks}
    assert {tuple(t["name"] for t in r.config["tasks"]) for r in list_runs()} >= {
        ("digit", "even"), ("even", "prime"), ("digit",), ("even",), ("prime",)}


def test_cancel_stops_training_and_keeps_nothing():
    at = open_page("train", **DIGITS)
    at.slider(key="train_epochs").set_value(50)
    at.slider(key="train_seeds").set_value(3)
    at.button(key="train_go").click().run()
    job = at.session_state["job_train"]
    at.button(key="train_cancel").click().run()  # the button's callback sets the job's cancel event
    assert job.wait(60) and job.status == "cancelled"
    at.run()
    assert_clean(at)
    assert any("Cancelled" in i.value for i in at.info)
    assert "train_shown" not in at.session_state and list_runs() == []


def test_methods_comparison_runs():
    at = open_page("train", **DIGITS)
    tiny_settings(at, "methods")
    at.select_slider(key="methods_size").set_value(0.05)
    at.multiselect(key="methods_pick").set_value(["ew", "uw"])
    assert at.checkbox(key="methods_keep_at_chance").value is False  # off unless the user insists
    at.checkbox(key="methods_keep_at_chance").check()
    at.button(key="methods_go").click().run()
    wait_for_job(at, "methods")
    assert charts(at) >= 2
    assert at.session_state["methods_result"]["keep_at_chance"] is True  # the switch reached the comparison
    at.multiselect(key="methods_pick").set_value([]).run()
    at.button(key="methods_go").click().run()
    assert any("at least one method" in e for e in errors(at))


# -- Relatedness -------------------------------------------------------------------------------
def test_relatedness_sweep_heatmap_grouping_and_downloads():
    at = open_page("relatedness", **DIGITS)
    at.multiselect(key=key_of(at, "rel_tasks")).set_value(["digit", "even", "prime"])
    tiny_settings(at, "rel")
    at.multiselect(key="rel_sizes").set_value([0.05])
    at.button(key="rel_go").click().run()
    wait_for_job(at, "sweep", timeout=180)
    assert charts(at) >= 3  # transfer matrix, an affinity estimate, Δm bars
    assert {d.key for d in at.get("download_button")} >= {"rel_json", "rel_html", "rel_heatmap_download"}
    rep = at.session_state["sweep_report"]
    assert rep["controls"] == ["shuffled:digit", "noisy:digit"]  # controls are on by default
    assert any("Controls" in s.value for s in at.success) or any("shuffled control" in e for e in errors(at))
    # one epoch on 5 % of the rows leaves some tasks at chance: they are named and never grouped
    grouped = [t for t in ["digit", "even", "prime"] if t not in rep["at_chance"]]
    if rep["at_chance"]:
        assert any(", ".join(rep["at_chance"]) in i.value for i in at.info)
    if len(grouped) < 2:
        assert len(at.dataframe) == 1 and any("No grouping" in i.value for i in at.info)
        return
    assert len(at.dataframe) == 2  # estimates vs ground truth, grouping
    at.select_slider(key="rel_k").set_value(len(grouped)).run()
    assert_clean(at)
    assert [m.label for m in at.metric] == ["Expected mean gain per task"]
    groups = at.dataframe[1].value
    assert set(" + ".join(groups["tasks"]).split(" + ")) == set(grouped)  # groups may overlap (the default)


def test_relatedness_demo_button_runs_the_measured_demo_in_one_click(monkeypatch):
    """One click switches to the demo's dataset, tasks and size with the controls on, and runs it (the
    sweep itself is replaced by a tiny one on the same request: the demo's numbers are in the README)."""
    import explorer.relatedness.by_arch as by_arch
    from explorer.relatedness.sweep import run_sweep
    from pages.relatedness import DEMO
    seen = []

    def sweep(data, tasks, **kwargs):
        seen.append((data.name, list(tasks), list(kwargs["train_sizes"]), kwargs["controls"]))
        return run_sweep(data, tasks[:2], seeds=2, affinity=False, config=TrainConfig(epochs=1, hidden=8,
                                                                                      train_size=200))

    monkeypatch.setattr(by_arch, "run_arch_sweep", sweep)
    at = open_page("relatedness", **DIGITS)
    at.checkbox(key="rel_controls").uncheck().run()  # whatever the user had set, the demo has its own
    at.button(key="rel_demo").click().run()
    wait_for_job(at, "sweep", timeout=120)
    assert seen == [(DEMO["name"], DEMO["tasks"], [DEMO["size"]], ["shuffled", "noisy"])]
    assert at.multiselect(key="rel_sizes").value == [DEMO["size"]] and at.checkbox(key="rel_controls").value
    assert at.session_state["sweep_report"]["tasks"][:2] == DEMO["tasks"][:2]


def test_relatedness_keep_at_chance_checkbox_reaches_the_sweep_and_marks_the_report(monkeypatch):
    import explorer.relatedness.by_arch as by_arch
    from explorer.relatedness.sweep import run_sweep
    seen = []

    def sweep(data, tasks, **kwargs):  # the page's request, on a setting where digit is at chance
        seen.append(kwargs["keep_at_chance"])
        return run_sweep(data, ["digit", "even", "ge5"], seeds=2, affinity=False,
                         config=TrainConfig(epochs=3, hidden=16, train_size=150, balance=0.0, ema=0.0),
                         keep_at_chance=kwargs["keep_at_chance"])

    monkeypatch.setattr(by_arch, "run_arch_sweep", sweep)
    at = open_page("relatedness", **DIGITS)
    assert at.checkbox(key="rel_keep_at_chance").value is False  # off unless the user insists
    at.multiselect(key=key_of(at, "rel_tasks")).set_value(["digit", "even", "ge5"])
    at.checkbox(key="rel_keep_at_chance").check()
    at.button(key="rel_go").click().run()
    wait_for_job(at, "sweep", timeout=120)
    assert seen == [True]
    rep = at.session_state["sweep_report"]
    assert rep["keep_at_chance"] is True and rep["at_chance"] == ["digit"]
    assert any("relative to the raw score" in w.value for w in at.warning)


def _report(**changes) -> bytes:
    import json
    rep = {"tasks": ["digit", "even"], "metric": {"digit": "macro_f1", "even": "macro_f1"},
           "single": {"digit": {"mean": 0.5, "std": 0.1, "scores": [0.4, 0.6]},
                      "even": {"mean": 0.7, "std": 0.1, "scores": [0.6, 0.8]}},
           "pair_gain": [[None, 1.0], [2.0, None]], "pair_gain_std": [[None, 0.5], [0.5, None]],
           "pair_verdict": [[None, "unclear"], ["helped", None]]}
    rep.update(changes)
    return json.dumps(rep).encode()


MALFORMED_REPORTS = {
    "short-row": _report(pair_gain=[[None, 1.0], [2.0]]),                   # was an IndexError
    "missing-row": _report(pair_verdict=[[None, "unclear"]]),               # was an IndexError
    "deep": b"[" * 100_000 + b"]" * 100_000,                                # was a RecursionError
    "text-as-number": _report(single={"digit": {"mean": "high", "std": 0.1, "scores": [0.4]},
                                      "even": {"mean": 0.7, "std": 0.1, "scores": [0.6]}}),  # a format error
}


def test_relatedness_bad_input_shows_errors():
    at = open_page("relatedness", **DIGITS)
    at.multiselect(key=key_of(at, "rel_tasks")).set_value(["digit"]).run()
    at.button(key="rel_go").click().run()
    assert_clean(at)
    assert any("at least two tasks" in e for e in errors(at))
    at.file_uploader(key="rel_upload").set_value(("report.json", b"{not json", "application/json")).run()
    assert_clean(at)
    assert any("not valid JSON" in e for e in errors(at))
    at.file_uploader(key="rel_upload").set_value(("report.json", b'{"tasks": []}', "application/json")).run()
    assert any("not a sweep report" in e for e in errors(at))
    for name, blob in MALFORMED_REPORTS.items():  # each once gave a "This is a bug" box
        at.file_uploader(key="rel_upload").set_value((f"{name}.json", blob, "application/json")).run()
        assert_clean(at)
        assert errors(at) and not any("bug" in e for e in errors(at)), (name, errors(at))
        assert any(f"{name}.json" in e and ("not a sweep report" in e or "nested" in e) for e in errors(at)), name


def test_relatedness_page_says_what_the_adaptive_rounds_did(tmp_path):
    from explorer.datasets import load_dataset
    from explorer.relatedness.sweep import run_sweep, save_report

    rep = run_sweep(load_dataset("digits"), ["digit", "even"], seeds=2, max_seeds=4, affinity=False,
                    config=TrainConfig(epochs=1, hidden=16, train_size=200))
    blob = save_report(rep, tmp_path / "r.json").read_bytes()
    at = open_page("relatedness", **DIGITS)
    at.file_uploader(key="rel_upload").set_value(("r.json", blob, "application/json")).run()
    at.button(key="rel_show_upload").click().run()
    assert_clean(at)
    said = [c.value for c in at.caption if c.value.startswith("Adaptive seeds")]
    assert said and f"{rep.adaptive['models']} extra models" in said[0] and "up to 4 seeds" in said[0]


# -- Explain -----------------------------------------------------------------------------------
def test_explain_page_without_models_points_to_train():
    at = open_page("explain", **DIGITS)
    assert any("No model trained on" in i.value for i in at.info)


@pytest.mark.parametrize("name,tasks,heading", [("digits", ["digit", "even"], "Pixel attributions per task"),
                                                 ("news", ["funding", "section"], "Word attributions per task")])
def test_explain_page_shows_attributions_and_single_vs_multi(name, tasks, heading):
    from explorer.datasets import load_dataset

    ds = load_dataset(name)
    config = TrainConfig(epochs=1, hidden=8, train_size=0.05)
    for combo in (tasks, [tasks[0]]):
        save_run(train(ds, combo, config))
    at = open_page("explain", source={"kind": "builtin", "name": name})
    assert heading in [h.value for h in at.subheader]
    assert "Single-task vs multi-task" in [h.value for h in at.subheader]
    metrics = {m.label: m.value for m in at.metric}
    assert "Rank correlation of the scores" in metrics
    at.selectbox(key="explain_cmp_task").set_value(tasks[1]).run()  # no single-task model of this one
    assert_clean(at)
    assert any("No single-task model" in i.value for i in at.info)


def test_explain_page_tabular_heatmap_and_waterfall():
    from explorer.datasets import load_dataset

    ds = load_dataset("diamonds")
    save_run(train(ds, ["price", "cut"], TrainConfig(epochs=1, hidden=8, train_size=0.02)))
    at = open_page("explain", source={"kind": "builtin", "name": "diamonds"})
    assert [h.value for h in at.subheader][:2] == ["Feature importance per task", "One row, step by step"]
    assert charts(at) >= 2
    at.selectbox(key="explain_row_task").set_value("cut").run()
    assert_clean(at)


def test_csv_upload_with_feature_columns_then_train():
    rows = ["a,b,colour,big,odd"] + [f"{i % 7},{(i * 3) % 11},{['red', 'blue'][i % 2]},{'y' if i % 7 > 3 else 'n'},"
                                     f"{'y' if i % 2 else 'n'}" for i in range(120)]
    at = open_page()
    at.radio(key="data_source_kind").set_value("Upload a CSV").run()
    at.file_uploader(key="data_upload").set_value(("table.csv", "\n".join(rows).encode(), "text/csv")).run()
    at.radio(key="csv_input_kind").set_value("Feature columns").run()
    at.multiselect(key="csv_feature_cols").set_value(["a", "b", "colour"]).run()
    at.multiselect(key="csv_label_cols").set_value(["big", "odd"]).run()
    at.button(key="csv_load").click().run()
    assert_clean(at)
    assert {m.label: m.value for m in at.metric}["Input"] == "tabular"
    at.switch_page("pages/train.py").run()
    assert at.multiselect(key=key_of(at, "train_tasks")).value == ["big", "odd"]
    tiny_settings(at, "train")
    at.button(key="train_go").click().run()
    wait_for_job(at, "train")
    assert set(at.session_state["train_shown"]["gains"]) == {"big", "odd"}


def test_a_bug_in_a_page_shows_a_short_message_not_a_traceback(monkeypatch):
    from explorer.plots import data as data_plots

    def broken(*args, **kwargs):
        raise RuntimeError("chart exploded")

    monkeypatch.setattr(data_plots, "coverage_bars", broken)
    at = open_page()
    assert any("RuntimeError: chart exploded" in e and "bug" in e for e in errors(at))


# -- Models ------------------------------------------------------------------------------------
def test_models_page_empty_store_says_so():
    at = open_page("models")
    assert any("No trained models" in i.value for i in at.info)


def test_models_page_lists_compares_and_deletes_runs():
    ds = tiny_digits()
    config = TrainConfig(epochs=1, hidden=8, train_size=200)
    first = save_run(train(ds, ["digit", "even"], config)).id
    save_run(train(ds, ["even"], config))
    at = open_page("models")
    assert not errors(at)
    assert charts(at) == 1
    assert len(at.dataframe) >= 2
    at.selectbox(key="models_target").set_value(first).run()
    at.button(key="models_export").click().run()  # exported bundle: weights, ONNX, model card
    assert_clean(at)
    assert not errors(at)
    assert at.get("download_button")[0].label == "Download bundle (.zip)"
    assert at.button(key="models_delete").disabled
    confirm(at, first).check().run()
    at.button(key="models_delete").click().run()
    assert_clean(at)
    assert first not in [r.id for r in list_runs()]
    assert len(list_runs()) == 1
    assert any(first in t.value for t in at.toast)  # the toast names the run
    assert trash_size() == 1  # recoverable until the trash is emptied
    at.button(key="models_empty_trash").click().run()
    assert trash_size() == 0 and len(list_runs()) == 1


def confirm(at: AppTest, run_id: str):
    return next(c for c in at.checkbox if c.label == f"Yes, delete {run_id}")


def test_models_page_confirmation_is_bound_to_the_run_it_was_given_for():
    ds = tiny_digits()
    config = TrainConfig(epochs=1, hidden=8, train_size=200)
    a = save_run(train(ds, ["digit"], config)).id
    b = save_run(train(ds, ["even"], config)).id
    at = open_page("models")
    at.selectbox(key="models_target").set_value(a).run()
    confirm(at, a).check().run()
    at.selectbox(key="models_target").set_value(b).run()  # the tick for A must not carry over to B
    # A browser (and AppTest) cannot click a disabled button: the click deletes nothing.
    assert not confirm(at, b).value and at.button(key="models_delete").disabled
    at.selectbox(key="models_target").set_value(a).run()  # nor is A's tick still there when coming back
    assert not confirm(at, a).value and at.button(key="models_delete").disabled
    assert_clean(at)
    assert {r.id for r in list_runs()} == {a, b}


def test_models_page_confirmation_resets_when_another_session_changes_the_store():
    ds = tiny_digits()
    config = TrainConfig(epochs=1, hidden=8, train_size=200)
    a = save_run(train(ds, ["digit"], config)).id
    b = save_run(train(ds, ["even"], config)).id
    at = open_page("models")
    at.selectbox(key="models_target").set_value(b).run()
    confirm(at, b).check().run()
    delete_run(a)  # another session deletes A after we ticked B
    at.button(key="models_delete").click().run()
    assert_clean(at)
    assert [r.id for r in list_runs()] == [b]
    assert any("changed" in t.value for t in at.toast)
    assert not confirm(at, b).value


def test_models_page_lists_damaged_runs_and_deletes_them(run_store):
    import json as json_
    ds = tiny_digits()
    good = save_run(train(ds, ["digit"], TrainConfig(epochs=1, hidden=8, train_size=200)))
    bad = run_store / "broken-run"
    bad.mkdir()
    config = json_.loads((good.path / "config.json").read_text())
    del config["dataset"]
    (bad / "config.json").write_text(json_.dumps(config))
    (bad / "metrics.json").write_text((good.path / "metrics.json").read_text())
    (run_store / "elsewhere").symlink_to(good.path.parent.parent)
    at = open_page("models")
    assert_clean(at)
    assert not errors(at) and len(at.dataframe) >= 2
    text = " ".join(str(df.value.to_dict()) for df in at.dataframe)
    assert "config.json lacks dataset" in text and "symbolic link" in text
    at.selectbox(key="models_damaged").set_value("broken-run").run()
    confirm(at, "broken-run").check().run()
    at.button(key="models_delete_damaged").click().run()
    assert_clean(at)
    assert not bad.exists() and [r.id for r in list_runs()] == [good.id]


def _hostile_upload(at: AppTest, name: str, data: bytes, features: list[str], labels: list[str]) -> None:
    at.file_uploader(key="data_upload").set_value((name, data, "text/csv")).run()
    at.radio(key="csv_input_kind").set_value("Feature columns").run()
    at.multiselect(key="csv_feature_cols").set_value(features).run()
    at.multiselect(key="csv_label_cols").set_value(labels).run()
    at.button(key="csv_load").click().run()


def test_csv_upload_refuses_non_finite_and_duplicate_headers_and_keeps_odd_task_names():
    rows = [f"{i * 0.5},{'red' if i % 2 else 'blue'},{'yes' if i % 3 else 'no'},{i % 7 * 1.5}" for i in range(40)]
    at = open_page()
    at.radio(key="data_source_kind").set_value("Upload a CSV").run()
    bad = ["a,colour,price.usd,a+b"] + rows
    bad[5] = "inf" + bad[5][bad[5].index(","):]
    _hostile_upload(at, "bad.csv", "\n".join(bad).encode(), ["a", "colour"], ["price.usd", "a+b"])
    assert_clean(at)
    assert any("'a'" in e and "row 6" in e for e in errors(at)), errors(at)
    assert at.session_state["source"]["kind"] != "csv"

    at.file_uploader(key="data_upload").set_value(("dup.csv", "\n".join(["a,a,x,y"] + rows).encode(),
                                                   "text/csv")).run()
    assert_clean(at)
    assert any("twice" in e for e in errors(at)), errors(at)

    good = ["a,colour,price.usd,a+b"] + rows
    _hostile_upload(at, "good.csv", "\n".join(good).encode(), ["a", "colour"], ["price.usd", "a+b"])
    assert_clean(at)
    assert not errors(at)
    assert at.session_state["source"]["kind"] == "csv"
    assert {m.label: m.value for m in at.metric}["Tasks"] == "2"
