"""The ``ray`` backend: a sweep's slots trained as chunks on a Ray cluster (or a local Ray runtime).

A chunk is a block of (combination, seed) slots trained with the batched trainer,
so every worker keeps the batched speed-up; there is at most one chunk per worker
(CPUs, or GPUs where the cluster has them, from ``ray.cluster_resources()``), the
chunks as even as blocks allow (``explorer.training.backends.chunks``). A slot's
numbers depend only on its own seed, never on which slots share its stack, so any
chunking gives the runs ``--backend local`` gives.

The dataset and the prepared tensors go into the object store once per backend
(``ray.put``), not once per chunk, and the models come back as state dicts: the
driver takes tensors and plain data from a worker, never objects of its classes.

Progress: each worker reports its chunk's trained share (its batched trainer's steps, as a share
of the chunk's slots) to a small actor, at most every ``REPORT_EVERY_S``; the driver reads the
reports while it waits and emits one ``ProgressEvent`` in slot units per report and per finished
chunk (``done`` of ``total`` slots, the message "k/N slots on 2 workers, 2 CPUs, 0 GPUs").

Faults: a chunk whose worker dies is run again (``max_retries``: Ray retries
system failures only); a chunk that raises, for a reason of its own such as bad
data, is not retried (``retry_exceptions=False``) and fails the sweep at once
with its message, the other chunks cancelled.
"""
from __future__ import annotations

import itertools
import logging
import os
import time

# No network on many machines that run this, and nothing to phone home about: set before Ray is imported.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray  # noqa: E402  (only this module imports Ray, and only when the backend is chosen)

from explorer.errors import ExplorerError  # noqa: E402
from explorer.training.backends import Backend, check_address, chunks  # noqa: E402
from explorer.training.progress import emit  # noqa: E402

NAME = "ray"
HELP = "train on a Ray cluster (--address) or a local Ray runtime on this machine"
MAX_RETRIES = 3          # retries of a chunk whose worker died
REPORT_EVERY_S = 0.5     # a worker reports its chunk's progress at most this often
# Test hook: while this file exists, the first chunk writes its worker's pid to FILE.pid and waits to be killed.
HOLD_ENV = "EXPLORER_RAY_HOLD_FILE"


def connect(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join the cluster at ``address``, or start a local runtime (127.0.0.1, no dashboard) without one."""
    if address:
        check_address(address)  # before anything else, even when this process is already connected
    if ray.is_initialized():
        return
    quiet = dict(log_to_driver=False, logging_level=logging.ERROR, configure_logging=True)
    if address:
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ExplorerError(f"no Ray cluster at {address}: start one with `ray start --head` or drop "
                                f"--address ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
        return
    ray.init(num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1", **quiet)


def cluster() -> dict:
    """What the cluster offers: CPUs, GPUs, and the chunks it runs at once (workers)."""
    res = ray.cluster_resources()
    cpus, gpus = int(res.get("CPU", 0)), int(res.get("GPU", 0))
    return {"cpus": cpus, "gpus": gpus, "workers": max(1, gpus or cpus)}


def describe_cluster(info: dict) -> str:
    return (f"{info['workers']} worker{'s' * (info['workers'] != 1)}, {info['cpus']} CPU{'s' * (info['cpus'] != 1)}, "
            f"{info['gpus']} GPU{'s' * (info['gpus'] != 1)}")


def _hold_for_test() -> None:
    path = os.environ.get(HOLD_ENV)
    if not path or not os.path.exists(path):  # armed by creating the file
        return
    try:
        fd = os.open(path + ".pid", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return  # only the first chunk (not its retry) waits
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    time.sleep(60)


@ray.remote(num_cpus=0)
class _Progress:
    """Where workers report how far their chunk is (in slots), and the driver reads the reports in order.

    One per backend, on no CPU of its own. A report is a blocking call, so every report
    a chunk made is here before the chunk's result is: the driver reads them first."""

    def __init__(self):
        self.reports: dict[int, list[tuple[int, float]]] = {}

    def report(self, token: int, chunk: int, slots_done: float) -> None:
        self.reports.setdefault(token, []).append((chunk, slots_done))

    def take(self, token: int) -> list[tuple[int, float]]:
        return self.reports.pop(token, [])


class _Reporter:
    """A worker's progress callback: its trainer's events as slots done, at most every ``EVERY_S``
    (the first and the last always), to the driver's ``_Progress``."""

    def __init__(self, actor, key: tuple, slots: int):
        self.actor, self.key, self.slots, self.last = actor, key, slots, 0.0

    def __call__(self, event) -> None:
        now = time.monotonic()
        if event.fraction < 1.0 and self.last and now - self.last < REPORT_EVERY_S:
            return
        self.last = now
        ray.get(self.actor.report.remote(*self.key, self.slots * event.fraction))


def _train_chunk(dataset, prepared, combinations, config, seeds, mode, keep_models, reporter=None):
    """On a worker: one block of slots with the batched trainer; plain data and tensors back."""
    from explorer.training.batched import train_combinations
    _hold_for_test()
    runs = train_combinations(dataset, combinations, config, seeds, mode=mode, prepared=prepared,
                              keep_models=keep_models, progress=reporter)
    return [{"tasks": list(r.tasks), "seed": r.seed, "metrics": r.metrics, "best_epoch": r.best_epoch,
             "history": r.history, "seconds": r.seconds, "device": r.device, "model_metrics": r.model_metrics,
             "task_epoch": r.task_epoch, "test_pred": r.test_pred,  # plain dicts of numpy arrays
             "state": None if r.model is None else {k: v.detach().cpu() for k, v in r.model.state_dict().items()}}
            for r in runs]


_remote_chunk = ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False)(_train_chunk)


@ray.remote(num_cpus=1)
def _warm(seconds: float) -> int:
    import explorer.training.batched  # noqa: F401  (the first import in a worker is most of its start)
    time.sleep(seconds)  # held, so each worker gets one
    return os.getpid()


class RayBackend(Backend):
    name = NAME

    def __init__(self, address: str | None = None, num_cpus: int | None = None):
        connect(address, num_cpus)
        self.address = address
        self._progress = _Progress.remote()  # started now, so it is up before the first chunk reports
        self._tokens = itertools.count(1)  # one per call, so concurrent sweeps' reports never mix
        self._refs: dict[int, tuple[object, object]] = {}  # id(obj) -> (obj kept alive, its object ref)

    def describe(self) -> str:
        return describe_cluster(cluster())

    def warm_up(self) -> int:
        """Start every worker process and import the trainer there; the number of workers that answered."""
        ray.get(self._progress.take.remote(0))  # the progress actor is up too
        return len(set(ray.get([_warm.remote(0.5) for _ in range(cluster()["workers"])])))

    def _put(self, obj):
        held = self._refs.get(id(obj))
        if held is None or held[0] is not obj:
            held = self._refs[id(obj)] = (obj, ray.put(obj))
        return held[1]

    def train_combinations(self, dataset, combinations, config, seeds, mode="batched", progress=None,
                           prepared=None, keep_models=False):
        from explorer.relatedness.combos import ComboRun, normalise_combinations, prepare_union, restrict
        from explorer.training.trainer import model_spec
        from models import MultiTaskModel

        config = config.resolve(dataset.modality)
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise ExplorerError("No seed given: pass at least one, e.g. seeds=[0].")
        combinations = normalise_combinations(dataset, combinations, prepared)
        if prepared is None:  # prepared once here, not once per chunk
            prepared = prepare_union(dataset, combinations, config, None)
        info = cluster()
        use_gpu = info["gpus"] > 0 and config.device in ("auto", "cuda") or config.device.startswith("cuda")
        options = {"num_gpus": 1, "num_cpus": 1} if use_gpu else {"num_cpus": 1}
        data_ref, prepared_ref = self._put(dataset), self._put(prepared)
        token = next(self._tokens)
        pending, sizes = {}, []
        for index, (combos, chunk_seeds) in enumerate(chunks(combinations, seeds, info["workers"])):
            slots = len(combos) * len(chunk_seeds)
            reporter = None if progress is None else _Reporter(self._progress, (token, index), slots)
            ref = _remote_chunk.options(**options).remote(data_ref, prepared_ref, combos, config, chunk_seeds,
                                                          mode, keep_models, reporter)
            pending[ref] = index
            sizes.append(slots)
        total, size = len(combinations) * len(seeds), describe_cluster(info)
        running = [0.0] * len(sizes)   # slots done per chunk: reported while it runs, all of them once it returns
        results: dict[tuple, dict] = {}
        self._report(progress, running, total, size)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=REPORT_EVERY_S / 2)
                if progress is not None:  # the reports first: a finished chunk's are all in by now
                    for index, done in ray.get(self._progress.take.remote(token)):
                        if done > running[index]:  # a retried chunk reports from 0 again: the bar holds
                            running[index] = done
                            self._report(progress, running, total, size)
                for ref in ready:
                    index = pending.pop(ref)
                    for r in _get(ref):
                        results[(tuple(r["tasks"]), r["seed"])] = r
                    running[index] = float(sizes[index])
                    self._report(progress, running, total, size)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        runs = []
        for seed in seeds:  # seed-major, like the batched trainer
            for combo in combinations:
                r = results[(combo, seed)]
                model = None
                if r["state"] is not None:
                    model = MultiTaskModel(model_spec(restrict(prepared, combo), config))
                    model.load_state_dict(r["state"])
                    model.eval()
                runs.append(ComboRun(combo, seed, r["metrics"], r["best_epoch"], r["history"], model=model,
                                     seconds=r["seconds"], device=r["device"], model_metrics=r["model_metrics"],
                                     task_epoch=r["task_epoch"], test_pred=r["test_pred"]))
        return runs

    @staticmethod
    def _report(progress, running: list[float], total: int, size: str) -> None:
        """One event in slot units: ``done`` counts the slots trained (a running chunk's share of its steps
        as a share of its slots), ``total`` the slots of the call."""
        done = min(float(total), sum(running))
        emit(progress, "train", done, total, f"{int(done + 1e-9)}/{total} slots on {size}")


def _get(ref) -> list[dict]:
    """A chunk's result; its own error (bad data) as one sentence, a worker lost past its retries as another."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, ExplorerError):
            raise ExplorerError(str(cause)) from None
        raise ExplorerError(f"A chunk of the sweep failed on a Ray worker: {type(cause).__name__ if cause else ''} "
                            f"{cause if cause else str(e).splitlines()[0]}") from None
    except ray.exceptions.RayError as e:
        raise ExplorerError(f"A Ray worker was lost {MAX_RETRIES + 1} times running one chunk of the sweep "
                            f"({type(e).__name__}); check the cluster's nodes and memory, then run it again.") \
            from None


def make(address: str | None = None, num_cpus: int | None = None) -> RayBackend:
    return RayBackend(address, num_cpus)
