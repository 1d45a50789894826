"""The run store: every trained model is a folder of safetensors and JSON, never pickle.

Layout of one run, ``$EXPLORER_HOME/<run id>/`` (default ``./runs``):
    model.safetensors   weights
    config.json         dataset source, tasks, network spec, training config,
                        preprocessing (vocabulary or feature transform)
    metrics.json        test metrics and the majority baseline per task
    history.json        losses per epoch
A run is written to a hidden temporary folder and renamed when complete, so an
interrupted save never leaves half a run behind.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

from safetensors.torch import load_file, save_file

from explorer.errors import ExplorerError
from explorer.store.predict import Predictor
from explorer.data.preprocess import preprocessor_from_dict
from explorer.data.tasks import Task
from explorer.training.trainer import TrainConfig, TrainResult
from models import ModelSpec, MultiTaskModel

RUN_ID = re.compile(r"^[A-Za-z0-9_.+-]+$")


def home() -> Path:
    return Path(os.environ.get("EXPLORER_HOME", "runs"))


def reuse_key(fingerprint: str, tasks: list[str], config: TrainConfig) -> str:
    """Runs with equal keys are interchangeable: same data, tasks, split and settings.

    The device is left out: a baseline trained on the GPU serves a CPU comparison.
    """
    settings = {k: v for k, v in config.to_dict().items() if k != "device"}
    blob = json.dumps({"data": fingerprint, "tasks": sorted(tasks), "config": settings}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


@dataclass
class Run:
    id: str
    path: Path
    config: dict
    metrics: dict

    @property
    def tasks(self) -> list[Task]:
        return [Task.from_dict(t) for t in self.config["tasks"]]

    def history(self) -> list[dict]:
        return json.loads((self.path / "history.json").read_text())

    def model(self) -> MultiTaskModel:
        model = MultiTaskModel(ModelSpec.from_dict(self.config["model"]))
        model.load_state_dict(load_file(self.path / "model.safetensors"))
        return model.eval()

    def predictor(self) -> Predictor:
        stats = {k: tuple(v) for k, v in self.config.get("target_stats", {}).items()}
        return Predictor(self.model(), self.tasks, preprocessor_from_dict(self.config["preprocess"]), stats)

    def summary(self) -> dict:
        return {"id": self.id, "created": self.config.get("created"), "dataset": self.config["dataset"].get("name"),
                "tasks": [t["name"] for t in self.config["tasks"]], "seed": self.config["train"]["seed"],
                "method": self.config["train"]["method"],
                "metrics": {t: m.get(m["primary"]) for t, m in self.metrics["test"].items()}}


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, default=_jsonable))


def _jsonable(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_run(result: TrainResult, store: Path | None = None) -> Run:
    store = Path(store or home())
    store.mkdir(parents=True, exist_ok=True)
    names = [t.name for t in result.tasks]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    # Only the descriptive part is cut, so the stamp and random suffix keep long-named runs unique.
    name = re.sub(r"[^A-Za-z0-9_.+-]", "_", f"{result.dataset_source.get('name', 'data')}-{'+'.join(names)}")
    run_id = f"{name[:110]}-s{result.config.seed}-{stamp}-{secrets.token_hex(2)}"
    config = {
        "id": run_id, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "format": 1,
        "dataset": result.dataset_source, "fingerprint": result.dataset_fingerprint,
        "modality": result.preprocessor.modality, "tasks": [t.to_dict() for t in result.tasks],
        "model": result.model.spec.to_dict(), "train": result.config.to_dict(),
        "preprocess": result.preprocessor.to_dict(), "target_stats": result.target_stats,
        "split_sizes": result.split_sizes, "best_epoch": result.best_epoch,
        "seconds": round(result.seconds, 3), "device": result.device,
        "key": reuse_key(result.dataset_fingerprint, names, result.config),
    }
    metrics = {"test": result.metrics, "baseline": result.baseline}
    tmp = store / f".tmp-{run_id}"
    tmp.mkdir()
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in result.model.state_dict().items()}
        save_file(state, tmp / "model.safetensors")
        _write_json(tmp / "config.json", config)
        _write_json(tmp / "metrics.json", metrics)
        _write_json(tmp / "history.json", result.history)
        os.replace(tmp, store / run_id)  # atomic: the run appears whole or not at all
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Run(run_id, store / run_id, config, metrics)


def load_run(run_id: str, store: Path | None = None) -> Run:
    store = Path(store or home())
    if not RUN_ID.match(run_id or "") or run_id.startswith("."):
        raise ExplorerError(f"'{run_id}' is not a valid run id. List runs with `python -m explorer runs`.")
    path = store / run_id
    if not (path / "config.json").is_file():
        raise ExplorerError(f"No run '{run_id}' in {store}. List runs with `python -m explorer runs`.")
    try:
        config = json.loads((path / "config.json").read_text())
        metrics = json.loads((path / "metrics.json").read_text())
    except (OSError, ValueError) as e:
        raise ExplorerError(f"Run '{run_id}' is damaged ({e}); delete it and train again.") from None
    return Run(run_id, path, config, metrics)


def list_runs(store: Path | None = None) -> list[Run]:
    """Complete runs, newest first; damaged folders are skipped."""
    store = Path(store or home())
    if not store.is_dir():
        return []
    runs = []
    for path in store.iterdir():
        if path.is_dir() and not path.name.startswith("."):
            try:
                runs.append(load_run(path.name, store))
            except ExplorerError:
                continue
    return sorted(runs, key=lambda r: r.config.get("created", ""), reverse=True)


def find_runs(key: str, store: Path | None = None) -> list[Run]:
    return [r for r in list_runs(store) if r.config.get("key") == key]


def stored_runs(fingerprint: str, combos: list[tuple[str, ...]], config: TrainConfig, seeds: list[int],
                store: Path | None = None) -> dict[tuple[tuple[str, ...], int], Run]:
    """(combination, seed) -> the newest stored run trained exactly so, where one exists.

    Reads the store once, however many keys are asked for (``find_runs`` lists it per key).
    """
    by_key: dict[str, Run] = {}
    for run in list_runs(store):  # newest first, so the first run seen for a key wins
        by_key.setdefault(run.config.get("key"), run)
    found = {}
    for combo in combos:
        for seed in seeds:
            run = by_key.get(reuse_key(fingerprint, list(combo), replace(config, seed=seed)))
            if run is not None:
                found[(tuple(combo), seed)] = run
    return found


def delete_run(run_id: str, store: Path | None = None) -> None:
    run = load_run(run_id, store)
    shutil.rmtree(run.path)
