"""A page's background job: its live progress, and its outcome moved into session state when it ends.

A job named ``name`` (``pages._state.start_job``) leaves, when it ends, its result under
``result_key`` (default ``{name}_result``), its failure under ``{name}_error`` or a
cancel note under ``{name}_note``; ``show_outcome`` draws the last two until
``forget_outcome`` clears them for the next start.
"""
from __future__ import annotations

import streamlit as st

from explorer.jobs import Job, format_seconds
from explorer.plots import training as plots
from pages import _state as state


def start(name: str, plan, *also_forget: str) -> None:
    """Run a checked library plan (``plan.run(progress)``, e.g. ``plan_together``) as the job ``name``.

    The job's result is the plan's result as plain data (``to_dict()``); the page redraws at once
    with the progress showing.
    """
    forget_outcome(name, *also_forget)
    state.start_job(name, Job(lambda progress: plan.run(progress).to_dict(), label=name))
    st.rerun()


def collect(name: str, result_key: str | None = None, cancelled: str = "Cancelled") -> None:
    """Move a finished job's outcome into session state, where the page shows it."""
    j = state.job(name)
    if j is None or j.running:
        return
    if j.status == "done":
        st.session_state[result_key or f"{name}_result"] = j.result
    elif j.status == "failed":
        st.session_state[f"{name}_error"] = j.error
    else:
        st.session_state[f"{name}_note"] = f"{cancelled} after {format_seconds(j.elapsed)}: nothing was kept."
    state.clear_job(name)


@st.fragment(run_every=1.0)
def live(name: str, what: str, losses: bool = True) -> None:
    """Redrawn every second while the job runs (with its training losses); hands over to the page when it ends."""
    j = state.job(name)
    if j is None:
        return
    if j.done:
        st.rerun(scope="app")
    st.progress(min(1.0, j.fraction), text=state.progress_text(j, what))
    if j.last_event is not None and j.last_event.message:
        st.caption(f"Now: {j.last_event.message}")
    points = [(100 * e.fraction, e.losses) for e in j.events() if e.losses] if losses else []
    if points:
        st.plotly_chart(plots.live_losses(points), key=f"{name}_live_losses")
    if j.cancel_requested:
        st.info("Cancelling… the current training step finishes, then it stops.")
    else:
        st.button("Cancel", key=f"{name}_cancel", on_click=j.cancel, icon=":material/stop_circle:")


def show_outcome(name: str) -> None:
    """The last failure or cancel of a job; it stays until the job is started again."""
    if msg := st.session_state.get(f"{name}_error"):
        st.error(state.for_browser(msg), icon=":material/error:")
    if msg := st.session_state.get(f"{name}_note"):
        st.info(msg, icon=":material/cancel:")


def forget_outcome(*names: str) -> None:
    for name in names:
        for suffix in ("error", "note", "result"):
            st.session_state.pop(f"{name}_{suffix}", None)
