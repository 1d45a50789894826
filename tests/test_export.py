"""Export: round trip through a bundle, ONNX parity for every modality, model card, CLI, atomic writes."""
import hashlib
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from explorer.store import atomic
from explorer.store import export
from explorer.store.bundle import load_bundle
from explorer.cli import main
from explorer.data.dataset import Dataset
from explorer.errors import ExplorerError
from explorer.store.predict import Predictor
from explorer.store.runs import load_run, save_run, single_task_runs
from explorer.data.tasks import Task
from explorer.training.trainer import TrainConfig, train

CONFIG = TrainConfig(epochs=1, hidden=16, embed_dim=16, batch_size=32, device="cpu")
WORDS = "river bank money loan water fish boat market stock rain cloud sun goal match team".split()


def text_dataset() -> Dataset:
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=rng.integers(2, 15))) for _ in range(120)]
    topic = np.array([int("money" in t) + int("goal" in t) for t in texts])
    length = np.array([len(t.split()) for t in texts], float)
    return Dataset("toy-text", "text", texts,
                   {"topic": Task("topic", "multiclass", ("other", "finance", "sport")),
                    "length": Task("length", "regression")},
                   {"topic": topic, "length": length}, source={"name": "toy-text"})


def tabular_dataset() -> Dataset:
    rng = np.random.default_rng(1)
    n = 120
    frame = pd.DataFrame({"carat": rng.uniform(0.2, 3, n), "depth": rng.normal(60, 2, n),
                          "cut": rng.choice(["Fair", "Good", "Ideal"], n)})
    frame.loc[5, "depth"] = np.nan  # a missing value: filled with the training mean
    price = frame.carat * 4000 + rng.normal(0, 300, n)
    cut = frame.cut.map({"Fair": 0, "Good": 1, "Ideal": 2}).to_numpy()
    return Dataset("toy-tab", "tabular", frame,
                   {"price": Task("price", "regression"), "cut": Task("cut", "multiclass", ("Fair", "Good", "Ideal"))},
                   {"price": price.to_numpy(), "cut": cut}, categorical=["cut"], source={"name": "toy-tab"})


def image_dataset() -> Dataset:
    digits = load_digits()
    images, y = digits.images[:150].astype(np.float32), digits.target[:150]
    return Dataset("toy-digits", "image", images,
                   {"digit": Task("digit", "multiclass", tuple(str(i) for i in range(10))),
                    "even": Task("even", "binary", ("odd", "even"))},
                   {"digit": y, "even": (y % 2 == 0).astype(int)}, source={"name": "toy-digits"})


DATASETS = {"text": (text_dataset, ["topic", "length"]), "tabular": (tabular_dataset, ["price", "cut"]),
            "image": (image_dataset, ["digit", "even"])}


@pytest.fixture(scope="module", params=list(DATASETS))
def exported(request, tmp_path_factory):
    """One real export per modality (ONNX included), shared by the tests of this module."""
    make, tasks = DATASETS[request.param]
    dataset = make()
    result = train(dataset, tasks, CONFIG)
    store = tmp_path_factory.mktemp("runs")
    run = save_run(result, store)
    out = tmp_path_factory.mktemp("bundles") / f"{request.param}.zip"
    info = export.export_bundle(run, out, store=store)
    return dataset, result, run, info


def _inputs(dataset: Dataset):
    return dataset.subset_rows(np.arange(12))


def test_bundle_holds_its_files_with_their_digests(exported):
    _, _, run, info = exported
    with zipfile.ZipFile(info.path) as z:
        assert sorted(z.namelist()) == ["README.md", "config.json", "model.onnx", "model.safetensors",
                                        "predict.py", "preprocess.json"]
        config = json.loads(z.read("config.json"))
        assert config["sha256"] == {n: hashlib.sha256(z.read(n)).hexdigest() for n in z.namelist()
                                    if n != "config.json"}
        config = json.loads(z.read("config.json"))
        assert z.read("model.safetensors") == (run.path / "model.safetensors").read_bytes()
    assert config["format"] == "explorer-bundle" and config["run"]["id"] == run.id
    assert [t["name"] for t in config["tasks"]] == config["onnx"]["outputs"]
    assert config["preprocess"] == json.loads(json.dumps(run.config["preprocess"]))
    assert info.onnx_max_error < 1e-4


def test_round_trip_predicts_like_the_in_memory_model(exported):
    dataset, result, _, info = exported
    bundle = load_bundle(info.path)
    inputs = _inputs(dataset)
    memory = Predictor(result.model, result.tasks, result.preprocessor, result.target_stats)
    want, got = memory.predict(inputs), bundle.predict(inputs)
    raw_want, raw_got = memory.raw_outputs(inputs), bundle.predictor.raw_outputs(inputs)
    for task in bundle.task_names:
        assert np.array_equal(raw_want[task], raw_got[task])
        assert want[task]["labels"] == got[task]["labels"]
        if "probabilities" in want[task]:
            assert np.array_equal(want[task]["probabilities"], got[task]["probabilities"])


def test_onnx_matches_pytorch(exported):
    dataset, _, _, info = exported
    bundle = load_bundle(info.path)
    inputs = _inputs(dataset)  # text: documents of different lengths, so padding is exercised
    torch_out, onnx_out = bundle.predict(inputs), bundle.predict_onnx(inputs)
    for task in bundle.tasks:
        a, b = torch_out[task.name], onnx_out[task.name]
        if task.is_classification:
            assert np.abs(a["probabilities"] - b["probabilities"]).max() < 1e-4
            assert a["labels"] == b["labels"]
        else:  # compare in the model's standardised units
            std = bundle.predictor.target_stats[task.name][1]
            assert np.abs(np.array(a["labels"]) - np.array(b["labels"])).max() / std < 1e-4
    raw_torch = bundle.predictor.raw_outputs(inputs)
    session = bundle._onnx_session()
    x = bundle.predictor.transform(inputs).numpy()
    values = session.run(None, {session.get_inputs()[0].name: x})
    for name, value in zip([o.name for o in session.get_outputs()], values):
        assert np.abs(value - raw_torch[name]).max() < 1e-4


def test_model_card_names_tasks_metrics_and_usage(exported):
    _, _, run, info = exported
    card = load_bundle(info.path).readme
    for task in run.tasks:
        assert f"| {task.name} |" in card
    assert "none trained" in card and "No single-task baseline was trained" in card
    assert "explorer.load_bundle" in card and "## Training" in card and run.id in card
    usage = card.split("```python\n")[1].split("```")[0].strip().splitlines()
    assert len(usage) == 5


def test_single_task_baselines_are_found_by_reuse_key(tmp_path):
    dataset, tasks = text_dataset(), ["topic", "length"]
    multi = save_run(train(dataset, tasks, CONFIG))
    singles = [save_run(train(dataset, ["topic"], TrainConfig(**{**CONFIG.to_dict(), "seed": s}))) for s in (0, 1)]
    save_run(train(dataset, ["topic"], TrainConfig(**{**CONFIG.to_dict(), "lr": 0.01})))  # other settings: no match
    found = single_task_runs(multi, "topic")
    assert sorted(r.id for r in found) == sorted(r.id for r in singles)
    assert single_task_runs(multi, "length") == []
    summary = export.single_task_summary(multi, dataset.tasks["topic"])
    scores = [r.metrics["test"]["topic"]["macro_f1"] for r in singles]
    assert summary["mean"] == pytest.approx(np.mean(scores)) and summary["std"] == pytest.approx(np.std(scores, ddof=1))
    config = export.bundle_config(multi, {"topic": summary, "length": None}, 0.0)
    card = export.model_card(config)
    assert f"{np.mean(scores):.3f}" in card and "(n=2)" in card
    assert "No single-task baseline was trained for length" in card


def test_cli_export_writes_a_bundle(tmp_path, monkeypatch, capsys):
    run = save_run(train(tabular_dataset(), ["price"], CONFIG))
    # The ONNX exporter is covered above; here only the command's plumbing is under test.
    monkeypatch.setattr(export, "onnx_bytes", lambda model, modality: b"onnx")
    monkeypatch.setattr(export, "onnx_parity", lambda blob, model, x: 0.0)
    out = tmp_path / "b.zip"
    assert main(["export", "--run", run.id, "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["bundle"] == str(out) and set(printed["files"]) == {"config.json", "model.safetensors", "model.onnx",
                                                                       "README.md", "preprocess.json", "predict.py"}
    assert load_bundle(out).predict([{"carat": 1.0, "depth": 61.0, "cut": "Good"}])["price"]["labels"]
    assert main(["export", "--run", "no-such-run", "--out", str(tmp_path / "x.zip")]) == 2


def test_failed_export_leaves_nothing_behind(tmp_path, monkeypatch):
    run = save_run(train(tabular_dataset(), ["price"], CONFIG))
    monkeypatch.setattr(export, "onnx_bytes", lambda model, modality: b"onnx")
    monkeypatch.setattr(export, "onnx_parity", lambda blob, model, x: 0.5)
    out = tmp_path / "out" / "b.zip"
    with pytest.raises(ExplorerError, match="disagrees with PyTorch"):
        export.export_bundle(run, out)
    assert not out.exists()
    monkeypatch.setattr(export, "onnx_parity", lambda blob, model, x: 0.0)

    def interrupted(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", interrupted)  # the zip is written, the rename fails
    with pytest.raises(ExplorerError, match="disk full"):
        export.export_bundle(load_run(run.id), out)
    assert not out.exists() and list(out.parent.iterdir()) == []  # no temporary file left either
    with pytest.raises(ExplorerError, match=r"\.zip"):
        export.export_bundle(run, tmp_path / "bundle.tar")


def test_cli_export_refuses_a_bad_run_id_before_importing_the_exporter(tmp_path):
    code = ("import sys\nfrom explorer.cli import main\n"
            "rc = main(['export', '--run', sys.argv[1], '--out', sys.argv[2]])\n"
            "print(rc, 'explorer.store.export' in sys.modules, 'onnxscript' in sys.modules, 'torch.onnx' in sys.modules)")
    root = Path(__file__).resolve().parents[1]
    for run_id, out in [("no-such-run", "x.zip"), ("../etc", "x.zip")]:
        done = subprocess.run([sys.executable, "-c", code, run_id, str(tmp_path / out)], cwd=root, capture_output=True,
                              text=True, timeout=120, env={**os.environ, "EXPLORER_HOME": str(tmp_path / "runs")})
        assert done.stdout.split() == ["2", "False", "False", "False"], done.stdout + done.stderr
        assert done.stderr.strip().startswith("error:") and len(done.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def numpy_and_onnxruntime_only(tmp_path_factory) -> Path:
    """A folder with nothing importable but numpy and onnxruntime (linked from this venv, no download)."""
    import numpy
    import onnxruntime
    site = tmp_path_factory.mktemp("only-numpy-onnxruntime")
    for module in (numpy, onnxruntime):
        source = Path(module.__file__).parent
        for entry in source.parent.iterdir():  # the package and its vendored libraries (numpy.libs, ...)
            if entry.name == source.name or entry.name.startswith(source.name + ".libs"):
                (site / entry.name).symlink_to(entry)
    return site


def _run_standalone(folder: Path, site: Path, args: list[str]) -> subprocess.CompletedProcess:
    # -S: no site-packages, -s: no user site; PYTHONPATH holds only the two packages.
    return subprocess.run([sys.executable, "-S", "-s", "predict.py", *args], cwd=folder, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin",
                                                       "OMP_NUM_THREADS": "1"})


def test_standalone_predict_py_gives_load_bundles_labels(exported, numpy_and_onnxruntime_only, tmp_path):
    dataset, _, _, info = exported
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(info.path) as z:
        z.extractall(folder)
    bundle = load_bundle(info.path)
    modality = bundle.modality
    inputs = _inputs(dataset)
    if modality == "text":
        args = list(inputs)
    elif modality == "tabular":
        args = [json.dumps({k: (None if pd.isna(v) else v) for k, v in row.items()}) for row in
                inputs.to_dict("records")]
    else:
        np.save(folder / "images.npy", np.asarray(inputs, np.float32))
        args = ["images.npy"]
    done = _run_standalone(folder, numpy_and_onnxruntime_only, args)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    want = bundle.predict(inputs)
    for task in bundle.task_names:
        got = [r[task] for r in rows]
        if bundle.tasks[bundle.task_names.index(task)].is_classification:
            assert got == want[task]["labels"]
        else:
            assert got == pytest.approx(want[task]["labels"], rel=1e-4, abs=1e-4)


def test_standalone_predict_py_really_has_no_explorer_or_torch(exported, numpy_and_onnxruntime_only, tmp_path):
    _, _, _, info = exported
    with zipfile.ZipFile(info.path) as z:
        z.extractall(tmp_path)
    code = "import sys\nfor m in ('torch', 'explorer', 'pandas'):\n    try:\n        __import__(m)\n" \
           "        print('importable', m)\n    except ImportError:\n        pass\nimport onnxruntime, numpy\n"
    (tmp_path / "probe.py").write_text(code)
    done = subprocess.run([sys.executable, "-S", "-s", "probe.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env={"PYTHONPATH": str(numpy_and_onnxruntime_only), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and "importable" not in done.stdout, done.stdout + done.stderr
