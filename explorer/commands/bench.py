"""`python -m explorer bench`: time one pairwise sweep in batched and in sequential mode."""
from __future__ import annotations

import argparse
import sys

import torch

from explorer.bench import format_load, format_table, load_slowdown, profile_batched, run_bench
from explorer.commands._common import ProgressBar, print_json
from explorer.datasets import DEFAULT, load_dataset
from explorer.errors import ExplorerError
from explorer.training.threads import set_training_threads

NAME = "bench"
HELP = ("time the same pairwise sweep (every single task and pair) in batched and sequential mode; "
        "prints the speed ratio, GFLOP/s against the measured matmul peak, and peak memory")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default=DEFAULT, help=f"built-in dataset (default: {DEFAULT})")
    p.add_argument("--tasks", type=int, default=6, help="the dataset's first N tasks (default: 6)")
    p.add_argument("--epochs", type=int, default=3,
                   help="epochs per model, the same in both modes; early stopping is off (default: 3)")
    p.add_argument("--seeds", type=int, help="seeds per combination (default: 1; with --load 3)")
    p.add_argument("--train-size", type=float, default=1.0,
                   help="training-set size: a fraction of the training pool (0-1] or a row count (default: 1.0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--mode", choices=("both", "batched", "sequential"), default="both",
                   help="time only one mode (default: both)")
    p.add_argument("--threads", type=int,
                   help="torch CPU threads of the training (default: EXPLORER_TRAIN_THREADS, else 1)")
    p.add_argument("--load", type=int, nargs="?", const=1, metavar="PROCESSES",
                   help="instead: time the default sweep (batched, with the affinity run; --seeds default 3) "
                        "alone and beside PROCESSES (default 1) CPU-bound processes using every core, "
                        "and print the slowdown ratio")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="ray: time the batched pairwise sweep here and then on Ray (a local runtime of --workers "
                        "CPUs, or --address), same seeds, and print the ratio ray/local (--seeds default 2)")
    p.add_argument("--address", metavar="HOST:PORT", help="with --backend ray: the cluster to time")
    p.add_argument("--workers", type=int, default=2, help="with --backend ray: local Ray worker CPUs (default 2)")
    p.add_argument("--gpu-check", action="store_true",
                   help="instead: train the batched sweep on CUDA and on the CPU with the same seeds; print the "
                        "largest gain difference and the speed ratio ('no CUDA device' and exit 0 without one)")
    p.add_argument("--minilm", action="store_true",
                   help="instead: time one MiniLM embedding pass over the dataset's texts "
                        "in a fresh process, cache neither read nor written; print its seconds and peak RSS "
                        "against the bounds (under 180 s, under 2 GiB)")
    p.add_argument("--rows", type=int, help="with --minilm: embed only the first ROWS texts (a quick check)")
    p.add_argument("--power", action="store_true",
                   help="resolved cells at equal time: 3 fixed seeds per cell against adaptive seeds (default sweep "
                        "settings, 10 epochs; --tasks, --train-size, --fixed-seeds apply)")
    p.add_argument("--fixed-seeds", type=int, default=3,
                   help="with --power: seeds of the fixed arm, whose wall time is the adaptive arm's budget (default 3)")
    p.add_argument("--replicates", type=int, default=1,
                   help="with --power: repeat both arms on other seeds and another split and sum the counts "
                        "(default 1)")
    p.add_argument("--profile", action="store_true",
                   help="instead of timing, profile one epoch of the batched sweep and print the top operators")


def run(args: argparse.Namespace) -> int:
    if args.threads is not None:
        if args.threads < 1:
            raise ExplorerError(f"--threads must be >= 1, got {args.threads}.")
        set_training_threads(args.threads)
        torch.set_num_threads(args.threads)
    if args.address:
        from explorer.training.backends import check_backend
        check_backend(args.backend, args.address)
    if args.minilm:
        from explorer.bench import format_minilm, minilm_bench
        result = minilm_bench(args.dataset, args.rows)
        print(format_minilm(result), file=sys.stderr)
        print_json(result)
        return 0
    if args.rows is not None:
        raise ExplorerError("--rows only applies with --minilm.")
    if args.gpu_check and not torch.cuda.is_available():
        print("no CUDA device: the GPU check needs one (nothing to compare on this machine)")
        return 0
    dataset = load_dataset(args.dataset)
    size = int(args.train_size) if args.train_size > 1 and args.train_size.is_integer() else args.train_size
    if args.gpu_check or args.backend == "ray":
        from explorer.bench import backend_bench, format_backend, gpu_check
        with ProgressBar("bench") as bar:
            if args.gpu_check:
                result = gpu_check(dataset, args.tasks, args.epochs, args.seeds or 2, size, progress=bar)
            else:
                result = backend_bench(dataset, args.tasks, args.epochs, args.seeds or 2, size, args.workers,
                                       args.address, progress=bar)
        if not args.gpu_check:
            print(format_backend(result), file=sys.stderr)
        else:
            print(f"gpu check: {result['models']} models on {result['cuda']}: max |gain cuda - gain cpu| "
                  f"{result['max_abs_gain_difference']} points; cpu {result['cpu_seconds']} s / cuda "
                  f"{result['cuda_seconds']} s = {result['speed_ratio_cpu_over_cuda']}x", file=sys.stderr)
        print_json(result)
        return 0
    if args.load is not None:
        with ProgressBar("bench --load") as bar:
            result = load_slowdown(dataset, args.tasks, args.epochs, args.seeds or 3, size, args.device, args.load,
                                   progress=bar)
        print(format_load(result), file=sys.stderr)
        print_json(result)
        return 0
    if args.power:
        from explorer.bench import format_power, power_bench
        with ProgressBar("bench --power") as bar:
            result = power_bench(dataset, args.tasks, size, fixed_seeds=args.fixed_seeds,
                                 replicates=args.replicates, progress=bar)
        print(format_power(result), file=sys.stderr)
        print_json(result)
        return 0
    if args.profile:
        print(profile_batched(dataset, args.tasks, 1, size, args.device))
        return 0
    modes = ("batched", "sequential") if args.mode == "both" else (args.mode,)
    with ProgressBar("bench") as bar:
        result = run_bench(dataset, args.tasks, args.epochs, args.seeds or 1, size, args.device, modes,
                           progress=bar)
    print(format_table(result), file=sys.stderr)
    print_json(result)
    return 0
