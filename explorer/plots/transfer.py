"""Figures of a relatedness sweep: the transfer matrix, the affinity estimates, gains by data size.

Every builder takes a ``explorer.relatedness.sweep.SweepReport`` (or its ``to_dict()``)
and returns a plotly figure. Matrices keep the report's orientation: row = the
task whose score is measured, column = its partner.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.plots._style import num as _num, style as _base_style
from explorer.plots.training import TASK_COLOURS, VERDICT_COLOURS, VERDICT_WORDS, gain_bars
from explorer.relatedness.transfer import combo_tasks

DIVERGING = "RdBu"  # red = hurt, blue = helped; white = no change
MARK = {"negative": dict(symbol="square-open", color="#000000", size=1.0),
        "positive": dict(symbol="circle-open", color="#1a1a1a", size=0.55)}
AFFINITY_TITLES = {
    "lookahead": "Lookahead affinity (TAG, the optimiser's own step): Z(partner→task) = 1 − L(after)/L(before)",
    "grad_dot": "Loss-normalised gradient dot product ⟨g_task, g_partner⟩ / L_task",
    "grad_cosine": "Gradient cosine similarity on the shared layers",
    "conflict_share": "Share of steps where the gradients conflict (negative dot product)",
}


def _style(fig: go.Figure, title: str, height: int) -> go.Figure:
    return _base_style(fig, title, height, top=70)


def _get(report, name: str, default=None):
    return report.get(name, default) if isinstance(report, dict) else getattr(report, name, default)


def cell(matrix, i: int, j: int):
    """``matrix[i][j]``, or None where a report's matrix is missing or shorter (older or partial reports)."""
    return matrix[i][j] if matrix and i < len(matrix) and j < len(matrix[i]) else None


def _fmt(v, spec: str = "+.1f", unit: str = " %") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:{spec}}{unit}"


def _gain_record(report, task: str, partner: str) -> dict | None:
    """The report's gain record of ``task`` trained with ``partner`` (any key order), or None."""
    for key, per_task in (_get(report, "gains") or {}).items():
        if set(combo_tasks(key)) == {task, partner}:
            return per_task.get(task)
    return None


# Marker size in pixels that roughly outlines one cell: constant, because the figure's height
# grows 70 px per task, so a cell keeps about the same size.
CELL_SIZE = 50


def _heatmap(tasks: Sequence[str], values: list[list], *, text: list[list[str]], hover: list[list[str]],
             colorscale=DIVERGING, zmid: float | None = 0.0, zrange: tuple[float, float] | None = None,
             colorbar_title: str = "") -> go.Figure:
    flat = [abs(_num(v) - (zmid or 0.0)) for row in values for v in row if v is not None]
    if zrange is None:
        span = max(flat) if flat else 1.0
        span = span if span > 0 else 1.0
        centre = zmid or 0.0
        zrange = (centre - span, centre + span)
    fig = go.Figure(go.Heatmap(
        z=[[None if v is None else float(v) for v in row] for row in values], x=list(tasks), y=list(tasks),
        zmin=zrange[0], zmax=zrange[1], colorscale=colorscale, xgap=2, ygap=2,
        text=text, texttemplate="%{text}", textfont=dict(size=14), hovertext=hover, hoverinfo="text",
        colorbar=dict(title=dict(text=colorbar_title, side="right"))))
    fig.update_xaxes(title="partner (trained together with)", side="bottom", showgrid=False, constrain="domain")
    fig.update_yaxes(title="task (score measured)", autorange="reversed", showgrid=False,
                     scaleanchor="x", constrain="domain")
    return fig


def transfer_heatmap(report, title: str = "Transfer matrix: gain of each task when trained with a partner"):
    """Mean gain (%) of the row task with the column partner, coloured on a scale centred on 0.

    Cells whose 95 % interval lies below 0 (negative transfer) get a black
    square border and ▼; cells clear of the noise on the positive side get ▲.
    The hover gives mean ± seed std, the interval and the number of seeds. A task at chance shows
    "chance" and the absolute difference, or, kept in (``keep_at_chance``), its gain marked †.
    """
    tasks = list(_get(report, "tasks"))
    gain, std = _get(report, "pair_gain"), _get(report, "pair_gain_std")
    verdict, interval = _get(report, "pair_verdict"), _get(report, "pair_interval") or []
    n_seeds = len(_get(report, "seeds") or [])
    arrows = {"negative": " ▼", "positive": " ▲"}
    pair_q, pair_seeds, pair_mde, pair_stop = (_get(report, k) or []
                                               for k in ("pair_q", "pair_seeds", "pair_mde", "pair_stop"))
    # tasks at chance kept in by the user: a gain relative to the raw score, marked †
    kept = set(_get(report, "at_chance") or []) if _get(report, "keep_at_chance") else set()

    text, hover = [], []
    for i, a in enumerate(tasks):
        text.append([])
        hover.append([])
        for j, b in enumerate(tasks):
            v = gain[i][j]
            if i == j:
                text[i].append("")
                hover[i].append(f"{a}: a task is not its own partner")
                continue
            rec = _gain_record(report, a, b) if v is None else None
            if rec is not None:  # single-task model at chance: the absolute difference, no relative gain
                ver = rec.get("verdict") or "unclear"
                text[i].append(f"chance{arrows.get(ver, '')}")
                hover[i].append(f"<b>{a}</b> trained with <b>{b}</b><br>{rec.get('note', '')}<br>"
                                f"difference {_fmt(rec.get('diff'), '+.4f', '')} (baseline "
                                f"{_fmt(rec.get('baseline'), '.3f', '')}), q-value "
                                f"{_fmt(rec.get('q_value'), '.3f', '')}<br>verdict: {VERDICT_WORDS.get(ver, ver)}")
                continue
            if v is None:
                text[i].append("–")
                hover[i].append(f"<b>{a}</b> with <b>{b}</b>: not trained")
                continue
            ver = verdict[i][j] or "unclear"
            lo_hi = interval[i][j] if i < len(interval) and interval[i][j] else None
            span = ("n/a (needs 2+ seeds)" if not lo_hi or lo_hi[0] is None
                    else f"[{lo_hi[0]:+.1f}, {lo_hi[1]:+.1f}] %")
            mark = "†" if a in kept else ""
            text[i].append(f"{v:+.1f}{mark}{arrows.get(ver, '')}")
            n_here = cell(pair_seeds, i, j) or n_seeds
            hover[i].append(f"<b>{a}</b> trained with <b>{b}</b>"
                            + ("<br>† at chance, kept in: relative to the raw score" if mark else "")
                            + f"<br>gain {v:+.1f} % ± {_num(std[i][j]):.1f} "
                            f"(seed std, n = {n_here} seeds)<br>95 % interval {span}<br>"
                            f"q-value {_fmt(cell(pair_q, i, j), '.3f', '')} · detectable from "
                            f"{_fmt(cell(pair_mde, i, j), '.1f')}<br>"
                            + (f"seeds stopped: {cell(pair_stop, i, j)}<br>" if cell(pair_stop, i, j) else "")
                            + f"verdict: {VERDICT_WORDS.get(ver, ver)}")
    fig = _heatmap(tasks, gain, text=text, hover=hover, colorbar_title="gain %")
    size = CELL_SIZE
    for ver, style in MARK.items():
        cells = [(b, a) for i, a in enumerate(tasks) for j, b in enumerate(tasks)
                 if i != j and verdict[i][j] == ver]
        fig.add_trace(go.Scatter(
            x=[c[0] for c in cells] or [None], y=[c[1] for c in cells] or [None], mode="markers",
            marker=dict(symbol=style["symbol"], size=size * style["size"], color=style["color"],
                        line=dict(width=3, color=style["color"])),
            name=f"{ver} transfer (95 % interval {'below' if ver == 'negative' else 'above'} 0)",
            hoverinfo="skip", showlegend=True))
    controls = set(_get(report, "controls") or [])
    if controls:  # control tasks in italics with a ⚑, so no one reads them as tasks to train
        ticks = [f"<i>⚑ {t}</i>" if t in controls else t for t in tasks]
        fig.update_xaxes(tickmode="array", tickvals=tasks, ticktext=ticks)
        fig.update_yaxes(tickmode="array", tickvals=tasks, ticktext=ticks)
    fig.update_layout(legend=dict(orientation="h", y=-0.22))
    return _style(fig, title, 160 + 70 * len(tasks) + 80)


def affinity_heatmap(report, name: str = "lookahead") -> go.Figure:
    """One of the one-run estimates (``lookahead``, ``grad_dot``, ``grad_cosine``, ``conflict_share``) as a heatmap."""
    affinity = _get(report, "affinity") or {}
    if name not in AFFINITY_TITLES:
        raise ValueError(f"unknown affinity estimate {name!r}; use one of {', '.join(AFFINITY_TITLES)}")
    tasks = list(affinity.get("tasks") or _get(report, "tasks"))
    values = affinity.get(name) or [[None] * len(tasks) for _ in tasks]
    text, hover = [], []
    for i, a in enumerate(tasks):
        text.append([])
        hover.append([])
        for j, b in enumerate(tasks):
            v = values[i][j]
            if i == j or v is None:
                text[i].append("")
                hover[i].append("" if i == j else f"{a} / {b}: no measurement")
                continue
            if name == "lookahead":
                text[i].append(f"{v:.1e}")
                hover[i].append(f"the optimiser's step on <b>{b}</b>'s loss changes <b>{a}</b>'s loss by "
                                f"{-v:+.2e} (relative; Z = {v:.2e}, > 0 means it helped)")
            elif name == "grad_dot":
                text[i].append(f"{v:.1e}")
                hover[i].append(f"<b>{a}</b> and <b>{b}</b>: mean ⟨g, g⟩ / L = {v:+.2e} (> 0: a gradient step on "
                                f"{b} lowers {a}'s loss)")
            elif name == "grad_cosine":
                text[i].append(f"{v:+.2f}")
                hover[i].append(f"<b>{a}</b> and <b>{b}</b>: mean gradient cosine {v:+.3f}")
            else:
                text[i].append(f"{v:.0%}")
                hover[i].append(f"<b>{a}</b> and <b>{b}</b>: gradients conflicted on {v:.0%} of measured steps")
    if name == "grad_cosine":
        fig = _heatmap(tasks, values, text=text, hover=hover, zrange=(-1.0, 1.0), colorbar_title="cosine")
    elif name == "conflict_share":
        # 50 % is what unrelated (random) gradient directions give; red = more conflict than that.
        fig = _heatmap(tasks, values, text=text, hover=hover, colorscale="RdBu_r", zmid=0.5, zrange=(0.0, 1.0),
                       colorbar_title="share")
    else:
        fig = _heatmap(tasks, values, text=text, hover=hover, colorbar_title="Z")
    fig.update_xaxes(title="partner (its update / its gradient)")
    return _style(fig, AFFINITY_TITLES[name], 160 + 70 * len(tasks))


def combination_gain_bars(report, combination: Sequence[str]) -> go.Figure:
    """Per-task gain of one trained combination, with 95 % interval whiskers, coloured by verdict."""
    wanted = set(combination)
    gains = _get(report, "gains") or {}
    key = next((k for k in gains if set(combo_tasks(k)) == wanted), None)
    if key is None:
        raise ValueError(f"combination {'+'.join(combination)} was not trained in this sweep")
    delta = (_get(report, "delta_m") or {}).get(key)
    return gain_bars(gains[key], title=f"{key}: gain per task (Δm = {_fmt(delta)})")


def delta_m_bars(report) -> go.Figure:
    """Δm (mean gain over its tasks) of every trained combination, best first."""
    delta = {k: v for k, v in (_get(report, "delta_m") or {}).items() if v is not None}
    keys = sorted(delta, key=lambda k: delta[k], reverse=True)
    gains = _get(report, "gains") or {}
    colours, hover = [], []
    for k in keys:
        verdicts = [g.get("verdict") for g in gains.get(k, {}).values()]
        worst = "negative" if "negative" in verdicts else "positive" if verdicts and all(
            v == "positive" for v in verdicts) else "unclear"
        colours.append(VERDICT_COLOURS[worst])
        per = "<br>".join(f"{t}: {_fmt(g.get('mean'))} ({VERDICT_WORDS.get(g.get('verdict'), '')})"
                          for t, g in gains.get(k, {}).items())
        hover.append(f"<b>{k}</b><br>Δm {delta[k]:+.1f} %<br>{per}")
    fig = go.Figure(go.Bar(x=[k.replace("+", " + ") for k in keys], y=[delta[k] for k in keys],
                           marker_color=colours, hovertext=hover, hoverinfo="text",
                           text=[f"{delta[k]:+.1f}" for k in keys], textposition="outside", cliponaxis=False))
    fig.add_hline(y=0, line_color="#333", line_width=1)
    fig.update_yaxes(title="Δm: mean gain over the combination's tasks (%)")
    fig.update_layout(showlegend=False)
    return _style(fig, "Δm of every combination (red: some task suffers negative transfer; "
                       "green: every task clearly gains)", 440)


def gain_curves(report) -> go.Figure:
    """Gain of each task with each partner as a function of the training-set size (one panel per task)."""
    by_fraction = _get(report, "by_fraction") or {}
    tasks = list(_get(report, "tasks"))
    entries = sorted(by_fraction.values(), key=lambda e: e["train_rows"])
    cols = max(1, min(2, len(tasks)))
    rows = max(1, -(-len(tasks) // cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"gain of {t}" for t in tasks],
                        horizontal_spacing=0.08, vertical_spacing=0.14 if rows > 1 else 0.0)
    for j, partner in enumerate(tasks):
        colour = TASK_COLOURS[j % len(TASK_COLOURS)]
        for i, task in enumerate(tasks):
            if i == j:
                continue
            xs, ys, lo, hi, hover = [], [], [], [], []
            for e in entries:
                v = e["pair_gain"][i][j]
                if v is None:
                    continue
                span = (e.get("pair_interval") or [[None] * len(tasks)] * len(tasks))[i][j]
                low, high = (span if span and span[0] is not None else (v, v))
                xs.append(e["train_rows"])
                ys.append(v)
                lo.append(max(0.0, v - low))
                hi.append(max(0.0, high - v))
                hover.append(f"{task} with {partner}, {e['train_rows']} training rows<br>gain {v:+.1f} % "
                             f"± {_num(e['pair_gain_std'][i][j]):.1f} (seed std)<br>"
                             f"{VERDICT_WORDS.get(e['pair_verdict'][i][j], '')}")
            if not xs:
                continue
            at = dict(row=i // cols + 1, col=i % cols + 1)
            # the 95 % interval as a band: where it leaves zero, the gain at that size is resolved
            fig.add_trace(go.Scatter(x=xs + xs[::-1], y=[y + h for y, h in zip(ys, hi)]
                                     + [y - l for y, l in zip(ys, lo)][::-1],
                                     fill="toself", fillcolor=colour, opacity=0.15, line=dict(width=0),
                                     legendgroup=partner, showlegend=False, hoverinfo="skip"), **at)
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=f"with {partner}",
                                     legendgroup=partner, showlegend=i == (1 if j == 0 else 0),
                                     line=dict(color=colour, width=2), marker=dict(size=8),
                                     hovertext=hover, hoverinfo="text"), **at)
    fig.add_hline(y=0, line_color="#333", line_width=1)
    fig.update_xaxes(type="log")
    for k in range(len(tasks) - cols, len(tasks)):  # axis titles on the bottom row only: no clash with titles
        fig.update_xaxes(title_text="training rows (log scale)", row=k // cols + 1, col=k % cols + 1)
    fig.update_yaxes(title_text="gain %")
    fig.update_layout(legend=dict(orientation="h", y=-0.12))
    return _style(fig, "Gain against the amount of training data (bands: 95 % interval)", 330 * rows + 120)


def higher_order_scatter(report) -> go.Figure:
    """Trained gain in groups of 3+ tasks against Standley's estimate from the pairs (diagonal = exact)."""
    points = [(key, t, v) for key, per_task in (_get(report, "higher_order") or {}).items()
              for t, v in per_task.items() if v.get("estimate") is not None and v.get("trained") is not None]
    xs, ys = [p[2]["estimate"] for p in points], [p[2]["trained"] for p in points]
    fig = go.Figure(go.Scatter(
        x=xs, y=ys, mode="markers", marker=dict(size=11, color=[VERDICT_COLOURS.get(p[2]["verdict"], "#999")
                                                                for p in points]),
        hovertext=[f"<b>{t}</b> in {key}<br>trained {v['trained']:+.1f} % ± {_num(v['trained_std']):.1f}"
                   f"<br>estimate from pairs {v['estimate']:+.1f} %" for key, t, v in points],
        hoverinfo="text", showlegend=False))
    lim = max([abs(v) for v in xs + ys] or [1.0]) * 1.1
    fig.add_trace(go.Scatter(x=[-lim, lim], y=[-lim, lim], mode="lines", line=dict(dash="dot", color="#666"),
                             hoverinfo="skip", showlegend=False))
    fig.update_xaxes(title="estimate: mean of the task's pair gains in the group (%)", range=[-lim, lim])
    fig.update_yaxes(title="trained gain in the group (%)", range=[-lim, lim])
    return _style(fig, "Higher-order groups: trained gain vs the estimate from pairs", 460)
