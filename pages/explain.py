"""Page 4: what each task's head looks at — word, column or pixel attributions of a trained model."""
from __future__ import annotations

import numpy as np
import streamlit as st

from explorer.data.sentence import has_word_path
from explorer.attributions.explain import compare_attributions, explain, global_importance
from explorer.plots import attributions as aplots
from explorer.store.runs import list_runs
from pages import _state as state
from pages import _views as views

state.init()
st.title("Explain")
st.markdown("Which words, columns or pixels drove each task's prediction? Scores are integrated-gradients "
            "attributions (Captum) of one trained model, one task head at a time. Compare them with the "
            "single-task model of the same task to see whether sharing changed what the model looks at.")

ds = state.dataset()
if ds is None:
    st.stop()
TINY = state.tiny()


def _predictor(run):
    """Loaded models are kept per browser session (never shared between users), a few at a time."""
    cache = st.session_state.setdefault("explain_predictors", {})
    if run.id not in cache:
        if len(cache) >= 6:
            cache.pop(next(iter(cache)))
        cache[run.id] = run.predictor()
    return cache[run.id]


def _single_run(run, task: str):
    from explorer.store.runs import single_task_runs

    found = single_task_runs(run, task)
    seed = run.config["train"]["seed"]
    same_seed = [r for r in found if r.config["train"]["seed"] == seed]
    return (same_seed or found or [None])[0]


def _label(run) -> str:
    tasks = " + ".join(t["name"] for t in run.config["tasks"])
    tr = run.config["train"]
    return f"{tasks} · seed {tr['seed']} · {tr['method']} · hidden {tr['hidden']} · {run.config.get('created', '')}"


with state.friendly_errors("reading the run store"):
    fingerprint = ds.fingerprint()
    stored = list_runs()
    runs = [r for r in stored if r.config.get("fingerprint") == fingerprint]
# models trained on cached sentence embeddings (--encoder minilm) have no word path: say so, never fall back
frozen = [r for r in stored if not has_word_path(r.config.get("dataset"))
          and r.config.get("dataset", {}).get("name") == ds.source.get("name", ds.name)]
if frozen and ds.modality == "text":
    st.info(f"{len(frozen)} model(s) of **{ds.name}** were trained on cached "
            f"{', '.join(sorted({r.config['dataset']['encoder'] for r in frozen}))} sentence embeddings. They "
            "have no word path (the frozen encoder ran once, before training), so word attributions do not "
            "apply to them and they are not listed here.", icon=":material/info:")
if not runs:
    st.info(f"No model trained on **{ds.name}** yet. Train one on the **Train** page (it keeps the first seed's "
            "models), then come back.")
    st.page_link("pages/train.py", label="Go to Train", icon=":material/model_training:")
    st.stop()

multi = [r for r in runs if len(r.config["tasks"]) > 1]
options = multi + [r for r in runs if len(r.config["tasks"]) == 1]
ids = [r.id for r in options]
by_id = {r.id: r for r in options}
run_id = st.selectbox("Model", ids, format_func=lambda i: _label(by_id[i]), key="explain_run",
                      help="Multi-task models first, newest first.")
run = by_id[run_id]
tasks = [t["name"] for t in run.config["tasks"]]
train_cfg = run.config["train"]
split = ds.split(train_cfg.get("split_seed", 0), train_cfg.get("train_size", 1.0))
test_rows = split.test[: 12 if TINY else 60]


def _row_label(i: int) -> str:
    if ds.modality == "text":
        return f"row {i}: {ds.inputs[i][:90].replace(chr(10), ' ')}…"
    return f"row {i}"


def comparison_block(task_key: str, inputs) -> None:
    """The same input explained by the single-task and the multi-task model of one task."""
    if len(tasks) < 2:
        return
    st.subheader("Single-task vs multi-task")
    task = st.selectbox("Task", tasks, key=task_key)
    single = _single_run(run, task)
    if single is None:
        st.info(f"No single-task model of '{task}' with the same data and settings is in the run store. "
                "Training on the Train page keeps one.")
        return
    with st.spinner("Explaining with both models…"):
        cmp = compare_attributions(_predictor(single), _predictor(run), inputs, task)
    m1, m2 = st.columns(2)
    m1.metric("Rank correlation of the scores", "n/a" if cmp.similarity is None else f"{cmp.similarity:.2f}",
              help="Spearman correlation of the two models' scores: 1 = same ranking, 0 = unrelated.")
    m2.metric(f"Top-{cmp.k} agreement", "n/a" if cmp.top_overlap is None else f"{cmp.top_overlap:.0%}",
              help="Share of the most important features that both models rank in their top k.")
    if ds.modality == "text":
        a, b = st.columns(2)
        for col, label, expl, scores in ((a, "single-task", cmp.single, cmp.single_scores),
                                         (b, "multi-task", cmp.multi, cmp.multi_scores)):
            col.markdown(f"**{label}** model → `{expl.explained[task]}`"
                         + (f" ({expl.probability[task]:.0%})" if expl.probability.get(task) is not None else ""))
            col.html(views.word_html(cmp.features, list(scores)))
        fig = aplots.comparison_strip(cmp)
    elif ds.modality == "tabular":
        a, b = st.columns(2)
        fa, fb = aplots.waterfall(cmp.single, task, title="single-task model"), aplots.waterfall(
            cmp.multi, task, title="multi-task model")
        a.plotly_chart(fa, key="explain_cmp_single")
        b.plotly_chart(fb, key="explain_cmp_multi")
        fig = fb
    else:
        a, b = st.columns(2)
        fa = aplots.pixel_heatmaps(cmp.single, [task], title="single-task model")
        fig = aplots.pixel_heatmaps(cmp.multi, [task], title="multi-task model")
        a.plotly_chart(fa, key="explain_cmp_single")
        b.plotly_chart(fig, key="explain_cmp_multi")
    if ds.modality == "text":
        with st.expander("As a chart"):
            st.plotly_chart(fig, key="explain_cmp_fig")
    views.download_figure(fig, f"compare-{task}", key="explain_cmp_download")


with state.friendly_errors("explaining the model"):
    predictor = _predictor(run)
    if ds.modality == "text":
        OWN = -1
        pick = st.selectbox("Document (from the test split, which the model never trained on)", [OWN, *test_rows],
                            index=1, format_func=lambda i: "Type your own text…" if i == OWN else _row_label(i),
                            key="explain_doc")
        if pick == OWN:
            text = st.text_area("Your text", "Parliament votes on the new budget after a long debate.",
                                key="explain_text", height=120)
        else:
            text = ds.inputs[pick]
        with st.spinner("Computing attributions…"):
            attr = explain(predictor, text)
        st.subheader("Word attributions per task")
        st.html(views.colour_legend())
        per_row = 3
        for start in range(0, len(attr.tasks), per_row):
            cols = st.columns(min(per_row, len(attr.tasks)))
            for col, task in zip(cols, attr.tasks[start:start + per_row]):
                prob = attr.probability.get(task)
                truth = ""
                if pick != OWN:
                    t = ds.tasks[task]
                    y = ds.labels[task][pick]
                    truth = f" · true: `{t.classes[y] if y >= 0 else 'missing'}`" if t.is_classification else ""
                col.markdown(f"**{task}** → `{attr.explained[task]}`" + (f" ({prob:.0%})" if prob is not None else "")
                             + truth)
                col.html(views.word_html(attr.tokens, attr.scores[task], attr.known))
        fig = aplots.word_strip(attr)
        with st.expander("As a chart"):
            st.plotly_chart(fig, key="explain_words_fig")
        views.download_figure(fig, "word-attributions", key="explain_words_download")
        comparison_block("explain_cmp_task", text)

    elif ds.modality == "tabular":
        st.subheader("Feature importance per task")
        n_rows = st.select_slider("Rows sampled from the test split", [25, 50, 100, 200, 400],
                                  value=25 if TINY else 100, key="explain_rows")
        cache = st.session_state.setdefault("explain_importance", {})
        if (run.id, n_rows) not in cache:
            with st.spinner(f"Explaining {n_rows} rows for every task…"):
                cache[(run.id, n_rows)] = global_importance(predictor, ds, n_rows=n_rows)
        fig = aplots.importance_heatmap(cache[(run.id, n_rows)])
        st.plotly_chart(fig, key="explain_importance_fig")
        views.download_figure(fig, "feature-importance", key="explain_importance_download")
        st.subheader("One row, step by step")
        pick = st.selectbox("Row (test split)", list(test_rows), format_func=_row_label, key="explain_row")
        row = ds.subset_rows(np.array([pick]))
        st.dataframe(row, hide_index=True)
        attr = explain(predictor, row)
        task = st.selectbox("Task", tasks, key="explain_row_task")
        fig = aplots.waterfall(attr, task)
        st.plotly_chart(fig, key="explain_waterfall")
        views.download_figure(fig, f"waterfall-{task}", key="explain_waterfall_download")
        comparison_block("explain_cmp_task", row)

    else:
        st.subheader("Pixel attributions per task")
        pick = st.selectbox("Image (test split)", list(test_rows), format_func=_row_label, key="explain_image")
        attr = explain(predictor, ds.inputs[pick])
        fig = aplots.pixel_heatmaps(attr)
        st.plotly_chart(fig, key="explain_pixels")
        views.download_figure(fig, "pixel-attributions", key="explain_pixels_download")
        comparison_block("explain_cmp_task", ds.inputs[pick])
