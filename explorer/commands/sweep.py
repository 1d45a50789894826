"""`python -m explorer sweep`: the transfer matrix of some tasks, with seed noise, estimates and groupings."""
from __future__ import annotations

import argparse

from explorer.store.atomic import check_writable
from explorer.commands._common import (ProgressBar, add_data_arguments, add_keep_at_chance, add_train_arguments,
                                       config_from_args, load_from_args, split_list)
from explorer.errors import ExplorerError
from explorer.training.backends import check_backend, names as backend_names
from explorer.methods import DEFAULT as DEFAULT_METHOD
from explorer.relatedness.adaptive import EFFECT, describe as describe_adaptive
from explorer.relatedness.affinity import agreement
from explorer.relatedness.by_arch import check_archs, run_arch_sweep
from explorer.relatedness.sweep import (DEFAULT_BUDGET_SECONDS, DEFAULT_MAX_SEEDS, DEFAULT_SEEDS, SweepReport,
                                        save_report)
from explorer.training.batched import MODE_CHOICES
from explorer.relatedness.transfer import combo_tasks
from models.architectures import names as arch_names

NAME = "sweep"
HELP = ("train every single task and every pair (or larger group) with several seeds; write the transfer "
        "matrix, one-run affinity estimates and task groupings to report.json (and an HTML report)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tasks", required=True, metavar="A,B,..", help="comma-separated tasks, 2 to 8")
    p.add_argument("--order", type=int, default=2,
                   help="largest group size to train: 2 = pairs (default), 3 = also triples, ...")
    p.add_argument("--seeds", type=int, default=DEFAULT_SEEDS,
                   help=f"seeds per model to start with (default: {DEFAULT_SEEDS}); 2 or more are needed to call "
                        "a gain clear of noise")
    p.add_argument("--mode", choices=MODE_CHOICES, default="auto",
                   help="batched: all models at once (equal weights only); sequential: one by one; "
                        "auto: batched for method ew (default)")
    p.add_argument("--method", default=DEFAULT_METHOD,
                   help="loss weighting / gradient method of every model (default: ew)")
    p.add_argument("--train-fraction", metavar="F,..",
                   help="repeat the pairwise sweep at each training-set size, e.g. 0.05,0.2,1.0 "
                        "(fractions of the training pool, or row counts); overrides --train-size")
    p.add_argument("--max-seeds", type=int, default=DEFAULT_MAX_SEEDS,
                   help="adaptive seeds: give undecided cells (interval across both 0 and the effect that "
                        f"matters) more seeds, up to this many per cell (default: {DEFAULT_MAX_SEEDS}; "
                        "equal to --seeds turns it off)")
    p.add_argument("--effect", type=float, default=EFFECT,
                   help=f"the gain that matters, in percent (default: {EFFECT:g}): a cell whose interval lies "
                        "inside ± this is decided as too small to matter")
    p.add_argument("--budget-seconds", type=float, default=DEFAULT_BUDGET_SECONDS,
                   help="stop adding seeds once the sweep would run past this many seconds "
                        f"(default: {DEFAULT_BUDGET_SECONDS:g})")
    p.add_argument("--budget-models", type=int, help="stop adding seeds after this many extra models")
    p.add_argument("--controls", metavar="KIND[:TASK],..",
                   help="add control tasks: shuffled (labels permuted: can only hurt), noisy (20 %% of labels "
                        "wrong: should help its task); each applies to the first task unless named, e.g. "
                        "shuffled,noisy:section")
    add_keep_at_chance(p, "Δm and the groupings")
    p.add_argument("--no-affinity", action="store_true",
                   help="skip the cheap estimates (the one-run affinity run and the surrogate's groups)")
    p.add_argument("--surrogate-subsets", type=int, default=None, metavar="N",
                   help="random groups of 3+ tasks trained for the surrogate estimate (default: 2 x the tasks; "
                        "0 = no surrogate; groups the sweep trains anyway are reused)")
    p.add_argument("--backend", default="local", choices=backend_names(),
                   help="where the models train: local = this process (default); ray = a Ray cluster "
                        "(--address) or, without one, a local Ray runtime")
    p.add_argument("--address", metavar="HOST:PORT",
                   help="with --backend ray: the Ray head to join, e.g. 127.0.0.1:6379 (from `ray start --head`)")
    p.add_argument("--out", required=True, metavar="FILE", help="where to write report.json")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report")
    add_data_arguments(p)
    add_train_arguments(p, seed=True)
    for action in p._actions:  # --seed is the first seed of the sweep here
        if action.dest == "seed":
            action.help = "first seed; a sweep uses seeds SEED .. SEED+SEEDS-1 (default: 0)"
        if action.dest == "arch":
            action.help = ("architecture(s), comma-separated: the matrix is trained under each and the report "
                           "holds one per architecture under by_arch (" + ", ".join(arch_names()) + "; default: hps)")


def _sizes(value: str | None) -> list[float | int] | None:
    if value is None:
        return None
    sizes: list[float | int] = []
    for item in split_list(value, "--train-fraction"):
        try:
            number = float(item)
        except ValueError:
            raise ExplorerError(f"--train-fraction item '{item}' is not a number: give fractions such as "
                                "0.05,0.2,1.0 or row counts such as 200,1000.")
        sizes.append(int(number) if number > 1 and number.is_integer() else number)
    return sizes


def summary(report: SweepReport) -> str:
    """A few lines for the terminal: every pair's gain and verdict, the best groupings, the proxies."""
    lines = [f"{report.dataset}: {len(report.combinations)} models x {len(report.seeds)} seeds, "
             f"{report.mode} on {report.device}, {report.seconds:.1f} s"]
    pairs = []
    for i, a in enumerate(report.tasks):
        for j, b in enumerate(report.tasks):
            v = report.pair_gain[i][j]
            g = report.gain((a, b), a) if i != j and v is None else None
            if g is not None:  # single-task model at chance: no relative gain, the absolute difference
                q = g.get("q_value")
                pairs.append((0.0, f"  {a:>14} with {b:<14} at chance: difference {g['diff']:+.4f} (baseline "
                                   f"{g.get('baseline') or 0:.3f})  q {'n/a' if q is None else f'{q:.3f}'}  "
                                   f"{g['verdict']}"))
            if i != j and v is not None:
                kept = " (at chance: relative to the raw score)" if a in report.at_chance else ""
                q = report.pair_q[i][j] if report.pair_q else None
                n = report.pair_seeds[i][j] if report.pair_seeds else len(report.seeds)
                mde = report.pair_mde[i][j] if report.pair_mde else None
                pairs.append((v, f"  {a:>14} with {b:<14} {v:+7.1f} % ± {report.pair_gain_std[i][j] or 0:5.1f}  "
                                 f"q {'n/a' if q is None else f'{q:.3f}'}  {report.pair_verdict[i][j]:<8} "
                                 f"seeds {n}  mde {'n/a' if mde is None else f'{mde:.1f} %'}{kept}"))
    if pairs:
        lines.append(f"gain of task with partner (mean ± seed std, q = Benjamini–Hochberg q-value, verdict at "
                     f"FDR {report.fdr:.0%}, seeds, minimum detectable effect):")
        lines += [text for _, text in sorted(pairs, key=lambda p: p[0])]
    for key, value in report.delta_m.items():
        if len(combo_tasks(key)) > 2 and value is not None:
            lines.append(f"  Δm {key}: {value:+.1f} %")
    for k, g in sorted(report.groupings.items(), key=lambda kv: int(kv[0])):
        if int(k) < len(report.tasks):
            groups = " | ".join("+".join(grp) for grp in g["groups"])
            lines.append(f"best grouping into {k} model(s): {groups} (mean gain {g['mean_gain']:+.1f} %)")
    if report.adaptive:
        lines.append(describe_adaptive(report.adaptive))
    if len(report.by_arch) > 1:
        lines.append("by architecture (mean Δm over the combinations, cells resolved at the FDR, seconds):")
        for arch, e in report.by_arch.items():
            dm = "n/a" if e["mean_delta_m"] is None else f"{e['mean_delta_m']:+.1f} %"
            lines.append(f"  {arch:>8}: Δm {dm}, {e['resolved']}/{e['cells']} cells resolved "
                         f"({e['positive']} positive, {e['negative']} negative), {e['seconds']:.0f} s")
        for c in report.arch_changes:
            shown = ", ".join(f"{a} {v}" for a, v in c["verdicts"].items())
            lines.append(f"  verdict changes: {c['task']} with {c['partner']}: {shown}")
    if report.controls:
        from explorer.relatedness.controls import untrustworthy
        bad = untrustworthy(report)
        lines.append(f"controls: {', '.join(report.controls)}"
                     + (f" -- WARNING: a shuffled control came out positive ({'; '.join(bad)}): the verdicts "
                        "of this setting are not to be trusted" if bad else " (no shuffled control positive)"))
    if report.phase_seconds:
        total = sum(p["seconds"] for p in report.phase_seconds) or 1.0
        lines.append("time per phase (share of the time / share of the progress bar): " + ", ".join(
            f"{p['phase']} {p['seconds']:.1f} s ({p['seconds'] / total:.0%} / {p['progress_share']:.0%})"
            for p in report.phase_seconds))
    scored = [(name, d) for name, d in (report.estimates or {}).items() if d.get("spearman") is not None]
    if scored:
        lines.append("Spearman of each estimate with the trained pair gains (bootstrap 95 % interval), best first "
                     "(the most agreement in the direction the estimate predicts):")
        scored.sort(key=lambda nd: -agreement(nd[1]))
        for name, d in scored:
            low, high = d.get("interval") or (None, None)
            span = "" if low is None else f" [{low:+.2f}, {high:+.2f}]"
            within = d.get("spearman_within_task")
            within = "" if within is None else f", within task {within:+.2f}"
            sign = ", should be negative" if (d.get("expected_sign") or 1) < 0 else ""  # more conflict, less gain
            lines.append(f"  {name:<15} {d['spearman']:+.2f}{span}  ({d.get('n_pairs')} cells{within}{sign})")
    elif report.proxy_spearman:
        shown = ", ".join(f"{k} {'n/a' if v is None else f'{v:+.2f}'}" for k, v in report.proxy_spearman.items())
        lines.append(f"Spearman of one-run estimates with the trained gains: {shown}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    tasks = split_list(args.tasks, "--tasks")
    check_backend(args.backend, args.address)  # a cluster that is not there: one line, before loading data
    for path in (args.out, args.html):
        if path:
            check_writable(path)  # before the sweep, not after it
    archs = check_archs(args.arch)  # before loading anything big
    config = config_from_args(args)  # bad settings are one line before the data loads (or is embedded)
    dataset = load_from_args(args, tasks)
    with ProgressBar("sweep") as bar:
        report = run_arch_sweep(dataset, tasks, archs=archs, order=args.order, seeds=args.seeds, config=config,
                                mode=args.mode, train_sizes=_sizes(args.train_fraction),
                                affinity=not args.no_affinity, surrogate_subsets=args.surrogate_subsets,
                                progress=bar, controls=args.controls, max_seeds=args.max_seeds,
                                effect=args.effect, budget_seconds=args.budget_seconds,
                                budget_models=args.budget_models, backend=args.backend, address=args.address,
                                keep_at_chance=args.keep_at_chance)
    save_report(report, args.out)
    written = [args.out]
    if args.html:
        from explorer.relatedness.report_html import write_html  # plotly is only needed for the page
        write_html(report, args.html)
        written.append(args.html)
    print(summary(report))
    print(f"wrote {', '.join(written)}")
    return 0
