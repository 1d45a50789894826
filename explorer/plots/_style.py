"""The look shared by every figure of the app: one font, one template, one task palette."""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.colors import qualitative

FONT = dict(size=15)  # readable on a projector
TASK_COLOURS = qualitative.Safe  # colour-blind safe; task i keeps colour i in every figure


def style(fig: go.Figure, title: str, height: int, top: int = 60, **layout) -> go.Figure:
    """Apply the common title, template, font and margins; ``top`` leaves room for the title."""
    fig.update_layout(title=dict(text=title, x=0, xanchor="left"), template="plotly_white", font=FONT,
                      height=height, margin=dict(l=10, r=10, t=top, b=10), **layout)
    return fig


def num(v) -> float:
    """A JSON number or null as a float, NaN for null (plotly leaves NaN points out)."""
    return float("nan") if v is None else float(v)
