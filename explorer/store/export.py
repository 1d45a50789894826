"""Exporting a run as a self-contained model bundle (one zip, no pickle, no code).

The zip holds:
    model.safetensors  the weights
    config.json        architecture, tasks with their classes, preprocessing
                       (vocabulary or feature transform), regression target
                       scaling, metrics, dataset and training settings
    model.onnx         the network with preprocessing split off: it takes token
                       ids (int64 [batch, seq], 0 = padding), the transformed
                       feature vector (float32 [batch, features]) or images
                       (float32 [batch, h, w]) and returns one output per task,
                       named after the task (logits, or standardised values
                       for regression)
    preprocess.json    the vocabulary (with the token pattern) or feature transform alone
    predict.py         prediction with numpy + onnxruntime only (``explorer/store/onnx_predict.py``)
    README.md          a model card
config.json records the SHA-256 of every other member, checked on load.
``explorer.load_bundle`` reads it back (see ``explorer.store.bundle``).
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from explorer.store.atomic import atomic_file, check_writable
from explorer.store.bundle import FORMAT, INPUT_NAMES, VERSION, digest
from explorer.errors import ExplorerError
from explorer.store.runs import Run, load_run, single_task_runs
from explorer.data.preprocess import TOKEN_RE
from explorer.data.tasks import Task
from models import MultiTaskModel

STANDALONE = Path(__file__).with_name("onnx_predict.py")  # shipped in every bundle as predict.py
PARITY_LIMIT = 1e-4  # largest |onnxruntime - PyTorch| output accepted at export
PREPROCESSING = {"text": "the vocabulary; tokens are lower-cased words, 0 = padding, 1 = unknown word",
                 "tabular": "the feature transform: numeric columns standardised, categories one-hot",
                 "image": "pixel values as in training"}


@dataclass
class ExportResult:
    path: Path
    files: dict[str, int]      # member -> bytes
    onnx_max_error: float      # largest |onnxruntime - PyTorch| on a check batch
    seconds: float


class _TaskOutputs(nn.Module):
    """The model with a tuple of outputs in task order, which ONNX can name one by one."""

    def __init__(self, model: MultiTaskModel):
        super().__init__()
        self.model = model
        self.names = model.task_names

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(x)
        return tuple(out[n] for n in self.names)


def export_bundle(run: Run | str, out_path: str | Path, store: Path | None = None) -> ExportResult:
    """Write ``run`` (a Run or a run id) as a bundle zip at ``out_path``, atomically.

    The ONNX graph is checked against PyTorch on a batch of inputs before the
    bundle is written; a disagreement above 1e-4 is an error, not a bundle.
    """
    start = time.perf_counter()
    run = load_run(run, store) if isinstance(run, str) else run
    out = check_bundle_path(out_path)
    model = run.model()
    weights = (run.path / "model.safetensors").read_bytes()
    onnx = onnx_bytes(model, run.config["modality"])
    error = onnx_parity(onnx, model, check_batch(model))
    if error > PARITY_LIMIT:
        raise ExplorerError(f"The ONNX export disagrees with PyTorch by {error:.2g} (limit {PARITY_LIMIT}); "
                            "the bundle was not written. Please report this with the run id.")
    singles = {t.name: single_task_summary(run, t, store) for t in run.tasks}
    config = bundle_config(run, singles, error)
    members = {"model.safetensors": weights, "model.onnx": onnx,
               "preprocess.json": json.dumps(standalone_transform(config["preprocess"]), indent=1).encode(),
               "predict.py": STANDALONE.read_bytes(), "README.md": model_card(config).encode()}
    config["sha256"] = {name: digest(blob) for name, blob in members.items()}
    files = {"config.json": json.dumps(config, indent=2).encode(), **members}
    _write_zip(out, files)
    return ExportResult(out, {k: len(v) for k, v in files.items()}, error, time.perf_counter() - start)


def check_bundle_path(out_path: str | Path) -> Path:
    """Where a bundle may be written: a .zip path in a writable folder (checked before any export work)."""
    out = Path(out_path)
    if out.suffix.lower() != ".zip":
        raise ExplorerError(f"The bundle path must end in .zip, got '{out}'.")
    return check_writable(out)


def standalone_transform(preprocess: dict) -> dict:
    """preprocess.json: the transform as the bundle's predict.py applies it, without the explorer's code."""
    if preprocess["modality"] == "text":  # the tokenizer is a regular expression on lower-cased text
        return {**preprocess, "token_pattern": TOKEN_RE.pattern, "lowercase": True}
    return dict(preprocess)


def bundle_config(run: Run, singles: dict[str, dict | None], onnx_error: float) -> dict:
    c = run.config
    return {
        "format": FORMAT, "version": VERSION,
        "exported": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "run": {"id": run.id, "created": c.get("created"), "key": c.get("key")},
        "dataset": c.get("dataset", {}), "fingerprint": c.get("fingerprint"),
        "modality": c["modality"], "tasks": c["tasks"], "model": c["model"],
        "preprocess": c["preprocess"], "target_stats": c.get("target_stats", {}),
        "train": c.get("train", {}), "split_sizes": c.get("split_sizes"), "best_epoch": c.get("best_epoch"),
        "metrics": {"test": run.metrics.get("test", {}), "baseline": run.metrics.get("baseline", {}),
                    "single_task": singles},
        "onnx": {"input": INPUT_NAMES[c["modality"]], "input_dtype": "int64" if c["modality"] == "text" else "float32",
                 "outputs": [t["name"] for t in c["tasks"]], "max_abs_error_vs_pytorch": onnx_error},
    }


def onnx_bytes(model: MultiTaskModel, modality: str) -> bytes:
    """The model as ONNX (torch.export based exporter) with dynamic batch (and sequence) axes."""
    example = check_batch(model)[:2]
    axes = {0: torch.export.Dim("batch")}
    if modality == "text":
        axes[1] = torch.export.Dim("seq")
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "torchvision is not installed" notices are noise here
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(_TaskOutputs(model.eval()).eval(), (example,), None, dynamo=True,
                                        input_names=[INPUT_NAMES[modality]], output_names=model.task_names,
                                        dynamic_shapes=(axes,), verbose=False)
    finally:
        quiet.setLevel(level)
    return program.model_proto.SerializeToString()


def check_batch(model: MultiTaskModel, seed: int = 0) -> torch.Tensor:
    """A small input batch of the model's kind: padded documents, feature vectors or images."""
    g = torch.Generator().manual_seed(seed)
    spec = model.spec
    if spec.modality == "text":
        vocab = spec.input["vocab_size"]
        x = torch.randint(1, max(vocab, 2), (4, 13), generator=g) % vocab
        x[1, 9:] = 0   # a shorter document, padded
        x[2, 3:] = 0
        return x
    if spec.modality == "tabular":
        return torch.randn(5, spec.input["n_features"], generator=g) * 2
    return torch.rand(4, spec.input["height"], spec.input["width"], generator=g) * 16


def onnx_parity(blob: bytes, model: MultiTaskModel, x: torch.Tensor) -> float:
    """Largest absolute difference between onnxruntime's and PyTorch's outputs on ``x``."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in session.get_outputs()],
                   session.run(None, {session.get_inputs()[0].name: x.numpy()})))
    with torch.no_grad():
        ref = model.eval()(x)
    return max(float(np.abs(got[n] - ref[n].numpy()).max()) for n in model.task_names)


def single_task_summary(run: Run, task: Task, store: Path | None = None) -> dict | None:
    """Test scores of the matching single-task runs (None when none was trained)."""
    runs = single_task_runs(run, task.name, store)
    metric = task.primary_metric
    scores = [r.metrics["test"][task.name].get(metric) for r in runs]
    pairs = [(r, s) for r, s in zip(runs, scores) if s is not None]
    if not pairs:
        return None
    values = np.array([s for _, s in pairs], float)
    return {"metric": metric, "runs": [r.id for r, _ in pairs], "seeds": [r.config["train"]["seed"] for r, _ in pairs],
            "scores": values.tolist(), "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else None}


def model_card(config: dict) -> str:
    """README.md of a bundle: what the model is, how well it does, and how to use it."""
    tasks = [Task.from_dict(t) for t in config["tasks"]]
    names = [t.name for t in tasks]
    metrics = config["metrics"]
    data = config.get("dataset", {})
    train = config.get("train", {})
    sizes = config.get("split_sizes") or {}
    multi = len(tasks) > 1
    lines = [f"# {'Multi-task' if multi else 'Single-task'} model: {', '.join(names)}", "",
             f"A shared {config['modality']} encoder with one head per task, trained with the task "
             "relatedness explorer.", "",
             "## Dataset", "",
             f"- name: {data.get('name', 'unknown')}"]
    options = {k: v for k, v in data.items() if k != "name"}
    if options:
        lines.append(f"- options: {json.dumps(options)}")
    lines += [f"- fingerprint: {config.get('fingerprint')}",
              f"- split (rows): train {sizes.get('train', '?')}, validation {sizes.get('val', '?')}, "
              f"test {sizes.get('test', '?')} (split seed {train.get('split_seed', '?')})", "",
              "## Tasks", "", "| task | kind | classes |", "|---|---|---|"]
    for t in tasks:
        classes = ", ".join(t.classes[:12]) + (f", ... ({len(t.classes)} in all)" if len(t.classes) > 12 else "")
        lines.append(f"| {t.name} | {t.kind} | {classes or '(a number)'} |")
    lines += ["", "## Test metrics", "",
              "Scored on the held-out test split. The single-task baseline is the same network trained on "
              "that task alone, on the same split with the same settings (mean over its seeds).", "",
              "| task | metric | this model | majority / mean baseline | single-task baseline | difference |",
              "|---|---|---|---|---|---|"]
    missing = []
    for t in tasks:
        metric = t.primary_metric
        score = metrics["test"].get(t.name, {}).get(metric)
        base = metrics.get("baseline", {}).get(t.name, {}).get(metric)
        single = metrics.get("single_task", {}).get(t.name)
        if single:
            spread = f" ± {single['std']:.3f}" if single.get("std") is not None else ""
            single_text = f"{single['mean']:.3f}{spread} (n={len(single['scores'])})"
            diff = f"{score - single['mean']:+.3f}" if score is not None else "-"
        else:
            single_text, diff = "none trained", "-"
            missing.append(t.name)
        lines.append(f"| {t.name} | {metric} | {_num(score)} | {_num(base)} | {single_text} | {diff} |")
    if not multi:
        lines += ["", "This is itself a single-task model; the single-task column shows other seeds of it, if any."]
    elif missing:
        lines += ["", f"No single-task baseline was trained for {', '.join(missing)}, so this card cannot say whether "
                  "training the tasks together helped them. Train one in the app, or with "
                  f"`python -m explorer train --tasks {missing[0]}` and the same settings, then export again."]
    lines += ["", "Differences are from one multi-task seed; the explorer app shows them with seed-noise intervals.",
              "", "## Training", "",
              f"- trained: {config.get('run', {}).get('created', '?')} (run `{config.get('run', {}).get('id')}`)",
              f"- exported: {config.get('exported')}",
              f"- best epoch: {config.get('best_epoch')}",
              "- settings: " + ", ".join(f"{k}={v}" for k, v in train.items()), "",
              "## Usage", "",
              "With the explorer installed (`pip install` of its source folder):", "", "```python",
              "import explorer",
              'bundle = explorer.load_bundle("bundle.zip")  # checks the files; runs no code from the zip',
              "result = bundle.predict({}){}".format(*_example(config)),
              "for task, out in result.items():",
              '    print(task, out["labels"][0], out.get("probabilities"))',
              "```", "",
              "With nothing but numpy and onnxruntime (`pip install numpy onnxruntime`): unzip the bundle and run",
              "its `predict.py`, which applies `preprocess.json` and runs `model.onnx`:", "", "```",
              f"python predict.py {_cli_example(config)}",
              "```", "",
              "It prints one JSON object per input (task -> label); add `--probabilities` for class probabilities.",
              "`config.json` lists the SHA-256 of every other file in the bundle.", "",
              f"`model.onnx` takes `{config['onnx']['input']}` ({config['onnx']['input_dtype']}, "
              f"{_shape(config['modality'])}) after preprocessing (see `config.json`: "
              f"{PREPROCESSING[config['modality']]}) "
              f"and returns one output per task named after it ({', '.join(names)}): class logits, or for regression "
              "a standardised value (multiply by `target_stats` std, add the mean). Its largest difference "
              f"from PyTorch on a check batch was {config['onnx']['max_abs_error_vs_pytorch']:.1e}.", ""]
    return "\n".join(lines)


def _num(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _example(config: dict) -> tuple[str, str]:
    """The argument of predict in the usage example, and a comment for its line."""
    if config["modality"] == "text":
        return '["An article to classify ..."]', ""
    if config["modality"] == "tabular":
        cols = list(config["preprocess"]["numeric"]) + list(config["preprocess"]["categorical"])
        return "[{" + ", ".join(f'"{c}": ...' for c in cols[:3]) + "}]", "  # one dict per row, every column"
    p = config["preprocess"]
    return "images", f"  # float array (n, {p['height']}, {p['width']})"


def _cli_example(config: dict) -> str:
    if config["modality"] == "text":
        return '"An article to classify ..." "Another one"'
    if config["modality"] == "tabular":
        cols = list(config["preprocess"]["numeric"]) + list(config["preprocess"]["categorical"])
        return "'{" + ", ".join(f'"{c}": ...' for c in cols[:3]) + "}'  # one JSON object per row"
    return "images.npy  # a float array (n, height, width) saved with numpy.save"


def _shape(modality: str) -> str:
    return {"text": "[batch, seq]", "tabular": "[batch, features]", "image": "[batch, height, width]"}[modality]


def _write_zip(out: Path, files: dict[str, bytes]) -> None:
    with atomic_file(out, "wb") as fh:  # the bundle appears whole or not at all
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for name, data in files.items():
                z.writestr(name, data)
