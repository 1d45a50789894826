"""The README's architecture table: the transfer matrix under hps, mmoe and towers, on news (bag of words and
MiniLM features) and on one tabular set, with Δm, resolved cells and run times.

    nice python scripts/arch_table.py --out-dir runs/arch_reports3  # the README table (3 seeds: about 7 min)
    python scripts/arch_table.py --quick --out-dir /tmp/quick      # a check of the script itself

Each (dataset, encoder) is one ``run_arch_sweep`` (explorer.relatedness.by_arch): every single task and
every pair under each architecture, each with its own single-task baselines, on the same split and seeds.
Default training settings (10 epochs at most, early stopping, full training set); a fixed number of seeds
(no adaptive seeds, so every architecture gets the same), no affinity run or surrogate (they do not change
the matrix). The sweeps run one after another; the MiniLM embeddings are read from the store's cache when
there (their one-off computation is timed apart, see ``python -m explorer bench --minilm``).

Prints a markdown table (one row per dataset, encoder and architecture) and the cells whose verdict changed
between architectures; with --out-dir each sweep's report.json is kept.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from explorer.data.sentence import with_encoder  # noqa: E402
from explorer.datasets import load_dataset  # noqa: E402
from explorer.relatedness.by_arch import run_arch_sweep  # noqa: E402
from explorer.training.trainer import TrainConfig  # noqa: E402

ARCHS = ["hps", "mmoe", "towers"]
GRID = [("news", "bow", ["outlet", "funding", "section", "length"]),
        ("news", "minilm", ["outlet", "funding", "section", "length"]),
        ("hotels", "bow", ["market_segment", "customer_type", "meal", "special_request"])]
TEXT = {"news"}  # the grid's text datasets (the others have no encoder to choose)
SYMBOL = {"positive": "▲", "negative": "▼", "unclear": "·"}


def run_grid(seeds: int, config: TrainConfig, grid=GRID, out_dir: Path | None = None) -> list[dict]:
    rows = []
    for name, encoder, tasks in grid:
        t0 = time.perf_counter()
        raw = load_dataset(name)
        dataset = with_encoder(raw, encoder)
        embed_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        report = run_arch_sweep(dataset, tasks, archs=ARCHS, seeds=seeds, config=config, affinity=False,
                                surrogate_subsets=0)
        wall = time.perf_counter() - t0
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / f"{name}-{encoder}.json").write_text(json.dumps(report.to_dict()))
        rows.append({"dataset": name, "encoder": encoder, "tasks": tasks, "seconds": wall,
                     "load_seconds": embed_s, "text": raw.modality == "text",
                     "by_arch": report.by_arch, "changes": report.arch_changes})
        each = ", ".join(f"{a} {e['seconds']:.0f} s" for a, e in report.by_arch.items())
        print(f"{name}/{encoder}: {wall:.0f} s ({each})", file=sys.stderr, flush=True)
    return rows


def rows_from_dir(out_dir: Path) -> list[dict]:
    """The table's rows from the report.json files a run kept (--out-dir), in the grid's order."""
    rows = []
    for name, encoder, tasks in GRID:
        path = out_dir / f"{name}-{encoder}.json"
        if path.is_file():
            rep = json.loads(path.read_text())
            rows.append({"dataset": name, "encoder": encoder, "tasks": rep["tasks"], "seconds": rep["seconds"],
                         "text": name in TEXT, "by_arch": rep["by_arch"],
                         "changes": rep.get("arch_changes") or []})
    return rows


def smallest_q(entry: dict) -> str:
    """The matrix's smallest q-value (a cell resolves below 0.05): how near the closest cell came."""
    qs = [q for i, row in enumerate(entry.get("pair_q") or []) for j, q in enumerate(row)
          if i != j and q is not None and math.isfinite(q)]
    return f"{min(qs):.2f}" if qs else "n/a"


def markdown(rows: list[dict], seeds: int) -> str:
    lines = ["| dataset | encoder | architecture | mean Δm (%) over pairs | resolved cells (▲ / ▼) | smallest q "
             "| sweep seconds |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        encoder = r["encoder"] if r["text"] else "—"
        for arch, e in r["by_arch"].items():
            dm, n = e["mean_delta_m"], e.get("delta_m_pairs")
            dm = "n/a" if dm is None or not math.isfinite(dm) else f"{dm:+.2f}"
            pairs = len(r["tasks"]) * (len(r["tasks"]) - 1) // 2
            lines.append(f"| {r['dataset']} | {encoder} | {arch} | {dm} ({n}/{pairs}) | {e['resolved']}/{e['cells']} "
                         f"({e['positive']} / {e['negative']}) | {smallest_q(e)} | {e['seconds']:.0f} |")
    lines.append("")
    for r in rows:
        encoder = r["encoder"] + ", " if r["text"] else ""
        where = f"{r['dataset']} ({encoder}tasks {', '.join(r['tasks'])}, {seeds} seeds)"
        chance = {a: e.get("at_chance") for a, e in r["by_arch"].items() if e.get("at_chance")}
        if chance:
            where += " [alone at chance, so no gain: " + "; ".join(f"{a} {', '.join(t)}"
                                                                  for a, t in chance.items()) + "]"
        if not r["changes"]:
            lines.append(f"- {where}: no cell changes verdict between {', '.join(r['by_arch'])}.")
            continue
        cells = []
        for c in r["changes"]:
            per = ", ".join(f"{a} {SYMBOL.get(v, '?')} {c['gains'][a]:+.1f}" if c["gains"][a] is not None
                            else f"{a} {SYMBOL.get(v, '?')}" for a, v in c["verdicts"].items())
            cells.append(f"{c['task']} with {c['partner']} ({per})")
        lines.append(f"- {where}: {len(r['changes'])} cell(s) change verdict: " + "; ".join(cells) + ".")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="1 epoch, 300 training rows, 2 seeds: checks the script")
    p.add_argument("--only", metavar="DATASET/ENCODER,..", help="a part of the grid, e.g. news/minilm")
    p.add_argument("--out-dir", type=Path, help="keep each sweep's report.json here")
    p.add_argument("--from-dir", type=Path, help="train nothing: print the table of the reports kept in this folder")
    args = p.parse_args(argv)
    if args.from_dir:
        rows = rows_from_dir(args.from_dir)
        print(markdown(rows, args.seeds))
        return 0
    config, seeds = TrainConfig(), args.seeds
    if args.quick:
        config, seeds = replace(config, epochs=1, train_size=300), 2
    grid = GRID
    if args.only:
        wanted = {w.strip() for w in args.only.split(",")}
        grid = [g for g in GRID if f"{g[0]}/{g[1]}" in wanted]
        if not grid:
            p.error(f"--only matches nothing; use some of {', '.join(f'{g[0]}/{g[1]}' for g in GRID)}")
    t0 = time.perf_counter()
    rows = run_grid(seeds, config, grid, args.out_dir)
    total = time.perf_counter() - t0
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"Measured {date.today().isoformat()}: {total / 60:.1f} min in all, {os.cpu_count()} CPUs, load average "
          f"at the end {load}; {seeds} seeds, {config.epochs} epochs at most, training size {config.train_size:g}.\n")
    print(markdown(rows, seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
