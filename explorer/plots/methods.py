"""Figures of a method comparison (``explorer.relatedness.compare.MethodComparison.to_dict()``): gains per method, task weights."""
from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from explorer.plots._style import TASK_COLOURS, num as _num, style as _style

METHOD_COLOURS = qualitative.Bold
DELTA_M = "Δm (mean over tasks)"


def method_gains(comparison: dict) -> go.Figure:
    """Per-task gain (%) of each method over the shared single-task baseline, plus Δm.

    Bars are the mean over seeds, whiskers the seed standard deviation. A bar is
    solid when the 95 % interval of the gain excludes 0 (a real help or hurt) and
    faded when the gain is within the seed noise; the hover gives the interval.
    """
    tasks = list(comparison["tasks"])
    fig = go.Figure()
    for i, (name, r) in enumerate(comparison["methods"].items()):
        gains = [r["gains"][t] for t in tasks]
        means = [_num(g["mean"]) for g in gains] + [_num(r["delta_m"])]
        stds = [_num(g["std"]) for g in gains] + [_num(r["delta_m_std"])]
        solid = [g["verdict"] != "unclear" for g in gains] + [True]
        hover = [_gain_hover(name, t, g) for t, g in zip(tasks, gains)]
        spread = "n/a (one seed)" if r["delta_m_std"] is None else f"{_num(r['delta_m_std']):.1f}"
        hover.append(f"<b>{name}</b> · Δm {_num(r['delta_m']):+.1f} %<br>mean gain over the tasks"
                     f"<br>seed std {spread}")
        fig.add_trace(go.Bar(
            name=name, x=tasks + [DELTA_M], y=means,
            marker=dict(color=METHOD_COLOURS[i % len(METHOD_COLOURS)], opacity=[1.0 if s else 0.4 for s in solid]),
            error_y=dict(type="data", array=[0.0 if math.isnan(s) else s for s in stds], color="#333",
                         thickness=1.5, width=5),
            text=[_bar_label(m, g) for m, g in zip(means, gains + [{}])],
            textposition="inside", insidetextanchor="start",
            textfont=dict(color="#222"),  # at the bar's base, clear of the whisker at its end
            hovertext=hover, hoverinfo="text"))
    fig.add_hline(y=0, line_color="#333", line_width=1)
    fig.update_yaxes(title="gain vs the task alone (%)")
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.15, title="method"))
    n = len(comparison["seeds"])
    return _style(fig, f"Gain per task and method over {n} seed{'s' * (n > 1)} "
                       "(whiskers: seed std; faded: within seed noise)", 460)


def _bar_label(mean: float, g: dict) -> str:
    """A bar's number; a task at chance has none (no relative gain) unless kept in, and is marked."""
    if math.isnan(mean):
        return "at chance" if g.get("at_chance") else ""
    return f"{mean:+.1f}" + (" (at chance)" if g.get("at_chance") else "")


def _gain_hover(method: str, task: str, g: dict) -> str:
    interval = ("n/a (needs 2+ seeds)" if g.get("low") is None
                else f"[{_num(g['low']):+.1f}, {_num(g['high']):+.1f}] %")
    if g.get("mean") is None:  # at chance: no relative gain, only the absolute difference
        return (f"<b>{method}</b> · {task}: at chance, no relative gain<br>difference {_num(g.get('diff')):+.4f}"
                f"<br>score {_num(g['multi_mean']):.3f} together vs {_num(g['single_mean']):.3f} alone")
    kept = " (at chance, relative to the raw score)" if g.get("at_chance") else ""
    return (f"<b>{method}</b> · {task}: {g['verdict']}{kept}<br>gain {_num(g['mean']):+.1f} % ± {_num(g['std']):.1f} "
            f"(seed std)<br>95 % interval {interval}<br>score {_num(g['multi_mean']):.3f} together vs "
            f"{_num(g['single_mean']):.3f} alone")


def task_weights(comparison: dict, seed_index: int = 0) -> go.Figure:
    """The weight each task's gradient got at every training step, one panel per method.

    For loss weightings it is the factor on the task's loss; for gradient
    aggregators (PCGrad, MGDA, UPGrad, CAGrad, Nash-MTL) it is the coefficient of the task's
    gradient in the shared encoder's update. Each panel has its own scale.
    """
    methods = comparison["methods"]
    names = list(methods) or ["(no methods)"]
    fig = make_subplots(rows=len(names), cols=1, shared_xaxes=True, subplot_titles=names,
                        vertical_spacing=min(0.08, 0.3 / max(1, len(names))))
    for row, name in enumerate(methods, start=1):
        traces = methods[name]["weight_trace"]
        steps = traces[min(seed_index, len(traces) - 1)] if traces else []
        for i, task in enumerate(comparison["tasks"]):
            points = [(s["step"], s["weights"][task]) for s in steps if task in s["weights"]]
            fig.add_trace(go.Scatter(
                x=[p[0] for p in points], y=[p[1] for p in points], mode="lines", name=task,
                legendgroup=task, showlegend=row == 1, line=dict(color=TASK_COLOURS[i % len(TASK_COLOURS)], width=1.5),
                hovertemplate=f"{name} · {task}<br>step %{{x}}: weight %{{y:.3f}}<extra></extra>"), row=row, col=1)
    fig.update_xaxes(title_text="training step", row=len(names), col=1)
    fig.update_layout(legend=dict(orientation="h", y=-0.08, title="task"))
    return _style(fig, f"Task weights over training (seed {seed_index})", 180 * len(names) + 120)


def comparison_html(comparison: dict) -> str:
    """Both figures in one self-contained HTML page (plotly.js inlined: no network needed to view it)."""
    gains = method_gains(comparison).to_html(full_html=False, include_plotlyjs=True)
    weights = task_weights(comparison).to_html(full_html=False, include_plotlyjs=False)
    title = f"{comparison['dataset']}: {' + '.join(comparison['tasks'])}"
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body><h2>{title}</h2>{gains}{weights}</body></html>")
