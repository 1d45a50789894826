"""Loading an exported model bundle: validated data in, a predictor out, no code executed.

A bundle is a zip of plain data (see ``explorer.store.export``): ``config.json``,
``model.safetensors``, ``model.onnx``, ``preprocess.json`` (the transform alone, for
the bundle's numpy + onnxruntime ``predict.py``) and a ``README.md`` model card.
Loading reads the members into memory (nothing is extracted), checks each against
the SHA-256 that config.json records for it, checks the config against a schema
(``CONFIG_SCHEMA``) and every weight's name and shape against the architecture
the config describes, and only then builds the network. Nothing is unpickled
and nothing from the bundle is imported or run; the ONNX graph is only handed
to onnxruntime (``predict_onnx``) after checking it uses standard operators and
no external data files.

This module must not import the training code: a bundle loads in a process
that has only the model, preprocessing and prediction modules.
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors

from explorer.errors import ExplorerError
from explorer.schema import check_schema, parse_json
from explorer.store.predict import Predictor
from explorer.data.preprocess import preprocessor_from_dict
from explorer.data.tasks import KINDS, Task
from models import ModelSpec, MultiTaskModel, architectures

FORMAT = "explorer-bundle"
VERSION = 2   # 2: config.json records each member's SHA-256; preprocess.json and predict.py ride along
REQUIRED = ("config.json", "model.safetensors", "model.onnx")
MAX_BYTES = {"config.json": 64 << 20, "model.safetensors": 2 << 30, "model.onnx": 2 << 30, "README.md": 1 << 20,
             "preprocess.json": 64 << 20, "predict.py": 1 << 20}
MAX_MEMBERS = 64
INPUT_NAMES = {"text": "tokens", "tabular": "features", "image": "image"}
SPEC_KEYS = {"modality", "input", "heads", "hidden", "embed_dim", "dropout", "extra", "arch"}
INPUT_KEYS = {"text": {"vocab_size"}, "tabular": {"n_features"}, "image": {"height", "width"}}
FIX = "Export the run again with `python -m explorer export`."

_WHOLE = {"type": "integer", "minimum": 1, "maximum": 1 << 16}
_MEAN_STD = {"type": "array", "minItems": 2, "maxItems": 2,
             "prefixItems": [{"type": "number", "finite": True},
                             {"type": "number", "finite": True, "exclusiveMinimum": 0}]}
CONFIG_SCHEMA = {
    "type": "object",
    "required": ["format", "version", "modality", "tasks", "model", "preprocess"],
    "x-message": "it must be an object with format, version, modality, tasks, model and preprocess",
    "properties": {
        "format": {"const": FORMAT, "x-message": f"'format' must be {FORMAT!r}"},
        "version": {"type": "integer", "minimum": 1, "maximum": VERSION,
                    "x-message": f"'version' must be a whole number from 1 to {VERSION}, not {{value}} "
                                 "(newer bundles need a newer explorer)"},
        "modality": {"enum": list(INPUT_NAMES), "x-message": f"'modality' must be one of {', '.join(INPUT_NAMES)}"},
        "tasks": {"type": "array", "minItems": 1, "maxItems": 256, "x-message": "'tasks' must be a non-empty list",
                  "items": {"type": "object", "required": ["name", "kind"],
                            "x-message": "every task needs a 'name' and a 'kind'",
                            "properties": {
                                "name": {"type": "string", "minLength": 1, "maxLength": 10000,
                                         "x-message": "every task needs a 'name'"},
                                "kind": {"enum": list(KINDS),
                                         "x-message": f"task kind {{value}} is not one of {', '.join(KINDS)}"},
                                "classes": {"type": "array", "maxItems": 1 << 16, "items": {"type": "string"},
                                            "x-message": "a task's 'classes' must be a list of strings"}}}},
        "model": {"type": "object", "required": ["modality", "input", "heads"], "additionalProperties": False,
                  "x-message": f"'model' must be an object with keys {sorted(SPEC_KEYS)}",
                  "properties": {
                      "modality": {"enum": list(INPUT_NAMES)},
                      "input": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1,
                                                                           "maximum": 1 << 22},
                                "x-message": "'model.input' must give sizes as whole numbers"},
                      "heads": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1}},
                      "hidden": {**_WHOLE, "x-message": "'model.hidden' must be a whole number in 1..65536"},
                      "embed_dim": {**_WHOLE, "x-message": "'model.embed_dim' must be a whole number in 1..65536"},
                      "dropout": {"type": "number", "minimum": 0, "exclusiveMaximum": 1,
                                  "x-message": "'model.dropout' must be a number from 0 to below 1, not {value}"},
                      "extra": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1,
                                                                           "maximum": 64},
                                "x-message": "'model.extra' must map architecture settings to whole numbers "
                                             "in 1..64"},
                      "arch": {"enum": architectures.names(),
                               "x-message": f"'model.arch' must be one of {', '.join(architectures.names())}, "
                                            "not {value}"}}},
        "preprocess": {"type": "object", "required": ["modality"],
                       "x-message": "'preprocess' must be an object naming its modality",
                       "properties": {
                           "vocab": {"type": "array", "items": {"type": "string"}, "maxItems": 1 << 22,
                                     "x-message": "'preprocess.vocab' must be a list of words"},
                           "max_len": {"type": "integer", "minimum": 1, "maximum": 1 << 20,
                                       "x-message": "'preprocess.max_len' must be a whole number >= 1"},
                           "numeric": {"type": "object", "additionalProperties": {
                               **_MEAN_STD, "x-message": "'preprocess.numeric' must map columns to [mean, std] "
                                                         "with a finite mean and a std above 0, not {value}"}},
                           "categorical": {"type": "object", "additionalProperties": {
                               "type": "array", "items": {"type": "string"},
                               "x-message": "'preprocess.categorical' must map columns to lists"}},
                           "height": _WHOLE, "width": _WHOLE}},
        "target_stats": {"type": "object", "additionalProperties": {
            **_MEAN_STD, "x-message": "'target_stats' must give [mean, std] with a std above 0, not {value}"}},
        "sha256": {"type": "object", "additionalProperties": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                   "x-message": "'sha256' must map member names to hex SHA-256 digests"},
    },
}
# Operator domains onnxruntime implements itself; anything else would need a custom-op library.
STANDARD_DOMAINS = {"", "ai.onnx", "ai.onnx.ml"}


@dataclass
class Bundle:
    """A loaded bundle: ``predict`` (PyTorch) and ``predict_onnx`` (onnxruntime) give the same answers."""
    path: Path
    config: dict
    tasks: list[Task]
    predictor: Predictor
    readme: str = ""
    onnx_bytes: bytes = field(default=b"", repr=False)
    _session: object = field(default=None, repr=False)

    @property
    def modality(self) -> str:
        return self.config["modality"]

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    @property
    def model(self) -> MultiTaskModel:
        return self.predictor.model

    def predict(self, inputs) -> dict[str, dict]:
        """Per task: ``labels`` and, for classification, ``probabilities`` (rows x classes) and ``classes``.

        ``inputs``: texts (a string or a list), rows (a dict, a list of dicts or
        a DataFrame with the feature columns), or images (an array (n, h, w)).
        """
        return self.predictor.predict(self._check_inputs(inputs))

    def predict_onnx(self, inputs) -> dict[str, dict]:
        """Like ``predict``, but the network runs in onnxruntime from ``model.onnx``."""
        session = self._onnx_session()
        p = self.predictor
        return _OnnxPredictor(p.model, p.tasks, p.preprocessor, p.target_stats, session,
                              INPUT_NAMES[self.modality]).predict(self._check_inputs(inputs))

    def _check_inputs(self, inputs):
        if self.modality == "tabular":
            frame = inputs if isinstance(inputs, pd.DataFrame) else pd.DataFrame(
                inputs if isinstance(inputs, list) else [inputs])
            pre = self.predictor.preprocessor
            missing = [c for c in list(pre.numeric) + list(pre.categorical) if c not in frame.columns]
            if missing:
                raise ExplorerError(f"The rows lack column(s) {', '.join(missing)} that the model reads.")
            return frame
        return inputs

    def _onnx_session(self):
        if self._session is None:
            _check_onnx(self.onnx_bytes, self.modality, self.task_names)
            import onnxruntime as ort
            options = ort.SessionOptions()
            options.log_severity_level = 3
            self._session = ort.InferenceSession(self.onnx_bytes, options, providers=["CPUExecutionProvider"])
        return self._session


@dataclass
class _OnnxPredictor(Predictor):
    session: object = None
    input_name: str = ""

    def raw_outputs(self, inputs) -> dict[str, np.ndarray]:
        x = self.transform(inputs).numpy()
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(None, {self.input_name: x})))


def load_bundle(path: str | Path) -> Bundle:
    """Load and validate a bundle written by ``explorer.store.export.export_bundle``.

    Raises ExplorerError naming the problem when a file is missing, the config
    does not follow the schema, or the weights do not fit the architecture.
    """
    path = Path(path)
    if not path.is_file():
        raise ExplorerError(f"No bundle at {path}. Export one with `python -m explorer export --run RUN --out FILE`.")
    if not zipfile.is_zipfile(path):
        raise ExplorerError(f"{path} is not a zip file, so it is not a model bundle.")
    members = _read_members(path)
    config = _parse_config(members["config.json"])
    _check_digests(config, members, path.name)
    tasks, spec, preprocessor, stats = _check_config(config)
    state = _read_weights(members["model.safetensors"])
    _check_weights(state, spec)
    model = MultiTaskModel(spec)
    model.load_state_dict(state)
    model.eval()
    readme = members.get("README.md", b"").decode("utf-8", "replace")
    return Bundle(path, config, tasks, Predictor(model, tasks, preprocessor, stats), readme, members["model.onnx"])


def _read_members(path: Path) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(path) as z:
            listing = z.infolist()
            if len(listing) > MAX_MEMBERS:
                raise ExplorerError(f"Bundle {path.name} holds {len(listing)} files; a bundle has at most "
                                    f"{MAX_MEMBERS}. It was not made by explorer export.")
            names = [i.filename for i in listing]
            if len(set(names)) != len(names):
                raise ExplorerError(f"Bundle {path.name} holds two files of the same name; it was altered. {FIX}")
            unsafe = [n for n in names if n.startswith(("/", "\\")) or ".." in n.replace("\\", "/").split("/")
                      or ":" in n]
            if unsafe:  # nothing is extracted here, but a user unzipping it must not write outside the folder
                raise ExplorerError(f"Bundle {path.name} holds a file named {unsafe[0][:80]!r} that would unzip "
                                    "outside its folder; it was not made by explorer export.")
            infos = {i.filename: i for i in listing}
            missing = [n for n in REQUIRED if n not in infos]
            if missing:
                raise ExplorerError(f"Bundle {path.name} is missing {', '.join(missing)}; it is incomplete or "
                                    "was altered. Export it again.")
            out = {}
            for name, limit in MAX_BYTES.items():
                if name in infos:
                    if infos[name].file_size > limit:  # checked before reading: no zip bombs
                        raise ExplorerError(f"{name} in bundle {path.name} is larger than {limit >> 20} MiB.")
                    out[name] = z.read(name)
            return out
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError, ValueError) as e:
        # zlib/CRC errors, unsupported compression or encryption all mean the same to a user
        raise ExplorerError(f"Bundle {path.name} cannot be read as a zip ({type(e).__name__}: "
                            f"{str(e)[:120]}). {FIX}") from None


def _parse_config(blob: bytes) -> dict:
    config = parse_json(blob, "config.json in the bundle", FIX)
    if not isinstance(config, dict):
        raise ExplorerError("config.json in the bundle must hold a JSON object.")
    return config


def digest(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def _check_digests(config: dict, members: dict[str, bytes], name: str) -> None:
    """Every member config.json records must be there and unchanged (flipped bytes, a swapped file)."""
    version = config.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 2:
        return  # version 1 bundles predate the digests; the schema check refuses anything else
    sums = config.get("sha256")
    _need(isinstance(sums, dict) and all(isinstance(v, str) for v in sums.values()),
          "'sha256' must map member names to hex SHA-256 digests")
    unlisted = [m for m in REQUIRED if m != "config.json" and m not in sums]
    _need(not unlisted, f"'sha256' lacks {', '.join(unlisted)}")
    for member, want in sums.items():
        if member not in members:
            raise ExplorerError(f"Bundle {name} is missing {member}, which its config.json lists; it is incomplete "
                                f"or was altered. {FIX}")
        if digest(members[member]) != want:
            raise ExplorerError(f"{member} in bundle {name} does not match its SHA-256 in config.json: the file is "
                                f"damaged or was altered. {FIX}")


def _need(cond: bool, message: str) -> None:
    if not cond:
        raise ExplorerError(f"config.json does not match the bundle schema: {message}.")


def _check_config(config: dict) -> tuple[list[Task], ModelSpec, object, dict]:
    check_schema(config, CONFIG_SCHEMA, "config.json in the bundle", FIX)
    modality = config["modality"]
    tasks = []
    for t in config["tasks"]:
        classes = t.get("classes", [])
        _need((len(classes) >= 2) == (t["kind"] != "regression"),
              f"task {t['name']!r}: a classification task needs 2 or more classes, a regression task none")
        tasks.append(Task.from_dict(t))
    names = [t.name for t in tasks]
    _need(len(set(names)) == len(names), "task names must be unique")

    raw_spec = config["model"]
    _need(raw_spec["modality"] == modality, "'model.modality' differs from 'modality'")
    inp = raw_spec["input"]
    _need(set(inp) == INPUT_KEYS[modality], f"'model.input' must give {sorted(INPUT_KEYS[modality])} as whole numbers")
    expected_heads = {t.name: t.n_outputs for t in tasks}
    _need(raw_spec["heads"] == expected_heads,
          f"'model.heads' is {raw_spec['heads']} but the tasks need {expected_heads} (one output per class)")
    spec = ModelSpec.from_dict(raw_spec)

    pre_dict = config["preprocess"]
    _need(pre_dict.get("modality") == modality, "'preprocess' must be an object of the same modality")
    try:
        pre = preprocessor_from_dict(pre_dict)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ExplorerError("config.json does not match the bundle schema: "
                            f"'preprocess' is malformed ({e!r}).") from None
    if modality == "text":
        _need(isinstance(pre.vocab, list) and all(isinstance(w, str) for w in pre.vocab) and len(pre.vocab) >= 2
              and pre.vocab[:2] == ["<pad>", "<unk>"], "'preprocess.vocab' must list words after <pad>, <unk>")
        _need(len(pre.vocab) == inp["vocab_size"],
              f"the vocabulary has {len(pre.vocab)} words but the model embeds {inp['vocab_size']}")
        _need(isinstance(pre.max_len, int) and pre.max_len >= 1, "'preprocess.max_len' must be a whole number")
    elif modality == "tabular":
        _need(isinstance(pre.numeric, dict) and isinstance(pre.categorical, dict),
              "'preprocess' needs numeric and categorical")
        _need(len(pre.feature_names) == inp["n_features"],
              f"the preprocessing makes {len(pre.feature_names)} features but the model reads {inp['n_features']}")
    else:
        _need((pre.height, pre.width) == (inp["height"], inp["width"]),
              "'preprocess' image size differs from 'model.input'")

    raw_stats = config.get("target_stats", {})
    stats = {}
    for t in tasks:
        if t.is_classification:
            continue
        v = raw_stats.get(t.name)
        _need(v is not None, f"'target_stats' needs [mean, std] for regression task {t.name!r}")
        stats[t.name] = (float(v[0]), float(v[1]))
    return tasks, spec, pre, stats


def _read_weights(blob: bytes) -> dict[str, torch.Tensor]:
    if blob[:1] == b"\x80" or blob[:4] == b"PK\x03\x04":
        raise ExplorerError("model.safetensors in the bundle is a pickle (torch.save) file, not safetensors. "
                            "Bundles never load pickle; export the run again with `python -m explorer export`.")
    header = int.from_bytes(blob[:8], "little") if len(blob) >= 8 else 0
    if not (0 < header <= len(blob) - 8 and blob[8:9] == b"{"):
        raise ExplorerError("model.safetensors in the bundle is not a safetensors file. Export the run again.")
    try:
        return load_safetensors(blob)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise ExplorerError(f"model.safetensors in the bundle is damaged ({e}). Export the run again.") from None


def _check_weights(state: dict[str, torch.Tensor], spec: ModelSpec) -> None:
    with torch.device("meta"):  # shapes only: a forged config cannot make us allocate its weights
        expected = {k: tuple(v.shape) for k, v in MultiTaskModel(spec).state_dict().items()}
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + \
                ([f"unexpected {', '.join(extra)}"] if extra else [])
        raise ExplorerError(f"The weights in model.safetensors do not match the architecture in config.json: "
                            f"{'; '.join(parts)}.")
    for name, shape in expected.items():
        got = tuple(state[name].shape)
        if got != shape:
            raise ExplorerError(f"Weight '{name}' has shape {list(got)} in model.safetensors but the architecture "
                                f"in config.json needs {list(shape)}.")
        if not state[name].is_floating_point():
            raise ExplorerError(f"Weight '{name}' in model.safetensors is {state[name].dtype}, not floating point.")
        if not torch.isfinite(state[name]).all():
            raise ExplorerError(f"Weight '{name}' in model.safetensors holds NaN or infinite values.")


def _check_onnx(blob: bytes, modality: str, task_names: list[str]) -> None:
    import onnx
    try:
        model = onnx.load_model_from_string(blob)
    except Exception as e:  # protobuf raises its own DecodeError
        raise ExplorerError(f"model.onnx in the bundle cannot be parsed ({type(e).__name__}).") from None
    local = {(f.domain, f.name) for f in model.functions}
    for node in [n for g in [model.graph] for n in g.node] + [n for f in model.functions for n in f.node]:
        if node.domain not in STANDARD_DOMAINS and (node.domain, node.op_type) not in local:
            raise ExplorerError(f"model.onnx uses operator {node.domain}.{node.op_type}, which is not a standard "
                                "ONNX operator; the bundle was not made by explorer export.")
    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            raise ExplorerError("model.onnx refers to external data files; bundles must be self-contained.")
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    if inputs != [INPUT_NAMES[modality]] or sorted(outputs) != sorted(task_names):
        raise ExplorerError(f"model.onnx takes {inputs} and returns {outputs}, but config.json expects "
                            f"['{INPUT_NAMES[modality]}'] and one output per task {task_names}.")
