"""Page 2: train tasks together and alone, with seeds, and see which tasks gained or lost."""
from __future__ import annotations

from dataclasses import replace

import pandas as pd
import streamlit as st

from pages import _jobs as jobs
from pages import _state as state
from pages import _views as views
from models.architectures import describe as describe_archs
from explorer.training import trainer as training
from explorer.training.device import available, describe, resolve_device
from explorer.jobs import format_seconds
from explorer.methods import REGISTRY as METHODS
from explorer.methods import names as method_names
from explorer.plots import training as plots
from explorer.training.trainer import TrainConfig
from explorer.relatedness.compare import plan_comparison
from explorer.relatedness.gains import CHANCE_LEVEL
from explorer.relatedness.together import mean_std, plan_together
from explorer.relatedness.transfer import combo_key

VERDICT = {"positive": "helped", "negative": "hurt", "unclear": "unclear"}
VERDICT_LONG = {"positive": "helped", "negative": "hurt", "unclear": "unclear: within seed noise"}
SIZES = [0.05, 0.1, 0.25, 0.5, 1.0]
WIDTHS = [8, 16, 32, 64, 128, 256]
# Defaults: the newcomer's first click must show gain bars within about a minute on a laptop CPU.
DEFAULTS = dict(epochs=10, seeds=3, train_size=1.0, hidden=64)
TINY = dict(epochs=1, seeds=2, train_size=0.05, hidden=16)

state.init()
st.title("Train")
st.markdown("Train the chosen tasks **together** in one shared network and each task **alone**, with several "
            "seeds. A task is *helped* or *hurt* only when the 95 % interval of its gain excludes 0; otherwise "
            "the difference is within seed noise and the verdict is *unclear*.")

ds = state.dataset()
if ds is None:
    st.stop()
D = TINY if state.tiny() else DEFAULTS
POOL = len(ds.split(0).train)


def _sizes_label(fraction: float) -> str:
    return f"{fraction:.0%} ({max(2, round(fraction * POOL)):,} rows)"


def settings_form(prefix: str, methods: bool = True,
                  chance_switch: bool = False) -> tuple[list[str], int, TrainConfig, str, bool]:
    tasks = state.task_picker(ds, f"{prefix}_tasks", "Tasks to train together",
                              help="Two or more tasks of the current dataset (change the dataset on the Data page).")
    c1, c2, c3 = st.columns(3)
    epochs = c1.slider("Epochs (at most; early stopping on validation loss)", 1, 50, D["epochs"],
                       key=f"{prefix}_epochs")
    seeds = c1.slider("Seeds", 1, 10, D["seeds"], key=f"{prefix}_seeds",
                      help="Every model is trained once per seed (initialisation and batch order).")
    if seeds == 1:
        c1.warning("With one seed the seed noise cannot be measured, so no gain can be told apart from "
                   "noise: every verdict will be *unclear*. Use 3 or more.", icon=":material/warning:")
    devices = ["auto", *available()]
    device = c2.selectbox("Device", devices, key=f"{prefix}_device",
                          format_func=lambda d: {"cpu": "CPU", "cuda": "GPU (CUDA)", "mps": "GPU (Apple MPS)"}.get(
                              d, "auto (GPU when present)"))
    c2.caption(f"Detected: **{describe(resolve_device('auto'))}**")
    method = "ew"
    if methods:
        method = c2.selectbox("Loss weighting method", method_names(), key=f"{prefix}_method",
                              format_func=lambda m: m.upper() if m != "ew" else "EW (equal weights)")
        c2.caption(METHODS[method].description)
    arch = c2.selectbox("Architecture", list(describe_archs()), key=f"{prefix}_arch",
                        help="How the tasks share: " + "; ".join(f"{k}: {v}" for k, v in describe_archs().items()))
    experts = state.experts_picker(c2, [arch], f"{prefix}_experts")
    encoder = state.encoder_picker(c2, ds, f"{prefix}_encoder")
    size = c3.select_slider("Training-set size", SIZES, value=D["train_size"], key=f"{prefix}_size",
                            format_func=_sizes_label,
                            help="Share of the training rows used; validation and test rows stay the same.")
    hidden = c3.select_slider("Hidden width of the shared layer", WIDTHS, value=D["hidden"], key=f"{prefix}_hidden",
                              help="A narrow shared layer makes tasks compete for capacity.")
    base = TrainConfig()
    with st.expander("More settings"):
        e1, e2, e3, e4 = st.columns(4)
        default_lr = getattr(training, "DEFAULT_LR", {}).get(ds.modality, base.lr)
        lr = e1.number_input("Learning rate", 1e-4, 0.5, value=None, format="%.4f", key=f"{prefix}_lr",
                             placeholder=f"default: {default_lr:g}" if default_lr else "default",
                             help="Empty: the default for this kind of data.")
        batch = e2.select_slider("Batch size", [16, 32, 64, 128, 256], value=base.batch_size, key=f"{prefix}_batch")
        patience = e3.slider("Early-stopping patience (0 = off)", 0, 10, base.patience, key=f"{prefix}_patience")
        split_seed = e4.number_input("Split seed", 0, 10_000, base.split_seed, key=f"{prefix}_split")
        keep_at_chance = chance_switch and st.checkbox(
            "Keep tasks at chance in Δm", value=False, key=f"{prefix}_keep_at_chance",
            help=f"A task whose single-task model is not above chance ({CHANCE_LEVEL}) normally gets no relative "
                 "gain (it would divide by noise) and stays out of Δm. Checked, it gets a gain relative to its raw "
                 "score instead (marked; its verdict stays unclear).")
    config = replace(base, epochs=epochs, train_size=float(size), hidden=hidden, batch_size=batch, patience=patience,
                     lr=None if lr is None else float(lr), split_seed=int(split_seed), device=device, method=method,
                     arch=arch, experts=experts)
    return tasks, seeds, config, encoder, keep_at_chance


# -- Train tab ---------------------------------------------------------------------------------
def kept_at_chance_warning(res: dict, chance: list[str]) -> None:
    if chance and res.get("keep_at_chance"):
        st.warning(f"At chance (single-task model not above chance: {CHANCE_LEVEL}): {', '.join(chance)}. Kept in "
                   "as asked: their gains are relative to the raw score, so they may be large and mean little; "
                   "they count in Δm, and their verdicts stay unclear.", icon=":material/warning:")


def show_train_result(res: dict) -> None:
    tasks, gains = res["tasks"], res["gains"]
    cfg = res["config"]
    st.subheader(f"Result: {' + '.join(tasks)}")
    st.caption(f"{res['dataset']} · {len(res['seeds'])} seed(s) · {cfg['epochs']} epochs at most · training size "
               f"{cfg['train_size']:g} · hidden {cfg['hidden']} · method {res['method']} · "
               f"{res.get('device', '')} · {format_seconds(res.get('seconds'))}")
    kept_at_chance_warning(res, [t for t, g in gains.items() if g.get("at_chance")])
    cols = st.columns(len(gains) + 1)
    dm = res.get("delta_m")
    cols[0].metric("Δm (mean gain over tasks)", "n/a" if dm is None else f"{dm:+.1f} %", border=True,
                   help="The multi-task literature's summary: the average relative gain of the tasks.")
    colours = {"positive": ("green", "up"), "negative": ("red", "down"), "unclear": ("gray", "off")}
    for col, (task, g) in zip(cols[1:], gains.items()):
        colour, arrow = colours.get(g["verdict"], ("gray", "off"))
        interval = "" if g.get("low") is None else f", 95 % interval [{g['low']:+.1f}, {g['high']:+.1f}] %"
        # a task at chance has no relative gain (explorer.relatedness.gains.headroom): its absolute difference
        shown = f"{g['mean']:+.1f} %" if g.get("mean") is not None else f"at chance, {g.get('diff') or 0:+.4f}"
        shown += " (at chance)" if g.get("at_chance") and g.get("mean") is not None else ""
        col.metric(task, shown, delta=VERDICT_LONG.get(g["verdict"], g["verdict"]),
                   delta_color=colour, delta_arrow=arrow, border=True,
                   help=f"Relative change of the test score when trained together vs alone; seed std "
                        f"{g.get('std') or 0:.1f}{interval}.")
    left, right = st.columns(2)
    fig = plots.gain_bars(gains)
    left.plotly_chart(fig, key="train_gain_bars")
    if res.get("together"):
        right.plotly_chart(plots.score_bars(res["single"], res["together"], res["metric"]), key="train_score_bars")
    rows = []
    for task, g in gains.items():
        interval = "n/a" if g.get("low") is None else f"[{g['low']:+.1f}, {g['high']:+.1f}] %"
        rows.append({"task": task, "metric": res["metric"].get(task, ""),
                     "alone": mean_std(res["single"].get(task) or [g.get("single_mean")]),
                     "together": mean_std(res.get("together", {}).get(task) or [g.get("multi_mean")]),
                     "gain": ("at chance" if g.get("mean") is None
                              else f"{g['mean']:+.1f} %" + (" (at chance)" if g.get("at_chance") else "")),
                     "difference": None if g.get("diff") is None else round(g["diff"], 4),
                     "baseline": None if g.get("baseline") is None else round(g["baseline"], 4),
                     "95 % interval": interval,
                     "p-value": None if g.get("p_value") is None else round(g["p_value"], 3),
                     "verdict": VERDICT.get(g["verdict"], g["verdict"])})
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    views.download_figure(fig, f"gains-{'+'.join(tasks)}", key="train_download_fig",
                          label="Download the gain chart (HTML)")


def show_saved(res: dict) -> None:
    """Loss curves of the first seed's models, and the run ids they are kept under."""
    tasks, history = res["tasks"], res.get("history") or {}
    together = history.get(combo_key(tasks))
    if not together:
        return
    histories = {"together": [together], "alone": [history[t] for t in tasks if t in history]}
    st.plotly_chart(plots.loss_curves(histories), key="train_loss_curves")
    saved = res.get("saved") or {}
    if saved:
        st.caption("Kept in the run store for the Explain and Models pages: "
                   + ", ".join(f"`{v}`" for v in saved.values()))


# -- Compare methods tab -----------------------------------------------------------------------
def show_methods_result(res: dict) -> None:
    from explorer.plots.methods import method_gains, task_weights

    st.subheader(f"Methods on {' + '.join(res['tasks'])}")
    kept_at_chance_warning(res, sorted({t for r in res["methods"].values() for t, g in r["gains"].items()
                                        if g.get("at_chance")}))
    st.plotly_chart(method_gains(res), key="methods_gains")
    st.plotly_chart(task_weights(res), key="methods_weights")


train_tab, methods_tab = st.tabs(["Train together vs alone", "Compare loss weighting methods"])
with train_tab:
    jobs.collect("train")
    finished = st.session_state.pop("train_result", None)
    if finished is not None:  # gains are in, and the training job kept the first seed's models
        st.session_state["train_shown"] = finished
        st.session_state["save_result"] = finished.get("saved") or {}
    tasks, seeds, config, encoder, keep_at_chance = settings_form("train", chance_switch=True)
    running = state.job("train") is not None
    go = st.button("Train", type="primary", key="train_go", disabled=running,
                   icon=":material/play_arrow:")
    if go:
        with state.friendly_errors("starting the training"):
            # checks the tasks, settings and the run store now; nothing trains until the job runs it
            plan = state.encoded_plan(ds, encoder, lambda data: plan_together(
                data, tasks, seeds, config.method, config, keep_at_chance=keep_at_chance))
            st.session_state.pop("train_shown", None)
            jobs.start("train", plan, "save")  # redraws with the Train button disabled and the progress showing
    jobs.show_outcome("train")
    if running:
        jobs.live("train", "Training")
    elif res := st.session_state.get("train_shown"):
        with state.friendly_errors("showing the result"):
            show_train_result(res)
            show_saved(res)

with methods_tab:
    jobs.collect("methods")
    st.markdown("Train the same tasks with several loss weighting or gradient methods (the single-task "
                "baselines once per seed) and compare each method's gains. Can a method remove negative transfer?")
    m_tasks, m_seeds, m_config, m_encoder, m_keep = settings_form("methods", methods=False, chance_switch=True)
    suggested = [m for m in ("ew", "uw", "pcgrad") if m in method_names()]
    picked = st.multiselect("Methods", method_names(), default=suggested,
                            key="methods_pick")
    m_running = state.job("methods") is not None
    m_go = st.button("Compare methods", type="primary", key="methods_go", disabled=m_running,
                     icon=":material/play_arrow:")
    if m_go:
        with state.friendly_errors("starting the comparison"):
            jobs.start("methods", state.encoded_plan(ds, m_encoder, lambda data: plan_comparison(  # checked, then run
                data, m_tasks, picked, m_seeds, m_config, keep_at_chance=m_keep)))
    jobs.show_outcome("methods")
    if m_running:
        jobs.live("methods", "Comparing methods")
    elif res := st.session_state.get("methods_result"):
        with state.friendly_errors("showing the comparison"):
            show_methods_result(res)
