"""Benchmark of the combination-parallel trainer: the same sweep, batched and sequential.

Both modes train every single task and every pair of ``n_tasks`` tasks with the
same seeds and the same number of epochs (early stopping off, so both do the
same work), in one process. Besides the wall-clock ratio it reports the
achieved arithmetic rate against the machine's measured float32 matmul rate,
and the roofline: the least memory traffic the optimiser needs, at the
measured copy bandwidth, bounds the rate (the text model's embedding makes the
work memory-bound); and peak resident memory.
"""
from __future__ import annotations

import itertools
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from explorer.training import row_kernels
from explorer.training.batched import train_combinations
from explorer.data.dataset import Dataset
from explorer.training.device import describe, resolve_device
from explorer.errors import ExplorerError
from explorer.training.progress import Progress, within
from explorer.training.trainer import Prepared, TrainConfig, prepare
from models.stacked import BagOfWords

def pairwise(tasks: list[str]) -> list[tuple[str, ...]]:
    return [(t,) for t in tasks] + list(itertools.combinations(tasks, 2))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, size: int = 2048, repeats: int = 5) -> float:
    """Best float32 matmul rate in GFLOP/s over a few timed products (one warm-up)."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def copy_bandwidth(device: torch.device, mib: int = 256, repeats: int = 5) -> float:
    """Best memory bandwidth of a large tensor copy in GB/s (bytes read + written)."""
    src = torch.ones(mib * 2 ** 18, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        dst.copy_(src)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * src.numel() * 4 / best / 1e9


def _peak_rss_reset() -> bool:
    """Reset the kernel's peak-RSS mark (Linux); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mib() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2 ** 20 if platform.system() == "Darwin" else 1024)


def model_flops(prepared: Prepared, combinations: list[tuple[str, ...]], config: TrainConfig) -> dict:
    """Analytic FLOPs of training every combination once (one seed), a multiply-add counting 2.

    Per model, epoch and row: each linear layer (the model's own heads only)
    costs 2*in*out forward and as much again for each gradient it needs
    backward (weights always, inputs except for the first layer of a tabular or
    image model); text pooling costs 2*D per non-padding token forward and as
    much again for the embedding gradient. Validation adds one forward pass per
    epoch. Adam's few elementwise operations per parameter are left out: they
    are memory traffic, not arithmetic.
    """
    pre, n_train, n_val = prepared.preprocessor, len(prepared.x["train"]), len(prepared.x["val"])
    widths = {t.name: t.n_outputs for t in prepared.tasks}
    h, d = config.hidden, config.embed_dim
    if pre.modality == "text":
        layers = [(d, h)]
        tokens = {part: int((prepared.x[part] != 0).sum()) for part in ("train", "val")}
        pool = {part: 2 * d * count for part, count in tokens.items()}
        encoder_params = pre.input_spec["vocab_size"] * d + d * h + h
        first_input_grad = True
    else:
        n_in = pre.input_spec.get("n_features") or pre.input_spec["height"] * pre.input_spec["width"]
        layers = [(n_in, h), (h, h)]
        pool = {"train": 0, "val": 0}
        encoder_params = n_in * h + h + h * h + h
        first_input_grad = False
    total, params = 0, 0
    for combo in combinations:
        k = sum(widths[t] for t in combo)
        shapes = layers + [(h, k)]
        forward = sum(2 * a * b for a, b in shapes)
        backward = 2 * forward - (0 if first_input_grad else 2 * shapes[0][0] * shapes[0][1])
        train = (forward + backward) * n_train + 2 * pool["train"]
        total += config.epochs * (train + forward * n_val + pool["val"])
        params += encoder_params + (h + 1) * k
    return {"model_flops": total, "parameters": params,
            "optimizer_steps": config.epochs * -(-n_train // config.batch_size)}


ADAM_BYTES = 7 * 4  # per float32 parameter and step: read p, g, m, v; write p, m, v


def minimum_traffic(prepared: Prepared, combinations: list[tuple[str, ...]], config: TrainConfig) -> dict:
    """A lower bound on the memory traffic of training every combination once (one seed), in bytes.

    Adam must read and write each updated parameter and its two moments at
    every step: all dense parameters, and of a text model's embedding only the
    rows a batch touches (counted over one epoch's batches). Everything else
    (activations, the forward pass, evaluation) is left out, so the roofline
    computed from it is an upper bound on the attainable rate.
    """
    n = len(prepared.x["train"])
    steps = config.epochs * -(-n // config.batch_size)
    work = model_flops(prepared, combinations, config)
    pre = prepared.preprocessor
    embedding = pre.input_spec["vocab_size"] * config.embed_dim if pre.modality == "text" else 0
    dense = work["parameters"] - embedding * len(combinations)
    touched = 0.0
    if pre.modality == "text":
        order = torch.randperm(n, generator=torch.Generator().manual_seed(0)).split(config.batch_size)
        bags = BagOfWords(prepared.x["train"], pre.input_spec["vocab_size"])
        touched = sum(len(bags.select(b).rows) for b in order) / len(order)
    rows_bytes = steps * touched * config.embed_dim * len(combinations) * ADAM_BYTES
    return {"bytes": int(steps * dense * ADAM_BYTES + rows_bytes), "touched_rows_per_step": round(touched, 1)}


def _time(fn) -> tuple[float, float, float]:
    """(wall seconds, process CPU seconds, peak RSS MiB during ``fn``)."""
    reset = _peak_rss_reset()
    cpu, start = time.process_time(), time.perf_counter()
    fn()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return wall, cpu, _peak_rss_mib() if reset else float("nan")


def run_bench(dataset: Dataset, n_tasks: int = 6, epochs: int = 3, seeds: int = 1, train_size: float = 1.0,
              device: str = "auto", modes: tuple[str, ...] = ("batched", "sequential"),
              progress: Progress | None = None) -> dict:
    if n_tasks < 2:
        raise ExplorerError(f"--tasks must be at least 2 for a pairwise sweep, got {n_tasks}.")
    tasks = list(dataset.tasks)[:n_tasks]
    if len(tasks) < n_tasks:
        raise ExplorerError(f"Dataset '{dataset.name}' has {len(tasks)} tasks; ask for at most that many.")
    combos = pairwise(tasks)
    config = TrainConfig(epochs=epochs, patience=0, train_size=train_size, device=device).resolve(dataset.modality)
    dev = resolve_device(device)
    seed_list = list(range(seeds))
    start_rss = _peak_rss_mib()
    t0 = time.perf_counter()
    prepared = prepare(dataset, tasks, config)
    prepare_s = time.perf_counter() - t0
    out: dict = {"dataset": dataset.name, "tasks": tasks, "combinations": len(combos), "seeds": seeds,
                 "models": len(combos) * seeds, "epochs": epochs, "train_rows": len(prepared.x["train"]),
                 "device": describe(dev), "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                 "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
                 "prepare_seconds": round(prepare_s, 2), "rss_before_mib": round(start_rss, 1)}
    # one-off costs of a process, not of a sweep, timed apart: the first optimiser imports torch's
    # compiler stack, and the first text sweep loads (or, on a new machine, compiles) the row kernels
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1, device=dev))])
    t0 = time.perf_counter()
    kernels = row_kernels.load() if dataset.modality == "text" and dev.type == "cpu" else None
    out["row_kernels"] = "numba" if kernels is not None else "torch ops"
    out["kernel_load_seconds"] = round(time.perf_counter() - t0, 2)
    work = model_flops(prepared, combos, config)
    out.update(model_flops=work["model_flops"] * seeds, parameters=work["parameters"] * seeds,
               optimizer_steps=work["optimizer_steps"])
    for index, mode in enumerate(modes):
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)

        def go(mode=mode):
            train_combinations(dataset, combos, replace(config), seed_list, mode=mode, prepared=prepared,
                               progress=within(progress, index, 1, len(modes), "bench", mode))

        wall, cpu, peak = _time(go)
        out[mode] = {"seconds": round(wall, 2), "cpu_seconds": round(cpu, 2), "peak_rss_mib": round(peak, 1),
                     "gflops": round(out["model_flops"] / wall / 1e9, 3)}
        if dev.type == "cuda":
            out[mode]["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated(dev) / 2 ** 20, 1)
    out["matmul_gflops"] = round(matmul_peak(dev), 1)
    out["copy_gb_per_s"] = round(copy_bandwidth(dev), 1)
    # roofline: at the measured copy bandwidth, moving the least traffic the work needs bounds the rate
    traffic = minimum_traffic(prepared, combos, config)
    out["minimum_traffic_gb"] = round(traffic["bytes"] * seeds / 1e9, 2)
    out["touched_rows_per_step"] = traffic["touched_rows_per_step"]
    seconds_at_bandwidth = traffic["bytes"] * seeds / (out["copy_gb_per_s"] * 1e9)
    out["roofline_gflops"] = round(min(out["matmul_gflops"], out["model_flops"] / seconds_at_bandwidth / 1e9), 1)
    for mode in modes:
        out[mode]["share_of_matmul_peak"] = round(out[mode]["gflops"] / out["matmul_gflops"], 5)
        out[mode]["share_of_roofline"] = round(out[mode]["gflops"] / out["roofline_gflops"], 4)
    if "batched" in out and "sequential" in out:
        out["speedup"] = round(out["sequential"]["seconds"] / out["batched"]["seconds"], 2)
    out["process_peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


# Another session's training, as torch runs it by default: a small matmul loop on every core.
_LOAD = "import torch\ntorch.set_num_threads({threads})\na = torch.randn(256, 256)\nwhile True:\n    a @ a\n"


def load_slowdown(dataset: Dataset, n_tasks: int = 6, epochs: int = 3, seeds: int = 3, train_size: float = 1.0,
                  device: str = "auto", processes: int = 1, progress: Progress | None = None) -> dict:
    """The default sweep (``run_sweep``: batched, with the affinity run) alone, then beside a CPU load.

    The load is ``processes`` processes each running torch matmuls on every
    core. If the sweep's threads do not fight the load, it slows down about as
    much as its fair share of the cores shrinks (``fair_slowdown``), not 10x.
    """
    from explorer.relatedness.sweep import run_sweep

    tasks = list(dataset.tasks)[:n_tasks]
    if len(tasks) < 2 or len(tasks) < n_tasks:
        raise ExplorerError(f"--tasks must be between 2 and {len(dataset.tasks)} for '{dataset.name}', got {n_tasks}.")
    if processes < 1:
        raise ExplorerError(f"--load must be >= 1 process, got {processes}.")
    config = TrainConfig(epochs=epochs, train_size=train_size, device=device)

    def sweep(index: int, label: str):
        run_sweep(dataset, tasks, seeds=seeds, config=config, progress=within(progress, index, 1, 2, "bench", label))

    alone = _time(lambda: sweep(0, "alone"))[0]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    load = [subprocess.Popen([sys.executable, "-c", _LOAD.format(threads=cpus)]) for _ in range(processes)]
    try:
        time.sleep(2.0)  # the load processes import torch before the clock starts
        loaded = _time(lambda: sweep(1, "under load"))[0]
    finally:
        for proc in load:
            proc.kill()
            proc.wait()
    from explorer.training.threads import TRAIN_THREADS
    demand = TRAIN_THREADS + processes * cpus  # runnable threads while both run
    return {"dataset": dataset.name, "tasks": tasks, "seeds": seeds, "epochs": epochs, "train_size": train_size,
            "cpus": cpus, "train_threads": TRAIN_THREADS, "load_processes": processes, "load_threads": cpus,
            "alone_seconds": round(alone, 2), "loaded_seconds": round(loaded, 2),
            "slowdown": round(loaded / alone, 2),
            "fair_slowdown": round(max(1.0, demand / cpus), 2)}


def format_load(result: dict) -> str:
    return (f"default sweep ({result['dataset']}, {len(result['tasks'])} tasks, {result['seeds']} seeds, "
            f"{result['epochs']} epochs, batched + affinity, {result['train_threads']} training thread(s)): "
            f"{result['alone_seconds']:.1f} s alone, {result['loaded_seconds']:.1f} s beside "
            f"{result['load_processes']} CPU-bound process(es) of {result['load_threads']} threads: "
            f"slowdown {result['slowdown']:.2f}x (its fair share of {result['cpus']} CPUs would give "
            f"{result['fair_slowdown']:.2f}x)")


def profile_batched(dataset: Dataset, n_tasks: int = 6, epochs: int = 1, train_size: float = 1.0,
                    device: str = "auto", rows: int = 15) -> str:
    """Where one batched sweep spends its time: torch.profiler's table of operators by self time."""
    from torch.profiler import ProfilerActivity, profile

    tasks = list(dataset.tasks)[:n_tasks]
    config = TrainConfig(epochs=epochs, patience=0, train_size=train_size, device=device).resolve(dataset.modality)
    prepared = prepare(dataset, tasks, config)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if resolve_device(device).type == "cuda" else [])
    with profile(activities=activities) as prof:
        train_combinations(dataset, pairwise(tasks), config, [0], mode="batched", prepared=prepared)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def format_table(result: dict) -> str:
    modes = [m for m in ("batched", "sequential") if m in result]
    lines = [f"bench: {result['dataset']}, {len(result['tasks'])} tasks ({', '.join(result['tasks'])}), "
             f"{result['combinations']} combinations x {result['seeds']} seed(s) = {result['models']} models, "
             f"{result['epochs']} epochs, {result['train_rows']} training rows",
             f"device: {result['device']}, {result['threads']} torch threads, {result['cpus']} CPUs, "
             f"load average {', '.join(f'{x:.1f}' for x in result['load_average'] or [])}",
             f"work: {result['model_flops'] / 1e9:.1f} GFLOP (model, analytic), "
             f"{result['parameters'] / 1e6:.1f} M parameters, {result['optimizer_steps']} optimiser steps",
             f"machine: float32 matmul {result['matmul_gflops']:.1f} GFLOP/s, copy {result['copy_gb_per_s']:.1f} GB/s",
             f"embedding rows updated by {result['row_kernels']} (loaded in {result['kernel_load_seconds']:.1f} s, "
             "once per process, not counted below)",
             "",
             f"roofline: Adam alone must move {result['minimum_traffic_gb']:.1f} GB "
             f"({result['touched_rows_per_step']:.0f} embedding rows touched per step), so at "
             f"{result['copy_gb_per_s']:.1f} GB/s this work cannot run faster than "
             f"{result['roofline_gflops']:.1f} GFLOP/s = "
             f"{100 * result['roofline_gflops'] / result['matmul_gflops']:.0f}% of the matmul peak",
             "",
             f"{'mode':<11}{'seconds':>9}{'cpu s':>9}{'GFLOP/s':>9}{'% of matmul':>13}{'% of roofline':>15}"
             f"{'peak RSS MiB':>14}"]
    for m in modes:
        r = result[m]
        lines.append(f"{m:<11}{r['seconds']:>9.1f}{r['cpu_seconds']:>9.1f}{r['gflops']:>9.2f}"
                     f"{100 * r['share_of_matmul_peak']:>12.2f}%{100 * r['share_of_roofline']:>14.1f}%"
                     f"{r['peak_rss_mib']:>14.0f}")
    if "speedup" in result:
        lines += ["", f"batched is {result['speedup']:.1f}x faster than sequential"]
    load = (result.get("load_average") or [0.0])[0]
    if result["threads"] > 1 and load > 0.5 * (result["cpus"] or 1):
        lines.append(f"note: load average {load:.1f} on {result['cpus']} CPUs: other processes compete for the "
                     "cores, which makes multi-threaded timings slow and erratic; compare with --threads 1")
    return "\n".join(lines)


def _same_runs(a: list, b: list) -> bool:
    key = lambda r: (tuple(r.tasks), r.seed)  # noqa: E731
    return {key(r): (r.metrics, r.best_epoch) for r in a} == {key(r): (r.metrics, r.best_epoch) for r in b}


def backend_bench(dataset: Dataset, n_tasks: int = 6, epochs: int = 3, seeds: int = 2, train_size: float = 1.0,
                  workers: int = 2, address: str | None = None, progress: Progress | None = None) -> dict:
    """The batched pairwise sweep in this process, then on Ray (a local runtime of ``workers`` CPUs, or
    the cluster at ``address``) with the same seeds: the seconds of each, their ratio, and whether the
    runs came out identical. Ray's start and its workers' first imports are timed apart (once per cluster,
    not per sweep)."""
    from explorer.training.backends import get_backend
    tasks = list(dataset.tasks)[:n_tasks]
    if n_tasks < 2 or len(tasks) < n_tasks:
        raise ExplorerError(f"--tasks must be from 2 to the dataset's {len(dataset.tasks)} tasks, got {n_tasks}.")
    combos = pairwise(tasks)
    config = TrainConfig(epochs=epochs, patience=0, train_size=train_size, device="cpu").resolve(dataset.modality)
    prepared = prepare(dataset, tasks, config)
    seed_list = list(range(seeds))
    out: dict = {"dataset": dataset.name, "tasks": tasks, "models": len(combos) * seeds, "epochs": epochs,
                 "train_rows": len(prepared.x["train"]), "cpus": os.cpu_count(),
                 "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    t0 = time.perf_counter()
    local = train_combinations(dataset, combos, config, seed_list, prepared=prepared,
                               progress=within(progress, 0, 1, 2, "bench", "local"))
    out["local_seconds"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    if address:
        backend = get_backend("ray", address)
    else:
        from explorer.training.backends.ray import make
        backend = make(num_cpus=workers)
    out["ray_start_seconds"] = round(time.perf_counter() - t0, 2)
    out["cluster"] = backend.describe()
    t0 = time.perf_counter()  # warm-up: every worker process starts and imports the trainer once
    backend.warm_up()
    out["ray_warm_up_seconds"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    remote = backend.train_combinations(dataset, combos, config, seed_list, prepared=prepared,
                                        progress=within(progress, 1, 1, 2, "bench", "ray"))
    out["ray_seconds"] = round(time.perf_counter() - t0, 2)
    out["ratio"] = round(out["ray_seconds"] / out["local_seconds"], 3)  # < 1: Ray is faster
    out["identical"] = _same_runs(local, remote)
    return out


def format_backend(result: dict) -> str:
    return (f"{result['dataset']}: {result['models']} models, {result['epochs']} epochs, {result['train_rows']} rows; "
            f"local {result['local_seconds']} s, ray ({result['cluster']}) {result['ray_seconds']} s: "
            f"ratio ray/local {result['ratio']} ({'identical runs' if result['identical'] else 'RUNS DIFFER'}); "
            f"Ray start {result['ray_start_seconds']} s and worker warm-up {result['ray_warm_up_seconds']} s "
            "once per cluster")


def gpu_check(dataset: Dataset, n_tasks: int = 6, epochs: int = 3, seeds: int = 2, train_size: float = 1.0,
              progress: Progress | None = None) -> dict | None:
    """The batched pairwise sweep on CUDA and on the CPU with the same seeds: the largest absolute difference
    of the gains (percentage points) and the speed ratio. None without a CUDA device."""
    from explorer.relatedness.transfer import transfer_from_runs
    if not torch.cuda.is_available():
        return None
    tasks = list(dataset.tasks)[:n_tasks]
    combos = pairwise(tasks)
    out: dict = {"dataset": dataset.name, "tasks": tasks, "models": len(combos) * seeds,
                 "cuda": torch.cuda.get_device_name(0)}
    gains = {}
    for index, device in enumerate(("cpu", "cuda")):
        config = TrainConfig(epochs=epochs, patience=0, train_size=train_size,
                             device=device).resolve(dataset.modality)
        prepared = prepare(dataset, tasks, config)
        t0 = time.perf_counter()
        runs = train_combinations(dataset, combos, config, list(range(seeds)), prepared=prepared,
                                  progress=within(progress, index, 1, 2, "bench", device))
        if device == "cuda":
            torch.cuda.synchronize()
        out[f"{device}_seconds"] = round(time.perf_counter() - t0, 2)
        gains[device] = transfer_from_runs(runs, tasks).pair_gain
    diffs = [abs(a - b) for ra, rb in zip(gains["cpu"], gains["cuda"]) for a, b in zip(ra, rb)
             if a is not None and b is not None]
    out["max_abs_gain_difference"] = round(max(diffs), 6) if diffs else None
    out["speed_ratio_cpu_over_cuda"] = round(out["cpu_seconds"] / out["cuda_seconds"], 2)
    return out


# The bounds for one MiniLM embedding pass over the news corpus on a 2-core CPU.
MINILM_BOUNDS = {"peak_rss_mib": 2048, "seconds": 180}


def _embedding_pass(dataset_name: str, rows: int | None, store: str) -> None:
    """The child of ``minilm_bench``: embed the texts into an empty store; print one JSON line of timings."""
    import json

    from explorer.commands._common import ProgressBar
    from explorer.data.sentence import embed_texts
    from explorer.datasets import load_dataset

    t0 = time.perf_counter()
    try:
        dataset = load_dataset(dataset_name)
        if dataset.modality != "text":
            raise ExplorerError(f"--minilm embeds texts; '{dataset_name}' is {dataset.modality} data.")
    except ExplorerError as e:  # the parent reports it as its own one sentence
        print(json.dumps({"error": str(e)}))
        return
    texts = list(dataset.inputs)[:rows] if rows else list(dataset.inputs)
    load_s, rss_before = time.perf_counter() - t0, _peak_rss_mib()
    t0 = time.perf_counter()
    with ProgressBar("minilm") as bar:
        emb = embed_texts(texts, "minilm", store=Path(store), progress=bar)
    print(json.dumps({"texts": len(texts), "mean_chars": round(sum(map(len, texts)) / max(1, len(texts)), 1),
                      "dim": int(emb.shape[1]), "seconds": round(time.perf_counter() - t0, 2),
                      "dataset_load_seconds": round(load_s, 2), "rss_before_mib": round(rss_before, 1),
                      "peak_rss_mib": round(_peak_rss_mib(), 1), "torch_threads": torch.get_num_threads()}))


def minilm_bench(dataset_name: str = "news", rows: int | None = None) -> dict:
    """One MiniLM embedding pass over a text dataset, timed in a fresh process so its peak RSS is its own.

    The child loads the dataset and the packaged all-MiniLM-L6-v2, embeds every
    text (``explorer.data.sentence.embed_texts``, the code a sweep runs) into a
    temporary store, so the cache is neither read nor filled, and reports its
    wall time and its peak resident memory (VmHWM: torch, the model and the
    embeddings together). ``rows``: only the first rows (a quick check).
    """
    import json
    import tempfile

    if rows is not None and rows < 1:
        raise ExplorerError(f"--rows must be >= 1, got {rows}.")
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    with tempfile.TemporaryDirectory(prefix="explorer-minilm-bench-") as store:
        code = f"from explorer.bench import _embedding_pass; _embedding_pass({dataset_name!r}, {rows!r}, {store!r})"
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=None, text=True,
                              env=env)
        process_s = time.perf_counter() - t0
    lines = proc.stdout.strip().splitlines()
    child = json.loads(lines[-1]) if proc.returncode == 0 and lines else {}
    if "error" in child:
        raise ExplorerError(child["error"])
    if not child:
        raise ExplorerError(f"The MiniLM embedding pass failed (exit status {proc.returncode}); its error is above.")
    out = {"dataset": dataset_name, **child, "process_seconds": round(process_s, 2),
           "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
           "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
           "bounds": dict(MINILM_BOUNDS)}
    out["within_bounds"] = bool(out["peak_rss_mib"] < MINILM_BOUNDS["peak_rss_mib"]
                                and out["seconds"] < MINILM_BOUNDS["seconds"])
    return out


def format_minilm(result: dict) -> str:
    b = result["bounds"]
    load = ", ".join(f"{x:.1f}" for x in result["load_average"] or [])
    return (f"minilm embedding pass ({result['dataset']}, {result['texts']} texts, {result['mean_chars']:.0f} "
            f"characters on average, {result['torch_threads']} torch threads, {result['cpus']} CPUs, load average "
            f"{load}): {result['seconds']:.1f} s (bound {b['seconds']} s), peak RSS {result['peak_rss_mib']:.0f} MiB "
            f"(bound {b['peak_rss_mib']} MiB): {'within' if result['within_bounds'] else 'OUTSIDE'} the bounds; "
            f"the process took {result['process_seconds']:.1f} s with imports and loading the data")


def resolved_share(report) -> tuple[int, int]:
    """(resolved, tested) pair cells of a sweep report, controls and tasks at chance left out."""
    from explorer.relatedness.by_arch import RESOLVED
    resolved = tested = 0
    for verdict, _ in _pair_cells(report):
        tested += 1
        resolved += verdict in RESOLVED
    return resolved, tested


def _pair_cells(report):
    """(verdict, p-value) of every tested pair cell, controls and tasks at chance left out."""
    from explorer.relatedness.transfer import combo_tasks
    skip = set(report.controls) | set(report.at_chance)
    for i, a in enumerate(report.tasks):
        for j, b in enumerate(report.tasks):
            if i == j or a in skip or b in skip or report.pair_verdict[i][j] is None:
                continue
            key = next(k for k in report.gains if set(combo_tasks(k)) == {a, b})
            yield report.pair_verdict[i][j], report.gains[key][a].get("p_value")


def uncorrected_share(report) -> int:
    """Pair cells a separate 95 % test each would call (p <= 0.05, no correction over the matrix): what the
    explorer reported before its verdicts were made at a false discovery rate."""
    return sum(p is not None and p <= 0.05 for _, p in _pair_cells(report))


def power_bench(dataset: Dataset, n_tasks: int = 6, train_size: float | int = 1.0, fixed_seeds: int = 3,
                start_seeds: int = 2, replicates: int = 1, progress: Progress | None = None) -> dict:
    """Resolved cells at equal time: ``fixed_seeds`` seeds for every cell, then adaptive seeds in the same time.

    Both arms are the default sweep (10 epochs, per-task checkpointing, paired seeds and test-row
    bootstrap, false discovery rate 5 %), estimates off. The adaptive arm starts every cell with
    ``start_seeds`` seeds and spends what is left of the fixed arm's wall time on the undecided cells
    (``explorer.relatedness.adaptive``), up to the default maximum of seeds per cell. ``replicates``
    repeats both arms on other seeds and another split (replicate r: seeds from 100 r, split seed r),
    so the counts are summed over more than one draw of a few resolved cells.
    """
    from explorer.relatedness.sweep import DEFAULT_MAX_SEEDS, run_sweep

    if isinstance(fixed_seeds, bool) or not isinstance(fixed_seeds, int) or fixed_seeds <= start_seeds:
        raise ExplorerError(f"--fixed-seeds must be a whole number above {start_seeds} (the adaptive arm starts from "
                            f"{start_seeds} seeds), got {fixed_seeds!r}.")
    if isinstance(replicates, bool) or not isinstance(replicates, int) or replicates < 1:
        raise ExplorerError(f"--replicates must be a whole number >= 1, got {replicates!r}.")
    tasks = list(dataset.tasks)[:n_tasks]
    if len(tasks) < 2 or len(tasks) < n_tasks:
        raise ExplorerError(f"--tasks must be between 2 and {len(dataset.tasks)} for '{dataset.name}', got {n_tasks}.")
    per = []
    for r in range(replicates):
        config = TrainConfig(train_size=train_size, seed=100 * r, split_seed=r)
        tag = f", replicate {r + 1}" if replicates > 1 else ""
        began = time.perf_counter()
        fixed = run_sweep(dataset, tasks, seeds=fixed_seeds, config=config, affinity=False,
                          progress=within(progress, 2 * r, 1, 2 * replicates, "bench",
                                          f"{fixed_seeds} fixed seeds{tag}"))
        budget = time.perf_counter() - began
        adaptive = run_sweep(dataset, tasks, seeds=start_seeds, config=config, affinity=False,
                             max_seeds=DEFAULT_MAX_SEEDS, budget_seconds=budget,
                             progress=within(progress, 2 * r + 1, 1, 2 * replicates, "bench",
                                             f"adaptive seeds, same time{tag}"))
        (r_fixed, n_fixed), (r_adapt, n_adapt) = resolved_share(fixed), resolved_share(adaptive)
        per.append({"fixed": {"seeds": fixed_seeds, "resolved": r_fixed, "cells": n_fixed,
                              "uncorrected": uncorrected_share(fixed), "seconds": round(fixed.seconds, 1)},
                    "adaptive": {"start_seeds": start_seeds, "max_seeds": DEFAULT_MAX_SEEDS, "resolved": r_adapt,
                                 "cells": n_adapt, "seconds": round(adaptive.seconds, 1),
                                 "models_added": adaptive.adaptive.get("models", 0)}})
    counts = ("resolved", "cells", "uncorrected", "seconds", "models_added")  # summed; the settings are shared
    total = {arm: {k: round(sum(p[arm][k] for p in per), 1) if k in counts else v for k, v in per[0][arm].items()}
             for arm in ("fixed", "adaptive")}
    share_fixed = total["fixed"]["resolved"] / max(1, total["fixed"]["cells"])
    share_adapt = total["adaptive"]["resolved"] / max(1, total["adaptive"]["cells"])
    return {"dataset": dataset.name, "tasks": tasks, "train_size": train_size, "replicates": replicates,
            **total, "per_replicate": per,
            "ratio": round(share_adapt / share_fixed, 2) if share_fixed else None}


def format_power(result: dict) -> str:
    f, a = result["fixed"], result["adaptive"]
    ratio = "n/a (no cell resolved with fixed seeds)" if result["ratio"] is None else f"{result['ratio']:.2f}x"
    reps = result.get("replicates", 1)
    over = f", summed over {reps} replicates" if reps > 1 else ""
    return (f"resolved cells at equal time ({result['dataset']}, {len(result['tasks'])} tasks{over}): "
            f"{f['seeds']} fixed seeds {f['resolved']}/{f['cells']} in {f['seconds']:.0f} s "
            f"({f['uncorrected']} with a separate 95 % test per cell, as before the false discovery rate); adaptive "
            f"({a['start_seeds']} seeds, +{a['models_added']} models on undecided cells) {a['resolved']}/{a['cells']} "
            f"in {a['seconds']:.0f} s: {ratio} the resolved share")
