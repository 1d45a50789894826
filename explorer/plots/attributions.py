"""Figures of attributions: word heat strips, task x feature heatmaps, waterfalls, pixel maps.

Colours are diverging and centred on zero: blue pushes towards the explained
class (or a higher value), red against it. Each task is scaled by its own
largest |score| so tasks with different output ranges share one colour bar;
hovering shows the raw score.
"""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.attributions.explain import Comparison, ImageAttribution, Importance, RowAttribution, TextAttribution
from explorer.plots._style import style as _style

DIVERGING = "RdBu"          # red = against, blue = for
SEQUENTIAL = "Blues"
UP, DOWN, TOTAL = "#2166ac", "#b2182b", "#7f7f7f"


def _scaled(scores) -> np.ndarray:
    s = np.asarray(scores, dtype=float)
    top = np.abs(s).max() if s.size else 0.0
    return s / top if top > 0 else s


def _label(attr, task: str) -> str:
    explained, prob = attr.explained[task], attr.probability[task]
    if isinstance(explained, float):
        return f"{task}: {explained:.3g}"
    return f"{task}: {explained}" + (f" ({prob:.0%})" if prob is not None else "")


def word_strip(attr: TextAttribution, tasks: list[str] | None = None, wrap: int = 14,
               max_words: int = 280, title: str | None = None) -> go.Figure:
    """The document's words in reading order, one panel per task, each word coloured by its score.

    Lines wrap every ``wrap`` words; a short text is one strip per task.
    """
    tasks = tasks or attr.tasks
    rows = [(_label(attr, t), attr.scores[t]) for t in tasks]
    return _strips(attr.tokens, rows, wrap, max_words,
                   title or f"Which words drove each prediction ({attr.method})")


def comparison_strip(comparison: Comparison, wrap: int = 14, max_words: int = 280) -> go.Figure:
    """The same words coloured by the single-task and by the multi-task model of one task."""
    c = comparison
    sim = "n/a" if c.similarity is None else f"{c.similarity:.2f}"
    rows = [(f"single-task: {c.single.explained[c.task]}", c.single_scores),
            (f"multi-task: {c.multi.explained[c.task]}", c.multi_scores)]
    return _strips(c.features, rows, wrap, max_words,
                   f"{c.task}: single- vs multi-task attributions (rank correlation {sim})")


def _strips(words: list[str], rows: list[tuple[str, list[float]]], wrap: int, max_words: int,
            title: str) -> go.Figure:
    words = list(words)[:max_words]
    n_lines = max(1, math.ceil(len(words) / wrap))
    height = 90 + len(rows) * (40 + 28 * n_lines)
    fig = make_subplots(rows=len(rows), cols=1, subplot_titles=[label for label, _ in rows],
                        vertical_spacing=40 / height if len(rows) > 1 else 0.0)  # 40 px between tasks
    for i, (_, scores) in enumerate(rows, start=1):
        raw = np.asarray(scores, dtype=float)[: len(words)]
        scaled = _scaled(raw)
        z = np.full((n_lines, wrap), np.nan)
        text = np.full((n_lines, wrap), "", dtype=object)
        custom = np.full((n_lines, wrap), np.nan)
        for j, (w, s, r) in enumerate(zip(words, scaled, raw)):
            z[j // wrap, j % wrap], text[j // wrap, j % wrap], custom[j // wrap, j % wrap] = s, w, r
        fig.add_trace(go.Heatmap(z=z, text=text, customdata=custom, texttemplate="%{text}", zmin=-1, zmax=1,
                                 colorscale=DIVERGING, showscale=i == 1, xgap=2, ygap=2,
                                 colorbar=dict(title="score / max", len=0.6),
                                 hovertemplate="%{text}<br>score %{customdata:.4f}<extra></extra>"),
                      row=i, col=1)
        fig.update_yaxes(autorange="reversed", showticklabels=False, row=i, col=1)
        fig.update_xaxes(showticklabels=False, row=i, col=1)
    return _style(fig, title, height=height)


def importance_heatmap(importance: Importance, normalise: bool = True, max_features: int = 40,
                       title: str | None = None) -> go.Figure:
    """Tasks x features, mean |attribution| over the sampled rows.

    With ``normalise`` each task's row is divided by its largest value, so the
    colours compare features within a task; hover shows the raw mean. Image
    importance is drawn as one pixel map per task.
    """
    imp = importance
    if imp.shape is not None:
        return _pixel_grid([(t, imp.matrix[i].reshape(imp.shape)) for i, t in enumerate(imp.tasks)],
                           None, SEQUENTIAL, title or f"Pixel importance per task ({imp.method}, {imp.n_rows} images)",
                           symmetric=False, scale_title="share of max")
    order = np.argsort(-(imp.matrix / np.maximum(imp.matrix.max(1, keepdims=True), 1e-12)).max(0),
                       kind="stable")[:max_features]
    raw = imp.matrix[:, order]
    z = raw / np.maximum(raw.max(1, keepdims=True), 1e-12) if normalise else raw
    features = [imp.features[i] for i in order]
    fig = go.Figure(go.Heatmap(z=z, x=features, y=imp.tasks, customdata=raw, colorscale=SEQUENTIAL,
                               zmin=0, colorbar=dict(title="share of max" if normalise else "mean |attr|"),
                               hovertemplate="%{y} / %{x}<br>mean |attribution| %{customdata:.4g}<extra></extra>",
                               xgap=1, ygap=1))
    fig.update_xaxes(tickangle=-45)
    return _style(fig, title or f"Feature importance per task ({imp.method}, {imp.n_rows} rows)",
                  height=160 + 40 * len(imp.tasks))


def waterfall(attr: RowAttribution, task: str, top_k: int = 10, title: str | None = None) -> go.Figure:
    """From the baseline output to this row's output, one step per column (largest first).

    Columns beyond ``top_k`` are merged into one step; whatever the method did
    not attribute (the integration error, or interactions for ablation) is a
    separate step, so the bars always end at the model's output.
    """
    scores = np.asarray(attr.scores[task], dtype=float)
    order = np.argsort(-np.abs(scores), kind="stable")
    shown, rest = order[:top_k], order[top_k:]
    labels = ["baseline"] + [f"{attr.features[i]} = {_short(attr.values[i])}" for i in shown]
    values = [attr.base[task]] + scores[shown].tolist()
    if len(rest):
        labels.append(f"{len(rest)} other columns")
        values.append(float(scores[rest].sum()))
    gap = attr.output[task] - attr.base[task] - float(scores.sum())
    if abs(gap) > 1e-6 * max(1.0, abs(attr.output[task])):
        labels.append("not attributed")
        values.append(gap)
    labels.append("output")
    values.append(attr.output[task])
    measures = ["absolute"] + ["relative"] * (len(values) - 2) + ["total"]
    fig = go.Figure(go.Waterfall(orientation="h", y=labels, x=values, measure=measures,
                                 increasing=dict(marker_color=UP), decreasing=dict(marker_color=DOWN),
                                 totals=dict(marker_color=TOTAL),
                                 hovertemplate="%{y}<br>%{x:.4g}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    unit = "value" if isinstance(attr.explained[task], float) else f"logit of '{attr.explained[task]}'"
    fig.update_xaxes(title=unit)
    return _style(fig, title or f"Contributions to {_label(attr, task)} ({attr.method})",
                  height=140 + 28 * len(labels))


def pixel_heatmaps(attr: ImageAttribution, tasks: list[str] | None = None, title: str | None = None) -> go.Figure:
    """The image, then one pixel attribution map per task (blue = for the explained class)."""
    tasks = tasks or attr.tasks
    return _pixel_grid([(_label(attr, t), attr.scores[t]) for t in tasks], attr.image, DIVERGING,
                       title or f"Which pixels drove each prediction ({attr.method})", symmetric=True,
                       scale_title="score / max")


def _pixel_grid(panels: list[tuple[str, np.ndarray]], image: np.ndarray | None, colorscale: str, title: str,
                symmetric: bool, scale_title: str) -> go.Figure:
    titles = (["input"] if image is not None else []) + [label for label, _ in panels]
    cols = min(len(titles), 6)
    rows = math.ceil(len(titles) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.03,
                        vertical_spacing=0.12 if rows > 1 else 0.0)
    k = 0
    if image is not None:
        fig.add_trace(go.Heatmap(z=image, colorscale="Greys", showscale=False,
                                 hovertemplate="row %{y}, col %{x}<br>value %{z:.2f}<extra></extra>"), row=1, col=1)
        k = 1
    for label, grid in panels:
        grid = np.asarray(grid, dtype=float)
        scaled = _scaled(grid) if symmetric else grid / max(grid.max(), 1e-12)
        r, c = divmod(k, cols)
        fig.add_trace(go.Heatmap(z=scaled, customdata=grid, colorscale=colorscale, zmin=-1 if symmetric else 0,
                                 zmax=1, showscale=k == (1 if image is not None else 0),
                                 colorbar=dict(title=scale_title, len=0.6),
                                 hovertemplate="row %{y}, col %{x}<br>score %{customdata:.4g}<extra></extra>"),
                      row=r + 1, col=c + 1)
        k += 1
    for i in range(k):  # square pixels: each panel's y axis is scaled to its own x axis
        fig.update_yaxes(scaleanchor=f"x{i + 1 if i else ''}", row=i // cols + 1, col=i % cols + 1)
    fig.update_yaxes(autorange="reversed", showticklabels=False)
    fig.update_xaxes(showticklabels=False, constrain="domain")
    return _style(fig, title, height=60 + 230 * rows)


def _short(value) -> str:
    if isinstance(value, float):
        return "missing" if math.isnan(value) else f"{value:.4g}"
    return str(value)[:24]
