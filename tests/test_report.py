"""The HTML report and its figures: self-contained, marked negative transfer, escaped names."""
import re

import pytest

import explorer.relatedness.sweep as sweep
from explorer.relatedness.combos import ComboRun
from explorer.datasets import load_dataset
from explorer.plots import transfer as plots
from explorer.relatedness.report_html import render_html, write_html
from explorer.relatedness.sweep import run_sweep

TASKS = ["digit", "even", "ge5"]
# (task, partner) -> change of the task's score; digit is clearly hurt by even, even clearly helped by digit
EFFECT = {("digit", "even"): -0.2, ("even", "digit"): +0.1, ("ge5", "digit"): 0.001}
NOISE = [0.0, 0.003, -0.003]


def fake_trainer(dataset, combinations, config, seeds, mode="batched", progress=None, prepared=None):
    runs = []
    for k, seed in enumerate(seeds):
        for combo in combinations:
            metrics = {t: {"primary": "macro_f1", "n": 50,
                           "macro_f1": 0.6 + sum(EFFECT.get((t, p), 0.0) for p in combo) + NOISE[k % 3]}
                       for t in combo}
            runs.append(ComboRun(tuple(combo), seed, metrics, 1, []))
    return runs


def fake_affinity(dataset, tasks, config, prepared=None, every=5, progress=None, **kwargs):
    n = len(tasks)
    cos = [[None if i == j else 0.1 * (i + j) - 0.25 for j in range(n)] for i in range(n)]
    return {"tasks": list(tasks), "lookahead": [[None if i == j else 1e-4 * (i - j) for j in range(n)]
                                                for i in range(n)],
            "lookahead_self": [1e-3] * n, "grad_cosine": cos,
            "conflict_share": [[None if i == j else 0.5 - c for j, c in enumerate(row)] for i, row in enumerate(cos)],
            "steps_measured": 12, "every": 5, "lookahead_lr": 0.01, "epochs": 2}


@pytest.fixture(scope="module")
def report():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sweep, "train_combinations", fake_trainer)
        mp.setattr(sweep, "one_run_affinity", fake_affinity)
        return run_sweep(load_dataset("digits"), TASKS, order=3, seeds=3, train_sizes=[0.2, 1.0])


def test_fixture_has_each_verdict(report):
    assert report.pair_verdict[0][1] == "negative" and report.pair_verdict[1][0] == "positive"
    assert report.pair_verdict[2][0] == "unclear"


def test_transfer_heatmap_marks_negative_cells(report):
    fig = plots.transfer_heatmap(report)
    heat = fig.data[0]
    assert heat.type == "heatmap" and heat.zmin == -heat.zmax  # diverging scale centred on 0
    assert heat.z[0][0] is None
    negative = next(t for t in fig.data if t.type == "scatter" and t.name.startswith("negative"))
    assert list(zip(negative.x, negative.y)) == [("even", "digit")]  # x = partner, y = the hurt task
    positive = next(t for t in fig.data if t.type == "scatter" and t.name.startswith("positive"))
    assert list(zip(positive.x, positive.y)) == [("digit", "even")]
    hover = heat.hovertext[0][1]
    assert "±" in hover and "n = 3 seeds" in hover and "hurt" in hover and "interval" in hover
    assert "▼" in heat.text[0][1] and "▲" in heat.text[1][0] and "▼" not in heat.text[2][0]


def test_other_figures_build(report):
    for name in plots.AFFINITY_TITLES:
        fig = plots.affinity_heatmap(report, name)
        assert fig.data[0].type == "heatmap" and fig.data[0].z[1][1] is None
    assert plots.affinity_heatmap(report, "grad_cosine").data[0].zmin == -1.0
    bars = plots.combination_gain_bars(report, ["even", "digit"])
    assert list(bars.data[0].x) == ["digit", "even"] and "Δm" in bars.layout.title.text
    with pytest.raises(ValueError):
        plots.combination_gain_bars(report, ["digit", "prime"])
    assert len(plots.delta_m_bars(report).data[0].x) == 4
    curves = plots.gain_curves(report)
    assert curves.layout.xaxis.type == "log"
    lines = [t for t in curves.data if t.mode == "lines+markers"]
    bands = [t for t in curves.data if t.fill == "toself"]
    assert sum(len(t.x) for t in lines) == 6 * 2  # 6 ordered pairs x 2 sizes, one panel per task
    assert len(bands) == len(lines) and all(len(b.x) == 2 * len(t.x) for b, t in zip(bands, lines))
    assert len(plots.higher_order_scatter(report).data[0].x) == 3
    assert plots.transfer_heatmap(report.to_dict()).data[0].z == plots.transfer_heatmap(report).data[0].z


def test_html_is_self_contained(report, tmp_path):
    path = write_html(report, tmp_path / "report.html")
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"<script[^>]*\bsrc\s*=", page)  # no external script: opens offline
    assert not re.search(r"<link[^>]*\bhref\s*=", page)
    assert page.count("plotly-graph-div") >= 8 and "Plotly.newPlot" in page
    assert page.count("plotly.js v") == 1  # the library is embedded once
    for text in ("How to read", "unclear", "Transfer matrix", "Task groupings", "Spearman",
                 "Gain against training-set size", "Settings", "Larger groups"):
        assert text in page
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_html_escapes_names_and_handles_missing_parts(report):
    d = report.to_dict()
    d["dataset"] = "<script>alert(1)</script>"
    d["affinity"], d["estimates"], d["by_fraction"], d["higher_order"] = None, {}, None, {}
    page = render_html(d)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "Gain against training-set size" not in page and "Cheap estimates" not in page


def chance_trainer(dataset, combinations, config, seeds, mode="batched", progress=None, prepared=None):
    """digit stays below its chance level (about 0.1 macro-F1 on ten classes), a little higher with a partner."""
    runs = []
    for k, seed in enumerate(seeds):
        for combo in combinations:
            metrics = {t: {"primary": "macro_f1", "n": 50,
                           "macro_f1": (0.05 + 0.01 * (len(combo) > 1) if t == "digit" else 0.6) + NOISE[k % 3]}
                       for t in combo}
            runs.append(ComboRun(tuple(combo), seed, metrics, 1, []))
    return runs


@pytest.fixture(scope="module")
def chance_reports():
    """The same sweep with digit at chance: left out (the default), and kept in."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sweep, "train_combinations", chance_trainer)
        data = load_dataset("digits")
        return (run_sweep(data, TASKS, seeds=3, affinity=False),
                run_sweep(data, TASKS, seeds=3, affinity=False, keep_at_chance=True))


def _pair_cells(page: str) -> dict[tuple[str, str], str]:
    """(task, partner) -> the gain cell of the report's "every pair" table."""
    rows = re.findall(r'<tr><td>(\w+)</td><td>(\w+)</td><td class="num">(.*?)</td>', page)
    return {(a, b): cell for a, b, cell in rows if b in TASKS}


def test_html_names_the_tasks_at_chance_and_marks_the_kept_ones(chance_reports):
    off, on = chance_reports
    assert off.at_chance == on.at_chance == ["digit"] and on.keep_at_chance
    level = on.gain(["digit", "even"], "digit")["baseline"]
    page_off, page_on = render_html(off), render_html(on)
    for page in (page_off, page_on):  # which task, against which level, computed how
        box = re.search(r'<div class="box chance">(.*?)</div>', page, re.S).group(1)
        assert "digit" in box and f"{level:.3f}" in box and "even" not in box
        assert "majority class" in box and "guessing at the class frequencies" in box
    cells_off, cells_on = _pair_cells(page_off), _pair_cells(page_on)
    # kept in: each of digit's gains carries the dagger the box explains; a task above chance carries none
    assert "Kept in as asked" in page_on and "relative to the raw score" in page_on
    d, e = on.tasks.index("digit"), on.tasks.index("even")
    assert cells_on[("digit", "even")].startswith(f"{on.pair_gain[d][e]:+.1f}<span class=\"kept\"")
    assert "†" in cells_on[("digit", "ge5")]
    assert not any("†" in c for (a, _), c in cells_on.items() if a != "digit")
    assert "†" in plots.transfer_heatmap(on).data[0].text[d][e]
    assert "†" not in plots.transfer_heatmap(on).data[0].text[e][d]
    assert re.search(r"<td>digit</td><td>macro_f1</td>.*?\(at chance\)<span class=\"kept\"", page_on)
    # left out (the default): no relative gain, no dagger; its pairs are still listed, with the difference
    assert "†" not in page_off and "Kept in as asked" not in page_off and "no relative gain" in page_off
    assert cells_off[("digit", "even")].startswith("at chance, Δ +0.01")
    assert re.search(r"<td>tasks at chance</td><td>digit</td>", page_off)


def test_heatmap_hover_says_why_a_cell_got_no_more_seeds(report):
    from explorer.relatedness.adaptive import FUTILE
    d = report.to_dict()
    d["pair_stop"] = [[None, FUTILE, None], [None, None, None], [None, None, None]]
    hover = plots.transfer_heatmap(d).data[0].hovertext
    assert f"seeds stopped: {FUTILE}" in hover[0][1] and "seeds stopped" not in hover[1][0]
    page = render_html(d)  # the report's pairs table says it too, beside each cell's seeds and q-value
    row = next(r for r in page.split("<tr>") if r.startswith("<td>digit</td><td>even</td>"))
    assert FUTILE in row and ">3<" in row and f"{report.pair_q[0][1]:.3f}" in row
