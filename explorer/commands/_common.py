"""Options shared by several commands: choosing data and tasks, training settings, progress."""
from __future__ import annotations

import argparse
import json
import sys

from tqdm import tqdm

from explorer.data.dataset import Dataset
from explorer.datasets import DEFAULT, load_dataset, names
from explorer.errors import ExplorerError
from explorer.training.progress import ProgressEvent
from explorer.training.trainer import DEFAULT_LR, TrainConfig
from explorer.data.sentence import DEFAULT as DEFAULT_ENCODER, ENCODERS as TEXT_ENCODERS, with_encoder
from models.architectures import describe as describe_archs
from models.architectures.mmoe import MAX_EXPERTS


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default=DEFAULT,
                   help=f"built-in dataset: {', '.join(names())} (default: {DEFAULT}); ignored with --csv")
    g.add_argument("--csv", metavar="FILE", help="your own CSV file instead of a built-in dataset")
    g.add_argument("--text-col", metavar="COL", help="with --csv: the column holding the text")
    g.add_argument("--feature-cols", metavar="A,B,..", help="with --csv: feature columns (tabular data)")
    g.add_argument("--label-cols", metavar="X,Y,..",
                   help="with --csv: label columns, one task each (default: the --tasks)")
    g.add_argument("--kinds", metavar="X=regression,..",
                   help="with --csv: override a task's detected kind (binary, multiclass, regression)")
    g.add_argument("--mask-outlets", action="store_true",
                   help="news only: replace outlet names in the text by [outlet]")
    g.add_argument("--encoder", choices=list(TEXT_ENCODERS), default=DEFAULT_ENCODER,
                   help="text only: " + "; ".join(f"{k} = {v}" for k, v in TEXT_ENCODERS.items()))


def add_train_arguments(p: argparse.ArgumentParser, seed: bool = True) -> None:
    d = TrainConfig()
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=d.epochs, help=f"maximum epochs (default: {d.epochs})")
    g.add_argument("--batch-size", type=int, default=d.batch_size, help=f"default: {d.batch_size}")
    g.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate (default: per modality: "
                   + ", ".join(f"{k} {v}" for k, v in DEFAULT_LR.items()) + ")")
    g.add_argument("--hidden", type=int, default=d.hidden,
                   help=f"width of the shared layer (default: {d.hidden}); narrow layers make tasks compete")
    g.add_argument("--patience", type=int, default=d.patience,
                   help=f"early stopping patience in epochs, 0 = off (default: {d.patience})")
    g.add_argument("--balance", type=float, default=d.balance,
                   help=f"class weights (n / (k n_c)) ** B in classification losses, 0 = unweighted "
                        f"(default: {d.balance})")
    g.add_argument("--ema", type=float, default=d.ema,
                   help=f"per-epoch decay of the averaged weights that are validated and kept, 0 = off "
                        f"(default: {d.ema})")
    g.add_argument("--train-size", type=float, default=d.train_size,
                   help="training-set size: a fraction of the training pool (0-1] or a row count (default: 1.0)")
    g.add_argument("--split-seed", type=int, default=d.split_seed,
                   help="seed of the train/validation/test split (default: 0)")
    if seed:
        g.add_argument("--seed", type=int, default=d.seed, help="initialisation and batch-order seed (default: 0)")
    g.add_argument("--device", default=d.device, help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps")
    g.add_argument("--arch", default=d.arch, help="how the tasks share: " + "; ".join(
        f"{name} = {text}" for name, text in describe_archs().items()) + f" (default: {d.arch})")
    g.add_argument("--experts", type=int, default=d.experts,
                   help=f"mmoe: the number of shared experts, 1 to {MAX_EXPERTS} (default: {d.experts})")


def add_keep_at_chance(p: argparse.ArgumentParser, where: str = "Δm") -> None:
    """The switch that keeps tasks at chance in ``where`` (gains.keep_at_chance), one wording for every command."""
    p.add_argument("--keep-at-chance", action="store_true",
                   help="give tasks whose single-task model is at chance a gain relative to their raw score, so "
                        f"they count in {where} (marked; their verdicts stay unclear). Default: such tasks show "
                        "only the absolute difference and stay out of it")


def split_list(value: str | None, what: str) -> list[str]:
    items = [v.strip() for v in (value or "").split(",") if v.strip()]
    if not items:
        raise ExplorerError(f"{what} is empty: give a comma-separated list, e.g. a,b.")
    return items


def load_from_args(args: argparse.Namespace, tasks: list[str] | None = None) -> Dataset:
    """The dataset the options name, under the chosen text encoder (``--encoder``)."""
    dataset = _load(args, tasks)
    encoder = getattr(args, "encoder", DEFAULT_ENCODER) or DEFAULT_ENCODER
    if encoder == DEFAULT_ENCODER:
        return dataset
    with ProgressBar(encoder) as bar:  # drawn only when the embeddings are computed, not read from the cache
        return with_encoder(dataset, encoder, progress=bar)


def _load(args: argparse.Namespace, tasks: list[str] | None = None) -> Dataset:
    if getattr(args, "csv", None):
        kinds = {}
        for item in split_list(args.kinds, "--kinds") if args.kinds else []:
            if "=" not in item:
                raise ExplorerError(f"--kinds item '{item}' must look like COLUMN=KIND.")
            col, kind = item.split("=", 1)
            kinds[col.strip()] = kind.strip()
        labels = split_list(args.label_cols, "--label-cols") if args.label_cols else tasks
        if not labels:
            raise ExplorerError("With --csv, name the label columns with --label-cols (or --tasks).")
        return load_dataset("csv", path=args.csv, text_col=args.text_col,
                            feature_cols=split_list(args.feature_cols, "--feature-cols") if args.feature_cols else None,
                            label_cols=labels, kinds=kinds or None)
    options = {"mask_outlets": True} if getattr(args, "mask_outlets", False) else {}
    if options and args.dataset != "news":
        raise ExplorerError("--mask-outlets only applies to the news dataset.")
    return load_dataset(args.dataset, **options)


def config_from_args(args: argparse.Namespace, **overrides) -> TrainConfig:
    size = args.train_size
    values = dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, hidden=args.hidden,
                  patience=args.patience, train_size=int(size) if size > 1 and float(size).is_integer() else size,
                  split_seed=args.split_seed, device=args.device)
    for name in ("balance", "ema", "experts", "seed", "method"):  # the settings only some commands take
        if hasattr(args, name):
            values[name] = getattr(args, name)
    if getattr(args, "arch", None) and "," not in args.arch:  # a list (sweep --arch a,b) is the sweep's
        values["arch"] = args.arch.strip()
    values.update(overrides)
    return TrainConfig(**values).validate()


class ProgressBar:
    """The CLI's progress callback: a tqdm bar on stderr, drawn from the first event on.

    Drawn lazily, so a request rejected before any work prints its one error
    line and no empty bar. Takes ``ProgressEvent``s only (see
    ``explorer.training.progress``); never cancels.
    """

    FORMAT = "{desc}: {percentage:3.0f}%|{bar:28}| {elapsed}<{remaining} {postfix}"

    def __init__(self, label: str = "", stream=None):
        self.label, self.stream = label, stream or sys.stderr
        self.bar: tqdm | None = None

    def __call__(self, event: ProgressEvent) -> None:
        if self.bar is None:
            self.bar = tqdm(total=event.total, desc=self.label, file=self.stream, bar_format=self.FORMAT,
                            dynamic_ncols=True)
        losses = " ".join(f"{k}={v:.3f}" for k, v in event.losses.items())
        self.bar.set_postfix_str(" ".join(p for p in (event.message, losses) if p), refresh=False)
        self.bar.total = event.total
        self.bar.update(event.done - self.bar.n)  # tqdm itself throttles the redraws

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()  # the bar ends on its line whether the work finished, failed or was cancelled


def print_json(data) -> None:
    print(json.dumps(data, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
