"""The task relatedness explorer: `streamlit run app.py`.

This file is the frame around every page: the navigation and the sidebar.
Each page script in pages/ holds layout and state only; the work is done
by the ``explorer`` library.

Streamlit also reads a ``pages/`` folder beside the entry script as its legacy
multipage mode; ``pages/_state.init()`` (called first by every page) switches
that off when a fresh server's first request is a deep link.
"""
from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # `streamlit run /elsewhere/app.py` must still find explorer/ and pages/
    sys.path.insert(0, str(ROOT))

from pages import _state as state  # noqa: E402

st.set_page_config(page_title="Task relatedness explorer", page_icon=":material/hub:", layout="wide")

PAGES = [
    st.Page(ROOT / "pages" / "data.py", title="Data", icon=":material/table_chart:", default=True),
    st.Page(ROOT / "pages" / "train.py", title="Train", icon=":material/model_training:"),
    st.Page(ROOT / "pages" / "relatedness.py", title="Task relatedness", icon=":material/hub:"),
    st.Page(ROOT / "pages" / "explain.py", title="Explain", icon=":material/visibility:"),
    st.Page(ROOT / "pages" / "models.py", title="Models", icon=":material/inventory_2:"),
]

page = st.navigation(PAGES)
state.init()
with st.sidebar:
    st.markdown("### Task relatedness explorer")
    st.caption("Which tasks help each other when one shared network learns them together?")
with state.friendly_errors(f"showing the {page.title} page"):
    page.run()
