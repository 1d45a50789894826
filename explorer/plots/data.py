"""Figures that describe a dataset's tasks: class balance, label coverage, value spread."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from explorer.data.dataset import Dataset
from explorer.plots._style import style
from explorer.data.tasks import coverage, has_label

BAR = "#3b6fb6"
MISSING = "#c9ccd1"


def _style(fig: go.Figure, title: str, height: int) -> go.Figure:
    return style(fig, title, height, top=50, showlegend=False)


def class_balance(dataset: Dataset, task: str) -> go.Figure:
    """Rows per class (classification) or a histogram of values (regression); missing labels in grey."""
    t = dataset.tasks[task]
    y = dataset.labels[task]
    known = has_label(y)
    missing = int((~known).sum())
    if t.is_classification:
        counts = np.bincount(y[known], minlength=len(t.classes))
        names = list(t.classes) + (["(missing)"] if missing else [])
        values = counts.tolist() + ([missing] if missing else [])
        colours = [BAR] * len(t.classes) + ([MISSING] if missing else [])
        share = [v / len(y) for v in values]
        fig = go.Figure(go.Bar(x=values, y=names, orientation="h", marker_color=colours,
                               text=[f"{v:,} ({s:.0%})" for v, s in zip(values, share)], textposition="auto",
                               hovertemplate="%{y}: %{x:,} rows<extra></extra>"))
        fig.update_yaxes(autorange="reversed", automargin=True)
        fig.update_xaxes(title="rows")
        height = 120 + 28 * len(names)
        return _style(fig, f"{task}: rows per class", min(height, 600))
    fig = go.Figure(go.Histogram(x=y[known], nbinsx=40, marker_color=BAR,
                                 hovertemplate="%{x}: %{y:,} rows<extra></extra>"))
    fig.update_xaxes(title=task)
    fig.update_yaxes(title="rows")
    note = f" ({missing:,} missing)" if missing else ""
    return _style(fig, f"{task}: distribution of values{note}", 320)


def coverage_bars(dataset: Dataset, tasks: list[str] | None = None) -> go.Figure:
    """Share of rows that carry each task's label: tasks with gaps train on fewer rows."""
    tasks = tasks or dataset.task_names
    cov = [coverage(dataset.labels[t]) for t in tasks]
    fig = go.Figure(go.Bar(x=tasks, y=cov, marker_color=[BAR if c == 1 else "#e39b3b" for c in cov],
                           text=[f"{c:.0%}" if c == 1 or c < 0.99 else f"{c:.1%}" for c in cov],
                           textposition="outside",
                           hovertemplate="%{x}: %{y:.1%} of rows labelled<extra></extra>"))
    fig.update_yaxes(range=[0, 1.15], tickformat=".0%", title="rows with a label")
    return _style(fig, "Label coverage per task", 320)


def example_rows(dataset: Dataset, n: int = 8, seed: int = 0, max_chars: int = 220) -> "pd.DataFrame":
    """A few random rows as a table: the input (text cut short, or feature values) and each label by name."""
    import pandas as pd

    rows = np.sort(np.random.default_rng(seed).choice(len(dataset), size=min(n, len(dataset)), replace=False))
    if dataset.modality == "text":
        texts = dataset.subset_rows(rows)
        table = pd.DataFrame({"text": [t[:max_chars].replace("\n", " ") + ("…" if len(t) > max_chars else "")
                                       for t in texts]})
    elif dataset.modality == "tabular":
        table = dataset.subset_rows(rows).copy()
    else:
        table = pd.DataFrame({"image": [f"{dataset.inputs.shape[1]}×{dataset.inputs.shape[2]} pixels"] * len(rows)})
    table.insert(0, "row", rows)
    for name, t in dataset.tasks.items():
        y = dataset.labels[name][rows]
        if t.is_classification:
            table[name] = [t.classes[v] if v >= 0 else None for v in y]
        else:
            table[name] = [None if np.isnan(v) else float(v) for v in y]
    return table.reset_index(drop=True)


def image_examples(dataset: Dataset, n: int = 8, seed: int = 0, caption_task: str | None = None) -> go.Figure:
    """Small multiples of a few images (image datasets), captioned with one task's label."""
    from plotly.subplots import make_subplots

    rows = np.sort(np.random.default_rng(seed).choice(len(dataset), size=min(n, len(dataset)), replace=False))
    task = caption_task or dataset.task_names[0]
    t = dataset.tasks[task]
    titles = []
    for r in rows:
        v = dataset.labels[task][r]
        titles.append(f"row {r}: {t.classes[v] if t.is_classification and v >= 0 else v}")
    fig = make_subplots(rows=1, cols=len(rows), subplot_titles=titles, horizontal_spacing=0.02)
    for i, r in enumerate(rows):
        fig.add_trace(go.Heatmap(z=dataset.inputs[r][::-1], colorscale="Greys", showscale=False,
                                 hovertemplate="pixel value %{z:.2f}<extra></extra>"), row=1, col=i + 1)
        fig.update_yaxes(scaleanchor="x" if i == 0 else f"x{i + 1}", row=1, col=i + 1)  # square pixels
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _style(fig, f"Example images ({task} as caption)", 220)
