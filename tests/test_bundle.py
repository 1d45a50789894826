"""Loading bundles: tampered or foreign bundles are refused with a clear error; no code is run;
loading does not pull in the training code."""
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from explorer.store import export
from explorer.store.bundle import load_bundle
from explorer.data.dataset import Dataset
from explorer.errors import ExplorerError
from explorer.store.runs import save_run
from explorer.data.tasks import Task
from explorer.training.trainer import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()
TEXTS = ["alpha beta gamma", "delta epsilon"]


@pytest.fixture(scope="module")
def members(tmp_path_factory) -> dict[str, bytes]:
    """The files of a valid text bundle (its ONNX is a placeholder: ONNX is tested in test_export)."""
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=rng.integers(2, 8))) for _ in range(60)]
    y = np.array([int("alpha" in t) for t in texts])
    dataset = Dataset("toy", "text", texts, {"has_alpha": Task("has_alpha", "binary", ("no", "yes")),
                                             "size": Task("size", "regression")},
                      {"has_alpha": y, "size": np.array([len(t) for t in texts], float)}, source={"name": "toy"})
    store = tmp_path_factory.mktemp("runs")
    run = save_run(train(dataset, ["has_alpha", "size"], TrainConfig(epochs=1, hidden=16, embed_dim=8,
                                                                      device="cpu")), store)
    out = tmp_path_factory.mktemp("bundle") / "b.zip"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(export, "onnx_bytes", lambda model, modality: b"placeholder")
        mp.setattr(export, "onnx_parity", lambda blob, model, x: 0.0)
        export.export_bundle(run, out, store=store)
    with zipfile.ZipFile(out) as z:
        return {n: z.read(n) for n in z.namelist()}


def _zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def _with(members: dict, tmp_path: Path, changes: dict | None = None, resign: bool = True) -> Path:
    """The valid bundle with some files replaced (None removes one).

    With ``resign`` the replaced members' SHA-256 in config.json is updated, as a forger would, so
    the checks behind the digests are tested too; without it the digests are left as exported.
    """
    files = {**members, **(changes or {})}
    files = {k: v for k, v in files.items() if v is not None}
    if resign and changes and "config.json" in files and set(changes) != {"config.json"}:
        try:
            config = json.loads(files["config.json"])
        except ValueError:
            config = None
        if isinstance(config, dict) and isinstance(config.get("sha256"), dict):
            for name in changes:
                if name in config["sha256"] and name in files:
                    config["sha256"][name] = hashlib.sha256(files[name]).hexdigest()
            files["config.json"] = json.dumps(config).encode()
    return _zip(tmp_path / "b.zip", files)


def _config(members: dict) -> dict:
    return json.loads(members["config.json"])


def test_valid_bundle_loads_and_predicts(members, tmp_path):
    bundle = load_bundle(_with(members, tmp_path))
    out = bundle.predict(TEXTS)
    assert bundle.task_names == ["has_alpha", "size"] and bundle.modality == "text"
    assert out["has_alpha"]["probabilities"].shape == (2, 2) and len(out["size"]["labels"]) == 2
    assert "has_alpha" in bundle.readme


@pytest.mark.parametrize("name", ["config.json", "model.safetensors", "model.onnx"])
def test_missing_file_is_named(members, tmp_path, name):
    with pytest.raises(ExplorerError, match=f"missing {name}"):
        load_bundle(_with(members, tmp_path, {name: None}))


def test_not_a_bundle(tmp_path):
    with pytest.raises(ExplorerError, match="No bundle"):
        load_bundle(tmp_path / "nothing.zip")
    (tmp_path / "text.zip").write_text("hello")
    with pytest.raises(ExplorerError, match="not a zip"):
        load_bundle(tmp_path / "text.zip")


def test_bad_json(members, tmp_path):
    with pytest.raises(ExplorerError, match="not valid JSON"):
        load_bundle(_with(members, tmp_path, {"config.json": b'{"format": "explorer-bundle",'}))
    with pytest.raises(ExplorerError, match="nested more than 64 levels") as e:
        load_bundle(_with(members, tmp_path, {"config.json": b"[" * 100_000 + b"]" * 100_000}))
    assert e.type is ExplorerError and "\n" not in str(e.value)


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(format="something-else"), "'format'"),
    (lambda c: c.update(version=99), "newer explorer"),
    (lambda c: c["tasks"][0].update(classes=["no", "yes", "maybe"]), "'model.heads'"),
    (lambda c: c["tasks"][1].update(kind="ranking"), "kind 'ranking'"),
    (lambda c: c["preprocess"].update(vocab=c["preprocess"]["vocab"][:-1]), "vocabulary has"),
    (lambda c: c["model"].update(hidden=10 ** 9), "model.hidden"),
    (lambda c: c["model"].update(layers=3), "'model' must be an object"),
    (lambda c: c.pop("target_stats"), "target_stats"),
    (lambda c: c.update(version=True), "'version' must be a whole number from 1 to 2, not True"),
    (lambda c: c["model"].update(dropout=5.0), "'model.dropout' must be a number from 0 to below 1, not 5.0"),
    (lambda c: c["target_stats"].update(size=[3.0, 0.0]), "'target_stats' must give .mean, std. with a std above 0"),
    (lambda c: c["target_stats"].update(size=[float("nan"), 1.0]), "'target_stats' must give"),
    (lambda c: c["tasks"][0].update(name=7), "every task needs a 'name'"),
])
def test_config_schema_violations(members, tmp_path, edit, message):
    config = _config(members)
    edit(config)
    with pytest.raises(ExplorerError, match=message):
        load_bundle(_with(members, tmp_path, {"config.json": json.dumps(config).encode()}))


def test_flipped_bytes_are_caught_by_the_digests(members, tmp_path):
    for name in ("model.safetensors", "model.onnx", "preprocess.json", "predict.py"):
        blob = bytearray(members[name])
        blob[len(blob) // 2] ^= 0x01
        with pytest.raises(ExplorerError, match=f"{name} in bundle b.zip does not match its SHA-256"):
            load_bundle(_with(members, tmp_path, {name: bytes(blob)}, resign=False))
    config = _config(members)
    del config["sha256"]["model.onnx"]
    with pytest.raises(ExplorerError, match="'sha256' lacks model.onnx"):
        load_bundle(_with(members, tmp_path, {"config.json": json.dumps(config).encode()}))


def test_weights_of_the_wrong_shape_are_named(members, tmp_path):
    state = load_safetensors(members["model.safetensors"])
    state["heads.has_alpha.weight"] = torch.zeros(3, 16)
    with pytest.raises(ExplorerError, match=r"'heads\.has_alpha\.weight' has shape \[3, 16\].*needs \[2, 16\]"):
        load_bundle(_with(members, tmp_path, {"model.safetensors": save_safetensors(state)}))


def test_missing_and_unexpected_weights_are_named(members, tmp_path):
    state = load_safetensors(members["model.safetensors"])
    state["heads.extra.weight"] = state.pop("heads.size.bias")
    with pytest.raises(ExplorerError, match=r"missing heads\.size\.bias; unexpected heads\.extra\.weight"):
        load_bundle(_with(members, tmp_path, {"model.safetensors": save_safetensors(state)}))


def test_weights_for_another_architecture(members, tmp_path):
    config = _config(members)
    config["model"]["hidden"] = 32  # the config now describes a wider network than the weights
    with pytest.raises(ExplorerError, match="shape"):
        load_bundle(_with(members, tmp_path, {"config.json": json.dumps(config).encode()}))


def test_non_finite_weights(members, tmp_path):
    state = load_safetensors(members["model.safetensors"])
    state["heads.size.bias"] = torch.tensor([float("nan")])
    with pytest.raises(ExplorerError, match="NaN"):
        load_bundle(_with(members, tmp_path, {"model.safetensors": save_safetensors(state)}))


@pytest.mark.parametrize("blob", [
    b"\x80\x04\x95\x1a\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x06weight\x94\x8c\x03bad\x94s.",  # pickle protocol 4
    b"PK\x03\x04" + b"\x00" * 60,                                                           # torch.save's zip
])
def test_pickle_instead_of_safetensors(members, tmp_path, blob):
    with pytest.raises(ExplorerError, match="pickle"):
        load_bundle(_with(members, tmp_path, {"model.safetensors": blob}))


def test_garbage_instead_of_safetensors(members, tmp_path):
    with pytest.raises(ExplorerError, match="not a safetensors file"):
        load_bundle(_with(members, tmp_path, {"model.safetensors": b"hello world, not weights"}))


def test_code_in_a_bundle_is_never_run(members, tmp_path):
    marker = tmp_path / "ran.txt"
    code = f"open({str(marker)!r}, 'w').write('ran')\n".encode()
    path = _with(members, tmp_path, {"__init__.py": code, "sitecustomize.py": code, "explorer.py": code})
    bundle = load_bundle(path)
    bundle.predict(TEXTS)
    assert not marker.exists()


def _onnx_model(node, inputs=("tokens",), outputs=("has_alpha", "size"), initializers=()) -> bytes:
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(i, TensorProto.INT64, ["b", "s"]) for i in inputs],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["b", 1]) for o in outputs], list(initializers))
    return helper.make_model(graph).SerializeToString()


def test_onnx_with_custom_operators_is_refused(members, tmp_path):
    evil = helper.make_node("RunShell", ["tokens"], ["has_alpha", "size"], domain="com.example.evil")
    bundle = load_bundle(_with(members, tmp_path, {"model.onnx": _onnx_model(evil)}))
    assert bundle.predict(TEXTS)  # PyTorch prediction does not touch model.onnx
    with pytest.raises(ExplorerError, match="not a standard ONNX operator"):
        bundle.predict_onnx(TEXTS)


def test_onnx_with_external_data_or_wrong_outputs_is_refused(members, tmp_path):
    weight = helper.make_tensor("w", TensorProto.FLOAT, [1], [1.0])
    weight.data_location = TensorProto.EXTERNAL
    node = helper.make_node("Identity", ["tokens"], ["has_alpha"])
    external = _onnx_model(node, outputs=("has_alpha",), initializers=[weight])
    with pytest.raises(ExplorerError, match="external data"):
        load_bundle(_with(members, tmp_path, {"model.onnx": external})).predict_onnx(TEXTS)
    wrong = _onnx_model(helper.make_node("Identity", ["tokens"], ["has_alpha"]), outputs=("has_alpha",))
    onnx.checker.check_model(onnx.load_model_from_string(wrong))
    with pytest.raises(ExplorerError, match="one output per task"):
        load_bundle(_with(members, tmp_path, {"model.onnx": wrong})).predict_onnx(TEXTS)
    with pytest.raises(ExplorerError, match="cannot be parsed"):
        load_bundle(_with(members, tmp_path, {"model.onnx": b"\xff\xfe not protobuf"})).predict_onnx(TEXTS)


def test_fresh_process_loads_without_training_code(members, tmp_path):
    path = _with(members, tmp_path)
    code = ("import explorer, sys, json\n"
            f"b = explorer.load_bundle({str(path)!r})\n"
            f"out = b.predict({TEXTS!r})\n"
            "assert 'explorer.training.trainer' not in sys.modules, 'training imported'\n"
            "assert 'explorer.store.runs' not in sys.modules and 'captum' not in sys.modules\n"
            "print(json.dumps(out['has_alpha']['labels']))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == load_bundle(path).predict(TEXTS)["has_alpha"]["labels"]
