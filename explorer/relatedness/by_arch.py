"""The transfer matrix under several architectures in one run, and which cells change verdict.

Whether two tasks help or hurt each other depends on how they share. Each
architecture (``models.architectures``) gets its own full sweep: its own
single-task baselines (the same architecture with one head, on the same split
and seeds), so a gain is always multi-task against single-task within one
architecture and capacity differences between architectures do not pass for
transfer. The first architecture's sweep is the report's main body; every
architecture's matrix sits under ``by_arch`` and the cells whose verdict
differs from the first one under ``arch_changes``.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import numpy as np

from explorer.errors import ExplorerError
from explorer.relatedness.combos import Progress
from explorer.training.progress import within
from explorer.training.trainer import TrainConfig
from models.architectures import get_architecture, names as arch_names

RESOLVED = ("positive", "negative")


def check_archs(archs: Sequence[str] | str | None) -> list[str]:
    """Architecture names, validated: a comma-separated string or a list; None means the config's one."""
    if archs is None:
        return []
    items = [a.strip() for a in archs.split(",")] if isinstance(archs, str) else [str(a).strip() for a in archs]
    if not items or any(not a for a in items):
        raise ExplorerError(f"--arch needs comma-separated architecture names, e.g. {','.join(arch_names())}.")
    for a in items:
        get_architecture(a)  # unknown names: one line listing the known ones
    if len(set(items)) != len(items):
        raise ExplorerError(f"Architecture list {','.join(items)} names one twice: give each once.")
    return items


def arch_entry(report, arch: str) -> dict:
    """What ``by_arch`` holds for one architecture: its matrix, verdicts, Δm and time."""
    multi = {k: v for k, v in report.delta_m.items()  # NaN: a pair with a task at chance has no Δm
             if v is not None and np.isfinite(v) and not any(t in report.controls for t in k.split("+"))}
    verdicts = [v for i, row in enumerate(report.pair_verdict) for j, v in enumerate(row)
                if i != j and v is not None]
    return {"arch": arch, "description": get_architecture(arch).description,
            "pair_gain": report.pair_gain, "pair_gain_std": report.pair_gain_std,
            "pair_verdict": report.pair_verdict, "pair_q": report.pair_q, "single": report.single,
            "delta_m": report.delta_m,
            "mean_delta_m": float(np.mean(list(multi.values()))) if multi else None, "delta_m_pairs": len(multi),
            "resolved": sum(v in RESOLVED for v in verdicts), "cells": len(verdicts),
            "positive": sum(v == "positive" for v in verdicts), "negative": sum(v == "negative" for v in verdicts),
            "at_chance": list(report.at_chance), "seconds": report.seconds, "config": report.config}


def verdict_changes(tasks: list[str], by_arch: dict[str, dict]) -> list[dict]:
    """Cells (task, partner) whose verdict is not the same under every architecture."""
    out = []
    for i, task in enumerate(tasks):
        for j, partner in enumerate(tasks):
            if i == j:
                continue
            verdicts = {a: e["pair_verdict"][i][j] for a, e in by_arch.items()}
            if len(set(verdicts.values())) > 1:
                out.append({"task": task, "partner": partner, "verdicts": verdicts,
                            "gains": {a: e["pair_gain"][i][j] for a, e in by_arch.items()}})
    return out


def run_arch_sweep(dataset, tasks, *, archs: Sequence[str] | str | None = None, config: TrainConfig | None = None,
                   progress: Progress | None = None, **kwargs):
    """``explorer.relatedness.sweep.run_sweep`` once per architecture; the report holds ``by_arch``.

    ``archs`` None: the config's architecture alone (``by_arch`` then has that one entry).
    Other keyword arguments go to ``run_sweep`` unchanged.
    """
    from explorer.relatedness.sweep import run_sweep

    config = config or TrainConfig()
    archs = check_archs(archs) or [config.arch]
    start = time.perf_counter()
    reports = []
    for k, arch in enumerate(archs):
        reports.append(run_sweep(dataset, tasks, config=dataclasses.replace(config, arch=arch),
                                 progress=within(progress, k, 1, len(archs), prefix=arch), **kwargs))
    main = reports[0]
    main.by_arch = {arch: arch_entry(r, arch) for arch, r in zip(archs, reports)}
    main.arch_changes = verdict_changes(main.tasks, main.by_arch)
    main.seconds = time.perf_counter() - start
    return main
