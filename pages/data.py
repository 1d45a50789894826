"""Page 1: choose the data (a built-in dataset or your CSV) and see its tasks."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from explorer.datasets.csv import load_csv, read_header
from explorer.errors import ExplorerError
from explorer.plots import data as plots
from pages import _state as state

state.init()
st.title("Data")
st.markdown("Pick a dataset and the tasks to explore. Each task is one label column; the explorer trains "
            "a shared network on several tasks at once and measures whether each task gains or loses "
            "compared with a network trained on it alone.")

BUILTIN, UPLOAD = "Built-in dataset", "Upload a CSV"
src = st.session_state["source"]
choice = st.radio("Data source", [BUILTIN, UPLOAD], horizontal=True, key="data_source_kind",
                  index=1 if src["kind"] == "csv" else 0)


if choice == BUILTIN:
    options = state.builtin_names()
    current = src["name"] if src["kind"] == "builtin" and src["name"] in options else state.DEFAULT
    name = st.selectbox("Dataset", options, index=options.index(current), key="data_builtin",
                        format_func=lambda n: f"{n} — {state.describe_builtin(n)}")
    if src["kind"] != "builtin" or name != src["name"]:
        state.set_builtin(name)
else:
    up = st.file_uploader("CSV file (UTF-8, one header row; each label column becomes a task)", type=["csv"],
                          key="data_upload")
    errors = st.container()  # upload errors appear right under the uploader
    if up is not None:
        data = up.getvalue()
        with state.friendly_errors("reading the CSV file"), errors:
            cols = read_header(data)  # the loader's own header check (count, duplicates)
            left, right = st.columns(2)
            kind = left.radio("Input", ["Text column", "Feature columns"], horizontal=True, key="csv_input_kind")
            if kind == "Text column":
                text_col = left.selectbox("Text column", cols, key="csv_text_col")
                feature_cols = None
                label_options = [c for c in cols if c != text_col]
            else:
                text_col = None
                feature_cols = left.multiselect("Feature columns", cols, key="csv_feature_cols")
                label_options = [c for c in cols if c not in feature_cols]
            label_cols = right.multiselect("Label columns (one task each)", label_options, key="csv_label_cols")
            if st.button("Load this CSV", type="primary", key="csv_load"):
                ds = load_csv(data=data, text_col=text_col, feature_cols=feature_cols,
                                  label_cols=label_cols, name=Path(up.name).stem or "csv")
                state.set_csv(ds)
                st.success(f"Loaded {up.name}: {len(ds):,} rows, {len(ds.tasks)} tasks.")
    if st.session_state["source"]["kind"] != "csv":
        st.info("Upload a CSV file and choose its columns, or switch back to a built-in dataset. "
                "Until then the pages use the built-in default dataset.")

ds = state.dataset()
if ds is None:
    st.stop()

st.divider()
st.subheader(f"{ds.name}")
st.caption(ds.description)
c1, c2, c3, c4 = st.columns([2, 2, 2, 3])
c1.metric("Rows", f"{len(ds):,}")
c2.metric("Input", ds.modality)
c3.metric("Tasks", len(ds.tasks))
split = ds.split(0)
c4.metric("Train / val / test rows", f"{len(split.train):,} / {len(split.val):,} / {len(split.test):,}")

tasks = state.task_picker(ds, "data_tasks", "Tasks to explore (used by the other pages)",
                          help="Pick two or more tasks to see whether they help each other.")
if len(tasks) < 2:
    st.warning("Pick at least two tasks: the explorer compares training them together with training each alone.")

summary = pd.DataFrame([{"task": r["task"], "kind": r["kind"], "classes": r["n_classes"],
                         "label coverage": r["coverage"], "description": r["description"]}
                        for r in ds.summary()])
left, right = st.columns([3, 2])
left.dataframe(summary, hide_index=True, column_config={
    "label coverage": st.column_config.ProgressColumn("label coverage", format="percent", min_value=0,
                                                      max_value=1)})
right.plotly_chart(plots.coverage_bars(ds), key="data_coverage")

st.subheader("Tasks")
shown = tasks or ds.task_names
tabs = st.tabs(shown)
for tab, name in zip(tabs, shown):
    t = ds.tasks[name]
    with tab:
        a, b = st.columns([1, 2])
        a.markdown(f"**{name}** — {t.kind}" + (f", {len(t.classes)} classes" if t.is_classification else ""))
        a.caption(t.description or "")
        row = next(r for r in ds.summary() if r["task"] == name)
        a.markdown(f"Label coverage: **{row['coverage']:.0%}** of rows"
                   + ("" if row["coverage"] == 1 else " (rows without a label are skipped for this task)"))
        if t.is_classification:
            a.markdown("Classes: " + ", ".join(f"`{c}`" for c in t.classes))
        b.plotly_chart(plots.class_balance(ds, name), key=f"data_balance_{name}")

st.subheader("Example rows")
if ds.modality == "image":
    st.plotly_chart(plots.image_examples(ds, seed=1, caption_task=(tasks or ds.task_names)[0]), key="data_images")
st.dataframe(plots.example_rows(ds, seed=1), hide_index=True)
st.page_link("pages/train.py", label="Next: train the chosen tasks together", icon=":material/arrow_forward:")
