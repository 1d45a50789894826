"""Page 5: the run store — every trained model, its metrics, delete, download a bundle."""
from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.colors import qualitative

from explorer.store.runs import delete_run, empty_trash, load_run, scan_store, trash_size
from pages import _state as state


def store_version(ids: list[str]) -> str:
    """Changes whenever a run appears or disappears, here or in another session."""
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:12]


def confirm_key(run_id: str, version: str) -> str:
    # The confirmation is its own widget per (run, store state): picking another run, or the store
    # changing under us, shows a fresh unticked box instead of carrying the tick over.
    return f"models_confirm:{version}:{run_id}"


def _delete(run_id: str, version: str) -> None:
    # A callback runs before the page is drawn. It re-checks that this exact run was confirmed and
    # that the store is as it was when the box was ticked, so a stale tick deletes nothing.
    with state.friendly_errors("deleting the run"):
        if not st.session_state.get(confirm_key(run_id, version)):
            st.toast(f"Not deleted: tick “Yes, delete {run_id}” first.")
            return
        good, damaged = scan_store()
        if store_version([r.id for r in good] + [d.id for d in damaged]) != version:
            st.toast("Not deleted: the run store changed since you confirmed. Check the list and confirm again.")
            return
        delete_run(run_id)
        st.toast(f"Deleted {run_id} (moved to the trash; “Empty trash” removes it for good)")
    st.session_state.pop("models_bundle", None)


def _empty_trash() -> None:
    with state.friendly_errors("emptying the trash"):
        st.toast(f"Removed {empty_trash()} deleted run(s) for good")


state.init()
st.title("Models")
st.markdown("Every model trained here or with the command line is saved in the run store: "
            "its weights, settings, test metrics and training history.")

with state.friendly_errors("reading the run store"):
    runs, damaged = scan_store()
    version = store_version([r.id for r in runs] + [d.id for d in damaged])
    if damaged:
        with st.expander(f"{len(damaged)} damaged entr{'y' if len(damaged) == 1 else 'ies'} in the run store",
                         expanded=not runs, icon=":material/warning:"):
            st.dataframe(pd.DataFrame([{"entry": d.id, "damaged": d.reason} for d in damaged]), hide_index=True)
            broken = st.selectbox("Entry", [d.id for d in damaged], key="models_damaged")
            sure = st.checkbox(f"Yes, delete {broken}", key=confirm_key(broken, version))
            st.button("Delete entry", key="models_delete_damaged", disabled=not sure, on_click=_delete,
                      args=(broken, version))
    if (in_trash := trash_size()):
        c1, c2 = st.columns([3, 1])
        c1.caption(f"{in_trash} deleted run(s) in the trash; they can still be moved back by hand.")
        c2.button("Empty trash", key="models_empty_trash", on_click=_empty_trash)
    if not runs:
        st.info("No trained models yet. Train some on the **Train** page, and they appear here.")
        st.page_link("pages/train.py", label="Go to Train", icon=":material/model_training:")
        st.stop()

    table = pd.DataFrame([{
        "run": r.id, "created": r.config.get("created", ""), "dataset": r.config["dataset"].get("name", "?"),
        "tasks": ", ".join(t["name"] for t in r.config["tasks"]), "kind": "multi-task" if len(r.config["tasks"]) > 1
        else "single-task", "seed": r.config["train"].get("seed"), "method": r.config["train"].get("method"),
        "epochs (best)": r.config.get("best_epoch"), "device": r.config.get("device", ""),
        "scores": ", ".join(f"{t} {m.get(m['primary'], float('nan')):.3f}" for t, m in r.metrics["test"].items()),
    } for r in runs])
    datasets = sorted(table["dataset"].unique())
    f1, f2 = st.columns(2)
    pick_ds = f1.multiselect("Dataset", datasets, default=datasets, key="models_datasets")
    kinds = f2.multiselect("Kind", ["multi-task", "single-task"], default=["multi-task", "single-task"],
                           key="models_kinds")
    view = table[table["dataset"].isin(pick_ds) & table["kind"].isin(kinds)]
    st.caption(f"{len(view)} of {len(table)} runs. Select rows to compare them (default: the newest six).")
    selection = st.dataframe(view, hide_index=True, on_select="rerun", selection_mode="multi-row",
                             key="models_table")
    rows = selection.selection.rows if selection is not None else []
    chosen = [view.iloc[i]["run"] for i in rows] or list(view["run"][:6])  # default: the newest few

    if chosen:
        st.subheader("Compare")
        picked = [load_run(r) for r in chosen]
        fig = go.Figure()
        palette = qualitative.Safe
        for k, run in enumerate(picked):
            metrics = run.metrics["test"]
            names = list(metrics)
            fig.add_trace(go.Bar(name=run.id, x=names, y=[m.get(m["primary"]) for m in metrics.values()],
                                 marker_color=palette[k % len(palette)],
                                 hovertemplate="%{x}: %{y:.3f}<extra>" + run.id + "</extra>"))
        base = {}
        for run in picked:  # the baseline of a task depends on the split, which these runs share by default
            for task, m in run.metrics.get("baseline", {}).items():
                base.setdefault(task, m)
        if base:
            fig.add_trace(go.Scatter(name="predicting the majority class / the mean", x=list(base),
                                     y=[m.get(m["primary"]) for m in base.values()], mode="markers",
                                     marker=dict(symbol="line-ew-open", size=40, color="#d73027", line_width=3)))
        fig.update_layout(barmode="group", template="plotly_white", font=dict(size=15), height=420,
                          title="Primary test score per task (macro-F1 or R²; higher is better)",
                          legend=dict(orientation="h", y=-0.2), margin=dict(l=10, r=10, t=60, b=10))
        st.plotly_chart(fig, key="models_compare")
        detail = pd.DataFrame([{"run": run.id, "task": t, **{k: v for k, v in m.items() if k != "primary"}}
                               for run in picked for t, m in run.metrics["test"].items()])
        st.dataframe(detail, hide_index=True)

        st.subheader("Download or delete")
        target = st.selectbox("Run", chosen, key="models_target")
        c1, c2 = st.columns(2)
        with c1:
            if st.button("Prepare bundle (weights, ONNX, model card)", key="models_export"):
                from explorer.store.export import export_bundle  # torch.onnx is slow to import: only when exporting
                # Its own error box, so a failed export still leaves the delete controls on the page.
                with state.friendly_errors("exporting the run"), st.spinner("Exporting…"), \
                        tempfile.TemporaryDirectory() as tmp:
                    out = Path(tmp) / f"{target}.zip"
                    export_bundle(load_run(target), out)
                    st.session_state["models_bundle"] = (target, out.read_bytes())
            bundle = st.session_state.get("models_bundle")
            if bundle and bundle[0] == target:
                st.download_button("Download bundle (.zip)", bundle[1], file_name=f"{target}.zip",
                                   mime="application/zip", key="models_download", type="primary")
        with c2:
            sure = st.checkbox(f"Yes, delete {target}", key=confirm_key(target, version))
            st.button("Delete run", key="models_delete", disabled=not sure, on_click=_delete,
                      args=(target, version))
