"""The run store: every trained model is a folder of safetensors and JSON, never pickle.

Layout of one run, ``$EXPLORER_HOME/<run id>/`` (default ``./runs``):
    model.safetensors   weights
    config.json         dataset source, tasks, network spec, training config,
                        preprocessing (vocabulary or feature transform)
    metrics.json        test metrics and the majority baseline per task
    history.json        losses per epoch
    test_predictions.npz  each task's test predictions at its own best validation epoch
                        (numpy arrays, no pickle), for the paired test-row bootstrap of a reused run;
                        runs saved before it existed, or with a damaged file, have none
A run is written to a hidden temporary folder and renamed when complete, so an
interrupted save never leaves half a run behind; such leftovers older than an hour
are removed the next time the store is opened. Deleting a run moves it into
``.trash/`` inside the store (``empty_trash`` clears it), so a wrong click loses nothing.
A folder that is not a readable run (a config.json lacking a key, a symbolic link)
is listed as damaged with the reason, never breaks the listing, and can be deleted.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from explorer.errors import ExplorerError
from explorer.store.predict import Predictor
from explorer.data.preprocess import preprocessor_from_dict
from explorer.data.tasks import Task
from explorer.training.trainer import LEGACY, TrainConfig, TrainResult
from models.architectures.mmoe import EXPERTS
from models import ModelSpec, MultiTaskModel
from models.architectures import DEFAULT as DEFAULT_ARCH

RUN_ID = re.compile(r"^[A-Za-z0-9_.+-]+$")
TRASH = ".trash"
LEFTOVER_AGE_S = 3600       # a temporary folder this old belongs to a save that was killed
MIN_FREE_BYTES = 64 << 20   # a run of the app's sizes takes a few MiB; less free space than this is "full"
# What a run's files must hold for the store, the pages and the predictor to read it.
TEST_PREDICTIONS = "test_predictions.npz"
CONFIG_KEYS = {"dataset": dict, "tasks": list, "model": dict, "train": dict, "preprocess": dict, "modality": str}


def home() -> Path:
    return Path(os.environ.get("EXPLORER_HOME", "runs"))


def check_store_writable(store: Path | str | None = None) -> Path:
    """The run store, created if missing, or an ExplorerError when a run could not be saved there.

    Called before training (CLI and app) so that an unwritable, missing-and-uncreatable
    or full store is reported before the work, not after it.
    """
    store = Path(store or home())
    fix = "Set EXPLORER_HOME to a writable folder (or train with --no-save)."
    if store.exists() and not store.is_dir():
        raise ExplorerError(f"The run store {store} is a file, not a folder. {fix}")
    try:
        store.mkdir(parents=True, exist_ok=True)
        # os.access is not enough (read-only mounts, ACLs): really create a file.
        fd, probe = tempfile.mkstemp(prefix=".tmp-probe-", dir=store)
        os.close(fd)
        os.unlink(probe)
        free = shutil.disk_usage(store).free
    except OSError as e:
        raise ExplorerError(f"The run store {store} is not writable ({e.strerror or e}). {fix}") from None
    if free < MIN_FREE_BYTES:
        raise ExplorerError(f"The run store {store} is full ({free >> 20} MiB free, a run needs up to "
                            f"{MIN_FREE_BYTES >> 20} MiB). Free some space or {fix[0].lower() + fix[1:]}")
    return store


def clean_leftovers(store: Path | str | None = None, older_than: float = LEFTOVER_AGE_S) -> list[str]:
    """Remove what killed saves left in the store: ``.tmp-*`` folders and ``.*.tmp`` files older than an hour.

    Younger ones may belong to a save in progress in another process, so they stay.
    """
    store = Path(store or home())
    removed = []
    try:
        entries = list(store.iterdir())
    except OSError:
        return removed
    now = time.time()
    for path in entries:
        name = path.name
        if not (name.startswith(".tmp-") or (name.startswith(".") and name.endswith(".tmp"))):
            continue
        try:
            if now - path.lstat().st_mtime < older_than:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(name)
        except OSError:
            continue  # another process removed it, or it is not ours to remove
    return removed


def reuse_key(fingerprint: str, tasks: list[str], config: TrainConfig) -> str:
    """Runs with equal keys are interchangeable: same data, tasks, split and settings.

    The device is left out: a baseline trained on the GPU serves a CPU comparison. The default
    architecture is left out too, so runs stored before architectures existed keep their keys, and so
    is the number of experts unless the architecture uses it and it is not the default, and a
    setting at the value runs were trained with before it existed (``LEGACY``).
    """
    settings = {k: v for k, v in config.to_dict().items()
                if k != "device" and not (k == "arch" and v == DEFAULT_ARCH)
                and not (k == "experts" and (v == EXPERTS or config.arch != "mmoe"))
                and not (k in LEGACY and v == LEGACY[k])}
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

    def test_predictions(self) -> dict[str, np.ndarray]:
        """Task -> test predictions at the task's own best epoch, as saved; {} when the run has none.

        Old runs have no file, and a file that does not fit the run (unreadable, a pickle, another
        task, the wrong number of test rows, a class code out of range, a non-finite value) counts as
        none: the predictions only add test-row noise to a gain, so a bad file must never stop a sweep.
        """
        return read_test_predictions(self.path / TEST_PREDICTIONS, self.tasks,
                                     (self.config.get("split_sizes") or {}).get("test"))

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


def _prediction_arrays(result: TrainResult) -> dict[str, np.ndarray]:
    """What test_predictions.npz holds: ``task_<i>`` (i = the task's place in config.json's tasks) -> 1-D array."""
    out = {}
    for i, task in enumerate(result.tasks):
        pred = (result.test_predictions or {}).get(task.name)
        if pred is not None:
            pred = np.asarray(pred)  # regression keeps its float type, so a reused run bootstraps bit for bit
            out[f"task_{i}"] = pred.astype(np.int64) if task.is_classification else pred
    return out


def read_test_predictions(path: Path, tasks: list[Task], n_test) -> dict[str, np.ndarray]:
    """The checked contents of a run's test_predictions.npz (see ``Run.test_predictions``)."""
    if not isinstance(n_test, int) or n_test < 0 or not path.is_file() or path.is_symlink():
        return {}
    out = {}
    try:
        with np.load(path, allow_pickle=False) as data:
            for i, task in enumerate(tasks):
                key = f"task_{i}"
                if key not in data.files:
                    continue
                pred = data[key]
                if pred.ndim != 1 or len(pred) != n_test:
                    return {}
                if task.is_classification:
                    if pred.dtype.kind not in "iu" or (len(pred) and (pred.min() < 0
                                                                       or pred.max() >= task.n_outputs)):
                        return {}
                elif pred.dtype.kind != "f" or not np.isfinite(pred).all():
                    return {}
                out[task.name] = pred
    except Exception:  # noqa: BLE001 - a damaged file of any kind means "no predictions", never a crash
        return {}
    return out


def save_run(result: TrainResult, store: Path | None = None) -> Run:
    """Write ``result`` as a run folder, atomically.

    When the store cannot take it (unwritable, full), the trained model is not lost:
    the run is written to a temporary folder instead, and the error says where.
    """
    store = Path(store or home())
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
    if result.task_epoch:  # the epochs test_predictions.npz comes from (multi-task: not the saved weights')
        metrics["task_epoch"] = dict(result.task_epoch)
    predictions = _prediction_arrays(result)
    state = {k: v.detach().cpu().contiguous() for k, v in result.model.state_dict().items()}
    _check_finite_run(config, state)  # never a NaN model or an 'Infinity' in config.json
    try:
        store.mkdir(parents=True, exist_ok=True)
        clean_leftovers(store)
        _write_run(store / f".tmp-{run_id}", store / run_id, state, config, metrics, result.history, predictions)
    except OSError as e:
        kept = Path(tempfile.mkdtemp(prefix="explorer-unsaved-")) / run_id
        try:
            _write_run(kept.with_name(".tmp"), kept, state, config, metrics, result.history, predictions)
        except OSError:
            raise ExplorerError(f"Could not save the run in {store} ({e.strerror or e}), nor in a temporary "
                                "folder; the trained model is lost. Free some space and train again.") from None
        raise ExplorerError(f"Could not save the run in {store} ({e.strerror or e}). The trained model is kept "
                            f"in {kept}: move that folder into a writable run store (EXPLORER_HOME) to use it.") \
            from None
    return Run(run_id, store / run_id, config, metrics)


def _non_finite(value, where: str = "") -> str | None:
    """The path of the first non-finite number in ``value`` (dicts, lists, numbers, arrays), or None."""
    if isinstance(value, dict):
        return next((p for k, v in value.items() if (p := _non_finite(v, f"{where}.{k}" if where else str(k)))),
                    None)
    if isinstance(value, (list, tuple)):
        return next((p for i, v in enumerate(value) if (p := _non_finite(v, f"{where}[{i}]"))), None)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _non_finite(value.tolist(), where)
    if isinstance(value, float) and not math.isfinite(value):
        return where or "a value"
    return None


def _check_finite_run(config: dict, state: dict) -> None:
    """The last line of defence behind the data checks and ``FiniteLoss``: a run with a non-finite weight or
    setting is refused before anything is written."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ExplorerError(f"The trained model's weights '{name}' hold NaN or infinite values, so the run "
                                "was not saved. Train again with a lower learning rate (--lr), or check the "
                                "data for extreme values.")
    where = _non_finite(config)
    if where is not None:
        raise ExplorerError(f"The run's settings hold a non-finite number at {where}, so the run was not "
                            "saved. Check the data for extreme values (the Data rules in the README).")


def _write_run(tmp: Path, final: Path, state: dict, config: dict, metrics: dict, history,
               predictions: dict[str, np.ndarray] | None = None) -> None:
    tmp.mkdir()
    try:
        save_file(state, tmp / "model.safetensors")
        _write_json(tmp / "config.json", config)
        _write_json(tmp / "metrics.json", metrics)
        _write_json(tmp / "history.json", history)
        if predictions:
            with open(tmp / TEST_PREDICTIONS, "wb") as f:
                np.savez_compressed(f, **predictions)
        os.replace(tmp, final)  # atomic: the run appears whole or not at all
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@dataclass
class Damaged:
    """A folder in the store that is not a readable run, and why; ``delete_run`` removes it."""
    id: str
    path: Path
    reason: str


def check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not RUN_ID.match(run_id) or run_id.startswith("."):
        raise ExplorerError(f"'{run_id}' is not a valid run id. List runs with `python -m explorer runs`.")
    return run_id


def _problem(config, metrics) -> str | None:
    """Why a run's config.json / metrics.json cannot be used, or None when they can."""
    if not isinstance(config, dict):
        return "config.json does not hold an object"
    for key, kind in CONFIG_KEYS.items():
        if key not in config:
            return f"config.json lacks {key}"
        if not isinstance(config[key], kind):
            return f"config.json's {key} is not a{'n' if kind is dict else ''} {kind.__name__}"
    if not config["tasks"] or not all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in config["tasks"]):
        return "config.json's tasks lack names"
    if "seed" not in config["train"] or "method" not in config["train"]:
        return "config.json's train lacks seed or method"
    if not isinstance(metrics, dict) or not isinstance(metrics.get("test"), dict):
        return "metrics.json lacks test"
    if not all(isinstance(m, dict) and "primary" in m for m in metrics["test"].values()):
        return "metrics.json's test scores lack their primary metric"
    return None


def _read(path: Path) -> Run | Damaged:
    if path.is_symlink():
        return Damaged(path.name, path, "a symbolic link, not a run folder")
    if not path.is_dir():
        return Damaged(path.name, path, "a file, not a run folder")
    try:
        config = json.loads((path / "config.json").read_text())
        metrics = json.loads((path / "metrics.json").read_text())
    except FileNotFoundError as e:
        return Damaged(path.name, path, f"{Path(e.filename).name} is missing")
    except (OSError, ValueError, RecursionError) as e:
        return Damaged(path.name, path, f"unreadable ({type(e).__name__})")
    reason = _problem(config, metrics)
    return Run(path.name, path, config, metrics) if reason is None else Damaged(path.name, path, reason)


def load_run(run_id: str, store: Path | None = None) -> Run:
    store = Path(store or home())
    path = store / check_run_id(run_id)
    if not path.exists() and not path.is_symlink():
        raise ExplorerError(f"No run '{run_id}' in {store}. List runs with `python -m explorer runs`.")
    found = _read(path)
    if isinstance(found, Damaged):
        raise ExplorerError(f"Run '{run_id}' is damaged ({found.reason}); delete it with "
                            f"`python -m explorer runs --delete {run_id}` and train again.")
    return found


def scan_store(store: Path | None = None) -> tuple[list[Run], list[Damaged]]:
    """The complete runs (newest first) and the damaged entries (by name) of the store.

    Also removes leftovers of killed saves (see ``clean_leftovers``).
    """
    store = Path(store or home())
    if not store.is_dir():
        return [], []
    clean_leftovers(store)
    runs, damaged = [], []
    for path in store.iterdir():
        if path.name.startswith("."):  # temporary folders, the trash
            continue
        if not path.is_dir() and not path.is_symlink():
            continue  # a stray file (a README, a bundle someone put here) is not a run
        found = _read(path)
        (runs if isinstance(found, Run) else damaged).append(found)
    runs.sort(key=lambda r: str(r.config.get("created", "")), reverse=True)
    return runs, sorted(damaged, key=lambda d: d.id)


def list_runs(store: Path | None = None) -> list[Run]:
    """Complete runs, newest first; damaged folders are left out (``scan_store`` lists them)."""
    return scan_store(store)[0]


def damaged_runs(store: Path | None = None) -> list[Damaged]:
    return scan_store(store)[1]


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


def single_task_runs(run: Run, task: str, store: Path | None = None) -> list[Run]:
    """Saved single-task runs of ``task`` comparable with ``run``: same data, split and settings.

    Matched by the run store's reuse key with the candidate's seed and method
    (seeds are the noise being measured, and with one task every method is plain
    training); the run itself is left out.
    """
    train = run.config.get("train", {})
    found = []
    for other in list_runs(store):
        if other.id == run.id or [t["name"] for t in other.config.get("tasks", [])] != [task]:
            continue
        settings = {**train, "seed": other.config["train"]["seed"], "method": other.config["train"]["method"]}
        if other.config.get("key") == reuse_key(run.config.get("fingerprint", ""), [task],
                                                TrainConfig.from_stored(settings)):
            found.append(other)
    return found


def delete_run(run_id: str, store: Path | None = None) -> Path:
    """Move a run (or a damaged entry) into the store's trash; returns where it went.

    A symbolic link is moved as a link: what it points to is never touched.
    """
    store = Path(store or home())
    path = store / check_run_id(run_id)
    if not path.exists() and not path.is_symlink():
        raise ExplorerError(f"No run '{run_id}' in {store}: it was deleted already, or never saved here. "
                            "List runs with `python -m explorer runs`.")
    trash = store / TRASH
    target = trash / f"{run_id}.{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    try:
        trash.mkdir(exist_ok=True)
        os.replace(path, target)
    except OSError as e:
        raise ExplorerError(f"Cannot delete run '{run_id}': {e.strerror or e}.") from None
    return target


def trash_size(store: Path | None = None) -> int:
    """How many deleted runs wait in the trash."""
    trash = Path(store or home()) / TRASH
    return sum(1 for _ in trash.iterdir()) if trash.is_dir() else 0


def empty_trash(store: Path | None = None) -> int:
    """Remove the deleted runs for good; returns how many there were."""
    trash = Path(store or home()) / TRASH
    if trash.is_symlink():
        trash.unlink()  # never follow a link out of the store
        return 0
    if not trash.is_dir():
        return 0
    n = 0
    for path in list(trash.iterdir()):
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            n += 1
        except OSError as e:
            raise ExplorerError(f"Cannot empty the trash ({path.name}: {e.strerror or e}).") from None
    return n
