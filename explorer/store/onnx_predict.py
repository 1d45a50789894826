"""Predict with an exported bundle using only numpy and onnxruntime (this file is the bundle's predict.py).

Unzip the bundle, then:
    python predict.py "a text to classify" "another one"          # text models
    python predict.py '{"carat": 0.7, "cut": "Ideal"}'             # tabular: one JSON object per row
    python predict.py images.npy                                   # image models: an array (n, height, width)
Prints one JSON object per input: task -> predicted label (class name, or a number for regression).
Add --probabilities to get each class's probability as well.

It reads model.onnx, preprocess.json (the vocabulary or feature transform, exactly as in training)
and config.json (tasks, classes, regression target scaling). Nothing else from the explorer is needed.
"""
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

HERE = Path(__file__).resolve().parent


def load(folder=HERE):
    config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    transform = json.loads((Path(folder) / "preprocess.json").read_text(encoding="utf-8"))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(Path(folder) / "model.onnx"), options, providers=["CPUExecutionProvider"])
    return config, transform, session


def features(transform, inputs):
    """The model's input array, as the explorer's preprocessing makes it."""
    kind = transform["modality"]
    if kind == "text":
        index = {w: i for i, w in enumerate(transform["vocab"])}
        unk, pattern = index["<unk>"], re.compile(transform["token_pattern"])
        rows = [[index.get(w, unk) for w in pattern.findall(t.lower())][: transform["max_len"]] or [unk]
                for t in inputs]
        out = np.zeros((len(rows), max(len(r) for r in rows)), dtype=np.int64)  # 0 = padding
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out
    if kind == "tabular":
        columns = []
        for name, (mean, std) in transform["numeric"].items():
            columns.append([(_number(row.get(name), mean) - mean) / std for row in inputs])
        for name, values in transform["categorical"].items():
            for value in values:
                columns.append([float(_category(row.get(name)) == value) for row in inputs])
        return np.array(columns, dtype=np.float32).T.reshape(len(inputs), -1)
    return np.asarray(inputs, dtype=np.float32).reshape(-1, transform["height"], transform["width"])


def _number(value, missing):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return missing
    return value if math.isfinite(value) else missing


def _category(value):
    return str(value)


def predict(inputs, folder=HERE, probabilities=False):
    config, transform, session = load(folder)
    x = features(transform, inputs)
    names = [o.name for o in session.get_outputs()]
    raw = dict(zip(names, session.run(None, {config["onnx"]["input"]: x})))
    rows = [{} for _ in range(len(x))]
    for task in config["tasks"]:
        out = raw[task["name"]]
        if task["kind"] == "regression":
            mean, std = config["target_stats"][task["name"]]
            for row, value in zip(rows, out[:, 0] * std + mean):
                row[task["name"]] = float(value)
            continue
        p = np.exp(out - out.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        for row, probs in zip(rows, p):
            row[task["name"]] = task["classes"][int(probs.argmax())]
            if probabilities:
                row[task["name"] + " probabilities"] = dict(zip(task["classes"], probs.round(6).tolist()))
    return rows


def main(argv):
    probabilities = "--probabilities" in argv
    args = [a for a in argv if a != "--probabilities"]
    if not args:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    modality = json.loads((HERE / "preprocess.json").read_text(encoding="utf-8"))["modality"]
    try:
        if modality == "text":
            inputs = args
        elif modality == "tabular":
            inputs = [json.loads(a) for a in args]
            if not all(isinstance(r, dict) for r in inputs):
                raise ValueError("each row must be a JSON object")
        else:
            inputs = np.concatenate([np.asarray(np.load(a, allow_pickle=False), np.float32).ravel() for a in args])
    except (ValueError, OSError) as e:
        print(f"error: cannot read the inputs ({e})", file=sys.stderr)
        return 2
    for row in predict(inputs, probabilities=probabilities):
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
