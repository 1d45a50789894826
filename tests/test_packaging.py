"""`pip install .` gives a working package: explorer (every subpackage) and models, the `explorer` command,
and load_bundle from any folder; the pyproject's package list matches the tree."""
import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from explorer.store import export
from explorer.store.bundle import load_bundle
from explorer.store.runs import save_run
from explorer.training.trainer import TrainConfig, train
from tests.helpers import tiny_digits

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_package_list_matches_the_tree():
    found = sorted(".".join(p.parent.relative_to(ROOT).parts) for top in ("explorer", "models")
                   for p in (ROOT / top).rglob("__init__.py") if "__pycache__" not in p.parts)
    assert sorted(PYPROJECT["tool"]["setuptools"]["packages"]) == found
    assert PYPROJECT["project"]["scripts"]["explorer"] == "explorer.cli:main"
    assert PYPROJECT["build-system"]["build-backend"] == "setuptools.build_meta"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The package installed with pip into a target folder, from a copy of the source (no build files here)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("explorer", "models"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    target = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(target), str(src)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return target


def _env(site: Path) -> dict:
    # The installed copy first; the venv's other packages (torch, numpy, ...) stay importable, the checkout does not.
    return {"PYTHONPATH": str(site), "PATH": f"{site / 'bin'}:/usr/bin:/bin", "OMP_NUM_THREADS": "1",
            "HOME": os.environ.get("HOME", "/tmp")}


def test_pip_install_gives_every_subpackage_and_the_command(installed, tmp_path):
    assert sorted(p.name for p in installed.iterdir() if (p / "__init__.py").is_file()) == ["explorer", "models"]
    for package in PYPROJECT["tool"]["setuptools"]["packages"]:
        assert (installed / Path(*package.split(".")) / "__init__.py").is_file(), package
    assert (installed / "explorer" / "store" / "onnx_predict.py").is_file()  # shipped in bundles as predict.py
    done = subprocess.run([str(installed / "bin" / "explorer"), "--help"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=_env(installed))
    assert done.returncode == 0 and "export" in done.stdout and "runs" in done.stdout, done.stderr


def test_installed_package_loads_a_bundle_from_another_folder(installed, tmp_path, run_store, monkeypatch):
    run = save_run(train(tiny_digits(), ["digit", "even"], TrainConfig(epochs=1, hidden=8, train_size=200)))
    bundle = tmp_path / "b.zip"
    # load_bundle never runs model.onnx (test_export covers the real ONNX and predict.py): skip the slow export.
    monkeypatch.setattr(export, "onnx_bytes", lambda model, modality: b"onnx")
    monkeypatch.setattr(export, "onnx_parity", lambda blob, model, x: 0.0)
    export.export_bundle(run, bundle)
    images = tiny_digits().inputs[:4].tolist()
    code = ("import explorer, json, sys\n"
            "b = explorer.load_bundle('b.zip')\n"
            f"out = b.predict(__import__('numpy').array({images!r}, dtype='float32'))\n"
            "assert explorer.__file__.startswith(sys.argv[1]), explorer.__file__\n"
            "assert 'explorer.training.trainer' not in sys.modules, 'load_bundle imported the training code'\n"
            "print(json.dumps({t: o['labels'] for t, o in out.items()}))\n")
    done = subprocess.run([sys.executable, "-c", code, str(installed)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=_env(installed))
    assert done.returncode == 0, done.stderr
    want = load_bundle(bundle).predict(tiny_digits().inputs[:4])
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {t: o["labels"] for t, o in want.items()}
    with zipfile.ZipFile(bundle) as z:
        assert "predict.py" in z.namelist()
