"""Page 3: the transfer matrix of a set of tasks, the cheap estimates beside it, and the best grouping."""
from __future__ import annotations

import json
from dataclasses import replace
from math import comb

import pandas as pd
import streamlit as st

from pages import _jobs as jobs
from pages import _state as state
from pages import _views as views
from explorer.training.device import available, describe, resolve_device
from explorer.errors import ExplorerError
from explorer.jobs import Job, format_seconds
from explorer.plots import transfer as tplots
from explorer.relatedness.controls import untrustworthy
from explorer.relatedness.report_html import render_html
from explorer.relatedness.adaptive import EFFECT, describe as describe_adaptive
from explorer.relatedness.affinity import agreement
from explorer.relatedness.gains import CHANCE_LEVEL
from explorer.relatedness.by_arch import run_arch_sweep
from explorer.relatedness.sweep import DEFAULT_BUDGET_SECONDS, DEFAULT_MAX_SEEDS, DEFAULT_SEEDS, parse_report
from models.architectures import describe as describe_archs
from explorer.training.trainer import TrainConfig

DEFAULTS = dict(epochs=10, seeds=DEFAULT_SEEDS, max_seeds=DEFAULT_MAX_SEEDS, hidden=64)
TINY = dict(epochs=1, seeds=2, max_seeds=2, hidden=16, train_size=0.05)
SIZES = [0.05, 0.1, 0.25, 0.5, 1.0]
# The page's demo (issue 14 item 6): on news every resolved cell of the default sweep is negative
# transfer; hotels with a tenth of its labels shows a task helped and one hurt (README "The demo").
DEMO = {"name": "hotels", "tasks": ["market_segment", "customer_type", "meal", "reserved_room_type"], "size": 0.1}
ESTIMATE_NAMES = {"lookahead": "Lookahead (TAG, Adam step)", "grad_dot": "Gradient dot product / loss",
                  "grad_cosine": "Gradient cosine", "conflict_share": "Conflict share"}
SCORED_NAMES = {**ESTIMATE_NAMES, "surrogate": "Surrogate (trained random groups)"}

state.init()
st.title("Task relatedness")
st.markdown("Which tasks help which? The sweep trains every task **alone** and every **pair** together (and, "
            "optionally, larger groups), each with several seeds. The transfer matrix shows the gain of each "
            "task (row) when trained with a partner (column); each multi-task model is paired with the "
            "single-task model of the same seed, and only cells clear of the noise at a 5 % false discovery "
            "rate over the whole matrix (Benjamini–Hochberg q-value) are marked as positive (▲) or negative "
            "(▼) transfer. Controls (⚑) check the verdicts: a shuffled task can only hurt. Below it, cheap "
            "estimates (four from one training run, one from a few trained random groups), with their rank "
            "correlation to the trained gains: how far you can trust them.")

ds = state.dataset()
if ds is None:
    st.stop()
D = TINY if state.tiny() else DEFAULTS


def sweep_work(tasks, order, seeds, config, sizes, affinity, controls=None, max_seeds=None, effect=EFFECT,
               backend="local", address=None, archs=None, encoder="bow", keep_at_chance=False):
    def work(data, progress):
        return run_arch_sweep(data, tasks, archs=archs, order=order, seeds=seeds, config=config, train_sizes=sizes,
                              affinity=affinity, progress=progress, controls=controls, max_seeds=max_seeds,
                              effect=effect, budget_seconds=DEFAULT_BUDGET_SECONDS, backend=backend,
                              address=address, keep_at_chance=keep_at_chance).to_dict()
    return state.encoded_work(ds, encoder, work)


def show_architectures(rep: dict) -> None:
    """Compare architectures: each one's matrix summary side by side, and the cells that changed verdict."""
    by_arch = rep.get("by_arch") or {}
    if len(by_arch) < 2:
        return
    st.markdown("#### Compare architectures")
    encoder = (rep.get("dataset_source") or {}).get("encoder")
    st.caption("Each architecture's matrix is trained with its own single-task baselines (the same architecture "
               "with one head). The matrices above are the first architecture's."
               + (f" Text encoder: {encoder} (frozen sentence embeddings)." if encoder else ""))
    st.dataframe(pd.DataFrame([{"architecture": a, "mean Δm (%)": e.get("mean_delta_m"),
                                "resolved cells": f"{e.get('resolved')}/{e.get('cells')}",
                                "positive": e.get("positive"), "negative": e.get("negative"),
                                "seconds": e.get("seconds"), "how it shares": e.get("description", "")}
                               for a, e in by_arch.items()]), hide_index=True)
    tasks = rep["tasks"]
    cols = st.columns(len(by_arch))
    for col, (a, e) in zip(cols, by_arch.items()):
        col.markdown(f"**{a}**: gain of row task with column partner (%)")
        col.dataframe(pd.DataFrame(e["pair_gain"], index=tasks, columns=tasks).round(1))
    changes = rep.get("arch_changes") or []
    if changes:
        st.markdown(f"{len(changes)} cell(s) change verdict between architectures:")
        st.dataframe(pd.DataFrame([{"task": c["task"], "with": c["partner"], **c["verdicts"]} for c in changes]),
                     hide_index=True)
    else:
        st.caption("No cell changes verdict between the architectures.")


def show_estimates(rep: dict) -> None:
    """How far each estimate tracks the trained gains: Spearman with a bootstrap interval, best first."""
    scored = rep.get("estimates") or {n: {**d, "spearman": d.get("value")}
                                      for n, d in (rep.get("proxy_spearman_detail") or {}).items()}
    if not rep.get("affinity") and not any(d.get("spearman") is not None for d in scored.values()):
        return  # no estimates in this sweep (the one-run run and the surrogate were off)
    st.markdown("**How far to trust the estimates:** rank correlation with the trained pair gains "
                "(bootstrap 95 % interval over the cells), the most faithful first")
    rows = []
    for n, d in scored.items():
        rho, span = d.get("spearman"), d.get("interval")
        sign = d.get("expected_sign") or 1
        rows.append({"estimate": SCORED_NAMES.get(n, n), "Spearman ρ": "n/a" if rho is None else f"{rho:+.2f}",
                     "95 % interval": "" if not span else f"[{span[0]:+.2f}, {span[1]:+.2f}]",
                     "ρ within task": "" if d.get("spearman_within_task") is None
                     else f"{d['spearman_within_task']:+.2f}",
                     "p-value": "" if d.get("p_value") is None else f"{d['p_value']:.2f}",
                     "cells compared": d.get("n_pairs"), "a useful estimate has": {1: "ρ > 0", -1: "ρ < 0"}[sign],
                     "what it is": d.get("description", ""), "note": d.get("reason") or "",
                     "_order": -agreement(d) if rho is not None else float("inf")})
    rows.sort(key=lambda r: r.pop("_order"))
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    st.caption("ρ within task ranks each task's partners only (each row's mean taken out of both sides): a task "
               "whose gains are all high, e.g. from a low single-task baseline, does not count.")
    held = (scored.get("surrogate") or {}).get("held_out") or {}
    if held.get("mae") is not None:
        st.caption(f"Surrogate, fitted on {len(scored['surrogate'].get('fitted_on', []))} trained groups: on a "
                   f"held-out group it misses by {held['mae']:.1f} points (a constant misses by "
                   f"{held['constant_mae']:.1f}).")


def show_report(rep: dict) -> None:
    tasks = rep["tasks"]
    st.subheader(f"{rep.get('dataset', '')}: {', '.join(tasks)}")
    n_models = len(rep.get("combinations", [])) * len(rep.get("seeds", []))
    st.caption(f"{n_models} models ({len(rep.get('combinations', []))} combinations × {len(rep.get('seeds', []))} "
               f"seeds) · training rows {rep.get('train_rows', '?'):,} · mode {rep.get('mode', '')} · "
               f"{rep.get('device', '')} · {format_seconds(rep.get('seconds'))}")
    if rep.get("adaptive"):  # hover a cell of the matrix for its seeds and why they stopped
        st.caption(describe_adaptive(rep["adaptive"]).capitalize() + ".")
    if rep.get("controls"):
        bad = untrustworthy(rep)
        if bad:
            st.error(f"A shuffled control came out positive ({'; '.join(bad)}). A task with permuted labels "
                     "cannot help: the verdicts of this setting are not to be trusted. Use more seeds, more "
                     "epochs or more data.", icon=":material/gpp_bad:")
        else:
            st.success(f"Controls ({', '.join(rep['controls'])}): no shuffled control came out positive.",
                       icon=":material/verified:")
    if rep.get("at_chance") and rep.get("keep_at_chance"):
        st.warning(f"At chance (single-task model not above chance: {CHANCE_LEVEL}): "
                   f"{', '.join(rep['at_chance'])}. Kept in as asked: their gains are relative to the raw score, "
                   "the task is at chance, so they may be large and mean little; they count in Δm and the "
                   "groupings, and their verdicts stay unclear.", icon=":material/warning:")
    elif rep.get("at_chance"):
        st.info(f"At chance (single-task model not above chance: {CHANCE_LEVEL}): {', '.join(rep['at_chance'])}. "
                "Their cells show the absolute difference, not a relative gain, and they stay out of Δm and the "
                "groupings.", icon=":material/info:")
    # the matrix takes the page's width: in half of it six tasks' cells shrank under their verdict marks
    fig = tplots.transfer_heatmap(rep)
    st.plotly_chart(fig, key="rel_heatmap")
    views.download_figure(fig, "transfer-matrix", key="rel_heatmap_download")
    names = [n for n in ESTIMATE_NAMES if (rep.get("affinity") or {}).get(n) is not None]
    if names:
        name = st.segmented_control("One-run estimate", names, default=names[0], format_func=ESTIMATE_NAMES.get,
                                    key="rel_estimate", required=True)
        st.plotly_chart(tplots.affinity_heatmap(rep, name or names[0]), key="rel_affinity")
    else:
        st.info("No one-run estimates in this sweep (turn on 'Cheap estimates').")
    show_estimates(rep)
    if len(rep.get("delta_m") or {}) > 1:
        st.plotly_chart(tplots.delta_m_bars(rep), key="rel_delta_m")
    if rep.get("by_fraction"):
        st.plotly_chart(tplots.gain_curves(rep), key="rel_curves")
    if rep.get("order", 2) > 2 and rep.get("higher_order"):
        with state.friendly_errors("drawing the higher-order comparison"):
            st.plotly_chart(tplots.higher_order_scatter(rep), key="rel_higher")

    st.subheader("Best grouping for a budget of k models")
    groupings = rep.get("groupings") or {}
    if groupings:
        ks = sorted(int(k) for k in groupings)
        k = st.select_slider("Budget: at most k models", ks, value=min(2, ks[-1]) if len(ks) > 1 else ks[0],
                             key="rel_k") if len(ks) > 1 else ks[0]
        overlap = st.toggle("Groups may overlap (Standley / TAG: each task served by its best chosen group)",
                            value=True, key="rel_overlap")
        if not overlap and rep.get("groupings_partition"):
            groupings = rep["groupings_partition"]
        g = groupings.get(str(k)) or groupings[str(max(int(x) for x in groupings))]
        used = len(g["groups"])
        if g.get("stability") is not None:
            st.caption(f"This grouping stays best in {g['stability']:.0%} of matrices redrawn from the cells' "
                       "uncertainty.")
        if g.get("exact") is False:
            st.caption("The search for overlapping groups stopped at its node limit: the best found is shown.")
        st.metric("Expected mean gain per task", f"{g.get('mean_gain', 0):+.1f} %",
                  help="From the trained gains where a group was trained, else estimated from its pairs.")
        st.caption(f"Best split into at most {k} model(s): {used} model(s) "
                   + ("(fewer models do as well)" if used < k else ""))
        st.dataframe(pd.DataFrame([{"model": i + 1, "tasks": " + ".join(group),
                                    "expected gain per task": ", ".join(
                                        f"{t} {g['per_task'].get(t, 0):+.1f} %" for t in group),
                                    "serves": ", ".join(t for t in group if (g.get("serves") or {}).get(t, i) == i),
                                    "from": ", ".join(sorted({g.get('source', {}).get(t, '') for t in group}))}
                                   for i, group in enumerate(g["groups"])]), hide_index=True)
    else:
        st.info("No grouping to suggest: fewer than two of the tasks are above chance (controls are never "
                "grouped).", icon=":material/info:")
    c1, c2 = st.columns(2)
    c1.download_button("Download the report (JSON)", lambda: json.dumps(rep, indent=1), file_name="report.json",
                       mime="application/json", key="rel_json", icon=":material/download:")
    c2.download_button("Download the report (self-contained HTML)", lambda: render_html(rep),
                       file_name="report.html", mime="text/html", key="rel_html", icon=":material/download:")


jobs.collect("sweep", result_key="sweep_report", cancelled="Sweep cancelled")
running = state.job("sweep") is not None
if st.button(f"Run the demo: {DEMO['name']}, {DEMO['size']:.0%} of the labels, controls on", key="rel_demo",
             disabled=running, icon=":material/science:",
             help="A sweep measured to show both kinds of transfer (README \"The demo\"): where labels are "
                  "scarce, some tasks help others and some hurt them."):
    st.session_state["source"] = {"kind": "builtin", "name": DEMO["name"]}
    state.set_tasks(DEMO["tasks"])
    st.session_state.pop(state.picker_key("rel_tasks", DEMO["name"]), None)  # the picker starts from the demo's tasks
    st.session_state.update(rel_sizes=[DEMO["size"]], rel_controls=True, rel_demo_go=True)
    st.rerun()
# widget defaults through session state, so the demo can set them (a default beside a value set there warns)
st.session_state.setdefault("rel_sizes", [D.get("train_size", 1.0)])
st.session_state.setdefault("rel_controls", True)
tasks = state.task_picker(ds, "rel_tasks", "Tasks (2 to 8)", max_selections=8,
                          help="Every task is trained alone, and every pair together.")
c1, c2, c3 = st.columns(3)
epochs = c1.slider("Epochs (at most)", 1, 50, D["epochs"], key="rel_epochs")
seeds = c1.slider("Seeds", 1, 10, D["seeds"], key="rel_seeds")
max_seeds = c1.slider("Adaptive seeds: up to", 1, 20, max(seeds, D["max_seeds"]), key="rel_max_seeds",
                      help="Cells whose interval still straddles both 0 and the effect that matters get more "
                           f"seeds, up to this many, within {DEFAULT_BUDGET_SECONDS / 60:.0f} minutes in all.")
effect = c1.number_input("Effect that matters (%)", 0.1, 50.0, EFFECT, step=0.5, key="rel_effect")
if seeds == 1:
    c1.warning("With one seed no cell can be told apart from noise: every verdict will be unclear.",
               icon=":material/warning:")
order = c2.slider("Largest group trained", 2, max(2, len(tasks)), 2, key="rel_order",
                  help="2 = pairs only. Larger groups multiply the number of models.") if len(tasks) > 2 else 2
device = c2.selectbox("Device", ["auto", *available()], key="rel_device")
c2.caption(f"Detected: **{describe(resolve_device('auto'))}**")
sizes = c3.multiselect("Training-set sizes", SIZES, key="rel_sizes",
                       format_func=lambda f: f"{f:.0%}",
                       help="Several sizes draw each pair's gain as a curve over the amount of training data.")
hidden = c3.select_slider("Hidden width", [8, 16, 32, 64, 128, 256], value=D["hidden"], key="rel_hidden")
affinity = c3.checkbox("Cheap estimates", value=True, key="rel_affinity_on",
                       help="The one-run affinity estimates (one extra joint model) and the surrogate (a few "
                            "trained random groups of 3+ tasks), each checked against the trained gains.")
archs = c2.multiselect("Architectures", list(describe_archs()), default=["hps"], key="rel_archs",
                       help="; ".join(f"{k}: {v}" for k, v in describe_archs().items())
                            + ". Several: the matrix is trained under each, compared below the report.")
experts = state.experts_picker(c2, archs, "rel_experts")
encoder = state.encoder_picker(c2, ds, "rel_encoder")
with_controls = c3.checkbox("Controls (shuffled and noisy copy of the first task)", key="rel_controls",
                            help="shuffled: its labels permuted, it can only hurt; noisy: 20 % of its labels "
                                 "wrong, it should help its task. If shuffled ever comes out positive, the "
                                 "verdicts are not to be trusted.")
with st.expander("More settings"):
    on_ray = st.toggle("Train on a Ray cluster", value=False, key="rel_ray",
                       help="Chunks of the models train on Ray's workers, with the same numbers as here. Without "
                            "an address a local Ray runtime starts on this machine.")
    address = st.text_input("Ray address", "", key="rel_ray_address", placeholder="127.0.0.1:6379",
                            disabled=not on_ray, help="The head of `ray start --head`; empty: a local runtime.")
    keep_at_chance = st.checkbox(
        "Keep tasks at chance in Δm and the groupings", value=False, key="rel_keep_at_chance",
        help=f"A task whose single-task model is not above chance ({CHANCE_LEVEL}) normally gets no relative "
             "gain (it would divide by noise) and stays out of Δm and the groupings. Checked, it gets a gain "
             "relative to its raw score instead (marked in the report; its verdicts stay unclear).")
n_all = len(tasks) + (2 if with_controls and tasks else 0)
n_combos = sum(comb(n_all, k) for k in range(1, order + 1)) if tasks else 0  # singles, pairs, groups
st.caption(f"{n_combos} combinations × {seeds} seeds × {max(1, len(sizes))} size(s) = "
           f"{n_combos * seeds * max(1, len(sizes))} models."
           + (" With two tasks the matrix has two cells; ranking the one-run estimates against it needs "
              "three or more tasks." if len(tasks) == 2 else ""))
go = st.button("Run sweep", type="primary", key="rel_go", disabled=running, icon=":material/play_arrow:") \
    or bool(st.session_state.pop("rel_demo_go", False))
if msg := st.session_state.get("sweep_error"):  # stays until the next sweep starts
    st.error(state.for_browser(msg), icon=":material/error:")
if msg := st.session_state.get("sweep_note"):
    st.info(msg, icon=":material/cancel:")
if go:
    with state.friendly_errors("starting the sweep"):
        picked = list(tasks)  # from the dataset's own task list; run_sweep checks them once, at its boundary
        if len(picked) < 2:
            raise ExplorerError("Choose at least two tasks: the matrix shows how each task fares with each partner.")
        if not sizes:
            raise ExplorerError("Choose at least one training-set size.")
        if not archs:
            raise ExplorerError("Choose at least one architecture.")
        config = replace(TrainConfig(), epochs=epochs, hidden=hidden, device=device, experts=experts,
                         train_size=float(max(sizes))).validate()
        for name in ("sweep_report", "sweep_error", "sweep_note"):
            st.session_state.pop(name, None)
        state.start_job("sweep", Job(sweep_work(picked, order, seeds, config, sorted(sizes), affinity,
                                                ["shuffled", "noisy"] if with_controls else None,
                                                max_seeds, effect, "ray" if on_ray else "local",
                                                (address.strip() or None) if on_ray else None, archs,
                                                encoder, keep_at_chance),
                                     label="sweep"))
        st.rerun()  # redraw with the button disabled and the progress showing

with st.expander("Open a saved report (report.json)"):
    up = st.file_uploader("report.json from `python -m explorer sweep` or a download above", type=["json"],
                          key="rel_upload")
    if up is not None:
        with state.friendly_errors("reading the report"):
            uploaded = parse_report(up.getvalue(), f"'{up.name}'")  # checks the keys, with its own message
            if st.button("Show this report", key="rel_show_upload"):
                st.session_state["sweep_report"] = uploaded.to_dict()

if running:
    jobs.live("sweep", "Sweep", losses=False)
elif rep := st.session_state.get("sweep_report"):
    with state.friendly_errors("showing the report"):
        show_report(rep)
        show_architectures(rep)
