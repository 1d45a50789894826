"""Explaining predictions: which words, columns or pixels drove each task's output.

Works with anything that predicts: a ``Run`` from the run store, a loaded
``Bundle``, a ``Predictor`` or a ``TrainResult``. One task head is explained
at a time (see ``explorer.attributions``), by default for the class the model
predicts.

Scores are in output units: the logit of the explained class for a
classification head, the label's own units for a regression head (the model
predicts standardised values; scores are scaled back by the training std). So
for integrated gradients ``base + sum(scores) = output`` up to ``delta``, where
``base`` is the output for the baseline input: an all-padding document of the
same length, the training means with no category set, or a blank image.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from explorer.attributions import get_method, group_index
from explorer.errors import ExplorerError
from explorer.store.predict import Predictor
from explorer.data.preprocess import UNK, tokenize
from explorer.data.tasks import Task
from explorer.training.progress import Progress, emit

N_STEPS = 50          # one input: on news |delta| is ~0.1 % of f(x) - f(baseline) (95th percentile ~1 %)
GLOBAL_STEPS = 16     # per row when averaging many rows: on news |scores| within ~0.5 % (L1) of 300 steps
INTERNAL_BATCH = 512  # rows x steps per forward pass when explaining many rows


@dataclass
class Explanation:
    """One input explained for several tasks. ``features`` name the scored positions:
    tokens (text), source columns (tabular) or pixels "r,c" (image)."""
    modality: str
    method: str
    features: list[str]
    scores: dict[str, Any]                 # task -> one score per feature (image: an (h, w) array)
    predicted: dict[str, str | float]      # task -> predicted class or value
    explained: dict[str, str | float]      # task -> the class explained (regression: the value)
    probability: dict[str, float | None]   # task -> probability of the explained class
    output: dict[str, float]               # task -> f(input) in output units
    base: dict[str, float]                 # task -> f(baseline) in output units
    delta: dict[str, float | None]         # task -> completeness error (None: method has none)

    @property
    def tasks(self) -> list[str]:
        return list(self.scores)


@dataclass
class TextAttribution(Explanation):
    text: str = ""
    known: list[bool] = field(default_factory=list)  # False where the word is not in the vocabulary

    @property
    def tokens(self) -> list[str]:
        return self.features


@dataclass
class RowAttribution(Explanation):
    values: list = field(default_factory=list)  # the row's raw value of each source column


@dataclass
class ImageAttribution(Explanation):
    image: np.ndarray | None = None


@dataclass
class Importance:
    """Global importance: mean |attribution| of each feature per task (tasks x features)."""
    tasks: list[str]
    features: list[str]
    matrix: np.ndarray
    n_rows: int
    method: str
    counts: list[int] | None = None        # text: occurrences of each word in the sample
    shape: tuple[int, int] | None = None   # image: (h, w) to reshape a task's row

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.matrix, index=self.tasks, columns=self.features)


@dataclass
class Comparison:
    """One input explained by a single-task and a multi-task model, for the same class."""
    task: str
    features: list[str]
    single: Explanation
    multi: Explanation
    single_scores: np.ndarray
    multi_scores: np.ndarray
    similarity: float | None      # Spearman rank correlation of the scores (None: undefined)
    top_overlap: float | None     # share of the k most important features both models agree on
    k: int


def as_predictor(subject) -> Predictor:
    """A Predictor from a Run (``.predictor()``), Bundle (``.predictor``), TrainResult or Predictor.

    Pass a Predictor (or a Bundle) when explaining many inputs: a Run reloads its
    weights on every call.
    """
    if isinstance(subject, Predictor):
        return subject
    found = getattr(subject, "predictor", None)
    if found is not None:
        return found() if callable(found) else found
    if all(hasattr(subject, a) for a in ("model", "tasks", "preprocessor", "target_stats")):
        return Predictor(subject.model, list(subject.tasks), subject.preprocessor, dict(subject.target_stats))
    raise TypeError(f"cannot explain a {type(subject).__name__}: pass a Run, Bundle, TrainResult or Predictor")


def explain(subject, inputs, tasks: list[str] | None = None, target=None, method: str | None = None,
            n_steps: int | None = None) -> Explanation:
    """Explain one input of the subject's modality (a text, a row, or an image)."""
    modality = as_predictor(subject).preprocessor.modality
    fn = {"text": explain_text, "tabular": explain_row, "image": explain_image}[modality]
    return fn(subject, inputs, tasks=tasks, target=target, method=method, n_steps=n_steps)


def explain_text(subject, text: str, tasks: list[str] | None = None, target=None, method: str | None = None,
                 n_steps: int | None = None) -> TextAttribution:
    """Per-word scores for each task (layer integrated gradients on the token embeddings).

    ``target`` picks the class explained: None (the predicted class), or
    ``{task: class name or index}``; a single class when one task is explained.
    """
    p = _check(as_predictor(subject), "text")
    pre = p.preprocessor
    tokens = tokenize(text or "")[: pre.max_len]
    if not tokens:
        raise ExplorerError("The text has no words to explain. Enter a sentence or a document.")
    ids = pre.ids(text)
    x = torch.tensor([ids], dtype=torch.long)
    parts = _attribute(p, x, tasks, target, method, n_steps or N_STEPS)
    unk = pre.index[UNK]
    return TextAttribution(modality="text", features=tokens, **parts, text=text, known=[i != unk for i in ids])


def explain_row(subject, row, tasks: list[str] | None = None, target=None, method: str | None = None,
                n_steps: int | None = None) -> RowAttribution:
    """Per-column scores for each task; a categorical column's one-hot levels are summed into one score.

    ``row`` is a dict, a Series or a one-row DataFrame of raw feature values.
    ``method``: "ig" (default), "ablation" or "shapley".
    """
    p = _check(as_predictor(subject), "tabular")
    frame = _one_row(row, p)
    x = p.transform(frame)
    groups, names = group_index(p.preprocessor.feature_groups)
    parts = _attribute(p, x, tasks, target, method, n_steps or N_STEPS, groups=groups)
    values = [_plain(frame[c].iloc[0]) for c in names]
    return RowAttribution(modality="tabular", features=names, **parts, values=values)


def explain_image(subject, image, tasks: list[str] | None = None, target=None, method: str | None = None,
                  n_steps: int | None = None) -> ImageAttribution:
    """Per-pixel scores for each task, as (h, w) arrays."""
    p = _check(as_predictor(subject), "image")
    pre = p.preprocessor
    arr = np.asarray(image, dtype=np.float32)
    if arr.size != pre.height * pre.width:
        raise ExplorerError(f"The image has {arr.size} pixels; this model reads {pre.height}x{pre.width} images.")
    x = p.transform(arr.reshape(1, pre.height, pre.width))
    parts = _attribute(p, x, tasks, target, method, n_steps or N_STEPS)
    parts["scores"] = {t: np.asarray(s).reshape(pre.height, pre.width) for t, s in parts["scores"].items()}
    names = [f"{r},{c}" for r in range(pre.height) for c in range(pre.width)]
    return ImageAttribution(modality="image", features=names, **parts, image=arr.reshape(pre.height, pre.width))


def global_importance(subject, data, method: str | None = None, n_rows: int = 200,
                      tasks: list[str] | None = None, part: str = "test", seed: int = 0,
                      batch_size: int = 16, n_steps: int | None = None, top_k: int = 30,
                      min_count: int = 3, progress: Progress | None = None) -> Importance:
    """Mean |attribution| per task and feature over a sample of rows, each explained for its predicted class.

    ``data`` is a Dataset (rows are sampled from its ``part`` split, made with
    the subject's split settings so they are rows the model did not train on)
    or raw inputs (a list of texts, a DataFrame, an image array). Text features
    are words: the ``top_k`` words (by their largest task-normalised
    importance) among words seen at least ``min_count`` times in the sample.

    Rows are explained ``batch_size`` at a time (a text chunk is padded to its
    longest document), and Captum integrates in batches of INTERNAL_BATCH
    rows x steps. ``progress`` gets a ``ProgressEvent`` (phase "explain", in rows)
    after each chunk; returning False stops the work with ``Cancelled``.
    """
    p = as_predictor(subject)
    modality = p.preprocessor.modality
    info = get_method(method, modality)
    inputs = _sample(subject, p, data, n_rows, part, seed)
    n = len(inputs)
    if n == 0:
        raise ExplorerError("No rows to explain: the sample is empty.")
    names = _task_names(p, tasks)
    steps = n_steps or GLOBAL_STEPS
    groups, features = (group_index(p.preprocessor.feature_groups) if modality == "tabular" else (None, None))
    totals: dict[str, Any] = {}
    counts: Any = None
    for start in range(0, n, batch_size):
        chunk = _rows(inputs, start, start + batch_size)
        x = p.transform(chunk)
        with torch.no_grad():
            outputs = p.model.eval()(x)
        for name in names:
            task = _task(p, name)
            target = outputs[name].argmax(1) if task.is_classification else torch.zeros(len(x), dtype=torch.long)
            result = info(p.model, name, x, target, groups=groups, n_steps=steps, batch_size=INTERNAL_BATCH)
            scores = result.scores.abs() * _scale(p, task)[0]
            if modality == "text":
                vocab = len(p.preprocessor.vocab)
                summed = torch.zeros(vocab, dtype=torch.float64).index_add_(
                    0, x.flatten(), scores.flatten().double())
                totals[name] = totals.get(name, 0) + summed
                if name == names[0]:
                    counts = (counts if counts is not None else 0) + torch.bincount(x.flatten(), minlength=vocab)
            else:
                totals[name] = totals.get(name, 0) + scores.reshape(len(x), -1).sum(0).double()
        emit(progress, "explain", min(start + batch_size, n), n, "rows explained")
    if modality == "text":
        return _word_importance(p, names, totals, counts, info.name, n, top_k, min_count)
    matrix = np.stack([(totals[t] / n).numpy() for t in names])
    if modality == "image":
        h, w = p.preprocessor.height, p.preprocessor.width
        features = [f"{r},{c}" for r in range(h) for c in range(w)]
        return Importance(names, features, matrix, n, info.name, shape=(h, w))
    return Importance(names, features, matrix, n, info.name)


def compare_attributions(single, multi, inputs, task: str, target=None, method: str | None = None,
                         n_steps: int | None = None, k: int = 10) -> Comparison:
    """Explain one input with the single-task and the multi-task model of ``task``.

    Both explain the same class (by default the multi-task model's prediction),
    so a low rank correlation means sharing changed what the model looks at,
    not just which class it chose.
    """
    ps, pm = as_predictor(single), as_predictor(multi)
    if ps.preprocessor.modality != pm.preprocessor.modality:
        raise ExplorerError("The two models read different kinds of input; compare models of the same dataset.")
    for label, p in (("single-task", ps), ("multi-task", pm)):
        if task not in p.model.heads:
            raise ExplorerError(f"The {label} model has no task '{task}' (it has: {', '.join(p.model.heads)}).")
    if target is None:
        batch = _one_row(inputs, pm) if pm.preprocessor.modality == "tabular" else inputs
        target = pm.predict(batch)[task]["labels"][0]
    es = explain(ps, inputs, [task], {task: target}, method, n_steps)
    em = explain(pm, inputs, [task], {task: target}, method, n_steps)
    a = dict(zip(es.features, np.ravel(es.scores[task]))) if es.modality == "tabular" else None
    if a is not None:  # tabular: align by column name (the two may have been fitted differently)
        features = [f for f in em.features if f in a]
        b = dict(zip(em.features, np.ravel(em.scores[task])))
        s, m = np.array([a[f] for f in features]), np.array([b[f] for f in features])
    else:  # tokens and pixels are positions of the same input
        width = min(len(es.features), len(em.features))
        features = em.features[:width]
        s, m = np.ravel(es.scores[task])[:width], np.ravel(em.scores[task])[:width]
    return Comparison(task, features, es, em, s, m, _spearman(s, m), _top_overlap(s, m, k), min(k, len(s)))


# --- internals -------------------------------------------------------------

def _check(p: Predictor, modality: str) -> Predictor:
    if p.preprocessor.modality != modality:
        raise ExplorerError(f"This model reads {p.preprocessor.modality} inputs, not {modality}.")
    return p


def _task_names(p: Predictor, tasks: list[str] | None) -> list[str]:
    names = list(tasks) if tasks else [t.name for t in p.tasks]
    unknown = [t for t in names if t not in p.model.heads]
    if unknown:
        raise ExplorerError(f"Unknown task(s) {', '.join(map(repr, unknown))}; this model predicts "
                            f"{', '.join(p.model.heads)}.")
    return names


def _task(p: Predictor, name: str) -> Task:
    return next(t for t in p.tasks if t.name == name)


def _scale(p: Predictor, task: Task) -> tuple[float, float]:
    """(std, mean) turning a head's output into output units."""
    if task.is_classification:
        return 1.0, 0.0
    mean, std = p.target_stats.get(task.name, (0.0, 1.0))
    return float(std), float(mean)


def _target_index(task: Task, wanted, predicted: int) -> int:
    if not task.is_classification or wanted is None:
        return 0 if not task.is_classification else predicted
    if isinstance(wanted, (int, np.integer)) and not isinstance(wanted, bool):
        if 0 <= wanted < len(task.classes):
            return int(wanted)
    elif str(wanted) in task.classes:
        return task.classes.index(str(wanted))
    raise ExplorerError(f"Task '{task.name}' has no class {wanted!r}. Classes: {', '.join(task.classes)}.")


def _targets(names: list[str], target) -> dict[str, Any]:
    if target is None:
        return {}
    if isinstance(target, dict):
        return target
    if len(names) != 1:
        raise ExplorerError("Give the class to explain per task, e.g. {'outlet': 'BBC'}, "
                            "or explain one task at a time.")
    return {names[0]: target}


def _baseline_outputs(p: Predictor, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Outputs for the baseline every method starts from (see explorer.attributions)."""
    model = p.model
    with torch.no_grad():
        if p.preprocessor.modality == "text":
            mask = (x != 0).unsqueeze(-1).to(model.encoder.embedding.weight.dtype)
            return model.decode(model.encoder(torch.zeros_like(x), mask))
        return model(torch.zeros_like(x))


def _attribute(p: Predictor, x: torch.Tensor, tasks, target, method, n_steps, groups=None) -> dict:
    """Explain one input row for each task: the Explanation fields other than modality and features."""
    info = get_method(method, p.preprocessor.modality)
    names = _task_names(p, tasks)
    wanted = _targets(names, target)
    model = p.model.eval()
    with torch.no_grad():
        outputs = model(x)
    base_out = _baseline_outputs(p, x)
    scores, predicted, explained, probability, output, base, delta = {}, {}, {}, {}, {}, {}, {}
    for name in names:
        task = _task(p, name)
        out = outputs[name][0]
        std, mean = _scale(p, task)
        index = _target_index(task, wanted.get(name), int(out.argmax()))
        result = info(model, name, x, torch.tensor([index]), groups=groups, n_steps=n_steps)
        scores[name] = (result.scores[0] * std).tolist()
        delta[name] = None if result.delta is None else float(result.delta[0]) * std
        output[name] = float(out[index]) * std + mean
        base[name] = float(base_out[name][0, index]) * std + mean
        if task.is_classification:
            probs = torch.softmax(out, 0)
            predicted[name] = task.classes[int(out.argmax())]
            explained[name] = task.classes[index]
            probability[name] = float(probs[index])
        else:
            predicted[name] = explained[name] = output[name]
            probability[name] = None
    return dict(method=info.name, scores=scores, predicted=predicted, explained=explained,
                probability=probability, output=output, base=base, delta=delta)


def _one_row(row, p: Predictor) -> pd.DataFrame:
    if isinstance(row, pd.DataFrame):
        frame = row
    elif isinstance(row, pd.Series):
        frame = row.to_frame().T
    elif isinstance(row, dict):
        frame = pd.DataFrame([row])
    else:
        raise ExplorerError("Give the row to explain as a dict, a Series or a one-row DataFrame.")
    if len(frame) != 1:
        raise ExplorerError(f"Explain one row at a time (got {len(frame)}); use global_importance for many.")
    pre = p.preprocessor
    missing = [c for c in list(pre.numeric) + list(pre.categorical) if c not in frame.columns]
    if missing:
        raise ExplorerError(f"The row lacks column(s) {', '.join(missing)} that the model reads.")
    return frame.reset_index(drop=True)


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _sample(subject, p: Predictor, data, n_rows: int, part: str, seed: int):
    rng = np.random.default_rng(seed)
    if hasattr(data, "split") and hasattr(data, "subset_rows"):  # a Dataset
        if data.modality != p.preprocessor.modality:
            raise ExplorerError(f"The dataset is {data.modality} data but the model reads "
                                f"{p.preprocessor.modality} inputs.")
        train = _train_settings(subject)
        split = data.split(train.get("split_seed", 0), train.get("train_size", 1.0))
        if part not in ("train", "val", "test"):
            raise ExplorerError(f"part must be train, val or test, not {part!r}.")
        rows = getattr(split, part)
        rows = np.sort(rng.choice(rows, size=min(n_rows, len(rows)), replace=False))
        return data.subset_rows(rows)
    n = len(data)
    rows = np.sort(rng.choice(n, size=min(n_rows, n), replace=False))
    if isinstance(data, pd.DataFrame):
        return data.iloc[rows].reset_index(drop=True)
    if isinstance(data, np.ndarray):
        return data[rows]
    return [data[i] for i in rows]


def _train_settings(subject) -> dict:
    """Split settings of the subject: a Run or Bundle keeps them in config["train"], a TrainResult
    in its TrainConfig; anything else falls back to the default split."""
    config = getattr(subject, "config", None)
    if hasattr(config, "to_dict"):
        return config.to_dict()
    return config.get("train", {}) if isinstance(config, dict) else {}


def _rows(inputs, start: int, stop: int):
    if isinstance(inputs, pd.DataFrame):
        return inputs.iloc[start:stop].reset_index(drop=True)
    return inputs[start:stop]


def _word_importance(p: Predictor, names, totals, counts, method: str, n: int, top_k: int,
                     min_count: int) -> Importance:
    vocab = p.preprocessor.vocab
    counts = counts.numpy()
    keep = np.flatnonzero(counts >= min_count)
    keep = keep[keep > 1]  # padding and the unknown-word token are not words
    if len(keep) == 0:
        raise ExplorerError(f"No word occurs {min_count} times in the {n} sampled documents; "
                            "sample more rows or lower min_count.")
    mean = np.stack([(totals[t].numpy()[keep] / counts[keep]) for t in names])  # per occurrence
    normalised = mean / np.maximum(mean.max(1, keepdims=True), 1e-12)
    order = np.argsort(-normalised.max(0), kind="stable")[:top_k]
    return Importance(names, [vocab[i] for i in keep[order]], mean[:, order], n, method,
                      counts=counts[keep[order]].tolist())


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(spearmanr(a, b).statistic)


def _top_overlap(a: np.ndarray, b: np.ndarray, k: int) -> float | None:
    k = min(k, len(a))
    if k == 0:
        return None
    top = lambda s: set(np.argsort(-np.abs(s), kind="stable")[:k].tolist())  # noqa: E731
    return len(top(a) & top(b)) / k
