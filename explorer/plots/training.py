"""Figures of one training comparison: gains with their seed noise, scores, loss curves."""
from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.plots._style import TASK_COLOURS, num as _num, style as _style

VERDICT_COLOURS = {"positive": "#1a9850", "negative": "#d73027", "unclear": "#9aa0a6"}
VERDICT_WORDS = {"positive": "helped", "negative": "hurt", "unclear": "unclear (within seed noise)"}
TOGETHER, ALONE = "#3b6fb6", "#c9ccd1"


def gain_bars(gains: dict[str, dict], title: str = "Gain of training together, per task") -> go.Figure:
    """One bar per task: mean relative gain (%) over seeds, whiskers = 95 % interval.

    ``gains`` maps task -> a gain record (``explorer.relatedness.gains.Gain.to_dict()``:
    mean, std, low, high, p_value, verdict, n_multi, n_single, ...). Without an
    interval (one seed) the whisker is the seed standard deviation, and the
    verdict is always "unclear": one seed cannot separate an effect from noise.
    """
    tasks = list(gains)
    means = [_num(gains[t].get("mean")) for t in tasks]
    plus, minus = [], []
    for t, m in zip(tasks, means):
        low, high = _num(gains[t].get("low")), _num(gains[t].get("high"))
        if math.isnan(low) or math.isnan(high):
            low = high = m
        plus.append(max(0.0, high - m))
        minus.append(max(0.0, m - low))
    verdicts = [gains[t].get("verdict", "unclear") for t in tasks]
    hover = []
    for t, v in zip(tasks, verdicts):
        g = gains[t]
        interval = ("n/a (needs 2+ seeds)" if g.get("low") is None
                    else f"[{_num(g['low']):+.1f}, {_num(g['high']):+.1f}] %")
        p = "n/a" if g.get("p_value") is None else f"{_num(g['p_value']):.3f}"
        hover.append(f"<b>{t}</b>: {VERDICT_WORDS.get(v, v)}<br>gain {_num(g.get('mean')):+.1f} % "
                     f"± {_num(g.get('std')):.1f} (seed std)<br>95 % interval {interval}<br>p = {p}<br>"
                     f"seeds: {g.get('n_multi', '?')} together, {g.get('n_single', '?')} alone")
    fig = go.Figure(go.Bar(
        x=tasks, y=means, marker_color=[VERDICT_COLOURS.get(v, "#9aa0a6") for v in verdicts],
        error_y=dict(type="data", symmetric=False, array=plus, arrayminus=minus, color="#333", thickness=2,
                     width=8),
        text=[f"{m:+.1f} %" for m in means], textposition="outside", cliponaxis=False,
        hovertext=hover, hoverinfo="text"))
    fig.add_hline(y=0, line_color="#333", line_width=1)
    fig.update_yaxes(title="gain vs training alone (%)", zeroline=True)
    fig.data[0].showlegend = False
    for v, colour in VERDICT_COLOURS.items():  # a legend for the colours, not for the bars
        fig.add_trace(go.Bar(x=[None], y=[None], marker_color=colour, name=VERDICT_WORDS[v], showlegend=True))
    fig.update_layout(showlegend=True, legend=dict(orientation="h", y=-0.15), barmode="overlay")
    return _style(fig, title, 420)


def score_bars(single: dict[str, list[float]], multi: dict[str, list[float]], metric: dict[str, str]) -> go.Figure:
    """Test score per task, alone vs together, mean over seeds with ± std whiskers and each seed as a dot."""
    tasks = list(multi)
    fig = go.Figure()
    # A numeric x axis (task i at x = i) so the bars and their seed dots share the same offsets.
    for label, scores, colour, offset in (("alone", single, ALONE, -0.2), ("together", multi, TOGETHER, 0.2)):
        xs = [i + offset for i in range(len(tasks))]
        means = [_mean(scores.get(t, [])) for t in tasks]
        stds = [_std(scores.get(t, [])) for t in tasks]
        fig.add_trace(go.Bar(name=label, x=xs, y=means, width=0.38, marker_color=colour,
                             error_y=dict(type="data", array=stds, color="#333", thickness=1.5),
                             customdata=tasks, hovertemplate="%{customdata} " + label + ": %{y:.3f}<extra></extra>"))
        dots_x, dots_y = [], []
        for i, t in enumerate(tasks):
            for v in scores.get(t, []):
                dots_x.append(i + offset)
                dots_y.append(v)
        fig.add_trace(go.Scatter(x=dots_x, y=dots_y, mode="markers", showlegend=False,
                                 marker=dict(color="#222", size=7, line=dict(color="#fff", width=1)),
                                 hovertemplate="one seed: %{y:.3f}<extra>" + label + "</extra>"))
    fig.update_layout(legend=dict(orientation="h", y=-0.2))
    fig.update_xaxes(tickvals=list(range(len(tasks))), ticktext=[f"{t}<br>({metric.get(t, '')})" for t in tasks],
                     range=[-0.6, len(tasks) - 0.4])
    fig.update_yaxes(title="test score (higher is better)", rangemode="tozero")
    return _style(fig, "Test score per task: alone vs together (each dot is one seed)", 420)


def loss_curves(histories: dict[str, list[list[dict]]], part: str = "val") -> go.Figure:
    """Per-epoch loss of each task, one panel per task, one colour per model kind.

    ``histories`` maps a label (e.g. "together", "alone") to the training
    histories of its seeds; each is a list of ``{"epoch", "train", "val"}``.
    Every seed is its own thin line so the spread between seeds stays visible.
    """
    tasks: list[str] = []
    for runs in histories.values():
        for h in runs:
            for row in h:
                for t in row.get(part, {}):
                    if t not in tasks:
                        tasks.append(t)
    cols = max(1, min(3, len(tasks)))
    rows = max(1, -(-len(tasks) // cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=tasks or ["(no losses yet)"])
    colours = {label: c for label, c in zip(histories, [TOGETHER, "#e39b3b", *TASK_COLOURS])}
    for label, runs in histories.items():
        shown = False
        for h in runs:
            for i, t in enumerate(tasks):
                xs = [row["epoch"] for row in h if t in row.get(part, {})]
                ys = [row[part][t] for row in h if t in row.get(part, {})]
                if not xs:
                    continue
                fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", line=dict(color=colours[label], width=2),
                                         marker=dict(size=5), name=label, legendgroup=label, showlegend=not shown,
                                         hovertemplate=f"{label} · {t}<br>epoch %{{x}}: %{{y:.3f}}<extra></extra>"),
                              row=i // cols + 1, col=i % cols + 1)
                shown = True
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(legend=dict(orientation="h", y=-0.2))
    what = "Validation" if part == "val" else "Training"
    return _style(fig, f"{what} loss per task and epoch (one line per seed)", 300 * rows + 80)


def live_losses(points: list[tuple[float, dict[str, float]]], smoothing: float = 0.9) -> go.Figure:
    """Training loss per task while training runs: (x, {task: loss}) points, exponentially smoothed."""
    series: dict[str, tuple[list[float], list[float]]] = {}
    ema: dict[str, float] = {}
    for x, losses in points:
        for t, v in losses.items():
            if v is None or not math.isfinite(v):
                continue
            ema[t] = v if t not in ema else smoothing * ema[t] + (1 - smoothing) * v
            xs, ys = series.setdefault(t, ([], []))
            xs.append(x)
            ys.append(ema[t])
    fig = go.Figure()
    for i, (t, (xs, ys)) in enumerate(series.items()):
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=t,
                                 line=dict(color=TASK_COLOURS[i % len(TASK_COLOURS)], width=2)))
    fig.update_xaxes(title="progress (% of all training steps)")
    fig.update_yaxes(title="training loss (smoothed)")
    fig.update_layout(legend=dict(orientation="h", y=-0.25))
    return _style(fig, "Training loss per task, live", 340)


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def _std(xs: list[float]) -> float:
    if len(xs) < 2:
        return 0.0
    m = _mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))
