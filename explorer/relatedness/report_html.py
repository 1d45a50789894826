"""A sweep's report (``SweepReport``, report.json) as one self-contained HTML page, to share with people who will not run the app.

plotly.js is embedded once, inline, so the page opens offline in any browser
(no CDN, no external script). Every figure comes from ``explorer.plots.transfer``.
"""
from __future__ import annotations

import html
from pathlib import Path

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from explorer.store.atomic import write_atomic
from explorer.plots import transfer as plots
from explorer.relatedness.sweep import SweepReport
from explorer.relatedness.transfer import combo_tasks

MAX_COMBINATION_CHARTS = 12
CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.5; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.95em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.7em; text-align: left; vertical-align: top; }
th { background: #f4f5f7; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.positive { color: #1a7a3f; font-weight: 600; } .negative { color: #c0271e; font-weight: 600; }
.unclear { color: #666; } .note { color: #555; font-size: 0.95em; }
.box { background: #f7f8fa; border-left: 4px solid #3b6fb6; padding: 0.6em 1em; margin: 1em 0; }
.box.chance { border-left-color: #c98a00; } .kept { color: #9a6700; font-weight: 600; }
"""

HOW_TO_READ = """
<div class="box">
<p><b>Gain.</b> For a task <i>i</i> trained together with other tasks, the gain is the relative change of
its primary test metric (macro-F1 for classification, R² for regression) against the same task trained
alone on the same split: (score together − score alone) / |score alone|, in percent. Positive: the
partner helped; negative: it hurt (<i>negative transfer</i>). Δm of a combination is the mean gain over its
tasks.</p>
<p><b>Seed noise.</b> Every model is trained with several seeds. A gain is called <span class="positive">
positive</span> or <span class="negative">negative</span> transfer only when the 95&nbsp;% (Welch) interval of
the difference excludes 0. Otherwise it is <span class="unclear">unclear</span>: the effect, if any, is
smaller than the differences between seeds, and more seeds or more data would be needed to tell. With one
seed every verdict is "unclear".</p>
<p><b>Transfer matrix.</b> Row = the task whose score is measured; column = the partner it was trained
with. The matrix need not be symmetric: a partner can help one task and hurt the other.
▼ with a black border marks negative transfer, ▲ with a circle positive transfer.</p>
</div>
"""

AFFINITY_TEXT = """
<p>These estimates cost a fraction of training every pair. Four come from <b>one</b> joint training run.
The <b>lookahead affinity</b> (TAG, Fifty et al. 2021) takes the optimiser's own update (Adam's step,
with its moments) of the shared layers from one task's loss alone and measures how much every other task's
loss on the same batch drops: Z(partner→task) = 1 − L<sub>task</sub>(after) / L<sub>task</sub>(before),
averaged over training; above 0 means the partner's update also helps the task. The <b>gradient dot
product</b> ⟨g<sub>task</sub>, g<sub>partner</sub>⟩ / L<sub>task</sub> is what a plain gradient step would
measure to first order. The <b>gradient cosine</b> compares the two tasks' gradients on the shared layers
(1 = same direction, −1 = opposite), and the <b>conflict share</b> is the share of measured steps on which
they point in conflicting directions (50&nbsp;% is what unrelated directions give). The <b>surrogate</b>
(task modeling, Li et al. 2023) is fitted on a few trained random groups of three or more tasks: each
task's gain as a sum of one effect per partner, which also predicts groups that were never trained.
The Spearman rank correlation with the trained pair gains, with a bootstrap 95&nbsp;% interval over the
cells, shows how far to trust each estimate here (<i>within task</i>: each task's partners ranked only, the
row means taken out, so a task whose gains are all high from a low single-task baseline does not count): published benchmarks found such proxies often rank pairs
poorly. Conflict share should correlate negatively.</p>
"""


def _e(value) -> str:
    return html.escape(str(value))


def _num(v, spec: str = "+.1f", unit: str = "") -> str:
    return "n/a" if v is None else f"{v:{spec}}{unit}"


def _verdict(v: str | None) -> str:
    return f'<span class="{_e(v)}">{_e(v)}</span>' if v else "–"


KEPT_MARK = '<span class="kept" title="at chance, kept in: relative to the raw score">†</span>'


def _chance_level(r: SweepReport, task: str) -> float | None:
    """The task's chance-level score (``explorer.training.metrics.chance_score``), as the report's single-task
    record holds it."""
    return (r.single.get(task) or {}).get("baseline")


def _kept(r: SweepReport, task: str) -> str:
    """The mark of a gain relative to the raw score: a task at chance that the user kept in."""
    return KEPT_MARK if r.keep_at_chance and task in r.at_chance else ""


def _chance_box(r: SweepReport) -> str:
    """Which tasks are at chance, against which level, and what that did to their gains."""
    if not r.at_chance:
        return ""
    named = "; ".join(f"<b>{_e(t)}</b> ({_e(r.metric.get(t, 'score'))} {_num(r.single.get(t, {}).get('mean'), '.3f')} "
                      f"alone, chance level {_num(_chance_level(r, t), '.3f')})" for t in r.at_chance)
    if r.keep_at_chance:
        then = (f"{KEPT_MARK} Kept in as asked (<code>keep_at_chance</code>): their gains, marked †, are relative "
                "to the raw score, not to the headroom above chance, so they may be large and mean little; they "
                "count in Δm and the groupings, and their verdicts stay unclear.")
    else:
        then = ("They get no relative gain (it would divide by noise): their cells show the absolute difference, "
                "and they stay out of Δm and the groupings.")
    return ('<div class="box chance"><p><b>At chance.</b> These single-task models are not above their task\'s '
            f"chance level: {named}. The chance level is what a predictor that ignores the input scores on the test "
            "rows: the better of the majority class (for a regression, the mean) and guessing at the class "
            f"frequencies. {then}</p></div>")


def _figure(fig: go.Figure) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False, "responsive": True})


def _table(header: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="num">{c}</td>' if k in numeric else f"<td>{c}</td>"
                                    for k, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pairs_table(r: SweepReport) -> str:
    """Every pair cell: gain, spread, interval, q-value, seeds, what it could have detected, why its seeds
    stopped (adaptive sweeps) and the verdict."""
    rows = []
    for i, a in enumerate(r.tasks):
        for j, b in enumerate(r.tasks):
            v = r.pair_gain[i][j]
            if i == j:
                continue
            seeds, stop = plots.cell(r.pair_seeds, i, j), plots.cell(r.pair_stop, i, j)
            if v is None:  # at chance (not kept in): the absolute difference, listed last
                rec = r.gain([a, b], a)
                if rec is not None and rec.get("at_chance"):
                    rows.append((float("inf"), [_e(a), _e(b), f"at chance, Δ {_num(rec.get('diff'), '+.4f')}",
                                                "–", "–", "–", _e(seeds if seeds is not None else "–"), "–",
                                                _e(stop or "–"), _verdict(rec.get("verdict"))]))
                continue
            span = r.pair_interval[i][j] if r.pair_interval else None
            interval = "n/a" if not span or span[0] is None else f"[{span[0]:+.1f}, {span[1]:+.1f}]"
            rows.append((v, [_e(a), _e(b), _num(v) + _kept(r, a), _num(r.pair_gain_std[i][j], ".1f"), interval,
                             _num(plots.cell(r.pair_q, i, j), ".3f"), _e(seeds if seeds is not None else "–"),
                             _num(plots.cell(r.pair_mde, i, j), ".1f"), _e(stop or "–"),
                             _verdict(r.pair_verdict[i][j])]))
    rows.sort(key=lambda p: p[0])
    return _table(["task", "trained with", "gain %", "seed std", "95 % interval", "q-value", "seeds",
                   "detectable from %", "seeds stopped", "verdict"],
                  [row for _, row in rows], numeric={2, 3, 4, 5, 6, 7})


def _single_table(r: SweepReport) -> str:
    rows = []
    for t in r.tasks:
        s = r.single.get(t, {})
        scores = ", ".join(f"{x:.3f}" for x in s.get("scores", []) if x is not None)
        level = _num(_chance_level(r, t), ".3f") + (" (at chance)" + _kept(r, t) if t in r.at_chance else "")
        rows.append([_e(t), _e(r.metric.get(t, "")), _num(s.get("mean"), ".3f"), _num(s.get("std"), ".3f"),
                     level, _e(scores)])
    return _table(["task", "metric", "mean", "std", "chance level", "per seed"], rows, numeric={2, 3})


def _proxy_table(r: SweepReport) -> str:
    rows = []
    scored = r.estimates or {name: {**d, "spearman": d.get("value")}
                             for name, d in (r.proxy_spearman_detail or {}).items()}
    for name, d in scored.items():
        value = d.get("spearman")
        shown = _num(value, "+.2f") if value is not None else f'n/a <span class="note">({_e(d.get("reason"))})</span>'
        span = d.get("interval")
        interval = "n/a" if not span else f"[{span[0]:+.2f}, {span[1]:+.2f}]"
        sign = "positive" if d.get("expected_sign", 1) > 0 else "negative"
        rows.append([_e(name), shown, interval, _num(d.get("spearman_within_task"), "+.2f"),
                     _num(d.get("p_value"), ".3f"), str(d.get("n_pairs", 0)), sign, _e(d.get("description", ""))])
    return _table(["estimate", "Spearman ρ with trained gains", "bootstrap 95 % interval", "ρ within task",
                   "p-value", "cells", "useful proxy has sign", "what it is"], rows, numeric={3, 4, 5})


def _groupings_table(r: SweepReport) -> str:
    rows = []
    for k, g in sorted(r.groupings.items(), key=lambda kv: int(kv[0])):
        groups = " | ".join(" + ".join(_e(t) for t in grp) for grp in g["groups"])
        per = ", ".join(f"{_e(t)} {v:+.1f} %{_kept(r, t)} ({_e(g.get('source', {}).get(t, ''))})"
                        for t, v in g["per_task"].items())
        rows.append([_e(k), groups, _num(g["score"]), _num(g.get("mean_gain")), per])
    return _table(["models (k)", "best grouping", "summed gain %", "mean gain %", "expected gain per task"],
                  rows, numeric={2, 3})


def _higher_order_table(r: SweepReport) -> str:
    rows = []
    for key, per_task in r.higher_order.items():
        for t, v in per_task.items():
            rows.append([_e(key), _e(t), _num(v.get("trained")) + _kept(r, t), _num(v.get("trained_std"), ".1f"),
                         _num(v.get("estimate")), _verdict(v.get("verdict"))])
    return _table(["group", "task", "trained gain %", "seed std", "estimate from pairs %", "verdict"],
                  rows, numeric={2, 3, 4})


def _settings_table(r: SweepReport) -> str:
    rows = [["dataset", _e(r.dataset)], ["dataset fingerprint", _e(r.dataset_fingerprint)],
            ["tasks", _e(", ".join(r.tasks))], ["combinations trained", str(len(r.combinations))],
            ["seeds", _e(", ".join(map(str, r.seeds)))], ["mode", _e(r.mode)], ["device", _e(r.device)],
            ["training rows", str(r.train_rows)],
            ["tasks at chance", _e(", ".join(r.at_chance) or "none")],
            ["keep_at_chance", "yes: gains relative to the raw score" if r.keep_at_chance else "no"],
            ["split sizes", _e(", ".join(f"{k} {v}" for k, v in r.split_sizes.items()))],
            ["wall time", f"{r.seconds:.1f} s"]]
    rows += [[_e(k), _e(v)] for k, v in r.config.items()]
    return _table(["setting", "value"], rows)


def render_html(report: SweepReport | dict) -> str:
    """The whole report page as a string."""
    r = report if isinstance(report, SweepReport) else SweepReport.from_dict(report)
    title = f"Task relatedness: {r.dataset} ({', '.join(r.tasks)})"
    parts = [f"<h1>{_e(title)}</h1>",
             f'<p class="note">{len(r.combinations)} models × {len(r.seeds)} seeds, {_e(r.mode)} mode on '
             f"{_e(r.device)}, {r.seconds:.0f} s. Gains are against single-task models on the same split.</p>",
             _chance_box(r), "<h2>How to read this report</h2>", HOW_TO_READ]
    has_pairs = any(v is not None for row in r.pair_gain for v in row)
    if has_pairs:
        parts += ["<h2>Transfer matrix</h2>", _figure(plots.transfer_heatmap(r)),
                  "<h3>Every pair, worst first</h3>", _pairs_table(r)]
    keys = r.combination_keys()
    if keys:
        parts += ["<h2>Combinations</h2>", _figure(plots.delta_m_bars(r))]
        shown = sorted(keys, key=lambda k: r.delta_m.get(k) or 0.0)
        if len(shown) > MAX_COMBINATION_CHARTS:  # the extremes are the informative ones
            half = MAX_COMBINATION_CHARTS // 2
            shown = shown[:half] + shown[-half:]
            parts.append(f'<p class="note">Per-task charts for the {half} worst and {half} best combinations '
                         f"of {len(keys)}.</p>")
        parts += [_figure(plots.combination_gain_bars(r, combo_tasks(k))) for k in shown]
    parts += ["<h2>Single-task baselines</h2>", _single_table(r)]
    if r.higher_order:
        parts += ["<h2>Larger groups vs the estimate from pairs</h2>",
                  '<p>Standley et al. (2020) estimate a task\'s gain in a group as the mean of its pair gains '
                  "with the other members. Points on the dotted diagonal are estimated exactly.</p>",
                  _higher_order_table(r)]
        if has_pairs:
            parts.append(_figure(plots.higher_order_scatter(r)))
    if r.affinity or any(d.get("spearman") is not None for d in (r.estimates or {}).values()):
        parts += ["<h2>Cheap estimates</h2>", AFFINITY_TEXT, _proxy_table(r)]
    if r.affinity:
        parts += [_figure(plots.affinity_heatmap(r, name)) for name in plots.AFFINITY_TITLES
                  if r.affinity.get(name) is not None]
        parts.append(f'<p class="note">{r.affinity.get("steps_measured", 0)} measured steps (every '
                     f'{r.affinity.get("every")} steps) over {r.affinity.get("epochs")} epochs; look-ahead '
                     f'with {r.affinity.get("lookahead_optimiser", "SGD")} at learning rate '
                     f'{r.affinity.get("lookahead_lr")}.</p>')
    if r.groupings:
        left_out = ("Controls are left out (tasks at chance are kept in, as asked)" if r.keep_at_chance
                    else "Controls and tasks at chance are left out")
        parts += ["<h2>Task groupings</h2>",
                  "<p>For a budget of k models, at most k groups with the largest summed gain; groups may overlap "
                  "(Standley et al., TAG): each task is served by the best chosen group that contains it. "
                  f"{left_out}. A task's expected gain in a group is its trained gain there when that group was "
                  "trained (<i>trained</i>), else the mean of its pair gains with the other members "
                  "(<i>estimate</i>), and 0 when it is alone (<i>single</i>). These are mean gains: check the "
                  "verdicts above before relying on a small difference.</p>", _groupings_table(r)]
    if r.by_fraction:
        parts += ["<h2>Gain against training-set size</h2>",
                  "<p>The pairwise sweep repeated on nested training subsets, with the same validation and test "
                  "rows. Sharing is often said to help most when labels are scarce; this shows whether it does "
                  "here.</p>", _figure(plots.gain_curves(r))]
    parts += ["<h2>Settings</h2>", _settings_table(r)]
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<style>{CSS}</style><script>{get_plotlyjs()}</script></head>\n<body>\n{body}\n</body></html>\n")


def write_html(report: SweepReport | dict, path: str | Path) -> Path:
    """Write the report page atomically."""
    return write_atomic(path, render_html(report))
