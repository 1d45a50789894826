"""Small presentation helpers shared by pages: coloured words, figure downloads."""
from __future__ import annotations

import html
import re

import streamlit as st

POSITIVE = (33, 102, 172)   # blue: pushes towards the explained class (as in explorer.plots.attributions)
NEGATIVE = (178, 24, 43)    # red: pushes against it


def word_html(tokens: list[str], scores: list[float], known: list[bool] | None = None, max_words: int = 400) -> str:
    """The words of a document as inline text, each with a background by its score.

    Colours are scaled by this document's largest |score| for the task, so the
    strongest word is fully coloured; hovering a word shows its raw score.
    """
    top = max((abs(s) for s in scores[:max_words]), default=0.0) or 1.0
    spans = []
    for i, (word, score) in enumerate(zip(tokens[:max_words], scores[:max_words])):
        alpha = min(1.0, abs(score) / top)
        r, g, b = POSITIVE if score >= 0 else NEGATIVE
        colour = "#fff" if alpha > 0.55 else "#1a1d23"
        unknown = known is not None and i < len(known) and not known[i]
        style = (f"background: rgba({r},{g},{b},{alpha:.2f}); color: {colour}; padding: 1px 3px; "
                 f"border-radius: 3px; line-height: 1.9;" + (" text-decoration: underline dotted;" if unknown else ""))
        title = f"{score:+.4f}" + (" (not in the vocabulary)" if unknown else "")
        spans.append(f'<span style="{style}" title="{title}">{html.escape(word)}</span>')
    more = ""
    if len(tokens) > max_words:
        more = f' <span style="color:#777">… {len(tokens) - max_words} more words</span>'
    return ('<div style="font-size: 1.02rem; max-height: 420px; overflow-y: auto; padding: 6px; '
            f'border: 1px solid #e3e6ea; border-radius: 6px;">{" ".join(spans)}{more}</div>')


def colour_legend() -> str:
    return ('<span style="background: rgba(33,102,172,0.8); color: #fff; padding: 1px 6px; border-radius: 3px">'
            'pushes towards the prediction</span> &nbsp; <span style="background: rgba(178,24,43,0.8); color: #fff; '
            'padding: 1px 6px; border-radius: 3px">pushes against it</span> &nbsp; stronger colour = larger effect')


def download_figure(fig, name: str, key: str, label: str = "Download figure (HTML)") -> None:
    """A self-contained interactive HTML file of a plotly figure (the chart's toolbar also saves a PNG)."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "figure"
    # A callable is run only when the button is clicked: the 4 MB page is not sent on every rerun.
    st.download_button(label, lambda: fig.to_html(include_plotlyjs=True, full_html=True), file_name=f"{slug}.html",
                       mime="text/html", key=key, icon=":material/download:")
